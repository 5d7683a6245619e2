from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gridpilot.agent import FieldWorld, Orchestrator, SimWorld, demo_grid
from gridpilot.api import KeyStore, create_app

EVENING = 200 * 96 + 17 * 4


@pytest.fixture(scope="session")
def grid():
    return demo_grid("case33bw")


@pytest.fixture(params=["field", "sim"])
def setup(grid, request):
    """(orchestrator, keys, client) on the field world (the default of demo and serve) and SimWorld."""
    world = FieldWorld if request.param == "field" else SimWorld
    orch = Orchestrator(world(grid, start_step=EVENING))
    orch.run(2)
    keys = KeyStore.generate()
    client = TestClient(create_app(orch, keys))
    return orch, keys, client


def hdr(keys: KeyStore, role: str) -> dict[str, str]:
    return {"X-API-Key": keys.issued[role]}
