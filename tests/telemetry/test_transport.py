"""Transports: the in-process bus and the real Mosquitto broker, end to end into a store."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from gridpilot.errors import GridpilotError, ValidationError
from gridpilot.telemetry import (
    DuckDBStore,
    Ingestor,
    InProcessBus,
    MqttTransport,
    PostgresStore,
    Receiver,
    Topics,
    connect,
    open_transport,
)
from gridpilot.telemetry.schema import FrameError, parse_frame
from gridpilot.telemetry.transport import topic_matches

from .conftest import NOW_MS, Fleet, clock, unique_prefix
from .test_verify import _bad, _ts, _valid


def test_topic_matching() -> None:
    assert topic_matches("a/+/c", "a/b/c")
    assert not topic_matches("a/+/c", "a/b/d")
    assert topic_matches("a/#", "a/b/c") and topic_matches("a/#", "a")
    assert not topic_matches("a/b", "a/b/c")
    assert not topic_matches("a/b/c", "a/b")
    t = Topics("x/v1")
    assert t.telemetry("m1") == "x/v1/tm/m1" and topic_matches(t.all_telemetry, "x/v1/tm/m1")
    with pytest.raises(ValidationError, match="device_id"):
        t.telemetry("a/b")
    with pytest.raises(ValidationError):
        open_transport("amqp://x")
    assert isinstance(open_transport("inproc"), InProcessBus)


def test_inprocess_bus_end_to_end(fleet: Fleet) -> None:
    bus = InProcessBus()
    topics = Topics()
    store = DuckDBStore()
    rx = Receiver(bus, Ingestor(fleet.registry, store, clock=clock), topics.all_telemetry)
    cmds: list[bytes] = []
    bus.subscribe(topics.commands("m0"), lambda _t, p: cmds.append(p))
    for name in ("m0", "m1"):
        bus.publish(topics.telemetry(name), fleet.signers[name].readings(_ts(2), {"p_kw": [1, 2]}))
    bus.publish(topics.commands("m0"), fleet.signers["operator"].command("m0", "trip", cmd_id="c1"))
    assert rx.pending == 2 and len(cmds) == 1
    rep = rx.pump()
    assert rep.readings_stored == 4 and rx.pending == 0
    # the device side checks the operator's command with the same verifier
    from gridpilot.telemetry import Verifier

    out = Verifier(fleet.registry, clock=clock).verify(cmds)
    assert out.records[0].kind == "command" and out.records[0].payload["target"] == "m0"


def _claimed(frame: bytes) -> str:
    """The sender a frame claims in its header (``m3`` for one that does not parse)."""
    try:
        dev = parse_frame(frame).header.get("dev")
    except FrameError:
        return "m3"
    return dev if isinstance(dev, str) else "m3"


@pytest.mark.mqtt
def test_mqtt_end_to_end_bad_messages_refused(fleet: Fleet, mqtt_url: str) -> None:
    topics = Topics(f"gptest/{uuid.uuid4().hex[:10]}")
    store = DuckDBStore()
    sub = MqttTransport(mqtt_url, qos=1)
    pub = MqttTransport(mqtt_url, qos=1)
    try:
        ing = Ingestor(fleet.registry, store, clock=clock)
        rx = Receiver(sub, ing, topics.all_telemetry)
        first = fleet.signers["m1"].readings(_ts(1), {"p_kw": [0.5]})
        pub.publish(topics.telemetry("m1"), first)
        valid, n_valid, _ = _valid(fleet)
        bad = _bad(fleet, replay=first)
        for frame in valid + list(bad.values()):  # each on the topic of the sender it claims
            pub.publish(topics.telemetry(_claimed(frame)), frame)
        pub.flush(10)
        n_payloads = 1 + len(valid) + len(bad)
        deadline = time.monotonic() + 10
        while rx.received < n_payloads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rx.received == n_payloads
        # the first message must be stored before its replay arrives in a later pump
        rep = rx.pump(1)
        assert rep.readings_stored == 1
        rep = rx.pump()
        assert rep.readings_stored == n_valid
        assert rep.rejected == len(bad)
        assert store.stats().readings == n_valid + 1
        assert set(store.stats().rejected_by_reason) == {k.split("/")[0] for k in bad}
    finally:
        sub.close()
        pub.close()
        store.close()


@pytest.mark.mqtt
@pytest.mark.postgres
def test_mqtt_into_postgres(fleet: Fleet, mqtt_url: str, pg_dsn: str) -> None:
    topics = Topics(f"gptest/{uuid.uuid4().hex[:10]}")
    store = PostgresStore(pg_dsn, prefix=unique_prefix())
    sub = MqttTransport(mqtt_url)
    pub = MqttTransport(mqtt_url)
    try:
        rx = Receiver(sub, Ingestor(fleet.registry, store, clock=clock), topics.all_telemetry)
        ts = NOW_MS - 60_000 * np.arange(60, 0, -1, dtype=np.int64)
        for name in ("m0", "m1", "m2", "m3"):
            frame = fleet.signers[name].readings(ts, {"p_kw": np.linspace(0, 1, 60)})
            pub.publish(topics.telemetry(name), frame)
        pub.flush(10)
        rep = rx.run(until=lambda: rx.received >= 4, duration_s=10)
        assert rep.readings_stored == 240 and rep.rejected == 0
        lat = store.latest(quantity="p_kw")
        assert list(lat["value"]) == [1.0] * 4
        agg = store.aggregate_by_feeder("p_kw", bucket_s=3600)
        assert set(agg["feeder"]) == {"F1", "F2"}
    finally:
        sub.close()
        pub.close()
        store.drop()
        store.close()


def test_mqtt_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(GridpilotError, match="MQTT broker"):
        MqttTransport("mqtt://127.0.0.1:1", connect_timeout_s=1)


@pytest.mark.parametrize("transport", ["inproc", pytest.param("mqtt", marks=pytest.mark.mqtt)])
def test_connect_link(fleet: Fleet, transport: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("mqtt_url") if transport == "mqtt" else "inproc"
    topics = Topics(f"gptest/{uuid.uuid4().hex[:10]}")
    with connect(fleet.registry, transport=url, topics=topics, clock=clock) as link:
        frames = [fleet.signers["m0"].readings(_ts(1), {"p_kw": [float(i)]}) for i in range(7)]
        link.send("m0", frames, max_frames_per_payload=3)
        link.send("m0", [fleet.signers["m0"].readings(_ts(1), {"p_kw": [9.0]}, sent_ms=0)])
        rep = link.drain()
        assert link.sent_payloads == 4
        assert rep.readings_stored == 7 and rep.rejected_by_reason == {"clock_skew": 1}
        assert link.store.latest()["value"].tolist() == [6.0]
