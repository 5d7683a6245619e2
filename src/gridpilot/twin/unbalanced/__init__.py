"""The unbalanced (multi-phase) twin: OpenDSS-faithful power flow, controls and QSTS.

>>> from gridpilot.model import load_grid
>>> from gridpilot.twin.unbalanced import UnbalancedTwin
>>> res = UnbalancedTwin(load_grid("ieee13")).powerflow()
>>> res.nodes_df()          # per node-phase v_pu, angle_deg

Switching with de-energised sections: :func:`solve_switched` (see :mod:`.topology`);
faults: :class:`Fault`, :func:`fault_study` (see :mod:`.faults`).
"""

from gridpilot.twin.unbalanced.faults import Fault, fault_study
from gridpilot.twin.unbalanced.results import UnbalancedResult, unbalance_factor
from gridpilot.twin.unbalanced.solver import SolveOptions
from gridpilot.twin.unbalanced.topology import (
    SwitchedResult,
    SwitchingSolver,
    normalise_ties,
    solve_switched,
)
from gridpilot.twin.unbalanced.twin import UnbalancedTwin

__all__ = [
    "Fault",
    "SolveOptions",
    "SwitchedResult",
    "SwitchingSolver",
    "UnbalancedResult",
    "UnbalancedTwin",
    "fault_study",
    "normalise_ties",
    "solve_switched",
    "unbalance_factor",
]
