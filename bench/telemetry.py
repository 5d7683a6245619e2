"""Telemetry benchmark: ingest rates side by side with naive baselines, in one run.

    .venv/bin/python bench/telemetry.py --json            # full run
    .venv/bin/python bench/telemetry.py --json --quick    # small sizes, a few seconds

Rows (readings/s; one reading = one (device, quantity, ts) value):

* ``duckdb_batch_ingest``: verified ReadingBatch columns appended to DuckDB (Arrow), vs
  ``duckdb_row_insert`` (executemany, one row per reading). Target >= 1,000,000 readings/s.
* ``postgres_copy_ingest``: the same through binary COPY, vs ``postgres_row_insert``
  (skipped, with the reason, when the PostgreSQL service is down).
* ``inproc_signed``: signed frames verified (Ed25519, seq, skew, ranges) and stored in
  DuckDB, no network; vs ``inproc_unsigned`` (same path with the signature check skipped,
  to show what the crypto costs).
* ``mqtt_signed_batched``: signed frames published by a separate process to Mosquitto
  on loopback, received, verified and stored in DuckDB, end to end (first publish to last
  row committed). Target >= 50,000 readings/s on 2 cores. Vs ``mqtt_signed_unbatched``:
  one frame per publish and one reading per frame (the naive design).
* ``downsample_duckdb`` / ``downsample_postgres``: 1,000,000 raw 15-min readings (1,000
  meters) compacted into hourly aggregates by ``TelemetryStore.downsample`` (one SQL
  transaction), vs ``downsample_naive_pandas``: the same rows read out to pandas, grouped
  there, the aggregates written back and the raw rows deleted. ``--only downsample`` runs
  these rows alone.
* ``field_simulation``: reserved for the field engineer (1,000,000 devices, 1-minute
  steps, faster than real time); see :func:`bench_field_simulation`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import numpy as np
from rich.console import Console

from gridpilot.telemetry import (
    DeviceRegistry,
    DeviceSigner,
    DuckDBStore,
    Ingestor,
    MqttTransport,
    PostgresStore,
    ReadingBatch,
    Receiver,
    Topics,
    Verifier,
    encode_batch,
    keys_from_seeds,
)
from gridpilot.telemetry.registry import KeyStatus

console = Console(stderr=True)
PG_DSN = os.environ.get("GRIDPILOT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("GRIDPILOT_MQTT_URL", "mqtt://127.0.0.1:1883")
QUANTITIES = ("p_kw", "q_kvar", "v_pu", "e_import_kwh")


def _reachable(url: str, port: int) -> str | None:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or port), 2):
            return None
    except OSError as exc:
        return f"service unreachable at {u.hostname}:{u.port or port}: {exc}"


# ----------------------------------------------------------------------------- fleet
class Fleet:
    """n devices with deterministic keys; each frame = 1 device x rows x 4 quantities."""

    def __init__(self, n_devices: int, rows: int) -> None:
        rng = np.random.default_rng(42)
        self.ids = [f"meter-{i:07d}" for i in range(n_devices)]
        self.keys = keys_from_seeds(rng.integers(0, 256, (n_devices, 32)))
        self.rows = rows
        self.now_ms = int(time.time() * 1000)
        self.registry = DeviceRegistry()
        self.registry.register_many(
            self.ids, self.keys, feeder=[f"F{i % 20}" for i in range(n_devices)]
        )
        self.signers = [DeviceSigner(d, k) for d, k in zip(self.ids, self.keys, strict=True)]
        self.rng = rng

    def fresh_registry(self) -> DeviceRegistry:
        """A registry with the same devices and every sequence number back at 0."""
        self.registry.last_seq[:] = 0
        return self.registry

    def frames(self, n_readings: int, rows: int | None = None, n_q: int = 4) -> list[bytes]:
        """Signed frames carrying ``n_readings`` readings in total (device side, not timed)."""
        rows = self.rows if rows is None else rows
        per = rows * n_q
        n_frames = max(1, n_readings // per)
        ts = self.now_ms - 60_000 * np.arange(rows, 0, -1, dtype=np.int64)
        out = []
        for j in range(n_frames):
            s = self.signers[j % len(self.signers)]
            base = self.rng.random(rows)
            vals = {
                "p_kw": 2 * base,
                "q_kvar": 0.3 * base,
                "v_pu": 1 + 0.02 * base,
                "e_import_kwh": 1000 + np.cumsum(base),
            }
            out.append(s.readings(ts, {q: vals[q] for q in QUANTITIES[:n_q]}))
        return out


class _NoCheckKey:
    def verify(self, signature: bytes, data: bytes) -> None:
        return None


class _UnsignedVerifier(Verifier):
    """Baseline only: the same checks with the Ed25519 verification skipped."""

    def __init__(self, registry: DeviceRegistry) -> None:
        super().__init__(registry, log_rejections=False)
        orig = registry.key_for

        def key_for(idx: int, key_id: int, at_ms: int) -> tuple[int, Any]:
            st, _k = orig(idx, key_id, at_ms)
            return st, (_NoCheckKey() if st == KeyStatus.OK else None)

        self.registry = _RegistryView(registry, key_for)


class _RegistryView:
    def __init__(self, reg: DeviceRegistry, key_for: Any) -> None:
        self._reg = reg
        self.key_for = key_for

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reg, name)


# ----------------------------------------------------------------------------- rows
def _random_readings(n: int) -> ReadingBatch:
    """n readings (10,000 devices, 4 quantities, 10 ms apart), the same for every store."""
    rng = np.random.default_rng(0)
    return ReadingBatch.from_arrays(
        rng.integers(0, 10_000, n),
        rng.integers(0, 4, n),
        1_700_000_000_000 + np.arange(n) * 10,
        rng.random(n),
    )


def bench_duckdb(n: int, n_rows_baseline: int) -> dict[str, Any]:
    batch = _random_readings(n)
    store = DuckDBStore(":memory:")
    chunks = 5
    step = n // chunks
    parts = [
        ReadingBatch(
            batch.device[i : i + step],
            batch.quantity[i : i + step],
            batch.ts_ms[i : i + step],
            batch.value[i : i + step],
        )
        for i in range(0, n, step)
    ]
    t0 = time.perf_counter()
    for p in parts:
        store.ingest_readings(p)
    dt = time.perf_counter() - t0
    assert store.stats().readings == n
    rows = list(
        zip(
            batch.device[:n_rows_baseline].tolist(),
            batch.quantity[:n_rows_baseline].tolist(),
            [np.datetime64(int(t), "ms").astype(object) for t in batch.ts_ms[:n_rows_baseline]],
            batch.value[:n_rows_baseline].tolist(),
            strict=True,
        )
    )
    t0 = time.perf_counter()
    store.con.executemany("INSERT INTO tm_readings VALUES (?, ?, ?, ?)", rows)
    dt_row = time.perf_counter() - t0
    store.close()
    return {
        "duckdb_batch_ingest": {
            "readings": n,
            "batches": len(parts),
            "s": dt,
            "readings_per_s": n / dt,
            "target_readings_per_s": 1_000_000,
        },
        "duckdb_row_insert": {
            "readings": n_rows_baseline,
            "s": dt_row,
            "readings_per_s": n_rows_baseline / dt_row,
            "method": "executemany INSERT, one row per reading",
        },
    }


def bench_postgres(n: int, n_rows_baseline: int) -> dict[str, Any]:
    why = _reachable(PG_DSN, 5432)
    if why:
        return {"postgres_copy_ingest": {"skipped": why}, "postgres_row_insert": {"skipped": why}}
    batch = _random_readings(n)
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(PG_DSN, prefix=prefix)
    try:
        t0 = time.perf_counter()
        store.ingest_readings(batch)
        dt = time.perf_counter() - t0
        rows = [
            (
                int(batch.device[i]),
                int(batch.quantity[i]),
                np.datetime64(int(batch.ts_ms[i]), "ms").astype(object),
                float(batch.value[i]),
            )
            for i in range(n_rows_baseline)
        ]
        t0 = time.perf_counter()
        with store.conn.transaction(), store.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {prefix}_readings VALUES (%s, %s, %s, %s)", rows)
        dt_row = time.perf_counter() - t0
        assert store.stats().readings == n + n_rows_baseline
    finally:
        store.drop()
        store.close()
    return {
        "postgres_copy_ingest": {
            "readings": n,
            "s": dt,
            "readings_per_s": n / dt,
            "method": "binary COPY built with numpy; BRIN on ts; latest table upserted per batch",
        },
        "postgres_row_insert": {
            "readings": n_rows_baseline,
            "s": dt_row,
            "readings_per_s": n_rows_baseline / dt_row,
            "method": "executemany INSERT (pipelined), same table and index",
        },
    }


def _meter_readings(n_meters: int, intervals: int) -> tuple[DeviceRegistry, ReadingBatch, int]:
    """15-min readings of ``n_meters`` meters over ``intervals`` intervals from a UTC midnight."""
    reg = DeviceRegistry()
    reg.register_many([f"m{i}" for i in range(n_meters)], None)  # keys play no part here
    t0 = 1_780_000_000_000 - 1_780_000_000_000 % 86_400_000
    k = np.arange(n_meters * intervals)
    rng = np.random.default_rng(0)
    batch = ReadingBatch.from_arrays(
        k % n_meters, 0, t0 + (k // n_meters) * 900_000, rng.random(k.size)
    )
    return reg, batch, t0


def bench_downsample(n_meters: int, intervals: int) -> dict[str, Any]:
    """Retention: compact every reading into hourly aggregates, in SQL vs through pandas."""
    reg, batch, t0 = _meter_readings(n_meters, intervals)
    n = batch.device.size
    cut = t0 + (intervals // 4 + 1) * 3_600_000  # past the last reading: compact all
    out: dict[str, Any] = {}
    store = DuckDBStore(":memory:")
    store.sync_devices(reg)
    store.ingest_readings(batch)
    t = time.perf_counter()
    res = store.downsample(cut, bucket_s=3600)
    dt = time.perf_counter() - t
    assert store.stats().aggregated_readings == n and store.stats().readings == 0
    out["downsample_duckdb"] = {
        "readings": n,
        "aggregate_rows": res["agg_rows_written"],
        "s": dt,
        "readings_per_s": n / dt,
    }
    store.close()
    # the naive way: out to pandas, group there, write back, delete
    store = DuckDBStore(":memory:")
    store.sync_devices(reg)
    store.ingest_readings(batch)
    t = time.perf_counter()
    df = store.con.execute("SELECT device, quantity, ts, value FROM tm_readings").df()
    df = df.sort_values("ts")
    df["bucket"] = df["ts"].dt.floor("1h")
    g = df.groupby(["device", "quantity", "bucket"])["value"]
    agg = g.agg(["count", "mean", "min", "max", "first", "last"]).reset_index()
    agg = agg.rename(columns={"count": "n"})
    store.con.register("agg_df", agg)
    store.con.execute("CREATE TABLE naive_agg AS SELECT * FROM agg_df")
    store.con.execute("DELETE FROM tm_readings WHERE ts < epoch_ms(?::BIGINT)", [cut])
    dt_naive = time.perf_counter() - t
    assert int(agg["n"].sum()) == n and store.stats().readings == 0
    out["downsample_naive_pandas"] = {
        "readings": n,
        "aggregate_rows": len(agg),
        "s": dt_naive,
        "readings_per_s": n / dt_naive,
        "method": "rows to pandas, groupby, aggregates written back, raw rows deleted (DuckDB)",
    }
    store.close()
    why = _reachable(PG_DSN, 5432)
    if why:
        out["downsample_postgres"] = {"skipped": why}
        return out
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    pg = PostgresStore(PG_DSN, prefix=prefix)
    try:
        pg.sync_devices(reg)
        pg.ingest_readings(batch)
        t = time.perf_counter()
        res = pg.downsample(cut, bucket_s=3600)
        dt = time.perf_counter() - t
        assert pg.stats().aggregated_readings == n
        out["downsample_postgres"] = {
            "readings": n,
            "aggregate_rows": res["agg_rows_written"],
            "s": dt,
            "readings_per_s": n / dt,
        }
    finally:
        pg.drop()
        pg.close()
    return out


def bench_inproc(fleet: Fleet, n: int) -> dict[str, Any]:
    frames = fleet.frames(n)
    payloads = [encode_batch(frames[i : i + 100]) for i in range(0, len(frames), 100)]
    expect = len(frames) * fleet.rows * len(QUANTITIES)
    out: dict[str, Any] = {}
    for name, signed in (("inproc_signed", True), ("inproc_unsigned", False)):
        reg = fleet.fresh_registry()
        store = DuckDBStore(":memory:")
        ver = Verifier(reg, log_rejections=False) if signed else _UnsignedVerifier(reg)
        ing = Ingestor(reg, store, verifier=ver)
        t0 = time.perf_counter()
        stored = 0
        for i in range(0, len(payloads), 10):
            stored += ing.ingest(payloads[i : i + 10]).readings_stored
        dt = time.perf_counter() - t0
        assert stored == expect, (stored, expect)
        out[name] = {
            "readings": stored,
            "messages": len(frames),
            "readings_per_message": fleet.rows * len(QUANTITIES),
            "s": dt,
            "readings_per_s": stored / dt,
            "messages_per_s": len(frames) / dt,
        }
        store.close()
    out["inproc_unsigned"]["note"] = "baseline only: signature check skipped"
    return out


def bench_gateway(n_gateways: int, per_gateway: int) -> dict[str, Any]:
    """One 1-minute step of n_gateways x per_gateway keyless meters, 4 quantities each."""
    rng = np.random.default_rng(3)
    gws = [f"gw{i:05d}" for i in range(n_gateways)]
    gkeys = keys_from_seeds(rng.integers(0, 256, (n_gateways, 32)))
    reg = DeviceRegistry()
    reg.register_many(gws, gkeys, kind="gateway")
    n_dev = n_gateways * per_gateway
    ids = [f"m{i:08d}" for i in range(n_dev)]
    t0 = time.perf_counter()
    reg.register_many(
        ids,
        None,
        feeder=[f"F{i % 100}" for i in range(n_dev)],
        gateway=np.repeat(gws, per_gateway).tolist(),
    )
    t_reg = time.perf_counter() - t0
    now = int(time.time() * 1000)
    ts = np.full(per_gateway, now - 60_000, np.int64)
    pos = np.arange(per_gateway)
    store = DuckDBStore(":memory:")
    ing = Ingestor(reg, store, log_rejections=False)
    signers = [DeviceSigner(g, k) for g, k in zip(gws, gkeys, strict=True)]
    steps = []
    for step in range(2):  # step 0: cold gateway cache; step 1: warm (the steady state)
        t0 = time.perf_counter()
        frames = []
        for g in range(n_gateways):
            base = rng.random(per_gateway)
            vals = {
                "p_kw": 2 * base,
                "q_kvar": 0.3 * base,
                "v_pu": 1 + 0.02 * base,
                "e_import_kwh": 1000 + base,
            }
            devs = ids[g * per_gateway : (g + 1) * per_gateway]
            frames.append(signers[g].readings(ts + 60_000 * step, vals, devices=devs, dev_pos=pos))
        t_sign = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = ing.ingest(frames)
        dt = time.perf_counter() - t0
        assert rep.readings_stored == 4 * n_dev, rep.as_dict()
        steps.append((dt, t_sign, rep.readings_stored))
    store.close()
    dt, t_sign, n_read = steps[1]
    return {
        "inproc_signed_gateway": {
            "devices": n_dev,
            "gateways": n_gateways,
            "readings": n_read,
            "readings_per_message": 4 * per_gateway,
            "first_step_s": steps[0][0],
            "s": dt,
            "readings_per_s": n_read / dt,
            "gateway_signing_s": t_sign,
            "register_devices_s": t_reg,
            "method": "a 1-minute step (the second; first_step_s includes the cold device lookup): each gateway signs one message for its meters; verify + DuckDB",
        }
    }


def _publisher(url: str, topic: str, payloads: list[bytes], go: Any, done: Any) -> None:
    tr = MqttTransport(url, qos=1)
    go.wait()
    for p in payloads:
        tr.publish(topic, p)
    tr.flush(300)
    done.set()
    tr.close()


def _mqtt_run(fleet: Fleet, payloads: list[bytes], expect: int, timeout_s: float) -> dict[str, Any]:
    reg = fleet.fresh_registry()
    store = DuckDBStore(":memory:")
    topics = Topics(f"gpbench/{uuid.uuid4().hex[:8]}")
    sub = MqttTransport(MQTT_URL, qos=1, max_inflight=1000)
    # one publisher multiplexes every device's frames on one topic: no topic binding here
    rx = Receiver(
        sub, Ingestor(reg, store, log_rejections=False), topics.all_telemetry, bind_topics=False
    )
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(
        target=_publisher, args=(MQTT_URL, topics.telemetry("gw"), payloads, go, done)
    )
    proc.start()
    time.sleep(1.0)  # let the publisher connect
    t0 = time.perf_counter()
    go.set()
    stored = 0
    rejected = 0
    deadline = t0 + timeout_s
    idle_since = None
    t_last = t0
    while stored < expect and time.perf_counter() < deadline:
        if rx.pending:
            rep = rx.pump(500)
            stored += rep.readings_stored
            rejected += rep.rejected
            t_last = time.perf_counter()
            idle_since = None
        else:
            if done.is_set():  # publisher finished: stop once nothing more arrives for 3 s
                idle_since = idle_since or time.perf_counter()
                if time.perf_counter() - idle_since > 3:
                    break
            time.sleep(0.002)
    dt = t_last - t0
    proc.join(30)
    sub.close()
    store.close()
    return {
        "readings": stored,
        "expected": expect,
        "complete": stored == expect,
        "lost": expect - stored - rejected,
        "rejected": rejected,
        "payloads": len(payloads),
        "s": dt,
        "readings_per_s": stored / dt,
    }


def bench_mqtt(fleet: Fleet, n: int, n_unbatched: int) -> dict[str, Any]:
    why = _reachable(MQTT_URL, 1883)
    if why:
        return {"mqtt_signed_batched": {"skipped": why}, "mqtt_signed_unbatched": {"skipped": why}}
    frames = fleet.frames(n)
    per_publish = 100
    payloads = [
        encode_batch(frames[i : i + per_publish]) for i in range(0, len(frames), per_publish)
    ]
    expect = len(frames) * fleet.rows * len(QUANTITIES)
    batched = _mqtt_run(fleet, payloads, expect, 300)
    batched |= {
        "readings_per_message": fleet.rows * len(QUANTITIES),
        "messages_per_publish": per_publish,
        "bytes_per_reading": sum(map(len, payloads)) / expect,
        "target_readings_per_s": 50_000,
        "method": "separate publisher process, QoS 1, Mosquitto on loopback; verify (Ed25519) + DuckDB, first publish to last commit",
    }
    single = fleet.frames(n_unbatched, rows=1, n_q=1)
    unbatched = _mqtt_run(fleet, single, len(single), 300)
    unbatched |= {
        "readings_per_message": 1,
        "messages_per_publish": 1,
        "method": "baseline: one 1-reading frame per publish, same receiver; Mosquitto keeps at most max_queued_messages=1000 (default) QoS 1 messages per subscriber and drops the rest, so a receiver that falls behind loses messages ('lost')",
    }
    return {"mqtt_signed_batched": batched, "mqtt_signed_unbatched": unbatched}


# ----------------------------------------------------------------------------- field
def bench_field_simulation(quick: bool) -> dict[str, Any]:
    """Field simulation speed for 1,000,000 devices at 1-minute steps (target: faster than real time).

    Added by the field engineer: the measurement of ``bench/field.py`` (quick: 100,000 devices),
    with its one-object-per-device baseline beside it.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_field_bench", Path(__file__).with_name("field.py")
    )
    if spec is None or spec.loader is None:
        return {"status": "bench/field.py not found"}
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.bench_field_simulation(quick)


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON (the default output)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--only", choices=["downsample"], help="run only these rows")
    args = ap.parse_args()
    q = args.quick
    if args.only == "downsample":
        print(json.dumps(bench_downsample(1_000, 100 if q else 1_000), indent=2, default=float))
        return
    n_duck = 200_000 if q else 5_000_000
    n_pg = 100_000 if q else 1_000_000
    n_e2e = 60_000 if q else 1_200_000
    n_mqtt = 120_000 if q else 1_200_000
    rows = 15  # 15 one-minute rows x 4 quantities = 60 readings per signed message
    console.log("building fleet and signing frames (device side, not timed)")
    fleet = Fleet(n_devices=2_000 if q else 20_000, rows=rows)
    results: dict[str, Any] = {
        "bench": "telemetry",
        "quick": q,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "note": "shared 2-core machine, timings under contention",
        "loadavg_1min_start": os.getloadavg()[0],
    }
    console.log("DuckDB batch vs row ingest")
    results |= bench_duckdb(n_duck, 1_000 if q else 5_000)
    console.log("PostgreSQL COPY vs row insert")
    results |= bench_postgres(n_pg, 2_000 if q else 20_000)
    console.log("in-process signed vs unsigned")
    results |= bench_inproc(fleet, n_e2e)
    console.log("gateway messages")
    results |= bench_gateway(100 if q else 1000, 1000)
    console.log("MQTT end to end, batched vs unbatched")
    results |= bench_mqtt(fleet, n_mqtt, 1_000 if q else 2_000)
    console.log("retention: downsample in SQL vs through pandas")
    results |= bench_downsample(1_000, 100 if q else 1_000)
    # ---- field simulation (added by the field engineer) ----
    results["field_simulation"] = bench_field_simulation(q)
    results["loadavg_1min_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
