"""Telemetry in PostgreSQL (psycopg 3): readings by binary ``COPY``, a ``latest`` table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import GridpilotError
from gridpilot.telemetry.store_base import TABLE_COLUMNS, TelemetryStore, create_tables_sql
from gridpilot.telemetry.verify import KIND_NAMES, ReadingBatch, VerifiedBatch

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since the Unix epoch
_PG_TYPE_NAMES = {"DOUBLE": "DOUBLE PRECISION", "VARCHAR": "TEXT", "BLOB": "BYTEA"}
_PG_COPY_DTYPE = np.dtype(
    [
        ("nf", ">i2"),
        ("l1", ">i4"),
        ("device", ">i4"),
        ("l2", ">i4"),
        ("quantity", ">i2"),
        ("l3", ">i4"),
        ("ts", ">i8"),
        ("l4", ">i4"),
        ("value", ">f8"),
    ]
)
# The latest table is rewritten by every batch: half-empty pages let each upsert be a HOT
# update in the same page, whose dead version the next visit prunes (no index entry, no
# VACUUM needed); autovacuum is told to come early as a second line.
_LATEST_STORAGE = (
    "fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 1000"
)
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_PG_COPY_TRAILER = b"\xff\xff"


def pg_copy_binary(readings: ReadingBatch) -> bytes:
    """Return ``readings`` in PostgreSQL's binary COPY format (built with numpy, no row loop)."""
    n = len(readings)
    rec = np.empty(n, dtype=_PG_COPY_DTYPE)
    rec["nf"] = 4
    rec["l1"] = 4
    rec["device"] = readings.device
    rec["l2"] = 2
    rec["quantity"] = readings.quantity
    rec["l3"] = 8
    rec["ts"] = readings.ts_ms.astype(np.int64) * 1000 - _PG_EPOCH_US
    rec["l4"] = 8
    rec["value"] = readings.value
    return _PG_COPY_HEADER + rec.tobytes() + _PG_COPY_TRAILER


def latest_rows(readings: ReadingBatch) -> ReadingBatch:
    """Return the last row by ts for each (device, quantity) in ``readings`` (ties: the later row)."""
    if len(readings) == 0:
        return readings
    key = readings.device.astype(np.int64) * 65536 + readings.quantity.astype(np.int64)
    order = np.lexsort((np.arange(len(key)), readings.ts_ms, key))
    k = key[order]
    last = order[np.r_[k[1:] != k[:-1], True]]
    return ReadingBatch(
        readings.device[last], readings.quantity[last], readings.ts_ms[last], readings.value[last]
    )


def _copy_binary(cur: Any, table: str, data: bytes) -> None:
    with cur.copy(f"COPY {table} (device, quantity, ts, value) FROM STDIN (FORMAT BINARY)") as cp:
        step = 8 << 20
        for off in range(0, len(data), step):
            cp.write(data[off : off + step])


def _copy_sql(table: str) -> str:
    cols = ", ".join(c.split()[0] for c in TABLE_COLUMNS[table].split(","))
    return f"({cols}) FROM STDIN"


def _pg_times(df: pd.DataFrame, col: str) -> pd.DataFrame:
    df[col] = pd.to_datetime(df[col]) if len(df) else pd.Series([], dtype="datetime64[us]")
    return df


