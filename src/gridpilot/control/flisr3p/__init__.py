"""FLISR and reconfiguration on unbalanced (three-phase) feeders such as ``ieee123`` and
``ieee8500``: locate from fault indicators, isolate, restore through ties with limits held per
node-phase and branch-phase in the three-phase twin (:mod:`.engine`); least-loss radial
reconfiguration over the feeder's switches (:mod:`.reconfig`). See docs/flisr3p.md.
"""

from gridpilot.control.flisr3p.engine import Flisr3pEngine
from gridpilot.control.flisr3p.results import Flisr3pResult, Indications3p

__all__ = ["Flisr3pEngine", "Flisr3pResult", "Indications3p"]
