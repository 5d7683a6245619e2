"""The field simulator: fleet, physics, devices, commands, faults and protection, attacks."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.field import Command, FieldSimulator, FleetConfig, fault_indications
from gridpilot.field.fleet import build_fleet


@pytest.fixture()
def sim(case33):
    return FieldSimulator(case33, FleetConfig(n_devices=3000, seed=1), seed=1, engine="pgm")


def test_fleet_sizes(case33) -> None:
    nat = build_fleet(case33)
    # natural size: one household per 0.8 kW of load, scale about 1
    assert abs(nat.meter_load.size - case33.load["p_mw"].sum() * 1000 / 0.8) < len(case33.load)
    assert np.allclose(nat.meter_scale, 1.0, atol=0.1)
    big = build_fleet(case33, FleetConfig(n_devices=100_000))
    assert abs(big.n_devices - 100_000) < 200
    assert big.counts["pv"] == round(0.2 * big.counts["meter"])
    # households per load follow the load's power
    per_load = np.bincount(big.meter_load, minlength=len(case33.load))
    assert np.corrcoef(per_load, case33.load["p_mw"])[0, 1] > 0.99
    with pytest.raises(ValidationError, match="share_pv"):
        build_fleet(case33, FleetConfig(share_pv=1.5))
    assert big.device_kind(big.offsets["ev"]) == ("ev", 0)


def test_step_aggregates_devices_into_the_power_flow(sim) -> None:
    st = sim.step(60)
    assert st is not None and st.converged
    f = sim.fleet
    expect = np.bincount(
        f.meter_load, weights=sim.meter_p_kw * f.meter_scale / 1000, minlength=len(sim.grid.load)
    )
    assert np.allclose(sim.load_p_mw, expect, atol=1e-9)
    # the source supplies the load plus the losses
    losses = float(np.sum(sim.pf.line_p_from_mw + sim.pf.line_p_to_mw))
    assert sim.pf.source_p_mw.sum() == pytest.approx(sim.load_p_mw.sum() + losses, rel=1e-6)
    assert sim.t_s == 60


def test_a_day_has_peaks_pv_and_plausible_voltages(sim) -> None:
    p = []
    for _ in range(96):
        sim.step(900)
        p.append(sim.load_p_mw.sum())
        assert 0.85 < np.nanmin(sim.pf.v_pu) <= 1.0
    p = np.array(p)
    assert p[72:84].mean() > 1.5 * p[44:56].mean()  # evening peak over PV-rich midday
    f = sim.fleet
    assert np.all((f.bat_soc >= 0) & (f.bat_soc <= 1)) and np.all((f.ev_soc >= 0) & (f.ev_soc <= 1))
    assert np.all(f.wh_temp_c > 30) and np.all(f.wh_temp_c < 70)


def test_water_heater_pause_keeps_comfort(sim) -> None:
    f = sim.fleet
    sim.apply(Command("water_heater_pause"))
    for _ in range(48):
        sim.step(900)
    assert f.wh_paused.all()
    # paused heaters only heat to keep the comfort minimum: tanks cooled but stay near it
    assert f.wh_temp_c.mean() < 50
    assert f.wh_temp_c.min() > f.wh_comfort_min_c.min() - 5
    sim.apply(Command("water_heater_resume"))
    for _ in range(16):
        sim.step(900)
    assert f.wh_temp_c.mean() > 48


def test_ev_and_battery_commands(sim) -> None:
    f = sim.fleet
    sim.apply(Command("ev_limit", value=0.0))
    sim.apply(Command("battery_setpoint", target=[0, 1], value=[5.0, -5.0]))
    soc0 = f.bat_soc[:2].copy()
    ev_soc = f.ev_soc.copy()
    sim.step(900)
    assert np.array_equal(f.ev_soc, ev_soc)  # no charging at limit 0
    assert f.bat_soc[0] > soc0[0] and f.bat_soc[1] < soc0[1]
    assert not f.bat_auto[0] and f.bat_auto[2]
    with pytest.raises(UnknownComponentError, match="battery"):
        sim.apply(Command("battery_setpoint", target=[10**6], value=1.0))
    with pytest.raises(ValidationError, match="pv_limit"):
        sim.apply(Command("pv_limit", value=2.0))
    with pytest.raises(ValidationError, match="unknown"):
        sim.apply(Command("self_destruct"))
    with pytest.raises(ValidationError, match="dt_s"):
        sim.step(0)


def test_pause_and_resume(sim) -> None:
    sim.apply(Command("pause"))
    assert sim.step(60) is None and sim.t_s == 0
    sim.apply(Command("resume"))
    assert sim.step(60) is not None and sim.t_s == 60


def test_line_fault_protection_and_restoration(sim, case33) -> None:
    sim.step(60)
    sim.readings()
    ind = sim.inject_line_fault(9)  # line 9: bus 9 -> 10
    assert ind.fed and ind.trip_switch == 1
    assert ind.fpi_switches.tolist() == list(
        range(1, 10)
    )  # source to the fault, its own switch included
    r = sim.readings(meters=True)
    names = [e.name for e in r.events]
    assert {"line_fault", "fpi_pickup", "breaker_trip", "voltage_lost"} <= set(names)
    assert np.all(r.meters.v_pu == 0)  # whole feeder dark
    # isolate (open 9 and 10), close the breaker: upstream restored, downstream of the fault stays dark
    for sw, closed in ((9, False), (10, False), (1, True)):
        sim.apply(Command("switch", target=sw, value=closed))
    sim.step(60)
    live = sim.bus_live
    assert (
        live[case33.bus.index_of([2, 9, 19])].all()
        and not live[case33.bus.index_of([10, 11, 18])].any()
    )
    assert "voltage_restored" in [e.name for e in sim.readings().events]
    # closing onto the fault trips again
    sim.apply(Command("switch", target=9, value=True))
    assert not sim.switch_closed[0]
    assert "breaker_trip" in [e.name for e in sim.readings().events]
    sim.repair_line(9)
    with pytest.raises(UnknownComponentError):
        sim.repair_line(9)


def test_fault_indications_on_a_lateral(case33) -> None:
    ind = fault_indications(case33, 20)  # line 20 on the lateral from bus 2
    assert ind.trip_switch == 1
    assert ind.fpi_switches.tolist() == [1, 18, 19, 20]
    with pytest.raises(UnknownComponentError):
        fault_indications(case33, 999)


def test_theft_false_data_and_message_faults(case33) -> None:
    sim = FieldSimulator(
        case33, FleetConfig(n_devices=3000, seed=2), keep_history_days=1, seed=2, engine="pgm"
    )
    thief = np.arange(0, 50)
    sim.inject_theft(thief, 0.4)
    sim.inject_false_data([60], v_bias_pu=0.02)
    imp0 = sim.fleet.e_import_kwh.copy()
    for _ in range(96):
        sim.step(900)
        r = sim.readings()
    true_imp = sim.fleet.e_import_kwh - imp0
    assert np.allclose(r.meters.e_import_kwh[thief], 0.4 * true_imp[thief], rtol=1e-5)
    assert np.allclose(r.meters.e_import_kwh[100:200], true_imp[100:200], rtol=1e-5)
    f = sim.fleet
    same_bus = np.flatnonzero(f.meter_bus == f.meter_bus[60])
    assert r.meters.v_pu[60] - np.median(r.meters.v_pu[same_bus]) > 0.01
    # replay: a day later, the meter repeats yesterday's values (with 1 % disguise)
    sim.inject_false_data([70], replay=True)
    for _ in range(3):
        day_ago = float(sim._hist_p[sim._hist_n % 96, 70])  # what meter 70 reported 24 h ago
        sim.step(900)
        rr = sim.readings()
        assert rr.meters.p_kw[70] == pytest.approx(day_ago, rel=0.05, abs=1e-6)
    # loss and delay
    sim.set_message_faults(loss_prob=0.3, delay_prob=0.2, delay_s=1800)
    for _ in range(8):
        sim.step(900)
        r = sim.readings()
        assert len(r.meters) < f.meter_load.size
    assert np.any(r.meters.ts_ms < sim.now_ms)  # delayed rows keep their time
    with pytest.raises(ValidationError):
        sim.set_message_faults(loss_prob=2)
    with pytest.raises(ValidationError, match="replay"):
        FieldSimulator(case33, FleetConfig(n_devices=500), engine="pgm").inject_false_data(
            [0], replay=True
        )


def test_outages_and_sensor_bias(sim) -> None:
    sim.inject_device_outage("meter", [0, 1, 2])
    sim.inject_device_outage("pv", None)
    sim.step(900)
    r = sim.readings(meters=True)
    assert not np.isin([0, 1, 2], r.meters.meter).any()
    assert sim.fleet.pv_online.sum() == 0
    sim.inject_sensor_bias("source_p_mw", 0.5)
    assert sim.readings().sensors["source_p_mw"][0] == pytest.approx(sim.pf.source_p_mw[0] + 0.5)
    with pytest.raises(UnknownComponentError, match="sensor"):
        sim.inject_sensor_bias("nope", 1.0)
    with pytest.raises(ValidationError, match="kind"):
        sim.inject_device_outage("toaster", [0])


@pytest.mark.parametrize("name", ["case33bw", "cigre-mv"])
def test_protection_agrees_with_flisr_helper(name: str) -> None:
    """Cross-check with gridpilot.control's indications_for_fault (written independently)."""
    loc = pytest.importorskip("gridpilot.control.location")
    from gridpilot.model import load_grid

    g = load_grid(name)
    for lid in g.line.ids:
        a = fault_indications(g, int(lid))
        b = loc.indications_for_fault(g, int(lid))
        assert sorted(a.fpi_switches.tolist()) == sorted(k for k, v in b.fpi.items() if v)
        assert ([a.trip_switch] if a.trip_switch >= 0 else []) == b.tripped


