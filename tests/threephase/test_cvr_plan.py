"""The day-ahead CVR plan (control.cvr_plan): DP schedule, operation budget, exact check,
Range A bound."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from gridpilot.control.cvr import CvrOptions, shaped, source_kw, v_pu, with_cvr_loads
from gridpilot.control.cvr_band import Band
from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_plan import (
    Devices,
    Model,
    _dp,
    plan_day,
    range_a_bound,
    sensitivities,
    solve_plan,
)
from gridpilot.control.cvr_run import _powers, cvr_day, day_band, twin_of
from gridpilot.errors import ValidationError

from .conftest import session_and_grid


def test_dp_is_the_exhaustive_optimum_and_keeps_fixed_steps() -> None:
    rng = np.random.default_rng(3)
    pos = np.array([0.0, 1.0, 2.0])
    cost = rng.uniform(0, 5, (5, 3))
    fixed = np.array([False, True, False, True, False])
    for lam, fx in ((0.0, None), (1.3, None), (0.7, fixed)):
        got = _dp(cost, pos, 1.0, 1.0, lam, fx)
        best, arg = np.inf, None
        for path in itertools.product(range(3), repeat=5):
            p = pos[list(path)]
            if fx is not None and any(p[t] != p[t - 1] for t in range(1, 5) if fx[t]):
                continue
            tot = cost[np.arange(5), list(path)].sum() + lam * np.abs(np.diff([1.0, *p])).sum()
            if tot < best - 1e-12:
                best, arg = tot, p
        assert np.array_equal(got, arg), (lam, got, arg)


def test_operations_count_from_the_state_before_the_day() -> None:
    dev = Devices(["r", "c"], np.array([False, True]), [np.arange(3) * 0.1, np.arange(2.0)],
                  np.array([0.1, 1.0]), np.array([0.1, 1.0]))  # fmt: skip
    plan = np.array([[0.2, 0.2, 0.0, 0.1], [1.0, 0.0, 0.0, 1.0]])
    assert dev.ops(plan) == (4, 2)


def _ieee13(steps: int) -> tuple[object, np.ndarray]:
    g = with_cvr_loads(session_and_grid("ieee13")[1])
    return g, day_shape(steps, 15.0)


def _shaped4():
    """ieee13 with CVR loads shaped over 4 steps of 15 min: the grid, its Range A band and a
    twin of it."""
    g, mult = _ieee13(4)
    g = shaped(g, mult, 900.0)
    _, band = day_band(g, 4, 900.0, CvrOptions())
    return g, band, twin_of(g)


def test_day_plan_holds_range_a_within_the_baselines_operations() -> None:
    g, mult = _ieee13(32)
    res = cvr_day(g, mult, opts=CvrOptions(day_plan=True))
    o, b = res.optimised, res.baseline
    assert res.extra["method"] == "day_plan"
    assert o.violation_min_regulated == 0.0 and o.vmin_pu >= 0.95 and o.vmax_pu <= 1.05
    assert o.tap_ops <= b.tap_ops and o.cap_ops <= b.cap_ops
    assert res.energy_saved_pct > 0.3
    assert len(res.taps["reg1"]) == 8  # hourly read-out of the schedule


def test_plan_figures_are_an_exact_solve_and_the_budget_binds() -> None:
    g, mult = _ieee13(16)
    g = shaped(g, mult, 900.0)
    _, band = day_band(g, 16, 900.0, CvrOptions())
    tw = twin_of(g)
    s_all = _powers(tw, 16, 900.0)
    free = plan_day(tw, s_all, band, 0.25, (1 << 30, 1 << 30), 4)
    tight = plan_day(twin_of(g), s_all, band, 0.25, (2, 0), 4)
    assert tight.tap_ops <= 2 and tight.cap_ops == 0
    assert free.tap_ops > tight.tap_ops
    # the plan's voltages are the engine's at its schedule, step by step
    check = twin_of(g)
    for t in (0, 7, 15):
        free.devices.apply(check, free.plan[:, t])
        v, _ = check.solve(s_all[:, t : t + 1])
        assert np.allclose(np.abs(v[:, 0]), np.abs(free.v[:, t]), atol=1e-3)
        assert source_kw(check, v)[0] == pytest.approx(source_kw(check, free.v[:, t : t + 1])[0])
    again = solve_plan(check, free.devices, s_all, free.plan)
    assert np.allclose(np.abs(again), np.abs(free.v), atol=1e-3)


def test_range_a_bound_separates_feasible_from_impossible_bands() -> None:
    _, band, tw = _shaped4()
    s_all = _powers(tw, 4, 900.0)
    dp = plan_day(tw, s_all, band, 0.25, (1 << 30, 1 << 30), 4, iterations=1)
    s, d, _, _ = sensitivities(tw, dp.devices, s_all, dp.plan[:, 0])
    vp = np.nan_to_num(v_pu(tw, dp.v))
    m = Model(s, d, vp, np.zeros(4), dp.plan, 0.25, dp.devices.unit)
    ok = range_a_bound(m, dp.devices, band, 0)
    assert ok.excess_pu < 0.0  # Range A held with room to spare
    spread = float(np.ptp(vp[band.ctl & (vp[:, 0] > 0.05), 0]))
    narrow = Band(band.lo, band.hi, band.ctl, 1.0, 1.0 + spread / 4)
    bad = range_a_bound(m, dp.devices, narrow, 0)
    assert bad.excess_pu > 0.0  # no control state fits a band a quarter of the spread
    # the LP's state, rounded and solved exactly, breaches the narrow band by about the bound
    x = np.array([p[np.argmin(np.abs(p - z))] for p, z in zip(dp.devices.pos, bad.state,
                                                              strict=True)])  # fmt: skip
    dp.devices.apply(tw, x)
    v, _ = tw.solve(s_all[:, :1])
    w = v_pu(tw, v)[band.ctl & (vp[:, 0] > 0.05), 0]
    ex = max(narrow.vmin - w.min(), w.max() - narrow.vmax)
    assert ex == pytest.approx(bad.excess_pu, abs=0.01)


def test_bad_plan_iterations_is_named() -> None:
    g, mult = _ieee13(4)
    with pytest.raises(ValidationError, match=r"plan_iterations.*0"):
        cvr_day(g, mult, opts=dataclasses.replace(CvrOptions(), day_plan=True, plan_iterations=0))


def test_cli_day_plan_json() -> None:
    import json

    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    args = ["cvr", "ieee13", "--steps", "8", "--cvr-loads", "--day-plan", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["method"] == "day_plan" and s["optimised"]["violation_min_regulated"] == 0
    assert s["plan_steps_out_of_range_a"] == 0 and "plan_kwh_per_op" in s


def test_exact_fix_brings_a_breaching_step_back_into_range_a() -> None:
    from gridpilot.control.cvr_plan import exact_fix

    g, band, tw = _shaped4()
    dev = Devices.of(tw)
    col = _powers(tw, 4, 900.0)[:, 2:3]
    high = np.array([p[-1] for p in dev.pos])  # every tap at its top: far above Range A
    dev.apply(tw, high)
    v, _ = tw.solve(col)
    assert band.breach_steps(v_pu(tw, v))[0]
    x, vx = exact_fix(tw, dev, col, band, high, rounds=6, reach=2.0)
    assert vx is not None
    check = twin_of(g)
    dev.apply(check, x)
    v2, _ = check.solve(col)
    assert not band.breach_steps(v_pu(check, v2))[0]  # held, by an independent solve
    assert np.all(np.abs(x - high) <= 6 * 2 * dev.unit + 1e-9)  # within rounds × reach
    from gridpilot.control.cvr_plan import trim

    xt, vt = trim(tw, dev, col, band, x, vx, high, high)  # back toward the top while held
    assert not band.breach_steps(v_pu(tw, vt))[0]
    assert np.all(xt >= x - 1e-9) and np.all(xt <= high + 1e-9) and xt.sum() > x.sum()
    dev.apply(check, xt)
    v3, _ = check.solve(col)
    assert not band.breach_steps(v_pu(check, v3))[0]  # trimmed state held, independently
    xf, _ = exact_fix(tw, dev, col, band, high, rounds=2, reach=2.0, frozen=dev.is_cap)
    assert np.array_equal(xf[dev.is_cap], high[dev.is_cap])  # frozen devices keep their state


def test_local_fix_holds_a_step_within_the_operation_budget() -> None:
    from gridpilot.control.cvr_plan import local_fix, range_a_breach

    g, band, tw = _shaped4()
    dev = Devices.of(tw)
    s_all = _powers(tw, 4, 900.0)
    plan = np.repeat(dev.x0[:, None], 4, axis=1)
    plan[~dev.is_cap, 2] = [p[-1] for p, c in zip(dev.pos, dev.is_cap, strict=True) if not c]
    v = solve_plan(tw, dev, s_all, plan)
    assert band.breach_steps(v_pu(tw, v))[2]  # every tap at its top at step 2
    budget = dev.ops(plan)
    new, vn = local_fix(tw, dev, s_all, band, plan, v, budget, 4, 2)
    taps, caps = dev.ops(new)
    assert taps <= budget[0] and caps <= budget[1]
    assert not np.array_equal(new, plan)
    check = twin_of(g)
    v2 = solve_plan(check, dev, s_all, new)  # independent exact solve of the whole day
    assert not band.breach_steps(v_pu(check, v2))[2]
    before, after = range_a_breach(band, v_pu(tw, v)), range_a_breach(band, v_pu(check, v2))
    assert after[2] == 0.0 < before[2] and after.sum() < before.sum()
    np.testing.assert_allclose(np.abs(vn), np.abs(v2), rtol=1e-6)


def test_a_capacitor_may_switch_for_one_step_when_its_hour_would_break() -> None:
    from gridpilot.control.cvr_plan import DayPlan, _accept, range_a_breach

    g, band, tw = _shaped4()
    dev = Devices.of(tw)
    s_all = _powers(tw, 4, 900.0)
    on = np.array([p[-1] for p in dev.pos])[dev.is_cap]

    def state(k: int, caps: bool) -> np.ndarray:
        x = dev.x0.copy()
        x[~dev.is_cap] = 1.0 + k * 0.00625
        x[dev.is_cap] = on if caps else [p[0] for p in np.array(dev.pos, object)[dev.is_cap]]
        return x

    plan = np.stack([state(6, True)] * 3 + [state(8, True)], axis=1)
    x = state(8, False)  # holds step 3; the same capacitors over steps 0-2 would not
    v = solve_plan(tw, dev, s_all, plan)
    whole = plan.copy()
    whole[dev.is_cap, :] = x[dev.is_cap, None]
    assert range_a_breach(band, v_pu(tw, v))[3] > 0.0
    assert np.all(range_a_breach(band, v_pu(tw, solve_plan(tw, dev, s_all, whole)))[:3] > 0.0)

    def day(p: np.ndarray) -> DayPlan:
        return DayPlan(
            dev, p.copy(), v.copy(), band.breach_steps(v_pu(tw, v)), *dev.ops(p), (0, 0), 0
        )

    taps, caps = dev.ops(plan)
    assert not _accept(tw, dev, s_all, band, day(plan), (taps, caps), 4, 3, x)  # no spare op
    out = day(plan)
    assert _accept(tw, dev, s_all, band, out, (taps, caps + 2), 4, 3, x)
    assert np.array_equal(out.plan[:, :3], plan[:, :3])  # the hour's other steps untouched
    assert np.array_equal(out.plan[:, 3], x) and dev.ops(out.plan)[1] <= caps + 2
    check = twin_of(g)
    v2 = solve_plan(check, dev, s_all, out.plan)  # independent exact solve of the day
    assert not np.any(band.breach_steps(v_pu(check, v2)))
