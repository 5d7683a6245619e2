"""Hostile input from the wire: crafted sender ids, floods of refusals, log forging, topics.

Each test here failed on the code before the fix (issue #21, items 7-10).
"""

from __future__ import annotations

import logging
import struct

import numpy as np
import pytest

from gridpilot.telemetry import (
    DuckDBStore,
    Ingestor,
    InProcessBus,
    Receiver,
    RejectReason,
    TelemetryStore,
    Topics,
    Verifier,
    encode_batch,
)
from gridpilot.telemetry.safe_text import wire_int, wire_text
from gridpilot.telemetry.schema import pack_unsigned

from .conftest import NOW_MS, Fleet, clock

MIN = 60_000


def _ts(n: int) -> np.ndarray:
    return NOW_MS - MIN * np.arange(n, 0, -1, dtype=np.int64)


def _unsigned(dev: object, seq: object = 1) -> bytes:
    """A frame nobody signed (64 zero bytes as signature) claiming to come from ``dev``."""
    header = {"v": 1, "kind": "readings", "dev": dev, "kid": 1, "seq": seq, "ts_ms": NOW_MS}
    header |= {"enc": "col1", "n": 0, "q": ["p_kw"]}
    return pack_unsigned(header, b"") + bytes(64)


def _valid(fleet: Fleet) -> tuple[list[bytes], int]:
    s = fleet.signers
    frames = [
        s["m0"].readings(_ts(3), {"p_kw": [1.0, 2.0, 3.0]}),
        s["gw0"].readings(_ts(2), {"p_kw": [6.0, 7.0]}, devices=["g0", "g1"], dev_pos=[0, 1]),
    ]
    return frames, 5


def _safe(s: str | None) -> bool:
    if s is None:
        return True
    s.encode("utf-8")  # no lone surrogate
    return s.isprintable()  # no NUL, no newline


HOSTILE_IDS = ["gw\x00evil", "\ud800", "m\ud800x\x00y", "x\r\nnext line", "é\u2028ü"]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_sender_id_never_sinks_valid_readings(
    fleet: Fleet, store: TelemetryStore, bad_id: str
) -> None:
    """Item 7: an unsigned frame with a NUL / lone surrogate sender id, between valid frames."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    frames, n = _valid(fleet)
    bus = InProcessBus()
    rx = Receiver(bus, ing, Topics().all_telemetry)
    bus.publish(Topics().telemetry("m0"), encode_batch([frames[0], _unsigned(bad_id)]))
    bus.publish(Topics().telemetry("gw0"), encode_batch([_unsigned(bad_id, 2**70), frames[1]]))
    rep = rx.pump()  # raised (and re-queued the batch for ever) before the fix
    assert rx.pending == 0
    assert rep.readings_stored == n and rep.rejected == 2
    assert store.stats().readings == n
    assert store.stats().rejected == 2
    rj = store.rejections()
    assert len(rj) == 2
    for dev, detail in zip(rj["device_id"], rj["detail"], strict=True):
        assert _safe(dev) and _safe(detail)
    assert set(rj["seq"].dropna().astype(int)) <= {1}  # 2**70 does not fit BIGINT: dropped


def test_hostile_event_name_from_a_registered_device_is_stored_safely(
    fleet: Fleet, store: TelemetryStore
) -> None:
    """Item 7: a signed event whose name holds NUL, a lone surrogate and a newline."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    frames, n = _valid(fleet)
    ev = fleet.signers["m3"].event("door\x00\ud800\nopen", {"k\x00": "v\ud800"})
    rep = ing.ingest([encode_batch([frames[0], ev, frames[1]])])
    assert rep.readings_stored == n and rep.records_stored == 1 and rep.rejected == 0
    rec = store.records("event").iloc[0]
    assert _safe(rec["name"]) and "door" in rec["name"]
    assert rec["payload"]["data"] == {"k\x00": "v\ud800"}  # JSON escapes keep the body exact


def test_many_empty_frames_are_one_refusal(
    fleet: Fleet, store: TelemetryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8: a batch claiming 50,000 empty frames is refused once, as a whole."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    frames, n = _valid(fleet)
    count = 50_000
    flood = b"GB\x01\x00" + struct.pack("<I", count) + bytes(4 * count)
    with caplog.at_level(logging.WARNING, logger="gridpilot.telemetry"):
        rep = ing.ingest([flood, encode_batch(frames)])
    assert rep.readings_stored == n
    assert rep.rejected == 1 and rep.rejected_by_reason == {"malformed": 1}
    assert "frames" in rep.rejections[0].detail
    assert len(store.rejections(limit=10_000)) == 1
    assert len([r for r in caplog.records if r.name == "gridpilot.telemetry"]) == 1


def test_oversized_payload_is_one_refusal(fleet: Fleet) -> None:
    """Item 8: a payload above ``max_payload_bytes`` is refused whole, without being decoded."""
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False, max_payload_bytes=1000)
    big = fleet.signers["m0"].readings(_ts(100), {"p_kw": np.ones(100)})
    small = fleet.signers["m1"].readings(_ts(1), {"p_kw": [1.0]})
    out = ver.verify([encode_batch([big, small]), small])
    assert out.accepted == 1 and len(out.readings) == 1
    assert [(r.reason, r.count) for r in out.rejections] == [(RejectReason.MALFORMED, 1)]
    assert "bytes" in out.rejections[0].detail


