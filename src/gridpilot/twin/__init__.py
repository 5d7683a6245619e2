"""The digital twin: power flow (single and batch time series) and topology of a grid.

What-if scenarios and N-1 sweeps run the orchestrator in the twin, so they live in
:mod:`gridpilot.agent` (``run_scenario``, ``n1_sweep``).

>>> from gridpilot.model import load_grid
>>> from gridpilot.twin import Twin
>>> twin = Twin(load_grid("case33bw"))
>>> twin.powerflow().summary()["losses_kw"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "injections": ("Injections",),
    "inputs": ("profiles_for", "step_injections"),
    "pgm": ("to_pgm",),
    "results": ("PowerFlowResult", "TimeSeriesResult"),
    "topology": (
        "buses_lost_if_open",
        "energised",
        "is_radial",
        "islands",
        "meshes",
        "supply_tree",
    ),
    "twin": ("Twin",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.twin.injections import Injections
    from gridpilot.twin.inputs import profiles_for, step_injections
    from gridpilot.twin.pgm import to_pgm
    from gridpilot.twin.results import PowerFlowResult, TimeSeriesResult
    from gridpilot.twin.topology import (
        buses_lost_if_open,
        energised,
        is_radial,
        islands,
        meshes,
        supply_tree,
    )
    from gridpilot.twin.twin import Twin
