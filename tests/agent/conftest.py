from __future__ import annotations

import pytest

from gridpilot.agent import Orchestrator, SimWorld, demo_grid
from gridpilot.model import Grid

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00


@pytest.fixture(scope="session")
def fleet_grid() -> Grid:
    return demo_grid("case33bw")


@pytest.fixture
def orch(fleet_grid: Grid) -> Orchestrator:
    return Orchestrator(SimWorld(fleet_grid, start_step=EVENING))
