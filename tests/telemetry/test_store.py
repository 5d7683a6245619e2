"""Store queries (latest, range, per-feeder aggregates, stats) on DuckDB and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.telemetry import (
    DeviceRegistry,
    DuckDBStore,
    Ingestor,
    ReadingBatch,
    TelemetryStore,
    decode_readings,
    generate_key,
    open_store,
)
from gridpilot.telemetry.schema import quantity_code
from gridpilot.telemetry.store import pg_copy_binary

from .conftest import NOW_MS, Fleet, clock, make_fleet

MIN = 60_000
T0 = NOW_MS - NOW_MS % 3_600_000 - 3_600_000  # a whole hour, an hour ago


def _load(fleet: Fleet, store: TelemetryStore) -> Ingestor:
    """m0 (F1) and m1 (F2), m2 (F1): 1-min p_kw for 30 min from T0, value = device + minute/100."""
    ing = Ingestor(fleet.registry, store, clock=clock)
    ts = T0 + MIN * np.arange(30, dtype=np.int64)
    frames = []
    for d, name in enumerate(("m0", "m1", "m2")):
        vals = d + np.arange(30) / 100
        frames.append(fleet.signers[name].readings(ts, {"p_kw": vals, "v_pu": 1 + vals / 100}))
    rep = ing.ingest(frames)
    assert rep.readings_stored == 3 * 30 * 2 and rep.rejected == 0
    return ing


def test_latest_range_aggregate(fleet: Fleet, store: TelemetryStore) -> None:
    _load(fleet, store)
    lat = store.latest(quantity="p_kw")
    assert list(lat["device_id"]) == ["m0", "m1", "m2"]
    assert np.allclose(lat["value"], [0.29, 1.29, 2.29])
    assert (lat["ts"] == pd.Timestamp(T0 + 29 * MIN, unit="ms")).all()
    recent = store.latest(quantity="p_kw", since=T0 + 29 * MIN)
    assert list(recent["device_id"]) == ["m0", "m1", "m2"]
    assert store.latest(since=T0 + 30 * MIN).empty
    both = store.latest(["m1"])
    assert sorted(both["quantity"]) == ["p_kw", "v_pu"]
    assert np.isclose(both.set_index("quantity").loc["v_pu", "value"], 1 + 1.29 / 100)

    r = store.range("m2", T0 + 10 * MIN, T0 + 13 * MIN, quantity="p_kw")
    assert list(r["value"]) == pytest.approx([2.10, 2.11, 2.12])
    assert list(r["ts"]) == [pd.Timestamp(T0 + k * MIN, unit="ms") for k in (10, 11, 12)]
    iso = pd.Timestamp(T0 + 10 * MIN, unit="ms").isoformat()
    assert len(store.range(["m0", "m1"], iso, T0 + 12 * MIN)) == 2 * 2 * 2

    agg = store.aggregate_by_feeder("p_kw", bucket_s=900)
    assert list(agg["feeder"]) == ["F1", "F1", "F2", "F2"]
    f1 = agg[agg["feeder"] == "F1"].reset_index(drop=True)
    # F1 = m0 + m2; first 15-min bucket: mean over minutes 0..14 of each, then summed
    m0 = np.mean(np.arange(15) / 100)
    m2 = np.mean(2 + np.arange(15) / 100)
    assert f1.loc[0, "sum"] == pytest.approx(m0 + m2)
    assert f1.loc[0, "mean"] == pytest.approx((m0 + m2) / 2)
    assert f1.loc[0, "min"] == pytest.approx(0.0) and f1.loc[1, "max"] == pytest.approx(2.29)
    assert list(f1["n_devices"]) == [2, 2] and list(f1["n_readings"]) == [30, 30]
    assert pd.Timestamp(f1.loc[0, "bucket"]) == pd.Timestamp(T0, unit="ms")
    sub = store.aggregate_by_feeder("p_kw", T0 + 15 * MIN, T0 + 30 * MIN, bucket_s=3600)
    assert list(sub["n_readings"]) == [30, 15]

    st = store.stats()
    assert st.readings == 180 and st.accepted_messages == 3 and st.rejected == 0
    assert st.devices_registered == len(fleet.registry) and st.devices_reporting == 3
    assert st.first_ts == pd.Timestamp(T0, unit="ms")
    assert st.last_ts == pd.Timestamp(T0 + 29 * MIN, unit="ms")
    assert st.as_dict()["readings"] == 180


def test_query_errors_name_the_problem(fleet: Fleet, store: TelemetryStore) -> None:
    _load(fleet, store)
    with pytest.raises(UnknownComponentError, match="p_gw"):
        store.latest(quantity="p_gw")
    with pytest.raises(UnknownComponentError, match="nobody"):
        store.range("nobody", T0, T0 + MIN)
    with pytest.raises(ValidationError, match="bucket_s"):
        store.aggregate_by_feeder("p_kw", bucket_s=0)
    with pytest.raises(ValidationError, match="time"):
        store.range("m0", "not a time", T0)
    other = make_fleet(2)
    other.registry.register("zz", generate_key())
    with pytest.raises(ValidationError, match="different device registry"):
        store.sync_devices(other.registry)
    assert store.stats().readings == 180  # nothing lost


def test_raw_ingest_and_new_devices(fleet: Fleet, store: TelemetryStore) -> None:
    store.sync_devices(fleet.registry)
    n = 5000
    rng = np.random.default_rng(1)
    rb = ReadingBatch.from_arrays(
        rng.integers(0, 4, n), quantity_code("i_a"), T0 + rng.integers(0, 10**6, n), rng.random(n)
    )
    assert store.ingest_readings(rb) == n
    assert store.stats().readings == n
    assert store.sync_devices(fleet.registry) == 0
    fleet.registry.register("late", generate_key(), feeder="F9")
    assert store.sync_devices(fleet.registry) == 1
    assert store.stats().devices_registered == len(fleet.registry)


def test_latest_ignores_older_late_readings(fleet: Fleet, store: TelemetryStore) -> None:
    store.sync_devices(fleet.registry)
    new = ReadingBatch.from_arrays(
        np.array([0, 0, 1]), 0, np.array([T0 + 5, T0 + 9, T0]), [1.0, 2.0, 3.0]
    )
    old = ReadingBatch.from_arrays(np.array([0, 1]), 0, np.array([T0 + 1, T0 + 1]), [7.0, 8.0])
    store.ingest_readings(new)
    store.ingest_readings(old)
    lat = store.latest(quantity="p_kw")
    assert list(lat["value"]) == [2.0, 8.0]
    assert list(lat["device_id"]) == ["m0", "m1"]


def test_failed_write_loses_nothing_and_keeps_seq(
    fleet: Fleet, store: TelemetryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ing = Ingestor(fleet.registry, store, clock=clock)
    f = fleet.signers["m0"].readings([T0], {"p_kw": [1.0]})
    real = store._append_readings

    def boom(cur: object, rb: ReadingBatch) -> int:
        real(cur, rb)
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_append_readings", boom)
    with pytest.raises(RuntimeError):
        ing.ingest([f])
    assert store.stats().readings == 0  # rolled back
    assert fleet.registry.last_seq[0] == 0  # seq not consumed
    monkeypatch.undo()
    assert ing.ingest([f]).readings_stored == 1


def test_pg_copy_binary_layout() -> None:
    rb = ReadingBatch.from_arrays(np.array([7]), 2, np.array([946_684_800_000]), np.array([1.5]))
    data = pg_copy_binary(rb)
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(b"\xff\xff")
    row = data[19:-2]
    assert len(row) == 40
    assert row[:2] == (4).to_bytes(2, "big")
    assert row[6:10] == (7).to_bytes(4, "big")
    assert row[20:28] == (0).to_bytes(8, "big")  # 2000-01-01 is PostgreSQL's epoch


def test_open_store_urls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = open_store("duckdb::memory:")
    assert isinstance(s, DuckDBStore)
    s.close()
    path = tmp_path / "t.duckdb"
    reg = DeviceRegistry()
    reg.register("a", generate_key())
    with open_store(f"duckdb:{path}") as s2:
        s2.sync_devices(reg)
    with open_store(str(path)) as s3:
        assert s3.stats().devices_registered == 1
    with pytest.raises(ValidationError, match="url"):
        open_store("mysql://x")
    with pytest.raises(ValidationError, match="prefix"):
        DuckDBStore(prefix="x; DROP TABLE y")


def test_archived_frames_audit_after_rotation(fleet: Fleet, store: TelemetryStore) -> None:
    ing = Ingestor(fleet.registry, store, clock=clock, keep_frames=True)
    s = fleet.signers["m0"]
    sent = [
        s.readings([T0], {"e_import_kwh": [100.0]}),
        s.readings([T0 + MIN], {"e_import_kwh": [100.5]}),
        s.readings([T0 + 2 * MIN], {"e_import_kwh": [-1.0]}),  # refused: not archived
    ]
    rep = ing.ingest(sent)
    assert rep.messages_accepted == 2
    frames = store.signed_frames("m0")
    assert frames == sent[:2]
    # rotate with no grace: the archived frames still verify with the key valid when sent
    fleet.registry.rotate_key("m0", generate_key(), grace_s=0, now_ms=NOW_MS + 1)
    assert ing.verifier.audit(frames) == [None, None]
    dec = decode_readings(frames[1])
    assert dec.sender == "m0" and dec.seq == 2 and list(dec.values["e_import_kwh"]) == [100.5]
    forged = bytearray(frames[1])
    forged[-80] ^= 0xFF
    assert [r and r.reason for r in ing.verifier.audit([bytes(forged)])] == ["bad_signature"]
    assert store.signed_frames("m0", start=NOW_MS + 10**6) == []
    assert store.signed_frames("m1") == []


def test_restarted_receiver_still_refuses_replays(fleet: Fleet, store: TelemetryStore) -> None:
    ing = Ingestor(fleet.registry, store, clock=clock)
    f1 = fleet.signers["m1"].readings([T0], {"p_kw": [1.0]})
    f2 = fleet.signers["m1"].readings([T0 + MIN], {"p_kw": [2.0]})
    assert ing.ingest([f1, f2]).messages_accepted == 2
    # a new process: fresh registry (all seqs 0) on the same store
    again = make_fleet()
    ing2 = Ingestor(again.registry, store, clock=clock)
    assert again.registry.last_seq[again.registry.index_of("m1")] == 2
    rep = ing2.ingest([f1, f2])
    assert rep.rejected_by_reason == {"replayed_seq": 2}
    assert store.stats().readings == 2