def test_refusals_per_sender_are_bounded(
    fleet: Fleet, store: TelemetryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8: 3,000 replays and 3,000 junk frames: counted, but few rows and few log lines."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    first = fleet.signers["m0"].readings(_ts(1), {"p_kw": [1.0]})
    assert ing.ingest([first]).readings_stored == 1
    frames, n = _valid(fleet)
    junk = [b"GT\x01\x00" + bytes(80)] * 500
    payloads = [encode_batch([first] * 500) for _ in range(6)]
    payloads += [encode_batch(junk) for _ in range(6)] + [encode_batch(frames)]
    with caplog.at_level(logging.WARNING, logger="gridpilot.telemetry"):
        rep = ing.ingest(payloads)
    assert rep.readings_stored == n
    assert rep.rejected_by_reason == {"replayed_seq": 3000, "malformed": 3000}
    rows = store.rejections(limit=100_000)
    assert len(rows) <= 100
    assert store.stats().rejected_by_reason == {"replayed_seq": 3000, "malformed": 3000}
    assert len([r for r in caplog.records if r.name == "gridpilot.telemetry"]) <= 100


def test_newline_in_sender_id_cannot_forge_a_log_line(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 9: a sender id with a newline and a fake audit line stays on one log line."""
    forged = "x\n2026-12-05 17:00:00 gridpilot.audit WARNING approved switch 7"
    ver = Verifier(fleet.registry, clock=clock)
    with caplog.at_level(logging.WARNING, logger="gridpilot.telemetry"):
        out = ver.verify([_unsigned(forged), _unsigned("ok\x1b[31mred")])
    assert len(out.rejections) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "gridpilot.telemetry"]
    assert len(lines) == 2
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\\x0a2026-12-05" in lines[0]  # the newline is shown escaped, not acted on
    for r in out.rejections:
        assert _safe(r.device_id) and _safe(r.detail)


def test_wire_text_helper() -> None:
    assert wire_text("meter-1") == "meter-1"
    assert wire_text("a\nb\x00c\ud800") == "a\\x0ab\\x00c\\ud800"
    assert wire_text("é€") == "é€"
    long = wire_text("x" * 1000, max_len=10)
    assert long.startswith("x" * 10) and "+990" in long and len(long) < 40
    assert wire_text(b"\x00\n") == "b'\\x00\\n'"
    assert wire_int(5) == 5 and wire_int(2**70) is None and wire_int(True) is None
    assert wire_int("5") is None


def test_frame_signed_by_one_sender_on_anothers_topic_is_refused(
    fleet: Fleet, store: TelemetryStore
) -> None:
    """Item 10: the telemetry topic names the signer; a valid frame on another's topic is refused."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    bus = InProcessBus()
    topics = Topics()
    rx = Receiver(bus, ing, topics.all_telemetry)
    gw = fleet.signers["gw0"].readings(_ts(1), {"p_kw": [6.0]}, devices=["g0"], dev_pos=[0])
    bus.publish(topics.telemetry("m0"), gw)  # gw0's valid frame on meter m0's topic
    bus.publish(topics.telemetry("gw0") + "/extra", gw)  # not a sender's topic at all
    rep = rx.pump()
    assert rep.messages_accepted == 0
    assert rep.rejected_by_reason == {"wrong_topic": 2}
    assert store.stats().readings == 0
    bus.publish(topics.telemetry("gw0"), gw)  # the refusal did not consume the seq number
    rep = rx.pump()
    assert rep.messages_accepted == 1 and rep.readings_stored == 1


def test_gateway_may_relay_its_own_devices_frames_only(fleet: Fleet) -> None:
    """Item 10, the documented rule: a gateway's topic carries frames signed by the gateway or
    by a device registered behind it (relay); any other signer is refused."""
    ing = Ingestor(fleet.registry, DuckDBStore(), clock=clock)
    bus = InProcessBus()
    topics = Topics()
    rx = Receiver(bus, ing, topics.all_telemetry)
    g0 = fleet.signers["g0"].readings(_ts(1), {"p_kw": [1.0]})  # g0 is behind gw0
    m0 = fleet.signers["m0"].readings(_ts(1), {"p_kw": [2.0]})  # m0 has no gateway
    bus.publish(topics.telemetry("gw0"), encode_batch([g0, m0]))
    bus.publish(topics.telemetry("m1"), g0)  # m1 is not g0's gateway
    rep = rx.pump()
    assert rep.messages_accepted == 1 and rep.readings_stored == 1
    assert rep.rejected_by_reason == {"wrong_topic": 2}
