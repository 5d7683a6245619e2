"""Fixtures of the state-estimation tests."""

from __future__ import annotations

import pytest

from gridpilot.estimation import StateEstimator
from gridpilot.twin import Twin


@pytest.fixture(scope="module")
def setup(case33):
    """case33bw, its power flow (the truth) and an estimator of it."""
    pf = Twin(case33).powerflow()
    return case33, pf, StateEstimator(case33)