def test_run_paced_and_accelerated(sim) -> None:
    import time

    seen: list[float] = []
    t0 = time.monotonic()
    out = sim.run(600, dt_s=60, speed=3000, on_step=lambda s, st: seen.append(s.t_s))
    wall = time.monotonic() - t0
    assert len(out) == 10 and seen[-1] == 600
    assert wall >= 0.2 - 0.02  # 600 s at 3000x real time takes at least 0.2 s
    assert len(sim.run(120, dt_s=60)) == 2 and sim.t_s == 720  # as fast as possible


def test_household_demand_follows_the_grids_profiles() -> None:
    from gridpilot.model import load_grid
    from gridpilot.twin import profiles_for, step_injections

    g = load_grid("synthetic:80")  # a grid with its own profiles
    assert g.profiles is not None
    cfg = FleetConfig(
        n_devices=20_000,
        base_share=1.0,
        share_pv=0,
        share_battery=0,
        share_ev=0,
        share_water_heater=0,
    )
    sim = FieldSimulator(g, cfg, engine="pgm")
    prof, cols = profiles_for(g, 97)
    ref = step_injections(g, prof, cols, slice(1, 97))["load_p_mw"].sum(axis=1)
    tot = []
    for _ in range(96):
        sim.step(900)
        tot.append(sim.load_p_mw.sum())
    assert np.corrcoef(tot, ref)[0, 1] > 0.99
    assert np.mean(tot) / np.mean(ref) == pytest.approx(1.0, abs=0.05)


def test_fault_fed_from_both_sides_trips_both(case33) -> None:
    sim = FieldSimulator(case33, FleetConfig(n_devices=500), engine="pgm")
    # close tie 33 (bus 21 - 8) to make a loop, then fault line 8 (bus 8 - 9): both sides feed it
    sim.apply(Command("switch", target=33, value=True))
    sim.inject_line_fault(8)
    trips = [e.data["switch_id"] for e in sim.readings().events if e.name == "breaker_trip"]
    assert trips == [1]  # one source: the feeder breaker clears the loop
    assert not sim.bus_live[1:].any()
    assert not fault_indications(case33, 8, sim.switch_closed).fed
