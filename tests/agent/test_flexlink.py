"""The loop's demand response as gridpilot.flex events on the field's devices (agent.flexlink)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridpilot.agent import Action, Orchestrator, Plan, SimWorld
from gridpilot.agent.flexlink import FlexDR
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.field import Command, FieldSimulator, FleetConfig

START = "2025-01-15T17:30"


def _sim(grid: Any, n: int = 2000) -> FieldSimulator:
    return FieldSimulator(grid, FleetConfig(n_devices=n, seed=1), start=START, seed=4)


def _now(sim: FieldSimulator) -> np.datetime64:
    return np.datetime64(sim.now_ms, "ms")


def _apply(sim: FieldSimulator, cmds: list[Command]) -> None:
    for c in cmds:
        sim.apply(c)


def _dr_at_six(grid: Any) -> tuple[FieldSimulator, FlexDR, np.datetime64]:
    """A 1500-device field stepped to 18:00, a FlexDR on its fleet and the time now."""
    sim = _sim(grid, 1500)
    for _ in range(30):
        sim.step(60)
    return sim, FlexDR(grid, sim.fleet), _now(sim)


def test_field_load_drops_by_about_the_planned_reduction(case33):
    a, b = _sim(case33), _sim(case33)  # the same seed: b is the twin without the event
    dr = FlexDR(case33, a.fleet)
    for _ in range(30):  # to 18:00, with the load fed to the record's baseline
        a.step(60)
        b.step(60)
        assert dr.tick(_now(a), float(a.load_p_mw.sum())) == []
    share = dr.update_share(_now(a), float(a.load_p_mw.sum()))
    assert 0 < share <= 1
    cmds = dr.set_level(0.5, _now(a), source="policy:test")
    names = {c.name for c in cmds}
    _apply(a, cmds)
    rec = dr.records[-1]
    assert rec.status == "active" and rec.target_met is True
    assert rec.target_mw == pytest.approx(0.5 * dr.sheddable_mw(_now(a)))
    exp = np.asarray(rec.expected_reduction_mw)
    assert exp.min() >= 0.999 * rec.target_mw and exp.max() <= 1.05 * rec.target_mw
    assert dr.update_share(_now(a), 1e3) == share  # frozen while the event runs
    diff = []
    for _ in range(60):
        a.step(60)
        b.step(60)
        cmds = dr.tick(_now(a), float(a.load_p_mw.sum()))
        names |= {c.name for c in cmds}
        _apply(a, cmds)
        diff.append(float(b.load_p_mw.sum() - a.load_p_mw.sum()))
    assert names >= {"battery_setpoint", "ev_limit", "water_heater_pause"}
    measured = float(np.mean(diff))
    # the field's devices are not the flex model's (thermostat set points, self-consumption
    # batteries' self-consumption, random draws): within 10 % of the plan
    assert measured == pytest.approx(rec.expected_mean_mw, rel=0.1)
    # a refresh per 15-minute plan step, then a renewal at the end of the hour
    assert dr.records[-1].id != rec.id and rec.status == "renewed"
    assert rec.measured_reduction_mw is not None and rec.measured_reduction_mw > 0
    _apply(a, dr.set_level(0.0, _now(a)))
    assert dr.active is None and dr.records[-1].status == "released"
    f = a.fleet
    assert f.bat_auto.all() and not f.wh_paused.any()
    assert np.array_equal(f.ev_limit_kw, f.ev_charger_kw)


def test_levels_supersede_release_and_bad_input(case33):
    sim, dr, now = _dr_at_six(case33)
    assert dr.set_level(0.0, now) == []  # nothing to release
    first = dr.set_level(0.3, now, source="operator:ann")
    assert first and dr.set_level(0.3, now) == []  # same level: nothing new
    more = dr.set_level(0.9, now, source="operator:ann")
    assert more[0].name == "battery_auto"  # the release of the first comes first
    old, new = dr.records[-2], dr.records[-1]
    assert old.status == "superseded" and new.status == "active"
    assert new.target_mw == pytest.approx(3 * old.target_mw)
    assert new.devices["water_heater"] > 0
    ev = dr.events()
    assert [e["id"] for e in ev] == [old.id, new.id] and ev[-1]["source"] == "operator:ann"
    with pytest.raises(ValidationError, match="dr level"):
        dr.set_level(1.5, now)
    with pytest.raises(ValidationError, match="duration_min"):
        FlexDR(case33, sim.fleet, duration_min=1)
    # targeted at the buses of a problem: only their devices take part
    dr.set_level(0.0, now)
    bus = int(case33.bus.ids[sim.fleet.meter_bus[sim.fleet.wh_meter[0]]])
    cmds = dr.set_level(0.5, now, buses=[bus])
    wh_bus = case33.bus.ids[sim.fleet.meter_bus[sim.fleet.wh_meter]]
    assert dr.records[-1].devices["water_heater"] == int((wh_bus == bus).sum())
    bb, rb = dr.sheddable_by_bus(now)
    assert dr.records[-1].target_mw == pytest.approx(0.5 * rb[bb == bus].sum())
    for c in cmds:
        if c.name.startswith("water_heater"):
            assert np.all(wh_bus[np.asarray(c.target)] == bus)
    with pytest.raises(UnknownComponentError, match="bus"):
        dr.set_level(0.7, now, buses=[4242])
    dr.set_level(0.0, now)
    no_dev = [int(b) for b in case33.bus.ids if b not in set(bb.tolist())]
    assert no_dev and dr.set_level(0.5, now, buses=no_dev[:1]) == []
    assert dr.records[-1].status == "empty" and dr.active is None
    # no device online: an empty record, no command
    off = FlexDR(case33, sim.fleet)
    f = sim.fleet
    saved = (f.bat_online.copy(), f.ev_online.copy(), f.wh_online.copy())
    try:
        f.bat_online[:] = f.ev_online[:] = f.wh_online[:] = False
        assert off.set_level(1.0, now) == [] and off.records[-1].status == "empty"
    finally:
        f.bat_online[:], f.ev_online[:], f.wh_online[:] = saved


class _DeviceWorld(SimWorld):
    """SimWorld with a field simulator's households under command (stands in for FieldWorld)."""

    def __init__(self, grid: Any, sim: FieldSimulator, **kw: Any) -> None:
        super().__init__(grid, dr_share=0.0, **kw)
        self.sim = sim
        self.applied: list[Command] = []

    @property
    def devices(self) -> Any:
        return self.sim.fleet

    def apply(self, cmds: list[Command]) -> list[Any]:
        self.applied.extend(cmds)
        return [self.sim.apply(c) for c in cmds]

    def advance(self) -> None:
        super().advance()
        self.sim.step(self.step_s)  # the households' devices live on with the grid's time


