"""Every kind of bad message is refused with its reason and never stored; valid ones are."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.telemetry import (
    DeviceRegistry,
    DeviceSigner,
    Ingestor,
    RejectReason,
    TelemetryStore,
    Verifier,
    encode_batch,
    generate_key,
)
from gridpilot.telemetry.schema import pack_unsigned

from .conftest import NOW_MS, Fleet, clock, make_fleet

MIN = 60_000


def _ts(n: int) -> np.ndarray:
    return NOW_MS - MIN * np.arange(n, 0, -1, dtype=np.int64)


def _valid(fleet: Fleet) -> tuple[list[bytes], int, set[float]]:
    """Valid frames of several kinds; returns (frames, readings they carry, their p_kw values)."""
    s = fleet.signers
    frames = [
        s["m0"].readings(_ts(3), {"p_kw": [1.0, 2.0, 3.0], "v_pu": [1.0, 1.01, 1.02]}),
        s["m2"].readings(_ts(2), {"p_kw": [4.0, 5.0]}),
        s["gw0"].readings(
            _ts(3), {"p_kw": [6.0, 7.0, 8.0]}, devices=["g0", "g1"], dev_pos=[0, 1, 0]
        ),
        s["m3"].event("door_open", {"cabinet": 3}, severity="warning"),
        s["m1"].ack("cmd-1", "ok"),
    ]
    return frames, 6 + 2 + 3, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}


def _bad(fleet: Fleet, replay: bytes) -> dict[str, bytes]:
    s, k = fleet.signers, fleet.keys
    forged = DeviceSigner("m1", k["m3"], clock=clock)  # m1's id, someone else's key
    tampered = bytearray(s["m3"].readings(_ts(1), {"p_kw": [9.5]}))
    tampered[-70] ^= 0x01  # flip a bit of the value, keep the signature
    bad_json_header = b'{"dev":"m3","kid":1,"kind":"readings","seq":99,'  # truncated JSON
    unsigned = pack_unsigned({}, b"")  # then swap in the broken header, with valid lengths
    hdr = unsigned[:4] + len(bad_json_header).to_bytes(4, "little") + (0).to_bytes(4, "little")
    malformed = hdr + bad_json_header
    malformed += k["m3"].sign(malformed)  # type: ignore[attr-defined]
    stranger = DeviceSigner("mX", generate_key(), clock=clock)
    future_ts = np.array([NOW_MS + 86_400_000], np.int64)
    return {
        "bad_signature": forged.readings(_ts(1), {"p_kw": [9.1]}),
        "bad_signature/tampered": bytes(tampered),
        "replayed_seq": replay,
        "unknown_device": stranger.readings(_ts(1), {"p_kw": [9.2]}),
        "unauthorised_device": s["gw0"].readings(
            _ts(1), {"p_kw": [9.3]}, devices=["m1"], dev_pos=[0]
        ),
        "malformed": malformed,
        "malformed/not-a-frame": b'{"readings": [1, 2, 3]}',
        "malformed/json-body": s["m3"].sign_frame(
            {"v": 1, "kind": "event", "dev": "m3", "kid": 1, "seq": 1000, "ts_ms": NOW_MS}
            | {"enc": "json"},
            b'{"name": "door_open", ',
        ),
        "out_of_range": s["m1"].readings(_ts(2), {"p_kw": [9.4, 1.0], "v_pu": [1.0, 5.0]}),
        "out_of_range/nan": s["m3"].readings(_ts(1), {"p_kw": [math.nan]}),
        "future_timestamp": s["m1"].readings(future_ts, {"p_kw": [9.6]}),
        "clock_skew": s["m3"].readings(_ts(1), {"p_kw": [9.7]}, sent_ms=NOW_MS + 3_600_000),
    }


def test_bad_messages_refused_with_reason_valid_ones_stored(
    fleet: Fleet, store: TelemetryStore
) -> None:
    ing = Ingestor(fleet.registry, store, clock=clock)
    first = fleet.signers["m1"].readings(_ts(1), {"p_kw": [0.5]})
    assert ing.ingest([first]).readings_stored == 1

    valid, n_valid, p_values = _valid(fleet)
    bad = _bad(fleet, replay=first)
    # interleave bad and valid messages; the bad ones go as separate payloads and in batches
    payloads = [encode_batch([valid[0], bad["bad_signature"], valid[1]])]
    payloads += [bad[k] for k in bad if k != "bad_signature"]
    payloads.insert(3, encode_batch(valid[2:]))
    rep = ing.ingest(payloads)

    expected_reasons: dict[str, int] = {}
    for key in bad:
        r = key.split("/")[0]
        expected_reasons[r] = expected_reasons.get(r, 0) + 1
    assert rep.rejected_by_reason == expected_reasons
    assert rep.messages_accepted == len(valid)
    assert rep.readings_stored == n_valid
    assert all(r.detail for r in rep.rejections)  # every refusal says why

    stats = store.stats()
    assert stats.readings == n_valid + 1
    assert stats.rejected == sum(expected_reasons.values())
    assert stats.rejected_by_reason == expected_reasons
    assert stats.accepted_by_kind == {"readings": 4, "event": 1, "ack": 1}
    stored = store.range(None, NOW_MS - 3_600_000, NOW_MS + 1, quantity="p_kw")
    assert set(stored["value"]) == p_values | {0.5}  # no 9.x value from a refused message
    everything = store.range(None, 0, NOW_MS + 10**9)
    assert len(everything) == n_valid + 1
    assert not (everything["value"] > 9.0).any() and everything["value"].notna().all()
    v = store.range("m0", NOW_MS - 3_600_000, NOW_MS + 1, quantity="v_pu")
    assert list(v["value"]) == [1.0, 1.01, 1.02]
    gw = store.range(["g0", "g1"], NOW_MS - 3_600_000, NOW_MS + 1)
    assert sorted(zip(gw["device_id"], gw["value"], strict=True)) == [
        ("g0", 6.0),
        ("g0", 8.0),
        ("g1", 7.0),
    ]
    rec = store.records()
    assert sorted(rec["kind"]) == ["ack", "event"]
    ev = rec[rec["kind"] == "event"].iloc[0]
    assert ev["device_id"] == "m3" and ev["name"] == "door_open"
    assert ev["payload"]["data"] == {"cabinet": 3}
    rj = store.rejections(limit=100)
    assert set(rj["reason"]) == set(expected_reasons)
    assert set(rj.loc[rj["reason"] == "unknown_device", "device_id"]) == {"mX"}


def test_refused_message_does_not_consume_its_sequence_number(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    s = fleet.signers["m0"]
    out = ver.verify([s.readings(_ts(1), {"v_pu": [3.0]})])
    assert [r.reason for r in out.rejections] == [RejectReason.OUT_OF_RANGE]
    assert "v_pu = 3.0" in out.rejections[0].detail
    s.seq -= 1  # resend the corrected message under the same sequence number
    ok = ver.verify([s.readings(_ts(1), {"v_pu": [1.0]})])
    assert ok.accepted == 1 and not ok.rejections
    again = ver.verify([s.readings(_ts(1), {"v_pu": [1.0]})])
    assert again.accepted == 1
    s.seq = 1
    assert ver.verify([s.readings(_ts(1), {"v_pu": [1.0]})]).rejections[0].reason == (
        RejectReason.REPLAYED_SEQ
    )


def test_duplicate_in_same_batch_and_uncommitted_verify(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    f = fleet.signers["m2"].readings(_ts(1), {"p_kw": [1.0]})
    out = ver.verify([f, f], commit=False)
    assert out.accepted == 1 and out.rejected_by_reason() == {"replayed_seq": 1}
    assert fleet.registry.last_seq[fleet.registry.index_of("m2")] == 0  # not committed yet
    ver.commit(out)
    assert fleet.registry.last_seq[fleet.registry.index_of("m2")] == 1


def test_key_rotation_grace_and_revocation(fleet: Fleet) -> None:
    reg = fleet.registry
    now = [NOW_MS / 1000]
    ver = Verifier(reg, clock=lambda: now[0], log_rejections=False)
    old = fleet.signers["m0"]
    new_key = generate_key()
    assert reg.rotate_key("m0", new_key, grace_s=60, now_ms=NOW_MS) == 2
    new = DeviceSigner("m0", new_key, key_id=2, seq=100, clock=lambda: now[0])
    assert ver.verify([old.readings(_ts(1), {"p_kw": [1.0]})]).accepted == 1  # in grace
    now[0] += 120
    r = ver.verify([old.readings(_ts(1), {"p_kw": [1.0]})]).rejections
    assert [x.reason for x in r] == [RejectReason.REVOKED_KEY]
    assert ver.verify([new.readings(_ts(1), {"p_kw": [1.0]})]).accepted == 1
    wrong_kid = DeviceSigner("m0", new_key, key_id=7, seq=200, clock=lambda: now[0])
    r = ver.verify([wrong_kid.readings(_ts(1), {"p_kw": [1.0]})]).rejections
    assert [x.reason for x in r] == [RejectReason.UNKNOWN_KEY]
    # the rotated key signs with the old key id: the signature does not verify
    bad = DeviceSigner("m0", new_key, key_id=1, seq=300, clock=lambda: now[0])
    assert ver.verify([bad.readings(_ts(1), {"p_kw": [1.0]})]).rejections[0].reason in (
        RejectReason.REVOKED_KEY,
        RejectReason.BAD_SIGNATURE,
    )
    reg.revoke("m0", now_ms=int(now[0] * 1000))
    r = ver.verify([new.readings(_ts(1), {"p_kw": [1.0]})]).rejections
    assert [x.reason for x in r] == [RejectReason.REVOKED_KEY]


def test_truncated_batch_keeps_the_frames_before_the_damage(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    a = fleet.signers["m0"].readings(_ts(2), {"p_kw": [1.0, 2.0]})
    b = fleet.signers["m1"].readings(_ts(2), {"p_kw": [3.0, 4.0]})
    batch = encode_batch([a, b])
    out = ver.verify([batch[:-10]])
    assert out.accepted == 1 and len(out.readings) == 2
    assert out.rejected_by_reason() == {"malformed": 1}
    assert "truncated" in out.rejections[0].detail


def test_unsupported_version_and_unknown_quantity(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    s = fleet.signers["m0"]
    f = bytearray(s.readings(_ts(1), {"p_kw": [1.0]}))
    f[2] = 9  # format version byte
    h = {"v": 1, "kind": "readings", "dev": "m0", "kid": 1, "seq": 50, "ts_ms": NOW_MS}
    h |= {"enc": "col1", "n": 1, "q": ["p_gw"]}
    unknown_q = s.sign_frame(h, np.zeros(2, np.int64).tobytes())
    out = ver.verify([bytes(f), unknown_q])
    assert [r.reason for r in out.rejections] == [
        RejectReason.UNSUPPORTED_VERSION,
        RejectReason.UNKNOWN_QUANTITY,
    ]


def test_columnar_output(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    f = fleet.signers["m1"].readings(_ts(2), {"p_kw": [1.0, 2.0], "q_kvar": [0.1, 0.2]})
    rb = ver.verify([f]).readings
    assert rb.device.dtype == np.int32 and rb.ts_ms.dtype == np.int64
    assert list(rb.value) == [1.0, 2.0, 0.1, 0.2]
    assert list(rb.quantity) == [0, 0, 1, 1]
    assert list(rb.ts_ms) == list(_ts(2)) * 2
    assert set(rb.device) == {fleet.registry.index_of("m1")}


def test_signer_and_registry_errors_name_the_field(fleet: Fleet) -> None:
    s = fleet.signers["m0"]
    with pytest.raises(ValidationError, match="p_gw"):
        s.readings(_ts(1), {"p_gw": [1.0]})
    with pytest.raises(ValidationError, match="p_kw"):
        s.readings(_ts(2), {"p_kw": [1.0]})
    with pytest.raises(ValidationError, match="already registered"):
        fleet.registry.register("m0", generate_key())
    with pytest.raises(UnknownComponentError, match="nope"):
        fleet.registry.register("new", generate_key(), gateway="nope")
    with pytest.raises(UnknownComponentError):
        fleet.registry.rotate_key("nope", generate_key())


def test_registry_save_load_roundtrip(fleet: Fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = fleet.registry
    reg.rotate_key("m1", generate_key(), grace_s=10, now_ms=NOW_MS)
    reg.last_seq[reg.index_of("m2")] = 41
    path = tmp_path / "reg.json"
    reg.save(path)
    back = DeviceRegistry.load(path)
    assert back.ids == reg.ids
    assert back.info("g1") == reg.info("g1")
    assert back.info("m1").key_id == 2
    assert back.last_seq[back.index_of("m2")] == 41
    ver = Verifier(back, clock=clock, log_rejections=False)
    assert ver.verify([fleet.signers["m1"].readings(_ts(1), {"p_kw": [1.0]})]).accepted == 1
    assert back.frame().loc[back.index_of("g0"), "gateway"] == "gw0"


def test_gateway_messages_and_revoked_device(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    gw = fleet.signers["gw0"]
    devs = ["g0", "g1", "g2"]
    for _ in range(2):  # the second one goes through the gateway cache
        out = ver.verify(
            [gw.readings(_ts(3), {"p_kw": [1, 2, 3]}, devices=devs, dev_pos=[2, 1, 0])]
        )
        assert out.accepted == 1
        names = [fleet.registry.device_id(i) for i in out.readings.device]
        assert names == ["g2", "g1", "g0"]
    fleet.registry.revoke("g1", now_ms=NOW_MS - 1)
    out = ver.verify([gw.readings(_ts(1), {"p_kw": [1]}, devices=devs, dev_pos=[0])])
    assert [r.reason for r in out.rejections] == [RejectReason.REVOKED_KEY]
    assert "g1" in out.rejections[0].detail
    out = ver.verify([gw.readings(_ts(1), {"p_kw": [1]}, devices=["g0", "zz"], dev_pos=[0])])
    assert [r.reason for r in out.rejections] == [RejectReason.UNKNOWN_DEVICE]


def test_keyless_devices_only_through_their_gateway(fleet: Fleet) -> None:
    reg = fleet.registry
    reg.register_many(["k0", "k1"], None, feeder="F4", gateway="gw0")
    ver = Verifier(reg, clock=clock, log_rejections=False)
    out = ver.verify(
        [
            fleet.signers["gw0"].readings(
                _ts(2), {"p_kw": [1, 2]}, devices=["k0", "k1"], dev_pos=[0, 1]
            )
        ]
    )
    assert out.accepted == 1
    own = DeviceSigner("k0", generate_key(), clock=clock)
    assert [r.reason for r in ver.verify([own.readings(_ts(1), {"p_kw": [1]})]).rejections] == [
        RejectReason.UNKNOWN_KEY
    ]


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(min_value=0, max_value=10_000), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_refused_never_raises(pos: int, bit: int) -> None:
    fleet = _FUZZ_FLEET
    frame = bytearray(_FUZZ_FRAME)
    frame[pos % len(frame)] ^= 1 << bit
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    fleet.registry.last_seq[:] = 0
    out = ver.verify([bytes(frame), encode_batch([bytes(frame)])])
    assert out.accepted == 0 and len(out.rejections) == 2
    assert len(out.readings) == 0


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=300))
def test_random_bytes_never_raise(junk: bytes) -> None:
    ver = Verifier(_FUZZ_FLEET.registry, clock=clock, log_rejections=False)
    out = ver.verify([junk, b"GB\x01\x00" + junk, b"GT\x01\x00" + junk])
    assert out.accepted == 0 and len(out.rejections) >= 1  # the GT one at least


_FUZZ_FLEET = make_fleet(2)
_FUZZ_FRAME = DeviceSigner("m0", _FUZZ_FLEET.keys["m0"], clock=clock).readings(  # type: ignore[arg-type]
    _ts(2), {"p_kw": [1.0, 2.0], "v_pu": [1.0, 1.0]}
)


def test_absurd_header_numbers_are_refused_not_fatal(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    s = fleet.signers["m0"]
    good = fleet.signers["m1"].readings(_ts(1), {"p_kw": [1.0]})
    s.seq = 2**70 - 1  # a signed but absurd sequence number
    huge = s.readings(_ts(1), {"p_kw": [1.0]})
    out = ver.verify([encode_batch([huge, good])])
    assert out.accepted == 1
    assert [r.reason for r in out.rejections] == [RejectReason.MALFORMED]
    assert "seq" in out.rejections[0].detail


def test_event_times_checked(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    s = fleet.signers["m2"]
    out = ver.verify(
        [s.event("x", ts_ms=-(2**62)), s.event("y", ts_ms=NOW_MS + 10**9), s.event("z")]
    )
    assert [r.reason for r in out.rejections] == [
        RejectReason.OUT_OF_RANGE,
        RejectReason.FUTURE_TIMESTAMP,
    ]
    assert [r.name for r in out.records] == ["z"]


def test_zero_placeholder_key_means_no_key(fleet: Fleet) -> None:
    fleet.registry.register_many(["z0"], np.zeros((1, 32), np.uint8), gateway="gw0")
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    own = DeviceSigner("z0", generate_key(), clock=clock)
    out = ver.verify([own.readings(_ts(1), {"p_kw": [1]})])
    assert [r.reason for r in out.rejections] == [RejectReason.UNKNOWN_KEY]


def test_non_bytes_payload_is_refused(fleet: Fleet) -> None:
    ver = Verifier(fleet.registry, clock=clock, log_rejections=False)
    good = fleet.signers["m0"].readings(_ts(1), {"p_kw": [1.0]})
    out = ver.verify(["hello", None, good])  # type: ignore[list-item]
    assert out.accepted == 1
    assert [r.detail for r in out.rejections] == [
        "payload is str, not bytes",
        "payload is NoneType, not bytes",
    ]
