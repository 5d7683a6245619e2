"""FLISR: fault location, isolation and service restoration, decided in milliseconds.

:class:`FlisrEngine` precomputes per grid the sections (zones bounded by switches), a radial
power-flow solver and the pre-fault state; :meth:`FlisrEngine.respond` turns the control
room's :class:`~gridpilot.control.location.Indications` into an ordered switching plan:

1. **locate** the faulted section(s) (:func:`~gridpilot.control.location.locate`);
2. **isolate**: open every closed switch bounding them; a bound that is not remote-controllable
   widens the isolated zone across it (said in ``notes``);
3. **restore**: reclose the tripped breaker when it is not a bound (the upstream part), then
   for each de-energised healthy island pick a radial way to feed it through normally-open
   ties: one tie, two ties with a cut between them, then branch exchanges (close a switch,
   open one on the loop it makes); every candidate of a round is checked at once by the
   batched radial AC power flow (:mod:`gridpilot.control.radialpf`) on the affected feeders,
   holding voltages in band and branches within rating. If nothing feasible restores an island
   whole, the sections of least priority-weighted load are shed, greedily, until it is;
4. optionally **verify** the final state by a full power flow in the twin.

The plan opens before it closes, never closes a switch that bounds an isolated section, and
closes each island through exactly one tie per part, so two sources are never paralleled and
the network stays radial.

The package, in the order of those steps: :mod:`.location` (locate; also
:func:`indications_for_fault`), :mod:`.isolation`, :mod:`.restoration` (with :mod:`.region`,
the radial sweep's view of an island, and :mod:`.graph`, its graph helpers),
:mod:`.verification` (the twin check and re-planning); :mod:`.engine` runs them;
:mod:`.results` holds what it returns and :mod:`._kernels` the numba kernels.
"""

from gridpilot.control.flisr.engine import FlisrEngine, branch_status_all
from gridpilot.control.flisr.location import indications_for_fault
from gridpilot.control.flisr.results import FlisrResult, Limits, SwitchAction

__all__ = [
    "FlisrEngine",
    "FlisrResult",
    "Limits",
    "SwitchAction",
    "branch_status_all",
    "indications_for_fault",
]