class _CallDR:
    name = "calldr"

    def __init__(self, at: int, level: float) -> None:
        self.at, self.level = at, level

    def decide(self, ctx: Any) -> list[Plan]:
        if ctx.obs.t == self.at:
            return [Plan([Action("dr", None, self.level)], "test call", self.name)]
        return []


def test_orchestrator_runs_dr_as_flex_events_on_a_device_world(case33):
    sim = _sim(case33, 1500)
    world = _DeviceWorld(case33, sim, start_step=72)  # 18:00
    # a small level: this stand-in's loads do not include the households, so the loop's
    # un-curtailed demand estimate (load / (1 - level x share)) overstates the demand and the
    # guard would refuse to release a large event on a heavily loaded case33bw
    orch = Orchestrator(
        world,
        policies=[_CallDR(1, 0.1), _CallDR(5, 0.0)],
        telemetry=False,
        se_every_steps=0,
    )
    assert orch.flexdr is not None
    orch.run(3)
    assert {c.name for c in world.applied} >= {"battery_setpoint", "ev_limit"}
    assert not sim.fleet.bat_auto.all()  # the batteries follow the event's set points
    assert world.dr_level == 0.1  # the grid's own flexible loads follow the level
    share = orch.flexdr.share
    assert share > 0
    # per load: the devices' room at each load's bus over the load there (where an event acts)
    ctx = orch.context()
    per = np.asarray(ctx.dr_share)
    assert per.shape == (len(case33.load),) and per.min() >= 0 and per.max() <= 1
    assert np.array_equal(per, orch.flexdr.share_per_load)
    st = orch.state()
    assert st["dr_events"][0]["status"] == "active"
    assert st["headline"]["dr_share"] == pytest.approx(share, abs=1e-4)
    audit = orch.audit.entries(kind="dr_event")
    assert audit[0]["actor"] == "policy:calldr" and audit[0]["status"] == "dispatched"
    assert any(e["kind"] == "dr" and "dispatched" in e["text"] for e in st["events"])
    orch.run(4)
    assert not sim.fleet.wh_paused.any() and sim.fleet.bat_auto.all()
    assert orch.state()["dr_events"][0]["status"] == "released"
    assert orch.audit.entries(kind="dr_event")[0]["status"] == "released"
    # an operator's DR goes the same way, audited under the operator's name
    orch.submit(Plan([Action("dr", None, 0.25)], "peak", "operator"), "alice")
    assert orch.audit.entries(kind="dr_event")[0]["actor"] == "operator:alice"
    assert orch.audit.verify()


def test_simworld_keeps_its_own_dr_model(fleet_grid):
    orch = Orchestrator(SimWorld(fleet_grid, start_step=72), telemetry=False, se_every_steps=0)
    assert orch.flexdr is None and orch.dr_share == pytest.approx(0.15)
    assert orch.ev_dr_share == pytest.approx(0.6)
    orch.run(1)
    orch.submit(Plan([Action("dr", None, 0.5)], "peak", "operator"), "bob")
    assert orch.world.dr_level == 0.5 and orch.state()["dr_events"] == []


