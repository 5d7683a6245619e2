"""Retention: ``downsample`` compacts old raw readings into ``readings_agg`` (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.telemetry import DuckDBStore, PostgresStore, ReadingBatch, TelemetryStore
from gridpilot.telemetry.cli import register
from gridpilot.telemetry.schema import quantity_code

from .conftest import NOW_MS, Fleet

MIN = 60_000
HOUR = 3_600_000
T0 = NOW_MS - NOW_MS % HOUR - 6 * HOUR  # a whole hour, six hours ago
# m0 p_kw and m1 v_pu: 12 readings, every 15 min from T0 + 10 min (4 per hour, 3 hours)
OFFSETS = 10 * MIN + 15 * MIN * np.arange(12, dtype=np.int64)
P_KW = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5, 5.8, 8.0])
V_PU = 1.0 + P_KW / 100


def _load(fleet: Fleet, store: TelemetryStore) -> None:
    store.sync_devices(fleet.registry)
    order = np.random.default_rng(3).permutation(12)  # stored out of time order
    dev = np.r_[np.zeros(12, np.int64), np.ones(12, np.int64)]
    q = np.r_[np.full(12, quantity_code("p_kw")), np.full(12, quantity_code("v_pu"))]
    ts = np.r_[T0 + OFFSETS[order], T0 + OFFSETS[order]]
    store.ingest_readings(ReadingBatch.from_arrays(dev, q, ts, np.r_[P_KW[order], V_PU[order]]))


def _expected(vals: np.ndarray, hour: int) -> dict[str, float]:
    v = vals[4 * hour : 4 * hour + 4]
    return {"n": 4, "mean": v.mean(), "min": v.min(), "max": v.max(), "first": v[0], "last": v[-1]}


def _counts(store: TelemetryStore) -> tuple[int, int, int]:
    st = store.stats()
    return st.readings, st.aggregate_rows, st.aggregated_readings


def test_downsample_whole_buckets_idempotent(fleet: Fleet, store: TelemetryStore) -> None:
    _load(fleet, store)
    assert _counts(store) == (24, 0, 0)
    # just short of T0 + 2 h: floored to T0 + 1 h, only the first hour is compacted
    r1 = store.downsample(T0 + 2 * HOUR - 1, bucket_s=3600)
    assert r1["cut"] == pd.Timestamp(T0 + HOUR, unit="ms")
    assert (r1["raw_removed"], r1["agg_rows_written"], r1["agg_rows_merged"]) == (8, 2, 0)
    # mid-bucket (ISO string): floored to T0 + 2 h; the third hour stays raw
    iso = pd.Timestamp(T0 + 2 * HOUR + 30 * MIN, unit="ms").isoformat()
    r2 = store.downsample(iso)
    assert r2["cut"] == pd.Timestamp(T0 + 2 * HOUR, unit="ms") and r2["bucket_s"] == 3600
    assert (r2["raw_removed"], r2["agg_rows_written"]) == (8, 2)
    raw, n_agg, n_in_agg = _counts(store)
    assert (raw, n_agg) == (8, 4) and raw + n_in_agg == 24  # every reading accounted for

    agg = store.range_agg(None, T0, T0 + 6 * HOUR)
    assert list(agg.columns[:10]) == [
        "bucket",
        "device_id",
        "quantity",
        "bucket_s",
        "n",
        "mean",
        "min",
        "max",
        "first",
        "last",
    ]
    assert list(agg["device_id"]) == ["m0", "m1", "m0", "m1"]
    assert list(agg["quantity"]) == ["p_kw", "v_pu", "p_kw", "v_pu"]
    assert list(agg["bucket"]) == [pd.Timestamp(T0 + h * HOUR, unit="ms") for h in (0, 0, 1, 1)]
    assert list(agg["bucket_s"]) == [3600] * 4
    for i, (vals, hour) in enumerate([(P_KW, 0), (V_PU, 0), (P_KW, 1), (V_PU, 1)]):
        for k, v in _expected(vals, hour).items():
            assert agg.loc[i, k] == pytest.approx(v, rel=1e-12), (i, k)
    assert agg.loc[0, "first_ts"] == pd.Timestamp(T0 + 10 * MIN, unit="ms")
    assert agg.loc[0, "last_ts"] == pd.Timestamp(T0 + 55 * MIN, unit="ms")

    # raw readings before the cut are gone, those after it kept
    assert store.range(None, T0, T0 + 2 * HOUR).empty
    kept = store.range("m0", T0, T0 + 6 * HOUR, quantity="p_kw")
    assert list(kept["value"]) == list(P_KW[8:])

    # a second call with the same before changes nothing
    again = store.downsample(iso)
    assert (again["raw_removed"], again["agg_rows_written"], again["agg_rows_merged"]) == (0, 0, 0)
    assert _counts(store) == (8, 4, 16)
    pd.testing.assert_frame_equal(store.range_agg(None, T0, T0 + 6 * HOUR), agg)


def test_late_readings_merge_into_compacted_bucket(fleet: Fleet, store: TelemetryStore) -> None:
    _load(fleet, store)
    store.downsample(T0 + HOUR)
    # late m0 p_kw readings in the compacted first hour: one before its first, one after its last
    late = ReadingBatch.from_arrays(
        np.array([0, 0]), quantity_code("p_kw"), T0 + np.array([58 * MIN, 2 * MIN]), [-7.0, 20.0]
    )
    store.ingest_readings(late)
    res = store.downsample(T0 + HOUR)
    assert (res["raw_removed"], res["agg_rows_written"], res["agg_rows_merged"]) == (2, 1, 1)
    row = store.range_agg("m0", T0, T0 + HOUR, quantity="p_kw").iloc[0]
    vals = np.r_[P_KW[:4], -7.0, 20.0]
    assert row["n"] == 6
    assert row["mean"] == pytest.approx(vals.mean(), rel=1e-12)
    assert (row["min"], row["max"]) == (-7.0, 20.0)
    assert (row["first"], row["last"]) == (20.0, -7.0)  # by time: T0 + 2 min, T0 + 58 min
    assert row["first_ts"] == pd.Timestamp(T0 + 2 * MIN, unit="ms")
    assert row["last_ts"] == pd.Timestamp(T0 + 58 * MIN, unit="ms")
    other = store.range_agg("m1", T0, T0 + HOUR).iloc[0]  # untouched
    assert other["n"] == 4 and other["mean"] == pytest.approx(V_PU[:4].mean(), rel=1e-12)
    raw, _, n_in_agg = _counts(store)
    assert raw + n_in_agg == 26
    # a late reading in a bucket of another width is kept apart, not merged
    store.ingest_readings(ReadingBatch.from_arrays(np.array([0]), 0, np.array([T0 + MIN]), [1.0]))
    assert store.downsample(T0 + HOUR, bucket_s=900)["agg_rows_merged"] == 0
    assert sorted(store.range_agg("m0", T0, T0 + HOUR, "p_kw")["bucket_s"]) == [900, 3600]


@pytest.mark.parametrize("bad", [0, -60, 1.5, "1h", None, True, float("inf")])
def test_bad_bucket_s_names_field_and_loses_nothing(
    fleet: Fleet, store: TelemetryStore, bad: Any
) -> None:
    _load(fleet, store)
    with pytest.raises(ValidationError, match="bucket_s") as exc:
        store.downsample(T0 + 3 * HOUR, bucket_s=bad)
    if bad is not None:
        assert repr(bad) in str(exc.value)
    assert _counts(store) == (24, 0, 0)


def test_bad_before_and_failed_write_lose_nothing(
    fleet: Fleet, store: TelemetryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(fleet, store)
    for bad in ("not a time", None, True):
        with pytest.raises(ValidationError, match="before") as exc:
            store.downsample(bad)
        if bad is not None:
            assert repr(bad) in str(exc.value)
    with pytest.raises(UnknownComponentError, match="nobody"):
        store.range_agg("nobody", T0, T0 + HOUR)
    assert _counts(store) == (24, 0, 0)

    # the delete of the raw rows fails after the aggregates were written: all rolled back
    real = store._transaction

    class Failing:
        def __init__(self, cur: Any) -> None:
            self.cur = cur

        def execute(self, sql: str, *a: Any) -> Any:
            if sql.lstrip().startswith("DELETE"):
                raise RuntimeError("disk full")
            self.cur.execute(sql, *a)
            return self.cur

    @contextmanager
    def failing() -> Iterator[Any]:
        with real() as cur:
            yield Failing(cur)

    monkeypatch.setattr(store, "_transaction", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        store.downsample(T0 + 2 * HOUR)
    monkeypatch.undo()
    assert _counts(store) == (24, 0, 0)
    assert store.range_agg(None, T0, T0 + 6 * HOUR).empty
    assert store.downsample(T0 + 2 * HOUR)["raw_removed"] == 16  # and it works afterwards
    assert _counts(store) == (8, 4, 16)


def test_cli_downsample(tmp_path, fleet: Fleet) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "t.duckdb"
    with DuckDBStore(str(db)) as st:
        _load(fleet, st)
    app = typer.Typer()
    register(app)
    before = pd.Timestamp(T0 + 2 * HOUR + 5 * MIN, unit="ms").isoformat()
    args = ["telemetry", "downsample", "-s", str(db), "--before", before, "--bucket-s", "3600"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["raw_removed"] == 16 and d["agg_rows_written"] == 4
    assert d["cut"] == pd.Timestamp(T0 + 2 * HOUR, unit="ms").isoformat()
    r = CliRunner().invoke(app, ["telemetry", "downsample", "-s", str(db), "--before", "soon"])
    assert r.exit_code == 2 and "before" in r.output
    r = CliRunner().invoke(app, ["telemetry", "stats", "-s", str(db), "--json"])
    assert json.loads(r.stdout)["aggregated_readings"] == 16


def test_reading_committed_during_downsample_is_kept(fleet: Fleet, store: TelemetryStore) -> None:
    """A late reading another connection commits mid-downsample is neither lost nor counted."""
    _load(fleet, store)
    p = store.prefix
    late = (0, quantity_code("p_kw"), pd.Timestamp(T0 + MIN, unit="ms").to_pydatetime(), 42.0)
    if isinstance(store, PostgresStore):
        other: Any = psycopg.connect(store.dsn, autocommit=True)
        insert = f"INSERT INTO {p}_readings VALUES (%s, %s, %s, %s)"
    else:
        other = store.con.cursor()  # type: ignore[attr-defined]  # same database, own connection
        insert = f"INSERT INTO {p}_readings VALUES (?, ?, ?, ?)"
    real = store._transaction

    class Interleaved:
        def __init__(self, cur: Any) -> None:
            self.cur = cur

        def execute(self, sql: str, *a: Any) -> Any:
            if sql.lstrip().startswith("DELETE"):
                other.execute(insert, late)  # committed by the other connection
            self.cur.execute(sql, *a)
            return self.cur

    @contextmanager
    def interleaved() -> Iterator[Any]:
        with real() as cur:
            yield Interleaved(cur)

    store._transaction = interleaved  # type: ignore[method-assign]
    try:
        res = store.downsample(T0 + HOUR)
    finally:
        store._transaction = real  # type: ignore[method-assign]
        other.close()
    assert res["raw_removed"] == 8
    assert list(store.range("m0", T0, T0 + HOUR)["value"]) == [42.0]  # still raw, not deleted
    raw, _, n_in_agg = _counts(store)
    assert raw + n_in_agg == 25
    assert store.downsample(T0 + HOUR)["agg_rows_merged"] == 1  # merged by the next run
