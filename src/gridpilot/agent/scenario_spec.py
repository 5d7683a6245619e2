"""The scenarios' vocabulary: names, KPI units and prices, one run's spec and result, and the
grids they run on (see :mod:`gridpilot.agent.scenarios`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCENARIOS = ("fault", "heatwave", "ev-surge", "cyberattack", "n-1", "theft")
WORLDS = ("sim", "field")  # SimWorld (the twin) or FieldWorld (gridpilot.field)
PRICE_EUR_MWH = 120.0
VOLL_EUR_MWH = 10_000.0
DR_EUR_MWH = 150.0
CO2_T_MWH = 0.35
SUSTAINED_MIN = 3.0
WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}  # one core per worker
SUMMER_DAY = 200
WINTER_DAY = 20

KPI_UNITS = {
    "energy_not_served_mwh": "MWh",
    "saidi_min": "min",
    "saifi": "1/customer",
    "maifi": "1/customer",
    "voltage_violation_min": "min",
    "loading_violation_min": "min",
    "peak_import_mw": "MW",
    "losses_mwh": "MWh",
    "curtailment_mwh": "MWh",
    "cost_eur": "EUR",
    "co2_t": "t",
}


@dataclass
class ScenarioSpec:
    """One run: scenario ``name`` on ``grid`` for ``hours``, ``controlled`` or not, with parameters."""

    name: str
    grid: str = "case33bw"
    hours: float = 4.0
    controlled: bool = True
    step_s: float = 60.0
    fleet: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    world: str = "field"  # "field" (FieldWorld: gridpilot.field's simulator) or "sim" (SimWorld)


@dataclass
class RunResult:
    """KPIs and per-step series of one run (series: time, import, served load, vmin, max loading, dead buses)."""

    spec: ScenarioSpec
    kpis: dict[str, float]
    series: dict[str, list[Any]]
    actions: int
    refused: int
    wall_s: float
    notes: list[str] = field(default_factory=list)
    telemetry_refused: int = 0
    bad_data_removed: list[str] = field(default_factory=list)  # measurements the estimator removed


def scenario_grid(name: str, fleet: bool = True) -> Any:
    """The grid of a scenario: a built-in grid, with gridpilot's demo fleet when ``fleet``."""
    from gridpilot.agent.fleet import demo_grid
    from gridpilot.model import load_balanced_grid

    return demo_grid(name) if fleet else load_balanced_grid(name, "the scenarios")


def default_fault_line(grid: Any) -> int:
    """A mid-feeder line for the fault scenario: 7 on case33bw, else the switched line of median depth."""
    from gridpilot.model import ElementType
    from gridpilot.twin import supply_tree

    if grid.name.startswith("case33bw"):
        return 7
    tree = supply_tree(grid)
    sw = grid.switch
    lines = sw["element"][(sw["et"] == ElementType.LINE) & sw["closed"] & (sw["kind"] != 0)]
    if lines.size == 0:
        return int(grid.line.ids[len(grid.line) // 2])
    pos = grid.line.index_of(lines)
    d = tree.depth[grid.bus.position_map(grid.line["to_bus"][pos])]
    return int(lines[np.argsort(d)[d.size // 2]])