def test_field_world_runs_renewable_drop_dr_as_a_flex_event(fleet_grid):
    from gridpilot.agent import FieldWorld, RenewableDropPolicy

    evening = 200 * 96 + 17 * 4  # a summer day, 17:00

    def make() -> tuple[FieldWorld, Orchestrator]:
        w = FieldWorld(fleet_grid, start_step=evening)
        pol = [RenewableDropPolicy()]
        return w, Orchestrator(w, policies=pol, telemetry=False, se_every_steps=0)

    wa, oa = make()
    wb, ob = make()  # the same world without demand response (no wind drop either)
    assert oa.flexdr is not None and wa.dr_share == 0.0
    oa.run(12)
    ob.run(12)
    assert not oa.flexdr.records  # no event before the drop
    assert 0 < oa.dr_share <= 1
    per, load = np.asarray(oa.context().dr_share), oa.last.load_p_mw
    room = oa.flexdr.sheddable_mw(oa.last.time)
    assert 0 < (per * load).sum() <= room + 1e-9  # clipped where a bus's room exceeds its load
    assert oa.context().ev_dr_share == 0.0  # the field's EV stations follow the EV factor only
    oa.inject("wind_drop", factor=0.1)
    diff = []
    for _ in range(40):
        oa.step()
        ob.step()
        diff.append(float(ob.last.load_p_mw.sum() - oa.last.load_p_mw.sum()))
    rec = oa.flexdr.records[0]
    assert rec.source == "policy:dr" and rec.status == "active" and rec.target_mw > 0
    assert wa.dr_level == oa.dr_level > 0  # the grid's flexible loads too
    assert wa.devices.bat_auto.sum() < wb.devices.bat_auto.sum()
    # the feeder's metered load falls by about the planned reduction (the wind drop itself is
    # generation: it does not change the loads)
    assert np.mean(diff[2:]) == pytest.approx(rec.expected_mean_mw, rel=0.15)
    audit = oa.audit.entries(kind="dr_event", actor="policy:dr")
    assert audit and audit[-1]["status"] == "dispatched"
    assert oa.state()["dr_events"][0]["id"] == rec.id


def test_api_shows_the_dr_events(fleet_grid):
    from fastapi.testclient import TestClient

    from gridpilot.agent import FieldWorld
    from gridpilot.api import KeyStore, create_app

    world = FieldWorld(fleet_grid, start_step=200 * 96 + 17 * 4)
    orch = Orchestrator(world, policies=[], telemetry=False, se_every_steps=0)
    orch.run(2)
    keys = KeyStore.generate()
    client = TestClient(create_app(orch, keys))
    hdr = {"X-API-Key": keys.issued["operator"]}
    r = client.post("/api/commands/dr", json={"level": 0.5, "reason": "peak"}, headers=hdr)
    assert r.status_code == 200, r.text
    body = client.get("/api/dr", headers={"X-API-Key": keys.issued["viewer"]}).json()
    assert body["level"] == 0.5 and "gridpilot.flex" in body["method"]
    assert body["enrolled_share"] == pytest.approx(orch.dr_share)
    ev = body["events"][-1]
    assert ev["status"] == "active" and ev["target_mw"] > 0
    assert ev["source"].startswith("operator:") and sum(ev["devices"].values()) > 0


def test_share_per_load_follows_the_devices_buses(case33):
    _, dr, now = _dr_at_six(case33)
    buses, room = dr.sheddable_by_bus(now)
    assert room.sum() == pytest.approx(dr.sheddable_mw(now)) and np.all(room >= 0)
    load = np.full(len(case33.load), 10.0)  # big loads: no clipping
    lb = case33.load["bus"]
    total = dr.update_share(now, load, lb)
    per = dr.share_per_load
    assert per is not None and total == pytest.approx(room.sum() / load.sum())
    # the room of each bus over its load
    for b, r in zip(buses, room, strict=True):
        m = lb == b
        assert per[m] == pytest.approx(r / load[m].sum())
    assert np.all(per[~np.isin(lb, buses)] == 0)
    with pytest.raises(ValidationError, match="load_bus"):
        dr.update_share(now, load, lb[:-1])


def test_a_proposed_dr_runs_as_the_policys_event_once_approved(fleet_grid):
    from gridpilot.agent import FieldWorld

    world = FieldWorld(fleet_grid, start_step=200 * 96 + 17 * 4)
    orch = Orchestrator(
        world, mode="propose", policies=[_CallDR(1, 0.25)], telemetry=False, se_every_steps=0
    )
    orch.run(3)
    assert orch.flexdr is not None and not orch.flexdr.records  # nothing before approval
    pid = next(p.plan.id for p in orch.proposals.values() if p.status == "pending")
    assert orch.approve(pid, "carol")["status"] == "approved"
    rec = orch.flexdr.records[-1]
    assert rec.status == "active" and rec.source == "policy:calldr"
    assert orch.audit.entries(kind="dr_event")[0]["actor"] == "policy:calldr"
    assert orch.audit.entries(kind="approval")[0]["actor"] == "operator:carol"
