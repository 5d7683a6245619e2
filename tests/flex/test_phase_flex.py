"""Phase-aware flexibility: the fleet on named phases, per-phase limits, phase balancing, and the
frequency and market paths on the same fleet (issue 17 item 3)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gridpilot.errors import ValidationError
from gridpilot.flex import (
    PhaseFleet,
    PhasePlanConfig,
    PlaceConfig,
    clear_by_phase,
    fleet_from_records,
    frequency_response,
    place_fleet,
    plan_phases,
)
from gridpilot.flex.phase_fleet import LEG_TO_LEG
from gridpilot.flex.phase_network import PhaseNetwork
from gridpilot.flex.phase_plan import PhasePlan
from gridpilot.model import load_grid
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin


@pytest.fixture(scope="module")
def plan13(ieee13: ThreePhaseGrid, fleet13: PhaseFleet) -> PhasePlan:
    return plan_phases(ieee13, fleet13)


def test_fleet_sits_on_the_phases_of_its_loads_and_is_seeded() -> None:
    g = load_grid("ieee123")
    assert isinstance(g, ThreePhaseGrid)
    a, b = place_fleet(g, PlaceConfig(seed=5)), place_fleet(g, PlaceConfig(seed=5))
    assert np.array_equal(a.phase["ev"], b.phase["ev"])
    assert np.array_equal(a.fleet.ev.e_need_mwh, b.fleet.ev.e_need_mwh)
    load_phases: dict[str, set[int]] = {}
    for ld in g.loads:
        load_phases.setdefault(ld.terminal.bus, set()).update(n for n in ld.terminal.nodes if n)
    for kind in ("battery", "ev", "water_heater", "pv"):
        for bus, ph in zip(a.device_bus(kind), a.phase[kind], strict=True):
            assert int(ph) in load_phases[bus], (kind, bus, ph)
    s = a.summary()
    per = s["per_phase"]
    assert isinstance(per, dict)
    assert sum(v["ev_mw"] for v in per.values()) == pytest.approx(s["ev_charger_mw"])
    assert sum(v["battery_mw"] for v in per.values()) == pytest.approx(s["battery_mw"])
    assert min(v["ev_mw"] for v in per.values()) > 0  # ieee123 has load on every phase
    flexible = a.ev_phases.sum(axis=1) > 1
    assert flexible.any() and not flexible.all()


def test_feeder_phase_is_the_primary_phase_behind_a_service_transformer(
    ieee13: ThreePhaseGrid,
) -> None:
    from gridpilot.flex import feeder_phases

    assert feeder_phases(ieee13) == {}  # ieee13's single-phase regulators are not services


@pytest.mark.slow
def test_ieee8500_fleet_on_split_phase_services_counts_on_primary_phases() -> None:
    from gridpilot.flex import feeder_phases

    g = load_grid("ieee8500")
    assert isinstance(g, ThreePhaseGrid)
    fp = feeder_phases(g)
    pf = place_fleet(g, PlaceConfig(seed=1))
    assert set(np.unique(pf.phase["ev"])) == {LEG_TO_LEG}  # 240 V across both legs
    assert set(np.unique(pf.feeder_phase["ev"])) == {1, 2, 3}
    for bus, ph in zip(pf.device_bus("pv"), pf.feeder_phase["pv"], strict=True):
        assert fp[bus] == ph
    per = pf.phase_totals()
    assert all(per[p]["ev_mw"] > 0 for p in ("1", "2", "3"))
    assert sum(v["pv_mw"] for v in per.values()) == pytest.approx(float(pf.pv_peak_mw.sum()))
    with pytest.raises(ValidationError, match=r"'ieee8500'.*GB of dense sensitivities"):
        plan_phases(g, pf, PhasePlanConfig(sens="dense"))  # refused before memory is spent


def test_der_on_a_missing_phase_or_bus_is_a_named_error(ieee13: ThreePhaseGrid) -> None:
    # bus 652 is a single-phase lateral on phase 1 (a)
    with pytest.raises(ValidationError) as e:
        fleet_from_records(ieee13, [{"kind": "pv", "bus": "652", "phase": 2, "kw": 5}])
    msg = str(e.value)
    assert "pv id 0" in msg and "'phase' = 2" in msg and "'652'" in msg
    with pytest.raises(ValidationError, match=r"ev id 0: field 'bus' = 'nowhere'"):
        fleet_from_records(
            ieee13,
            [
                {
                    "kind": "ev",
                    "bus": "nowhere",
                    "phase": 1,
                    "kw": 7,
                    "kwh": 9,
                    "arrival": 72,
                    "departure": 100,
                }
            ],
        )
    with pytest.raises(ValidationError, match=r"battery id 1: field 'phase' = 4"):
        fleet_from_records(
            ieee13,
            [
                {"kind": "pv", "bus": "671", "phase": 1, "kw": 5},
                {"kind": "battery", "bus": "671", "phase": 4, "kw": 5, "kwh": 10},
            ],
        )
    ok = fleet_from_records(ieee13, [{"kind": "pv", "bus": "652", "phase": 1, "kw": 5}])
    moved = dataclasses.replace(ok, phase={**ok.phase, "pv": np.array([3])})
    with pytest.raises(ValidationError, match=r"pv id 0: field 'phase' = 3"):
        moved.validate(ieee13)


def fleet13_switching(plan: PhasePlan) -> np.ndarray:
    """Sessions of the plan that drew on more than one phase's columns."""
    ev = plan.ev
    per: dict[int, set[int]] = {}
    for sess, ph in zip(ev["session"], ev["phase"], strict=True):
        per.setdefault(int(sess), set()).add(int(ph))
    return np.array([len(v) > 1 for v in per.values()])


