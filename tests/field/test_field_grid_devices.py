"""The field's grid-level devices, scenario events, crews and FPI failures (issue #9)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import demo_grid
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.field import Command, FieldSimulator, FleetConfig
from gridpilot.model import GenKind, Grid

START = "2021-07-20T17:00"  # a summer evening (the default profiles' year is irrelevant here)


@pytest.fixture(scope="module")
def fleet_grid() -> Grid:
    return demo_grid("case33bw")


@pytest.fixture
def sim(fleet_grid: Grid) -> FieldSimulator:
    s = FieldSimulator(
        fleet_grid,
        FleetConfig(n_devices=2000, seed=1),
        start=START,
        sensor_bus_ids="all",
        sensor_line_ids="all",
        substation_meters=True,
        seed=1,
        engine="pgm",
    )
    s.step(60)
    s.readings()
    return s


def test_sensors_all_and_device_metering(sim: FieldSimulator, fleet_grid: Grid) -> None:
    s = sim.readings().sensors
    g = fleet_grid
    assert s["bus_v_pu"].size == len(g.bus) and s["line_loading_pct"].size == len(g.line)
    assert s["line_loading_pct"].max() > 0 and np.all(s["line_loading_pct"] >= 0)
    assert s["load_p_mw"].size == len(g.load) and s["load_q_mvar"].size == len(g.load)
    assert np.allclose(s["load_p_mw"], sim.load_p_mw)
    for k, tbl in (
        ("gen_p_mw", g.generator),
        ("storage_p_mw", g.storage),
        ("ev_p_mw", g.ev_charger),
        ("flex_p_mw", g.flex_load),
    ):
        assert s[k].size == len(tbl)
    assert s["gen_p_mw"].sum() > 0 and s["ev_p_mw"].sum() > 0 and s["flex_p_mw"].sum() > 0
    # the source supplies loads and grid devices (+ losses): the devices are in the power flow
    inj = s["load_p_mw"].sum() + s["ev_p_mw"].sum() + s["flex_p_mw"].sum() - s["gen_p_mw"].sum()
    losses = float(np.sum(sim.pf.line_p_from_mw + sim.pf.line_p_to_mw))
    assert s["source_p_mw"].sum() == pytest.approx(inj + s["storage_p_mw"].sum() + losses, rel=1e-6)
    with pytest.raises(ValidationError, match=r"sensor_bus_ids.*'every'"):
        FieldSimulator(fleet_grid, FleetConfig(n_devices=100), sensor_bus_ids="every")


def test_grid_storage_setpoint_charges_and_clips_at_full(sim: FieldSimulator) -> None:
    g = sim.grid
    sid = int(g.storage.ids[0])
    soc0 = float(sim.grid_devices.storage_soc[0])
    ev = sim.apply(Command("grid_storage_setpoint", target=sid, value=5.0))  # above the rating
    assert ev.data["p_mw"] == pytest.approx(float(g.storage["p_max_mw"][0]))  # clipped to 0.3
    sim.step(900)
    s = sim.readings().sensors
    assert s["storage_p_mw"][0] == pytest.approx(0.3)
    assert s["storage_soc"][0] == pytest.approx(soc0 + 0.3 * 0.25 / 1.2)
    assert s["storage_soc"][1] == pytest.approx(float(g.storage["soc"][1]))  # the other: idle
    for _ in range(8):  # 2 h at 0.3 MW fills 1.2 MWh from 0.8
        sim.step(900)
    s = sim.readings().sensors
    assert s["storage_soc"][0] >= 0.98 and s["storage_p_mw"][0] == 0.0  # full: no more charging
    with pytest.raises(UnknownComponentError, match="999"):
        sim.apply(Command("grid_storage_setpoint", target=999, value=0.1))
    with pytest.raises(ValidationError, match=r"value.*'lots'"):
        sim.apply(Command("grid_storage_setpoint", target=sid, value="lots"))
    with pytest.raises(ValidationError, match="target"):
        sim.apply(Command("grid_storage_setpoint", value=0.1))


def test_ev_charging_factor_and_flex_load_level(sim: FieldSimulator) -> None:
    s0 = sim.readings().sensors
    sim.apply(Command("ev_charging_factor", value=0.5))
    sim.apply(Command("flex_load_level", value=1.0))
    sim.step(60)
    s1 = sim.readings().sensors
    assert s1["ev_p_mw"].sum() == pytest.approx(0.5 * s0["ev_p_mw"].sum(), rel=0.05)
    assert s1["flex_p_mw"].sum() == 0.0 and s0["flex_p_mw"].sum() > 0
    truth = sim.demand_if_energised()  # uncommanded demand for KPIs
    assert truth["flex_p_mw"].sum() == pytest.approx(s0["flex_p_mw"].sum(), rel=0.01)
    for name, val in (("ev_charging_factor", 1.5), ("flex_load_level", -0.1)):
        with pytest.raises(ValidationError, match=rf"value.*{val}"):
            sim.apply(Command(name, value=val))


def test_gen_trip_and_wind_drop(sim: FieldSimulator) -> None:
    g = sim.grid
    kind = g.generator["kind"]
    wind = int(np.flatnonzero(kind == GenKind.WIND)[0])
    pv = int(np.flatnonzero(kind == GenKind.PV)[0])
    before = sim.readings().sensors["gen_p_mw"]
    assert before[wind] > 0 and before[pv] > 0
    sim.inject_event("wind_drop", factor=0.1)
    sim.step(60)
    s = sim.readings().sensors["gen_p_mw"]
    assert s[wind] == pytest.approx(0.1 * before[wind], rel=0.05)
    sim.inject_event("wind_restore")
    gid = int(g.generator.ids[pv])
    sim.inject_event("gen_trip", generator=gid)
    sim.step(60)
    r = sim.readings()
    assert r.sensors["gen_p_mw"][pv] == 0.0 and r.sensors["gen_p_mw"][wind] > 0.5 * before[wind]
    trips = [e for e in r.events if e.name == "device_trip"]
    assert len(trips) == 1 and trips[0].data["generator"] == gid
    with pytest.raises(UnknownComponentError, match="12345"):
        sim.inject_event("gen_trip", generator=12345)
    with pytest.raises(ValidationError, match=r"factor.*2"):
        sim.inject_event("wind_drop", factor=2)


def test_heatwave_raises_load_and_ev_surge_raises_charging(fleet_grid: Grid) -> None:
    def run(event: dict | None) -> tuple[float, float]:
        s = FieldSimulator(
            fleet_grid, FleetConfig(n_devices=2000, seed=1), start=START, seed=1, engine="pgm"
        )
        if event:
            s.inject_event(**event)
        for _ in range(4):
            s.step(60)
        m = s.readings().sensors
        return float(s.load_p_mw.sum()), float(m["ev_p_mw"].sum())

    base_load, base_ev = run(None)
    hot_load, _ = run({"kind": "heatwave", "load_factor": 1.25, "peak_factor": 0.3})
    assert hot_load > 1.25 * base_load  # +25 % and the afternoon peak on household demand
    _, surge_ev = run({"kind": "ev_surge", "factor": 3.0})
    assert surge_ev > 2.0 * base_ev
    with pytest.raises(ValidationError, match=r"load_factor.*-1"):
        run({"kind": "heatwave", "load_factor": -1})


def test_repair_hands_back_normal_configuration_and_reports(sim: FieldSimulator) -> None:
    normal = sim.switch_closed.copy()
    sim.inject_event("fault", line=7)
    r = sim.readings()
    trip = next(e for e in r.events if e.name == "breaker_trip")
    assert trip.data["fpi_switch_ids"] and sim.fpi.any()
    assert not sim.bus_live.all()
    # the control room reconfigures (a tie closed) and isolates; the crew then repairs
    sim.apply(Command("switch", target=7, value=False))
    sim.apply(Command("switch", target=8, value=False))
    sim.apply(Command("switch", target=35, value=True))
    sim.apply(Command("switch", target=int(trip.data["switch_id"]), value=True))
    sim.readings()
    assert not np.array_equal(sim.switch_closed, normal)
    rec = sim.inject_event("repair")
    assert rec["lines"] == [7]
    r = sim.readings()
    assert np.array_equal(sim.switch_closed, normal) and sim.bus_live.all()
    assert not sim.fpi.any()
    rep = [e for e in r.events if e.name == "crew_report"]
    assert len(rep) == 1 and rep[0].data["lines"] == [7]
    with pytest.raises(UnknownComponentError, match="fault"):
        sim.inject_event("repair", line=7)  # nothing faulted there any more


def test_fpi_failure_removes_that_indicator_and_fpi_reset(sim: FieldSimulator) -> None:
    sim.inject_event("fpi_failure", switch=5)
    sim.inject_event("fault", line=7)
    r = sim.readings()
    pick = next(e for e in r.events if e.name == "fpi_pickup").data["switch_ids"]
    trip = next(e for e in r.events if e.name == "breaker_trip").data["fpi_switch_ids"]
    assert 5 not in pick and 5 not in trip and {4, 6, 7} <= set(pick)
    k5 = int(sim.grid.switch.index_of(5)[0])
    assert not sim.fpi[k5] and sim.readings().sensors["fpi"].sum() == len(pick)
    sim.apply(Command("fpi_reset"))
    assert sim.readings().sensors["fpi"].sum() == 0


def test_fpi_false_pickup_reports_an_indicator_off_the_fault_path(sim: FieldSimulator) -> None:
    sim.inject_event("fpi_false_pickup", switch=10)  # below the fault: no fault current there
    sim.inject_event("fpi_false_pickup", switch=26)  # another branch
    sim.readings()
    assert not sim.fpi.any()  # nothing until a fault trips a device
    sim.inject_event("fault", line=7)
    r = sim.readings()
    pick = next(e for e in r.events if e.name == "fpi_pickup").data["switch_ids"]
    assert set(pick) == {1, 2, 3, 4, 5, 6, 7, 10, 26}
    trip = next(e for e in r.events if e.name == "breaker_trip").data
    assert trip["switch_id"] == 1 and set(trip["fpi_switch_ids"]) == set(pick)
    with pytest.raises(UnknownComponentError, match="778"):
        sim.inject_event("fpi_false_pickup", switch=778)


def test_unknown_event_and_bad_parameters(sim: FieldSimulator) -> None:
    with pytest.raises(UnknownComponentError, match=r"meteor.*known: fault, repair"):
        sim.inject_event("meteor")
    with pytest.raises(ValidationError, match=r"line.*required"):
        sim.inject_event("fault")
    with pytest.raises(UnknownComponentError, match="999"):
        sim.inject_event("fault", line=999)
    with pytest.raises(UnknownComponentError, match="777"):
        sim.inject_event("fpi_failure", switch=777)


def test_demand_if_energised_covers_dead_customers(sim: FieldSimulator) -> None:
    sim.inject_event("fault", line=7)  # the whole feeder goes dark (breaker 1)
    sim.step(60)
    assert sim.load_p_mw.sum() == 0.0
    truth = sim.demand_if_energised()["load_p_mw"]
    assert truth.sum() > 0.5  # what the customers would draw (base demand)
    assert np.all(truth >= 0)
