"""Receding-horizon planning from a forecast (gridpilot.flex.plan_ahead, schedule_setpoints)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.flex import (
    PlanConfig,
    build_network,
    default_signals,
    disaggregate,
    generate_fleet,
    plan_ahead,
    schedule_setpoints,
)

T0 = 70  # 17:30 of the fleet's first day


@pytest.fixture(scope="module")
def setup(case33):
    fleet = generate_fleet(case33, days=2, seed=3)
    net = build_network(case33, fleet.buses(), t_ref=T0, engine="pgm")
    # the forecast: the grid's own injections plus what the fleet draws on its own (a metered
    # load forecast includes it)
    inj = net.injections(T0, 96)
    base = disaggregate(fleet, T0, {}, fleet.buses(), steps=96)
    inj["load_p_mw"][:, net.flex_load_pos] += sum(base.p_mw[c] for c in base.p_mw)
    sig = default_signals(case33, T0 + 96).window(T0, 96)
    return fleet, net, inj, sig, base


def test_plan_ahead_shaves_the_forecast_peak_and_keeps_the_committed_steps(setup):
    fleet, net, inj, sig, base = setup
    ap = plan_ahead(net, fleet, T0, inj, sig, PlanConfig(corrections=1), commit_steps=4)
    assert ap.steps == 96 and ap.import_mw.shape == (96,)
    # the baseline taken out of the metered forecast comes back in the base import
    own = sum(base.p_mw[c] for c in ("battery", "ev", "water_heater")).sum(axis=1)
    assert np.allclose(ap.fleet_base_mw, own, atol=1e-9)
    assert ap.peak_mw < ap.peak_base_mw - 0.05  # the peak charge shaves the evening
    # per-device set points of the committed steps, within limits, adding up to the plan
    sp = ap.setpoints
    assert sp.steps == 4 and sp.limit_violations == 0
    tot = sum(sp.p_mw[c].sum(axis=1) for c in sp.p_mw)
    planned = sum(ap.fleet_mw[c][:4] for c in ("battery", "ev", "water_heater"))
    assert np.allclose(tot, planned, atol=0.02)
    assert ap.planning_ms > 0 and ap.lp_ms > 0
    s = ap.summary(hours=6)
    assert s["steps"] == 24 and len(s["import_mw"]) == 24 and s["peak_mw"] == round(ap.peak_mw, 4)


def test_schedule_setpoints_is_the_event_disaggregation_per_device(setup):
    fleet, *_ = setup
    b = fleet.buses()
    tg = {
        "battery": np.full((2, b.size), -0.01),
        "ev": np.zeros((2, b.size)),
        "water_heater": np.zeros((2, b.size)),
    }
    sp = schedule_setpoints(fleet, T0, tg)
    assert sp.target_mw is None and sp.steps == 2
    # batteries discharge where they can, EVs and heaters at their floor (0 asked)
    assert np.all(sp.p_mw["battery"] <= 1e-12)
    assert np.allclose(sp.p_mw["water_heater"], sp.floor_mw["water_heater"], atol=1e-9)
    red = sum((sp.baseline_mw[c] - sp.p_mw[c]).sum(axis=1) for c in sp.p_mw)
    assert np.allclose(red, sp.reduction_mw, atol=1e-9)
    with pytest.raises(ValidationError, match="unknown device class"):
        schedule_setpoints(fleet, T0, {"pv": np.zeros((1, b.size))})
    with pytest.raises(ValidationError, match="no class targets"):
        schedule_setpoints(fleet, T0, {})


def test_plan_ahead_bad_input_names_the_field(setup):
    fleet, net, inj, sig, _ = setup
    short = {k: v[:, :3] if k == "load_p_mw" else v for k, v in inj.items()}
    with pytest.raises(ValidationError, match="load_p_mw"):
        plan_ahead(net, fleet, T0, short, sig)
    with pytest.raises(ValidationError, match="signals"):
        plan_ahead(net, fleet, T0, inj, sig.window(0, 10))
    with pytest.raises(ValidationError, match="commit_steps"):
        plan_ahead(net, fleet, T0, inj, sig, commit_steps=0)
