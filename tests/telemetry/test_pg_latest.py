"""PostgreSQL's ``latest`` table stays small however many batches rewrite it (issue #21 item 12)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.telemetry import PostgresStore
from gridpilot.telemetry.verify import ReadingBatch

from .conftest import NOW_MS, unique_prefix


@pytest.mark.postgres
def test_latest_table_size_bounded_over_many_batches(pg_dsn: str) -> None:
    """5,000 (device, quantity) rows rewritten by 60 batches: the table must not grow with them.

    Before the fix (fillfactor 100: no HOT updates, every upsert a new tuple elsewhere) it
    grew about linearly: 0.4 MB -> 16 MB after 100 batches.
    """
    st = PostgresStore(pg_dsn, prefix=unique_prefix())
    n_dev, n_q = 1000, 5
    dev = np.repeat(np.arange(n_dev), n_q)
    q = np.tile(np.arange(n_q), n_dev)

    def batch(k: int) -> ReadingBatch:
        ts = np.full(len(dev), NOW_MS + k * 60_000, np.int64)
        return ReadingBatch.from_arrays(dev, q, ts, np.full(len(dev), float(k)))

    def size() -> int:
        ((n,),) = st._fetch(f"SELECT pg_total_relation_size('{st.prefix}_latest')")
        return int(n)

    try:
        st.ingest_readings(batch(0))
        first = size()
        for k in range(1, 60):
            st.ingest_readings(batch(k))
        after = size()
        print(f"latest table: {first} bytes after 1 batch, {after} after 60")
        assert after <= 2 * first
        lat = st._fetch(f"SELECT count(*), min(value), max(value) FROM {st.prefix}_latest")
        assert lat == [(n_dev * n_q, 59.0, 59.0)]  # still the newest value of every key
    finally:
        st.drop()
        st.close()
