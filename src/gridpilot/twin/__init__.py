"""The digital twin: power flow (single and batch time series) and topology of a grid.

>>> from gridpilot.model import load_grid
>>> from gridpilot.twin import Twin
>>> twin = Twin(load_grid("case33bw"))
>>> twin.powerflow().summary()["losses_kw"]
"""

from gridpilot.twin.contingency import ContingencyResult, N1Report, n1_sweep, write_n1_report
from gridpilot.twin.inputs import INJECTION_KEYS, profiles_for, step_injections
from gridpilot.twin.pgm import PgmNetwork, to_pgm
from gridpilot.twin.results import PowerFlowResult, TimeSeriesResult
from gridpilot.twin.scenarios import (
    SCENARIOS,
    ScenarioReport,
    ScenarioSpec,
    run_many,
    run_one,
    run_scenario,
    write_report,
)
from gridpilot.twin.topology import (
    Tree,
    buses_lost_if_open,
    energised,
    is_radial,
    islands,
    supply_tree,
)
from gridpilot.twin.twin import Twin, powerflow, wall_ms

__all__ = [
    "INJECTION_KEYS",
    "SCENARIOS",
    "ContingencyResult",
    "N1Report",
    "PgmNetwork",
    "PowerFlowResult",
    "ScenarioReport",
    "ScenarioSpec",
    "TimeSeriesResult",
    "Tree",
    "Twin",
    "buses_lost_if_open",
    "energised",
    "is_radial",
    "islands",
    "n1_sweep",
    "powerflow",
    "profiles_for",
    "run_many",
    "run_one",
    "run_scenario",
    "step_injections",
    "supply_tree",
    "to_pgm",
    "wall_ms",
    "write_n1_report",
    "write_report",
]
