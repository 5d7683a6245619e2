"""PostgreSQL ``latest`` table size under per-batch upserts: the store's storage settings
(fillfactor 50, early autovacuum) side by side with the old ones (fillfactor 100), one run.

    .venv/bin/python bench/telemetry_latest.py --json [--devices 4600 --batches 100]

``devices`` x 5 quantities rows are upserted by ``batches`` batches that each rewrite every
row (as a field run's 15-minute meter reports do). Prints, per variant, the table's
``pg_total_relation_size`` after the first batch and after the last, and the time taken.
Skips (with the reason) when the PostgreSQL service (``GRIDPILOT_PG_DSN``) is down.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

import numpy as np

from gridpilot.errors import GridpilotError
from gridpilot.telemetry import PostgresStore
from gridpilot.telemetry.verify import ReadingBatch

DSN = os.environ.get("GRIDPILOT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
OLD_STORAGE = "fillfactor = 100"


def run_variant(devices: int, batches: int, old: bool) -> dict[str, Any]:
    """Upsert ``batches`` full rewrites of ``devices`` x 5 rows; returns the sizes in bytes."""
    st = PostgresStore(DSN, prefix=f"bench_latest_{uuid.uuid4().hex[:8]}")
    p = st.prefix
    try:
        if old:
            with st._transaction() as cur:
                cur.execute(
                    f"ALTER TABLE {p}_latest RESET (autovacuum_vacuum_scale_factor, "
                    f"autovacuum_vacuum_threshold); ALTER TABLE {p}_latest SET ({OLD_STORAGE})"
                )
        dev = np.repeat(np.arange(devices), 5)
        q = np.tile(np.arange(5), devices)
        t0_ms = int(time.time() * 1000)

        def batch(k: int) -> ReadingBatch:
            ts = np.full(len(dev), t0_ms + k * 900_000, np.int64)
            return ReadingBatch.from_arrays(dev, q, ts, np.random.default_rng(k).random(len(dev)))

        def size() -> int:
            return int(st._fetch(f"SELECT pg_total_relation_size('{p}_latest')")[0][0])

        st.ingest_readings(batch(0))
        first = size()
        t = time.perf_counter()
        for k in range(1, batches):
            st.ingest_readings(batch(k))
        return {
            "variant": "fillfactor_100_old" if old else "fillfactor_50_store",
            "rows": devices * 5,
            "batches": batches,
            "latest_bytes_after_1": first,
            "latest_bytes_after_all": size(),
            "upsert_s": round(time.perf_counter() - t, 2),
        }
    finally:
        st.drop()
        st.close()


def main() -> None:
    """Run both variants and print the figures (JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=4600)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        probe = PostgresStore(DSN, prefix=f"bench_latest_{uuid.uuid4().hex[:8]}")
    except GridpilotError as exc:  # the service is optional for a bench
        rows = [{"skipped": f"PostgreSQL at GRIDPILOT_PG_DSN unavailable: {exc}"}]
    else:
        probe.drop()
        probe.close()
        rows = [run_variant(a.devices, a.batches, old) for old in (False, True)]
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()
