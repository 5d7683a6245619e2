"""The flexibility schedule in the loop (agent.flexplan.FlexPlanPolicy), DR at the problem's
buses (VoltagePolicy + FlexDR) and the household DR in the curtailment KPI."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Action, FieldWorld, Orchestrator, Plan, SimWorld, VoltagePolicy
from gridpilot.agent.flexplan import FlexPlanPolicy
from gridpilot.agent.scenarios import _Kpis
from gridpilot.twin import Injections

START = 200 * 96 + 16 * 4 + 3  # a summer day, 16:45


def _orch(grid, **kw) -> Orchestrator:
    world = FieldWorld(grid, start_step=START, horizon_steps=200)
    return Orchestrator(world, telemetry=False, se_every_steps=0, flex_plan=True, **kw)


def _flexplan(orch: Orchestrator) -> FlexPlanPolicy:
    return next(p for p in orch.policies if isinstance(p, FlexPlanPolicy))


def test_schedule_is_planned_guarded_audited_and_sent_to_the_devices(fleet_grid):
    orch = _orch(fleet_grid)
    d = orch.world.devices
    assert d.bat_auto.all()
    orch.run(16)  # 16:45 and 17:00: two 15-minute steps, one plan
    pol = _flexplan(orch)
    assert len(pol.planning_ms) == 1 and pol.errors == 0
    assert orch.counters["refused"] == 0
    # the first committed step's set points reached the field: batteries follow a set point
    assert not d.bat_auto.all()
    entries = [e for e in orch.audit.entries(kind="action") if e["actor"] == "policy:flexplan"]
    assert len(entries) == 2  # one per 15-minute step
    assert entries[0]["data"]["flex_plan"]["step"] == 1  # newest first
    assert "_commands" not in entries[0]["data"]  # the device arrays are not audited
    assert entries[0]["verdict"]["ok"]
    fp = orch.state()["flex_plan"]
    assert fp["steps"] == 96 and len(fp["import_mw"]) == 96 and len(fp["fleet_mw"]) == 96
    assert fp["peak_mw"] <= fp["peak_base_mw"] + 1e-6  # the peak charge never raises the peak
    assert fp["planning_ms"] > 0 and fp["storage"] is True
    # the grid batteries carry the schedule's set points (storage actions)
    assert orch.shared.get("storage_by") in (None, "flexplan")
    assert any(e["kind"] == "action" and "device command" in e["text"] for e in orch.events)
    assert orch.audit.verify()


def test_dr_event_takes_precedence_and_a_fault_releases_the_devices(fleet_grid):
    orch = _orch(fleet_grid)
    orch.run(2)
    pol = _flexplan(orch)
    assert pol.held
    orch.submit(Plan([Action("dr", None, 0.5)], "peak", "operator"), "alice")
    assert orch.flexdr is not None and orch.flexdr.active is not None
    n_before = len(orch.audit.entries(kind="action"))
    orch.run(16)  # over a 15-minute step: the schedule waits for the event
    acts = [e for e in orch.audit.entries(kind="action")[: -n_before or None]]
    assert not any(e["actor"] == "policy:flexplan" for e in acts)
    assert pol.plan is None and not pol.held
    orch.submit(Plan([Action("dr", None, 0.0)], "over", "operator"), "alice")
    orch.run(15)  # the next 15-minute step: planned afresh
    assert pol.plan is not None and pol.held and len(pol.planning_ms) == 2
    # a fault: the devices go back to their own control until the grid is whole
    orch.inject("fault", line=int(fleet_grid.line.ids[6]))
    orch.run(3)
    assert not pol.held and pol.plan is None
    rel = [e for e in orch.audit.entries(kind="action") if "suspended" in (e["why"] or "")]
    assert rel and rel[0]["actor"] == "policy:flexplan"
    assert orch.world.devices.bat_auto.all()


def test_schedule_leaves_batteries_held_by_another_policy_and_is_opt_in(fleet_grid):
    orch = _orch(fleet_grid)
    orch.shared["storage_by"] = "voltvar"
    orch.run(2)
    entries = [e for e in orch.audit.entries(kind="action") if e["actor"] == "policy:flexplan"]
    assert entries and all(
        a["kind"] != "storage" for e in entries for a in (e["what"] or {}).get("actions", [])
    )
    assert orch.state()["flex_plan"]["storage"] is False
    # opt-in, and nothing on a world without a device registry
    plain = Orchestrator(FieldWorld(fleet_grid, start_step=START), telemetry=False)
    assert not any(isinstance(p, FlexPlanPolicy) for p in plain.policies)
    sim = Orchestrator(SimWorld(fleet_grid, start_step=START), flex_plan=True, telemetry=False)
    assert not any(isinstance(p, FlexPlanPolicy) for p in sim.policies)
    with pytest.raises(Exception, match="every_min"):
        FlexPlanPolicy(every_min=5)


def test_api_shows_the_flex_plan(fleet_grid):
    from fastapi.testclient import TestClient

    from gridpilot.api import KeyStore, create_app

    orch = _orch(fleet_grid)
    orch.run(2)
    keys = KeyStore.generate()
    client = TestClient(create_app(orch, keys))
    body = client.get("/api/flex", headers={"X-API-Key": keys.issued["viewer"]}).json()
    assert body["policy"] is True
    assert len(body["plan"]["import_mw"]) == 96 and body["plan"]["id"].startswith("flexplan-")


def test_voltvar_targets_dr_at_the_buses_behind_an_undervoltage(fleet_grid):
    world = FieldWorld(fleet_grid, start_step=START, horizon_steps=200)
    orch = Orchestrator(world, policies=[], telemetry=False, se_every_steps=0)
    orch.run(1)
    ctx = orch.context()
    g = ctx.grid
    # a heavy evening with no tie swaps allowed and every load able to shed half of itself
    ctx.load_est_mw = ctx.load_est_mw * 2.6
    ctx.dr_share = np.full(len(g.load), 0.5)
    ctx.shared = {"boundary_switches": [int(x) for x in g.switch.ids]}
    ctx.obs.t = 0
    plans = VoltagePolicy().decide(ctx)
    assert plans, "an undervoltage is forecast"
    p = plans[0]
    buses = p.data.get("dr_buses")
    assert buses, p.reason
    assert 0 < len(buses) < len(set(g.load["bus"].tolist()))
    assert "demand response at buses" in p.reason
    # the buses are a subtree: the worst (far) bus of the feeder lies inside
    lvl = p.data["dr_level"]
    mask = np.isin(g.load["bus"], buses).astype(float)
    mult = VoltagePolicy()._worst_step_mult(ctx)
    inj = ctx.injections(dr_level=lvl, load_mult=mult, load_cut=lvl * 0.5 * mask)
    inj["storage_p_mw"] = ctx.storage_deliverable(-g.storage["p_max_mw"])
    one = Injections.from_mapping({k: v[None] for k, v in inj.items()})
    ts = ctx.twin.timeseries(1, injections=one, outputs=("v_pu",))
    assert float(np.nanmin(ts.v_pu)) > 0.9
    # FlexDR sheds only there: the per-load share is 0 elsewhere while the event runs
    fd = orch.flexdr
    assert fd is not None
    fd.update_share(ctx.obs.time, ctx.obs.load_p_mw, g.load["bus"])
    full = fd.share_per_load.copy()
    fd.dispatch(0.5, ctx.obs.time, buses=buses)
    assert fd.active is not None and fd.active.record.buses == buses
    per = fd.share_per_load
    at = np.isin(g.load["bus"], buses)
    assert per is not None and np.all(per[~at] == 0) and np.array_equal(per[at], full[at])


def test_household_dr_counts_in_the_curtailment_kpi(fleet_grid):
    world = FieldWorld(fleet_grid, start_step=START, horizon_steps=200)
    orch = Orchestrator(world, policies=[], telemetry=False, se_every_steps=0)
    kp = _Kpis(world.grid, world.step_s)
    orch.run(1)
    kp.add(world, orch.last, orch)
    assert kp.k["curtailment_mwh"] == 0.0
    orch.submit(Plan([Action("dr", None, 0.5)], "peak", "operator"), "alice")
    fd = orch.flexdr
    assert fd is not None and fd.active is not None
    before = kp.k["curtailment_mwh"]
    for _ in range(5):
        orch.step()
        kp.add(world, orch.last, orch)
    shed = fd.expected_shed_mw(orch.last.time)
    assert shed == pytest.approx(fd.active.record.expected_reduction_mw[0])
    # the grid's flexible loads at level 0.5 plus the households' expected reduction
    assert kp.k["curtailment_mwh"] - before >= 5 * shed / 60 - 1e-9
    assert shed > 0


def test_forecast_injections_and_signals_for_the_planner(fleet_grid):
    world = FieldWorld(fleet_grid, start_step=START, horizon_steps=200)
    orch = Orchestrator(world, policies=[], telemetry=False, se_every_steps=0)
    orch.run(1)
    g = orch.grid
    m = np.arange(4) * 15.0
    fc = orch.forecast_injections(m)
    assert fc["load_p_mw"].shape == (4, len(g.load)) and fc["gen_p_mw"].shape == (
        4,
        len(g.generator),
    )
    ratio = orch.forecast_ratio(m * 60.0 / world.step_s)
    assert np.allclose(fc["load_p_mw"], orch.load_est_mw * ratio)
    assert np.all(fc["gen_p_mw"] <= g.generator["p_mw"] + 1e-9) and np.all(fc["gen_p_mw"] >= 0)
    assert np.allclose(fc["ev_p_mw"][0], orch.ev_est_mw)
    off = np.full(len(g.load), 0.01)
    assert np.allclose(
        orch.forecast_injections(m, load_offset_mw=off)["load_p_mw"],
        np.maximum(orch.load_est_mw - off, 0) * ratio,
    )
    sig = orch.flex_signals(96)
    assert sig.price_eur_per_mwh.size == 96 and np.all(sig.co2_t_per_mwh >= 0)
    # the signals follow the time of day of the grid's own profiles (evening peak price at 19:00)
    k19 = round((19 * 60 - (16 * 60 + 45)) / 15)
    assert sig.price_eur_per_mwh[k19] > sig.price_eur_per_mwh[k19 + 32]  # 19:00 > 03:00


def test_the_demo_takes_the_flexibility_schedule_on_the_field_world_only() -> None:
    from gridpilot.agent.cli import build_demo
    from gridpilot.errors import ValidationError

    orch = build_demo(flex_plan=True)
    assert "flexplan" in [p.name for p in orch.policies]
    assert "flexplan" not in [p.name for p in build_demo().policies]
    with pytest.raises(ValidationError, match=r"flex_plan.*'sim'"):
        build_demo(world="sim", flex_plan=True)
