"""Fixtures shared by the phase-aware flex tests: ieee13 and a seeded fleet placed on it."""

from __future__ import annotations

import pytest

from gridpilot.flex import PhaseFleet, PlaceConfig, place_fleet
from gridpilot.model import load_grid
from gridpilot.model.threephase import ThreePhaseGrid


@pytest.fixture(scope="module")
def ieee13() -> ThreePhaseGrid:
    g = load_grid("ieee13")
    assert isinstance(g, ThreePhaseGrid)
    return g


@pytest.fixture(scope="module")
def fleet13(ieee13: ThreePhaseGrid) -> PhaseFleet:
    return place_fleet(ieee13, PlaceConfig(seed=3))