def test_phase_balancing_keeps_vuf_within_2pct_and_delivers_ev_energy(plan13: PhasePlan) -> None:
    s = plan13.summary()
    assert s["before"]["vuf_max_pct"] > 2.0  # the uncontrolled fleet breaks the limit
    after = plan13.checks["after"]
    allowed = np.maximum(2.0, plan13.checks["fixed"].vuf_pct) + 0.01
    assert np.all(after.vuf_pct <= allowed)
    assert s["after"]["vuf_over_limit_bus_steps"] == 0
    assert s["vuf_over_allowed_bus_steps"]["after"] == 0 < s["vuf_over_allowed_bus_steps"]["before"]
    assert s["feasible"] is True
    assert s["ev_delivered_mwh"] == pytest.approx(s["ev_requested_mwh"], rel=1e-6)
    assert sum(s["ev_charged_mwh_by_phase"]) >= s["ev_delivered_mwh"] - 1e-9
    assert s["ev_switching_sessions"] == int((fleet13_switching(plan13)).sum())
    assert 0 <= s["ev_switched_mwh"] <= sum(s["ev_charged_mwh_by_phase"])
    # the EV schedule: per session and step within the charger rating, on allowed phases only
    ev = plan13.ev
    assert np.all(ev["charge_mw"] >= -1e-9)
    assert set(np.unique(ev["phase"])) <= {1, 2, 3}


def test_the_check_is_the_twins_full_power_flow(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet, plan13: PhasePlan
) -> None:
    """One step of the plan, rebuilt as loads on the grid and solved by the twin's snapshot."""
    after = plan13.checks["after"]
    t = int(np.argmax(after.vuf_pct.max(axis=0)))
    net = PhaseNetwork(ieee13, plan13.points, plan13.steps)
    level, m = float(net.level[t]), float(net.mult[t])  # controls of the level, loads x mult
    loads = [dataclasses.replace(ld, kw=ld.kw * m, kvar=ld.kvar * m) for ld in ieee13.loads]
    g = dataclasses.replace(ieee13, loads=loads)
    from gridpilot.flex.phase_network import der_grid

    g2 = der_grid(g, plan13.points)
    n0 = len(g.loads)
    for k in range(len(plan13.points)):
        g2.loads[n0 + k] = dataclasses.replace(g2.loads[n0 + k], kw=1e3 * plan13.p_mw[k, t])
    twin = UnbalancedTwin(g2)
    taps, caps = net.controls[level]
    for name, tap in taps.items():
        twin.set_tap(name, tap)
    for name, st in caps.items():
        twin.set_cap(name, st)
    res = twin.powerflow("off")
    vuf = res.unbalance()
    assert float(vuf.max()) == pytest.approx(float(after.vuf_pct[:, t].max()), abs=1e-3)


def test_a_plan_that_cannot_keep_a_limit_is_not_labelled_feasible(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet
) -> None:
    small = PhasePlanConfig(phase_limit_mw=0.3, max_rounds=2)  # below the grid's own load
    p = plan_phases(ieee13, fleet13, small)
    s = p.summary()
    assert s["feasible"] is False
    assert "per-phase demand above the limit" in s["reason"]
    assert max(s["after"]["phase_peak_mw"]) > 0.3


def test_per_phase_limit_holds_in_the_full_power_flow(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet, plan13: PhasePlan
) -> None:
    peak = plan13.checks["before"].phase_mw.max()
    floor = plan13.checks["fixed"].phase_mw.max()
    limit = round(float(floor + 0.6 * (peak - floor)), 3)
    p = plan_phases(ieee13, fleet13, PhasePlanConfig(mode="plan", phase_limit_mw=limit))
    assert p.checks["after"].phase_mw.max() <= limit + 1e-6
    assert p.checks["before"].phase_mw.max() > limit
    assert p.summary()["feasible"] is True


