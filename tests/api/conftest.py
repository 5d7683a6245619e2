from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gridpilot.agent import Orchestrator, SimWorld, demo_grid
from gridpilot.api import KeyStore, create_app

EVENING = 200 * 96 + 17 * 4


@pytest.fixture(scope="session")
def grid():
    return demo_grid("case33bw")


@pytest.fixture
def setup(grid):
    orch = Orchestrator(SimWorld(grid, start_step=EVENING))
    orch.run(2)
    keys = KeyStore.generate()
    client = TestClient(create_app(orch, keys))
    return orch, keys, client


def hdr(keys: KeyStore, role: str) -> dict[str, str]:
    return {"X-API-Key": keys.issued[role]}
