"""Flexibility: fleet, aggregation, disaggregation limits, scheduling, infeasibility, DR."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from typer.testing import CliRunner

from gridpilot.errors import InfeasibleError, UnknownComponentError, ValidationError
from gridpilot.flex import (
    Batteries,
    Event,
    EVSessions,
    OptOut,
    PlanConfig,
    Program,
    Signals,
    aggregate,
    disaggregate,
    dispatch_event,
    envelope,
    generate_fleet,
    plan,
)
from gridpilot.flex.aggregate import CLASSES


@pytest.fixture(scope="module")
def grid(case33):
    g = case33.copy()
    pv_bus = g.bus.ids[[17, 24, 32]]
    g.add("generator", id=[1, 2, 3], bus=pv_bus, kind=0, p_mw=[0.4, 0.3, 0.4])
    return g


@pytest.fixture(scope="module")
def fleet(grid):
    return generate_fleet(grid, days=2, seed=3)


def test_fleet_is_seeded_and_sized(grid, fleet):
    again = generate_fleet(grid, days=2, seed=3)
    assert np.array_equal(again.ev.arrival, fleet.ev.arrival)
    assert np.array_equal(again.batteries.e_mwh, fleet.batteries.e_mwh)
    other = generate_fleet(grid, days=2, seed=4)
    assert not np.array_equal(other.ev.arrival, fleet.ev.arrival)
    s = fleet.summary()
    assert (
        s["evs"] > 100
        and s["water_heaters"] > 100
        and s["batteries"] > 20
        and s["pv_inverters"] == 3
    )
    scaled = generate_fleet(grid, days=1, n_devices=500)
    n = len(scaled.batteries) + int(np.unique(scaled.ev.ev).size) + len(scaled.water_heaters)
    assert 400 < n < 600


def test_bad_device_data_names_the_field():
    with pytest.raises(ValidationError, match="soc"):
        Batteries([1], [1], [0.01], [0.005], [1.2], [0.95], [0.1], [0.95])
    with pytest.raises(ValidationError, match="departure"):
        EVSessions([1], [1], [1], [10], [5], [0.01], [0.01], [0.05], [0.007], [False], [0.4])


def test_aggregate_sums_devices_and_envelope_is_consistent(grid, fleet):
    agg = aggregate(fleet, 0, 96)
    assert agg.bat_p_max_mw.sum() == pytest.approx(fleet.batteries.p_max_mw.sum())
    assert agg.wh_p_max_mw.sum() == pytest.approx(fleet.water_heaters.p_rated_mw.sum())
    assert np.all(agg.ev_c_lo_mwh <= agg.ev_c_hi_mwh + 1e-12)
    assert np.all(agg.ev_p_lo_mw <= 0) and np.all(agg.ev_p_hi_mw >= 0)
    env = envelope(agg)
    assert np.all(env.inc_mw >= 0) and np.all(env.dec_mw >= 0)
    assert np.all(env.inc_h <= 24 + 1e-9)
    # at 3 am of day 2 the evening's EVs are plugged in: more upward flexibility than at noon
    env2 = envelope(aggregate(fleet, 96, 96))
    assert env2.inc_mw[12].sum() > env2.inc_mw[48].sum() + 0.1


@pytest.mark.parametrize("level", [-1e6, 1e6, "random"])
def test_devices_never_pushed_beyond_their_limits(fleet, level):
    nb = fleet.buses().size
    rng = np.random.default_rng(0)
    if level == "random":
        tg = {c: rng.normal(0, 5, (144, nb)) for c in CLASSES}
    else:
        tg = {c: np.full((144, nb), level) for c in CLASSES}
    d = disaggregate(fleet, 0, tg, keep_devices=True)
    assert d.limit_violations == 0
    b = fleet.batteries
    assert np.all(np.abs(d.device_p_mw["battery"]) <= b.p_max_mw + 1e-12)
    after = d.fleet_after
    assert np.all(after.batteries.soc >= b.soc_min - 1e-9) and np.all(
        after.batteries.soc <= b.soc_max + 1e-9
    )
    ev = fleet.ev
    pe = d.device_p_mw["ev"]
    assert np.all(np.abs(pe) <= ev.p_max_mw + 1e-12)
    assert np.all(pe[:, ~ev.v2g] >= -1e-12)
    t = np.arange(144)[:, None]
    unplugged = (t < ev.arrival) | (t >= ev.departure)
    assert np.all(pe[unplugged] == 0)
    # every EV that left in the window got its energy, even when asked for minimum power
    assert d.ev_departed.size > 0
    assert np.all(d.ev_shortfall_mwh[d.ev_departed] < 1e-9)
    w = after.water_heaters
    assert np.all(w.t_c >= w.t_min_c - 1e-9) and np.all(w.t_c <= w.t_max_c + 1e-9)
    assert np.all(d.device_p_mw["water_heater"] <= fleet.water_heaters.p_rated_mw + 1e-12)
    assert d.comfort_violation_steps == 0


def test_disaggregation_is_fair_and_tracks_feasible_targets(fleet):
    f = copy.deepcopy(fleet)
    f.batteries.soc[:] = 0.5
    nb = f.buses().size
    tg = {"battery": np.full((1, nb), 0.001)}
    d = disaggregate(f, 0, tg, keep_devices=True)
    p = d.device_p_mw["battery"][0]
    frac = (p + f.batteries.p_max_mw) / (2 * f.batteries.p_max_mw)
    for bus in np.unique(f.batteries.bus):
        m = f.batteries.bus == bus
        assert np.ptp(frac[m]) < 1e-9  # the same share of each device's range at a bus
    feasible = np.abs(tg["battery"][0]) <= np.asarray(d.p_mw["battery"][0]) + 1e-9
    assert np.allclose(d.p_mw["battery"][0][feasible], 0.001)


def test_disaggregate_rejects_unknown_class(fleet):
    with pytest.raises(ValidationError, match="unknown device class"):
        disaggregate(fleet, 0, {"heat_pump": np.zeros((2, fleet.buses().size))})


def test_plan_reduces_peak_and_meets_every_ev(grid, fleet):
    p = plan(grid, fleet, 96, t0=96, config=PlanConfig(corrections=1))
    s = p.summary()
    assert (
        s["lp"]["twin_corrections"] == 1
    )  # case33bw's undervoltage is beyond the fleet: one re-solve
    assert s["controlled"]["peak_mw"] < 0.85 * s["uncontrolled"]["peak_mw"]
    assert s["ev"]["short_sessions"] == 0 and s["ev"]["sessions_departed"] > 0
    assert s["device_limit_violations"] == 0
    assert s["controlled"]["converged_steps"] == 96
    # the worst voltage is not made worse by the plan
    assert s["controlled"]["vmin_pu"] >= s["uncontrolled"]["vmin_pu"] - 1e-3
    # EV energy delivered equals the requests of the departed sessions (no free energy)
    assert p.planned["ev"].sum() * 0.25 > 0
    assert s["controlled"]["cost_eur"] < s["uncontrolled"]["cost_eur"]


def test_infeasible_ev_request_names_the_binding_constraint(grid, fleet):
    f = copy.deepcopy(fleet)
    k = int(np.flatnonzero(f.ev.arrival < 90)[0])
    f.ev.e_need_mwh[k] = f.ev.p_max_mw[k] * (f.ev.departure[k] - f.ev.arrival[k]) * 0.25 + 0.002
    f.ev.e_cap_mwh[k] = f.ev.e_arr_mwh[k] + f.ev.e_need_mwh[k] + 0.01
    with pytest.raises(InfeasibleError) as exc:
        plan(grid, f, 96, t0=0)
    assert "ev departure energy" in exc.value.binding
    assert str(int(f.ev.id[k])) in exc.value.binding


def test_strict_plan_names_the_network_limit_it_cannot_hold(grid, fleet):
    with pytest.raises(InfeasibleError) as exc:
        plan(grid, fleet, 96, t0=0, config=PlanConfig(vmin_pu=0.99, strict=True))
    assert "voltage band" in exc.value.binding and "bus" in exc.value.binding


def test_signals_are_checked():
    with pytest.raises(ValidationError, match="same length"):
        Signals(np.ones(4), np.ones(3))
    with pytest.raises(ValidationError, match="co2"):
        Signals(np.ones(3), -np.ones(3))


def test_dr_event_meets_a_feasible_target_and_reports(fleet):
    e = Event("e1", Program("shed"), 74, 4, target_mw=0.3)
    r = dispatch_event(fleet, e, 0, 96)
    s = r.summary()
    assert s["target_met"] is True
    assert np.allclose(r.reduction_mw[r.in_event], 0.3, atol=1e-6)
    assert np.allclose(r.reduction_mw[:74], 0, atol=1e-9)  # nothing changes before the event
    assert s["device_limit_violations"] == 0
    big = dispatch_event(
        fleet, Event("e2", Program("shed"), 74, 4, target_mw=500.0), 0, 96
    ).summary()
    assert big["target_met"] is False and big["min_reduction_mw"] > 0.3


def test_dr_targets_devices_and_opt_outs(fleet):
    ids = fleet.water_heaters.id[:5].tolist()
    e = Event(
        "e3",
        Program("p", "price", trigger_eur_per_mwh=100),
        76,
        2,
        price_eur_per_mwh=300,
        devices={"water_heater": ids},
    )
    r = dispatch_event(
        fleet,
        e,
        0,
        96,
        [OptOut("e3", "water_heater", ids[0]), OptOut("other", "water_heater", ids[1])],
    )
    assert r.participants == {"battery": 0, "ev": 0, "water_heater": 4}
    assert r.summary()["opted_out"] == 1
    cheap = Event(
        "e4",
        Program("p", "price", trigger_eur_per_mwh=100),
        76,
        2,
        price_eur_per_mwh=50,
        devices={"water_heater": ids},
    )
    assert np.allclose(dispatch_event(fleet, cheap, 0, 96).reduction_mw, 0)


def test_dr_event_for_unknown_devices_is_a_clear_error(fleet):
    with pytest.raises(UnknownComponentError, match="ev device 987654"):
        dispatch_event(
            fleet,
            Event("e5", Program("shed"), 74, 4, target_mw=0.1, devices={"ev": [987654]}),
            0,
            96,
        )
    with pytest.raises(UnknownComponentError, match="bus 999"):
        dispatch_event(
            fleet, Event("e6", Program("shed"), 74, 4, target_mw=0.1, buses=[999]), 0, 96
        )
    with pytest.raises(ValidationError, match="target_mw"):
        Event("e7", Program("shed"), 74, 4)
    with pytest.raises(ValidationError, match="outside"):
        dispatch_event(fleet, Event("e8", Program("shed"), 95, 4, target_mw=0.1), 0, 96)


def test_cli_dr_and_errors():
    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(
        app, ["flex", "dr", "case33bw", "--event", "start=18:00,minutes=30,target_mw=0.2", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert '"target_met": true' in r.output
    bad = CliRunner().invoke(app, ["flex", "dr", "case33bw", "--event", "start=18:00,wat=1"])
    assert bad.exit_code == 2 and "unknown key" in bad.output


def test_fleet_from_the_field_simulator_plans(case33):
    from gridpilot.field import FleetConfig
    from gridpilot.field.fleet import build_fleet
    from gridpilot.flex.field_adapter import fleet_from_field

    dev = build_fleet(case33, FleetConfig(n_devices=3000, seed=2))
    f = fleet_from_field(case33, dev, start_step=0, days=2)
    assert len(f.batteries) == int(dev.bat_online.sum())
    assert np.unique(f.ev.ev).size == int(dev.ev_online.sum())
    assert f.batteries.e_mwh.sum() == pytest.approx(dev.bat_kwh[dev.bat_online].sum() / 1e3)
    assert np.all(f.ev.departure > f.ev.arrival)
    p = plan(case33, f, 96, t0=96, config=PlanConfig(corrections=0)).summary()
    assert p["ev"]["short_sessions"] == 0 and p["device_limit_violations"] == 0
    assert p["controlled"]["peak_mw"] <= p["uncontrolled"]["peak_mw"] + 1e-6


def test_cli_plan_json():
    import json

    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(
        app, ["flex", "plan", "case33bw", "--hours", "6", "--day", "1", "--json", "--plan"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["steps"] == 24 and len(out["plan"]["plan_ev_mw"]) == 24
    assert {"peak_mw", "cost_eur", "co2_t", "v_violation_min"} <= set(out["controlled"])
    bad = CliRunner().invoke(app, ["flex", "plan", "case33bw", "--hours", "0"])
    assert bad.exit_code == 2 and "--hours" in bad.output


@pytest.fixture(scope="module")
def sunny():
    """case33bw at 30 % load, 2 x 1.5 MW of PV at the feeder ends, a June day: voltage rise at noon."""
    from gridpilot.model import load_grid

    g = load_grid("case33bw").copy()
    g.load["p_mw"] = g.load["p_mw"] * 0.3
    g.load["q_mvar"] = g.load["q_mvar"] * 0.3
    g.add("generator", id=[1, 2], bus=g.bus.ids[[17, 32]], kind=0, p_mw=[1.5, 1.5])
    t0 = 96 * 172
    # the PV inverters only: curtailment or reactive power are the only means
    f = generate_fleet(g, days=1, start_step=t0, ev_share=0, wh_share=0, battery_share=0)
    return g, f, t0


def _inverter_p(g, f, t0, p):
    """Per-inverter active power of a plan, MW (available minus curtailed; one inverter per bus)."""
    from gridpilot.flex import build_network

    avail = build_network(g, f.buses()).injections(t0, p.steps)["gen_p_mw"][:, f.pv.gen_pos]
    col = np.searchsorted(p.bus_id, f.pv.bus)
    return avail - p.planned["pv_curtail"][:, col]


def test_reactive_power_reduces_curtailment_where_voltage_rise_binds(sunny):
    g, f, t0 = sunny
    runs = {
        q: plan(
            g,
            f,
            96,
            t0=t0,
            config=PlanConfig(vmax_pu=1.02, q_max_frac=0.2, q_support=q, corrections=1),
        )
        for q in (False, True)
    }
    off, on = runs[False].summary(), runs[True].summary()
    # uncontrolled, the PV pushes the far ends above the band; the plan holds it both ways (twin-verified)
    assert off["uncontrolled"]["v_violation_min"] > 60
    assert off["controlled"]["v_violation_min"] == 0 and on["controlled"]["v_violation_min"] == 0
    assert off["reactive"]["absorbed_mvarh"] == 0
    # with Q support the inverters absorb vars first and much less PV is curtailed
    assert off["curtailed_mwh"] > 0.5
    assert on["reactive"]["absorbed_mvarh"] > 0.1
    assert on["curtailed_mwh"] < 0.7 * off["curtailed_mwh"]
    assert on["controlled"]["co2_t"] < off["controlled"]["co2_t"]
    # set points: |q| within the configured 20 % of the rating, per-bus totals match the inverters'
    q = runs[True].pv_q_mvar
    assert q.shape == (96, len(f.pv))
    assert np.all(np.abs(q) <= 0.2 * f.pv.s_rated_mva + 1e-9)
    assert np.allclose(runs[True].q_mvar.sum(axis=1), q.sum(axis=1))


def test_reactive_power_never_exceeds_the_inverter_rating(sunny):
    g, f, t0 = sunny
    p = plan(g, f, 96, t0=t0, config=PlanConfig(vmax_pu=1.02, q_max_frac=1.0, corrections=0))
    q = p.pv_q_mvar
    s = f.pv.s_rated_mva
    pq = np.hypot(_inverter_p(g, f, t0, p), q)
    # the plan asks for more Q than the 44 % box would give and runs the inverters at their rating ...
    assert np.max(np.abs(q) / s) > 0.44
    assert np.max(pq / s) > 0.95
    # ... and no inverter ever goes beyond its apparent-power rating
    assert np.all(pq <= s * (1 + 1e-9))


def test_reactive_power_config_is_checked():
    with pytest.raises(ValidationError, match="q_max_frac"):
        PlanConfig(q_max_frac=1.5)
    with pytest.raises(ValidationError, match="q_polygon_sides"):
        PlanConfig(q_polygon_sides=3)


def test_ev_aggregate_and_split_do_not_charge_past_the_requests(grid, fleet):
    agg = aggregate(fleet, 0, 144)
    ev = fleet.ev
    live = (ev.departure > 0) & (ev.arrival < 144)
    # the aggregate's latest cumulative energy is at most what the present sessions asked for
    assert agg.ev_c_hi_mwh[-1].sum() <= (ev.e_need_mwh - ev.delivered_mwh)[live].sum() + 1e-9
    # a target the cars can take within their requests sends no car away fuller than asked
    nb = fleet.buses().size
    d = disaggregate(
        fleet, 0, {"ev": np.diff(agg.ev_c_hi_mwh, axis=0) / fleet.step_h}, keep_devices=True
    )
    after = d.fleet_after.ev
    left = d.ev_departed
    assert left.size > 0 and nb > 0
    assert np.all(after.delivered_mwh[left] <= ev.e_need_mwh[left] + 1e-9)
    assert np.all(d.ev_shortfall_mwh[left] < 1e-9)


def test_warm_resolve_reaches_the_cold_optimum(sunny):
    """A twin-corrected re-solve starts from the previous basis and ends at the cold solve's optimum."""
    from gridpilot.flex import build_network, default_signals
    from gridpilot.flex.schedule import _base, group_buses, plan_window, pv_available

    g, f, t0 = sunny
    cfg = PlanConfig(vmax_pu=1.02, q_max_frac=0.2, horizon_steps=96, commit_steps=96)
    buses = f.buses()
    net = build_network(g, buses, t_ref=t0)
    group, vs_g, ptdf_g, vq_g = group_buses(net, f, cfg.max_groups)
    _, v0, p0, flow0, qflow0 = _base(net, t0, 96)
    agg = aggregate(f, t0, 96, buses, pv_available(net, f, net.injections(t0, 96)), group)
    sig = default_signals(g, t0 + 96, f.step_h).window(t0, 96)
    args = (agg, net)
    rest = (p0, flow0, qflow0, sig, cfg, vs_g, ptdf_g, vq_g)
    first = plan_window(*args, v0, *rest)
    assert first.basis is not None and first.warm_solves == 0
    # a correction as the twin check makes it: the base voltages at the upper half 0.004 pu lower
    # (the rows that could bind stay a subset of the first solve's, so the LP keeps its shape)
    v1 = v0 - 0.004 * (v0 > np.median(v0))
    warm = plan_window(*args, v1, *rest, warm=first)
    cold = plan_window(*args, v1, *rest)
    assert warm.warm_solves == 1 and cold.warm_solves == 0
    assert (warm.n_vars, warm.n_rows) == (first.n_vars, first.n_rows)
    # the correction changes the optimum (the rows bind), and warm and cold agree on it
    assert warm.objective_eur < first.objective_eur - 1e-3
    assert warm.objective_eur == pytest.approx(cold.objective_eur, rel=1e-7, abs=1e-6)
    # a re-solve whose rows grow (base voltages up) falls back to a cold solve of the larger LP
    up = plan_window(*args, v0 + 0.004 * (v0 > np.median(v0)), *rest, warm=first)
    if up.n_rows != first.n_rows or up.n_vars != first.n_vars:
        assert up.warm_solves == 0
    assert up.objective_eur > first.objective_eur + 1e-3