def test_frequency_and_market_paths_use_the_same_fleet(
    fleet13: PhaseFleet, plan13: PhasePlan
) -> None:
    from gridpilot.control.frequency import FrequencySystem, compare

    step = int(np.median(fleet13.fleet.ev.arrival)) + 2
    resp, head = frequency_response(fleet13, step, replicas=500)
    per = head["per_phase"]
    assert sum(v["up_mw"] for v in per.values()) == pytest.approx(head["up_mw"])
    assert resp.p_up_mw == pytest.approx(500 * head["up_mw"])
    bal, _ = frequency_response(fleet13, step, balanced=True, replicas=500)
    assert bal.p_up_mw <= resp.p_up_mw + 1e-9
    assert bal.p_up_mw == pytest.approx(1500 * min(v["up_mw"] for v in per.values()))
    imp = compare(FrequencySystem(), 1000.0, resp)["nadir_improvement_pct"]
    assert isinstance(imp, float) and imp > 0
    # the planned EV powers at that step (the same fleet's sessions) give the plan's headroom
    from gridpilot.flex import phase_headroom

    planned = plan13.ev_mw_at(step, len(fleet13.fleet.ev))
    assert planned.shape == (len(fleet13.fleet.ev),) and np.any(planned != 0)
    hp = phase_headroom(fleet13, step, planned)
    plugged = (fleet13.fleet.ev.arrival <= step) & (fleet13.fleet.ev.departure > step)
    assert np.all(planned[~plugged] == 0)
    assert hp["down_mw"] > head["down_mw"]  # uncontrolled charging at full power leaves none
    res, s = clear_by_phase(fleet13, step)
    assert s["traded_wh"] == res.volume_wh > 0
    assert sum(s["inside_phase_wh"].values()) + s["across_phases_wh"] == s["traded_wh"]
    from gridpilot.flex.phase_adapters import phase_orders

    o = phase_orders(fleet13, step)
    inside = res.stage == 0
    assert np.array_equal(o.bid_zone[res.bid_index[inside]], o.offer_zone[res.offer_index[inside]])


def test_cli_phase_balance_json_and_bad_input(tmp_path: Path) -> None:
    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["flex", "phase-balance", "ieee13", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["feasible"] is True and s["after"]["vuf_max_pct"] <= 2.01
    assert set(s["fleet"]["per_phase"]) == {"1", "2", "3"}
    der = tmp_path / "der.json"
    der.write_text(json.dumps([{"kind": "pv", "bus": "652", "phase": 3, "kw": 4}]))
    bad = CliRunner().invoke(app, ["flex", "phase-balance", "ieee13", "--der", str(der)])
    assert bad.exit_code == 2 and "'phase' = 3" in bad.output
    bal = CliRunner().invoke(app, ["flex", "phase-balance", "case33bw"])
    assert bal.exit_code == 2 and "three-phase" in bal.output
    lim = CliRunner().invoke(app, ["flex", "phase-balance", "ieee13", "--vuf-limit", "0"])
    assert lim.exit_code == 2 and "vuf_limit_pct" in lim.output
    plan = CliRunner().invoke(app, ["flex", "plan", "ieee13", "--json"])  # phase-aware VPP plan
    assert plan.exit_code == 0, plan.output
    ps = json.loads(plan.output)
    assert ps["mode"] == "plan" and ps["feasible"] is True
    assert ps["after"]["vuf_max_pct"] <= 2.01 < ps["before"]["vuf_max_pct"]
    win = CliRunner().invoke(app, ["flex", "phase-balance", "ieee13", "--limit-window", "18-21"])
    assert win.exit_code == 2 and "--limit-window" in win.output


def test_dr_event_caps_each_phase_inside_its_window(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet, plan13: PhasePlan
) -> None:
    """A demand-response event as per-phase caps from 18:00 to 21:00 (steps 72-84)."""
    steps = plan13.steps
    win = (steps >= 72) & (steps < 84)
    fw = plan13.checks["fixed"].phase_mw[:, win].max(axis=1)
    bw = plan13.checks["before"].phase_mw[:, win].max(axis=1)
    cap = tuple(float(x) for x in np.round(fw + 0.5 * (bw - fw), 4))
    assert np.all(bw > np.asarray(cap))  # the uncontrolled fleet breaks every phase's cap
    cfg = PhasePlanConfig(mode="plan", phase_limit_mw=cap, limit_window=(72, 84))  # type: ignore[arg-type]
    p = plan_phases(ieee13, fleet13, cfg)
    got = p.checks["after"].phase_mw[:, win].max(axis=1)
    assert np.all(got <= np.asarray(cap) + 1e-6)
    assert p.summary()["feasible"] is True
    with pytest.raises(ValidationError, match="phase_limit_mw"):
        PhasePlanConfig(phase_limit_mw=(1.0, -1.0, 1.0))
    with pytest.raises(ValidationError, match="limit_window"):
        PhasePlanConfig(phase_limit_mw=1.0, limit_window=(80, 72))
