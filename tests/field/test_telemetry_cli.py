"""Field telemetry (signed, verified, stored) and the `gridpilot field run` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gridpilot.field import Command, FieldSimulator, FleetConfig
from gridpilot.field.publish import METER_QUANTITIES, PUBLISHED_SENSORS, FieldTelemetry
from gridpilot.telemetry import DuckDBStore, Ingestor, InProcessBus, Receiver


def test_published_readings_are_verified_and_stored(case33) -> None:
    sim = FieldSimulator(
        case33, FleetConfig(n_devices=800, seed=4), meter_interval_s=300, seed=4, engine="pgm"
    )
    bus = InProcessBus()
    tel = FieldTelemetry(sim, bus)
    ing = Ingestor(tel.registry, DuckDBStore(), clock=tel.clock)
    rx = Receiver(bus, ing, tel.topics.all_telemetry)
    sim.step(300)
    batch = sim.readings()
    st = tel.publish(batch)
    rep = rx.pump()
    assert rep.rejected == 0 and rep.messages_accepted == st.frames
    n_meters = len(batch.meters)
    assert n_meters == sim.fleet.meter_load.size
    assert (
        rep.readings_stored
        == st.readings
        == n_meters * len(METER_QUANTITIES) + sum(batch.sensors[k].size for k in PUBLISHED_SENSORS)
    )
    latest = ing.store.latest()
    p = latest[(latest.device_id == "m5") & (latest.quantity == "p_kw")]["value"].iloc[0]
    assert p == pytest.approx(batch.meters.p_kw[5])
    # a fault's events travel as signed records
    sim.inject_line_fault(12)
    tel.publish(sim.readings())
    rx.pump()
    assert "breaker_trip" in set(ing.store.records("event")["name"])
    # a forged gateway frame (signed with another key) is refused, nothing stored from it
    frames = tel.frames(sim.readings(meters=True))
    _sender, fr = frames[0]
    forged = fr[:-64] + bytes(64)
    before = ing.totals.readings_stored
    rep = ing.ingest([forged])
    assert rep.rejected == 1 and ing.totals.readings_stored == before


def test_cli_field_run_json() -> None:
    from gridpilot.cli import _register, app

    _register()
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "field",
            "run",
            "case33bw",
            "--devices",
            "1500",
            "--hours",
            "0.5",
            "--fault-line",
            "20",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{") :])
    assert out["steps"] == 30 and out["devices"] >= 1490
    assert out["ingest"]["rejected"] == 0 and out["ingest"]["readings_stored"] > 0
    assert out["events"]["breaker_trip"] == 1
    assert out["speed_x_real_time"] > 1
    bad = runner.invoke(app, ["field", "run", "no-such-grid", "--json"])
    assert bad.exit_code == 2 and "no-such-grid" in bad.output
    assert np.isfinite(out["vmin_pu"])


def test_signed_commands_are_verified_applied_and_acknowledged(case33) -> None:
    from gridpilot.field.publish import FieldCommandReceiver
    from gridpilot.telemetry import DeviceRegistry, DeviceSigner, generate_key

    sim = FieldSimulator(case33, FleetConfig(n_devices=500, seed=6), seed=6, engine="pgm")
    bus = InProcessBus()
    tel = FieldTelemetry(sim, bus)
    ops = DeviceRegistry()
    key = generate_key()
    ops.register("operator", key, kind="operator")
    op = DeviceSigner("operator", key, clock=tel.clock)
    rx = FieldCommandReceiver(tel, ops)
    acks: list[bytes] = []
    bus.subscribe(tel.topics.telemetry("scada"), lambda _t, p: acks.append(p))
    cmd = tel.topics.commands
    bus.publish(cmd("sw-33"), op.command("sw-33", "close", cmd_id="c1"))
    c2 = op.command("sw-7", "open", cmd_id="c2")
    bus.publish(cmd("sw-7"), c2)
    bus.publish(
        cmd("field"), op.command("field", "water_heater_pause", {"target": [0, 1]}, cmd_id="c3")
    )
    bus.publish(cmd("field"), op.command("field", "warp_drive", cmd_id="c4"))
    forged = DeviceSigner("operator", generate_key(), seq=100, clock=tel.clock)
    bus.publish(cmd("sw-1"), forged.command("sw-1", "open", cmd_id="evil"))
    out = rx.pump()
    status = {o.cmd_id or o.status: o.status for o in out}
    assert status == {"c1": "ok", "c2": "ok", "c3": "ok", "c4": "refused", "rejected": "rejected"}
    pos = case33.switch.index_of([33, 7, 1])
    assert sim.switch_closed[pos].tolist() == [True, False, True]  # the forged 'open' did nothing
    assert sim.fleet.wh_paused[:2].all() and not sim.fleet.wh_paused[2:].any()
    assert len(acks) == 1  # one batch of four signed acks
    # replaying an accepted command is refused (sequence number), nothing applied
    sim.apply(Command("switch", target=7, value=True))
    bus.publish(cmd("sw-7"), c2)
    again = rx.pump()
    assert [o.status for o in again] == ["rejected"] and "replayed_seq" in again[0].detail
    assert sim.switch_closed[case33.switch.index_of([7])[0]]
    # the ingest side accepts the acks as signed records
    ing = Ingestor(tel.registry, DuckDBStore(), clock=tel.clock)
    rep = ing.ingest(acks)
    assert rep.rejected == 0 and rep.records_stored == 4


@pytest.mark.mqtt
@pytest.mark.postgres
def test_cli_over_mqtt_into_postgres() -> None:
    """`gridpilot field run --transport mqtt --store postgres` end to end (real services)."""
    import os
    import socket
    import uuid
    from urllib.parse import urlparse

    mqtt = os.environ.get("GRIDPILOT_MQTT_URL", "mqtt://127.0.0.1:1883")
    dsn = os.environ.get("GRIDPILOT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    for url, port in ((mqtt, 1883), (dsn, 5432)):
        u = urlparse(url)
        try:
            socket.create_connection((u.hostname or "127.0.0.1", u.port or port), timeout=2).close()
        except OSError as exc:
            pytest.skip(f"service not available at {url}: {exc}")
    from gridpilot.cli import _register, app
    from gridpilot.telemetry import PostgresStore

    _register()
    prefix = f"fieldtest_{uuid.uuid4().hex[:8]}"
    try:
        res = CliRunner().invoke(
            app,
            [
                "field",
                "run",
                "case33bw",
                "--devices",
                "1000",
                "--hours",
                "0.25",
                "--transport",
                "mqtt",
                "--store",
                "postgres",
                "--prefix",
                prefix,
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        out = json.loads(res.output[res.output.index("{") :])
        assert out["transport"].startswith("mqtt://")
        assert out["ingest"]["rejected"] == 0 and out["ingest"]["payloads"] == out["payloads"]
        with PostgresStore(dsn, prefix=prefix) as st:
            assert st.stats().readings == out["ingest"]["readings_stored"] > 0
    finally:
        st = PostgresStore(dsn, prefix=prefix)
        st.drop()
        st.close()