class PostgresStore(TelemetryStore):
    """Telemetry in PostgreSQL via psycopg 3; readings go in with binary ``COPY``.

    ``dsn``: a libpq connection string or URL. A BRIN index on ``ts`` serves the range
    queries; the ``latest`` table (upserted per batch) the latest-value queries.
    """

    _PH = "%s"
    _DEVICES_IN = "r.device = ANY(%s)"
    _TIME_PH = "%s"
    _BUCKET_FN = "date_bin"
    _FIRST_SQL = "(array_agg(value ORDER BY ts))[1]"
    _LAST_SQL = "(array_agg(value ORDER BY ts DESC))[1]"
    _SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    _TABLES = ("readings", "latest", *(t for t in TABLE_COLUMNS if t != "readings"))

    def __init__(self, dsn: str, *, prefix: str = "tm") -> None:
        import psycopg

        super().__init__(prefix)
        self.dsn = dsn
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise GridpilotError(f"cannot connect to PostgreSQL at {dsn!r}: {exc}") from None
        p = prefix
        with self._transaction() as cur:
            cur.execute(
                create_tables_sql(p, _PG_TYPE_NAMES)
                + f"""
                CREATE INDEX IF NOT EXISTS {p}_readings_ts ON {p}_readings USING brin (ts);
                CREATE TABLE IF NOT EXISTS {p}_latest (device INTEGER, quantity SMALLINT,
                    ts TIMESTAMP, value DOUBLE PRECISION, PRIMARY KEY (device, quantity));
                ALTER TABLE {p}_latest SET ({_LATEST_STORAGE});
                """
            )
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _gp_latest_in (device INTEGER, quantity SMALLINT,"
                " ts TIMESTAMP, value DOUBLE PRECISION) ON COMMIT DELETE ROWS"
            )
            self._seed_quantities(cur)

    # ------------------------------------------------------------------ backend hooks
    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            cols = [c.name for c in cur.description or []]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def _fetch(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    def _time_param(self, ms: int) -> datetime:
        return pd.Timestamp(ms, unit="ms").to_pydatetime()

    def _times(self, df: pd.DataFrame, col: str) -> pd.DataFrame:
        return _pg_times(df, col)

    def _latest_sql(self, where: str) -> str:
        p = self.prefix
        return f"""SELECT d.device_id, r.quantity, r.ts, r.value FROM {p}_latest r
                JOIN {p}_devices d ON d.idx = r.device {where} ORDER BY d.device_id, r.quantity"""

    def _insert_devices(self, rows: pd.DataFrame) -> None:
        with (
            self._transaction() as cur,
            cur.copy(f"COPY {self.prefix}_devices {_copy_sql('devices')}") as cp,
        ):
            for r in rows.itertuples(index=False):
                cp.write_row((int(r[0]), r[1], r[2], r[3], int(r[4]), r[5]))

    def _append_readings(self, cur: Any, readings: ReadingBatch) -> int:
        n = len(readings)
        if not n:
            return 0
        p = self.prefix
        _copy_binary(cur, f"{p}_readings", pg_copy_binary(readings))
        _copy_binary(cur, "_gp_latest_in", pg_copy_binary(latest_rows(readings)))
        cur.execute(
            f"""INSERT INTO {p}_latest AS l SELECT device, quantity, ts, value FROM _gp_latest_in
                ON CONFLICT (device, quantity) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value
                WHERE l.ts <= EXCLUDED.ts"""
        )
        return n

    def _insert_messages(self, cur: Any, batch: VerifiedBatch) -> None:
        m = batch.messages
        kinds = np.array(KIND_NAMES, dtype=object)[m.kind.astype(np.int64)]
        sent = pd.to_datetime(m.sent_ms, unit="ms").to_pydatetime()
        recv = pd.to_datetime(m.received_ms, unit="ms").to_pydatetime()
        with cur.copy(f"COPY {self.prefix}_messages {_copy_sql('messages')}") as cp:
            for i in range(len(m)):
                cp.write_row(
                    (
                        int(m.device[i]),
                        kinds[i],
                        int(m.seq[i]),
                        int(m.key_id[i]),
                        sent[i],
                        recv[i],
                        int(m.n_readings[i]),
                    )
                )

    def _insert_frames(self, cur: Any, batch: VerifiedBatch) -> None:
        m = batch.messages
        sent = pd.to_datetime(m.sent_ms, unit="ms").to_pydatetime()
        with cur.copy(f"COPY {self.prefix}_frames {_copy_sql('frames')}") as cp:
            for i, fr in enumerate(batch.frames):
                cp.write_row((int(m.device[i]), int(m.seq[i]), sent[i], fr))

    # ------------------------------------------------------------------ public
    def close(self) -> None:
        """Close the PostgreSQL connection."""
        self.conn.close()
