"""Aggregated frequency model and fleet fast frequency response."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.control.frequency import FleetResponse, FrequencySystem, compare, simulate_loss
from gridpilot.errors import ValidationError


def test_rocof_matches_the_swing_equation():
    sys_ = FrequencySystem()
    r = simulate_loss(sys_, 1000.0, duration_s=5.0)
    expected = 1000.0 / sys_.s_mw / (2 * sys_.h_s) * sys_.f0_hz
    assert r.rocof_hz_per_s == pytest.approx(expected, rel=0.02)
    assert r.nadir_hz < 50.0 and r.nadir_t_s > 0.5


def test_steady_state_follows_droop_and_damping():
    sys_ = FrequencySystem()
    r = simulate_loss(sys_, 600.0, duration_s=120.0)
    dp = 600.0 / sys_.s_mw
    expected = 50.0 * (1 - dp / (1 / sys_.droop_r_pu + sys_.damping_pu))
    assert r.final_hz == pytest.approx(expected, abs=2e-3)


def test_fleet_droop_brings_the_nadir_at_least_half_way_back():
    out = compare(FrequencySystem(), 1000.0, FleetResponse(1500.0))
    assert out["nadir_improvement_pct"] >= 50.0
    assert out["with_fleet"]["nadir_hz"] > out["without"]["nadir_hz"]
    assert out["with_fleet"]["ffr_peak_mw"] <= 1500.0 + 1e-6  # never beyond the fleet's headroom


def test_more_headroom_helps_more_and_none_changes_nothing():
    sys_ = FrequencySystem()
    nadirs = [
        simulate_loss(sys_, 1000.0, FleetResponse(p), duration_s=20).nadir_hz
        for p in (0.0, 300.0, 900.0)
    ]
    assert np.all(np.diff(nadirs) > 0)
    assert nadirs[0] == pytest.approx(simulate_loss(sys_, 1000.0, None, duration_s=20).nadir_hz)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValidationError, match="loss_mw"):
        simulate_loss(FrequencySystem(), -5.0)
    with pytest.raises(ValidationError, match="h_s"):
        FrequencySystem(h_s=0.0)
    with pytest.raises(ValidationError, match="headroom"):
        FleetResponse(-1.0)
