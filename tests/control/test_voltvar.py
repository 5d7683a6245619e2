"""Volt-var / volt-watt curves, optimised reactive power and OLTC tap control."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.control.voltvar import (
    VOLT_VAR_CAT_B,
    VOLT_WATT_CAT_B,
    Curve,
    optimise_q,
    run_curves,
    tap_control,
)
from gridpilot.errors import InfeasibleError, ValidationError


@pytest.fixture(scope="module")
def pv_grid(case33):
    g = case33.copy()
    g.add("generator", id=[1, 2, 3], bus=[18, 25, 33], kind=0, p_mw=[1.6, 1.2, 1.6])
    return g


def test_ieee1547_category_b_defaults():
    assert VOLT_VAR_CAT_B(np.array([0.90, 0.92, 1.0, 1.05, 1.08, 1.2])) == pytest.approx(
        [0.44, 0.44, 0, -0.22, -0.44, -0.44]
    )
    assert VOLT_WATT_CAT_B(np.array([1.0, 1.06, 1.08, 1.1, 1.2])) == pytest.approx(
        [1, 1, 0.6, 0.2, 0.2]
    )
    with pytest.raises(ValidationError, match="v_pu"):
        Curve((1.0, 0.9), (0.0, 1.0))


def test_curves_pull_overvoltage_down(pv_grid):
    from gridpilot.twin import Twin

    start = 96 * 170 + 40  # a summer late morning: PV high, load low
    base = Twin(pv_grid).timeseries(8, start=start)
    r = run_curves(pv_grid, 8, start=start)
    assert base.vmax_pu.max() > 1.05  # the case is a real overvoltage
    assert r.vmax_pu.max() < base.vmax_pu.max() - 0.005
    assert np.all(r.q_mvar <= 1e-9)  # absorbing at high voltage
    s_rated = 1.1 * pv_grid.generator["p_mw"]
    assert np.all(np.hypot(r.q_mvar, r.p_mw) <= s_rated + 1e-6)  # within each inverter's rating


def test_optimised_q_holds_the_band_or_names_the_bus(pv_grid):
    step = 96 * 170 + 48
    out = optimise_q(pv_grid, step, vmin_pu=0.95, vmax_pu=1.05)
    assert out["vmax"] <= 1.05 + 2e-3 < float(np.max(out["v_before"]))
    with pytest.raises(InfeasibleError) as exc:
        optimise_q(pv_grid, step, vmin_pu=0.999, vmax_pu=1.001)
    assert exc.value.binding.startswith("voltage band at bus")


def test_tap_control_centres_the_band(case33):
    with pytest.raises(ValidationError, match="no transformer"):
        tap_control(case33, 4)
    from gridpilot.model import load_grid

    g = load_grid("cigre-mv").copy()
    g.transformer["tap_min"] = -9
    g.transformer["tap_max"] = 9
    g.transformer["tap_step_percent"] = 1.5
    out = tap_control(g, 16, start=96 * 10 + 64, band_pu=(0.95, 1.0))
    assert np.all((out["tap"] >= -9) & (out["tap"] <= 9))
    mid_before = 0.5 * (out["vmin_before"] + out["vmax_before"])
    mid_after = 0.5 * (out["vmin_after"] + out["vmax_after"])
    assert np.mean(np.abs(mid_after - 0.975)) < np.mean(np.abs(mid_before - 0.975))
