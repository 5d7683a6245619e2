"""The households' meter telemetry in the loop (gridpilot.agent.meters): signed rows verified and
stored, the feeder balance's non_technical_loss alarm on theft and none on a clean run."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator, SimWorld
from gridpilot.agent.fieldworld import FieldWorld
from gridpilot.agent.meters import MeterPath
from gridpilot.agent.scenarios import ScenarioSpec, run_one, theft_meters
from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.telemetry import DeviceSigner, generate_key

from .conftest import EVENING


def test_meter_rows_arrive_signed_verified_and_stored(fleet_grid: Grid) -> None:
    w = FieldWorld(fleet_grid, start_step=EVENING, step_s=300)
    o = Orchestrator(w, meters=True)
    assert o.meters is not None
    nm = len(o.meters.meter_ids)
    assert nm == w.devices.meter_load.size
    o.run(2)  # 10 min: no meter interval has ended yet
    assert o.counters["meter_rows"] == 0
    o.run(4)  # 30 min: two intervals (15 and 30 min)
    assert o.counters["meter_rows"] == 2 * nm
    assert o.counters["meter_frames_rejected"] == 0
    # what the loop used came through the store: the readings are there, per meter
    assert o.meters.store.stats().readings == 2 * nm * 5
    assert o.state()["headline"]["meter_rows"] == 2 * nm


def test_forged_meter_frame_is_refused_counted_and_audited(fleet_grid: Grid) -> None:
    w = FieldWorld(fleet_grid, start_step=EVENING, step_s=300)
    o = Orchestrator(w, meters=True)
    o.run(3)
    ts_ms = int(w.time.astype("datetime64[ms]").astype(np.int64))
    fake = DeviceSigner("gw-5", generate_key(), seq=10**6, clock=lambda: ts_ms / 1000.0)
    forged = fake.readings(
        np.array([ts_ms], np.int64), {"p_kw": np.array([0.0])}, devices=["m0"], dev_pos=[0]
    )
    o.meters.receive_foreign([forged])
    o.run(3)
    assert o.counters["meter_frames_rejected"] == 1
    assert any(e["kind"] == "security" and "meter frame" in e["text"] for e in o.state()["events"])
    assert any("meter_frames_rejected" in str(r["what"]) for r in o.audit.entries(kind="refused"))
    # the honest gateways' rows still arrived
    assert o.counters["meter_rows"] == 2 * len(o.meters.meter_ids)


def test_bad_input_names_field_and_value(fleet_grid: Grid) -> None:
    with pytest.raises(ValidationError, match="meters"):
        Orchestrator(SimWorld(fleet_grid, start_step=EVENING), meters=True)
    w = FieldWorld(fleet_grid, start_step=EVENING)
    with pytest.raises(ValidationError, match="learn_intervals"):
        MeterPath(w, w.grid, learn_intervals=0)
    with pytest.raises(ValidationError, match="k_sigma"):
        MeterPath(w, w.grid, k_sigma=float("nan"))


def _theft_run(clean: bool) -> tuple[dict[str, object], list[str]]:
    spec = ScenarioSpec(
        "theft", hours=8.0, step_s=300.0, params={"at_min": 420, "clean": clean}, world="field"
    )
    r = run_one(spec)
    return r.kpis, r.notes


def test_theft_raises_non_technical_loss_and_a_clean_run_does_not() -> None:
    kpis, notes = _theft_run(clean=False)
    delay = kpis["detection_delay_min"]
    assert delay is not None and 0 <= float(delay) <= 4 * 15  # within four meter intervals
    assert kpis["false_alarms"] == 0
    assert any("sections named [4, 13, 26]" in n for n in notes)  # the tampered loads
    kpis_c, _ = _theft_run(clean=True)
    assert kpis_c["detection_delay_min"] is None
    assert kpis_c["false_alarms"] == 0


def test_theft_meters_are_behind_the_named_loads(fleet_grid: Grid) -> None:
    w = FieldWorld(fleet_grid, start_step=EVENING)
    m = theft_meters(w, [4], share=0.5)
    k = int(w.grid.load.index_of(4)[0])
    behind = np.flatnonzero(w.devices.meter_load == k)
    assert set(m) <= set(behind.tolist()) and len(m) == round(0.5 * behind.size)


def test_alarm_reaches_state_and_timeline(fleet_grid: Grid) -> None:
    import json

    w = FieldWorld(fleet_grid, start_step=200 * 96, step_s=300)
    o = Orchestrator(w, meters=True)
    o.run(75)  # 6 h 15 min: the band is learned
    assert o.meters.band is not None and "non_technical_loss" not in o.alarms
    w.sim.inject_theft(theft_meters(w, [4], share=0.5), 0.3)
    o.run(9)
    st = json.loads(json.dumps(o.state()))  # JSON-able, as the API sends it
    al = {a["alarm"]: a for a in st["alarms"]}
    assert al["non_technical_loss"]["sections"] == [4]
    assert any(
        e["kind"] == "alarm" and e.get("alarm") == "non_technical_loss" for e in st["events"]
    )


def test_a_lost_gateway_frame_is_not_taken_for_theft(fleet_grid: Grid) -> None:
    w = FieldWorld(fleet_grid, start_step=200 * 96, step_s=300)
    o = Orchestrator(w, meters=True)
    o.run(75)
    assert o.meters.band is not None
    sent = w.meter_frames

    def lossy() -> list[bytes]:
        return sent()[1:]  # the first gateway's frame is lost on the way, every interval

    w.meter_frames = lossy  # type: ignore[method-assign]
    rows = o.counters["meter_rows"]
    o.run(9)  # three intervals
    nm = len(o.meters.meter_ids)
    assert 0 < o.counters["meter_rows"] - rows < 3 * nm  # that gateway's meters are missing
    assert "non_technical_loss" not in o.alarms
    assert o.counters["meter_frames_rejected"] == 0


def test_the_demo_takes_the_meter_path_on_the_field_world_only() -> None:
    from gridpilot.agent.cli import build_demo
    from gridpilot.errors import ValidationError

    assert build_demo(meters=True).meters is not None
    assert build_demo().meters is None
    with pytest.raises(ValidationError, match="meters"):
        build_demo(world="sim", meters=True)


def test_daily_theft_detector_names_the_tampered_meters_through_the_loop(fleet_grid: Grid) -> None:
    # five days of 15-min steps (about 30 s): two days learn each meter's daily energy, the
    # third is judged clean, then half the meters behind three loads report half their import
    w = FieldWorld(fleet_grid, start_step=200 * 96, step_s=900, horizon_steps=96 * 5)
    o = Orchestrator(w, meters=True)
    o.meters = MeterPath(w, o.grid, theft_learn_days=2)
    o.run(96 * 3)
    nm = len(o.meters.meter_ids)
    assert o.meters.days == 3
    clean = o.meters.alarms.get("theft_suspected", {}).get("text", "0 meter(s)")
    assert int(clean.split()[0]) <= 0.005 * nm  # the calibrated background of sound meters
    tampered = theft_meters(w, [4, 13, 26], share=0.5)
    w.sim.inject_theft(tampered, 0.5)
    o.run(96 * 2)
    al = o.meters.alarms["theft_suspected"]
    named = set(al["meters"])
    truth = {o.meters.meter_ids[k] for k in tampered}
    assert len(named) >= 40 and len(named & truth) >= 0.9 * len(named)
    assert o.meters.alarms["non_technical_loss"]["sections"] == [4, 13, 26]
