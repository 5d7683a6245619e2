"""Telemetry in DuckDB (embedded, the default): readings appended as Arrow tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from gridpilot.errors import GridpilotError
from gridpilot.telemetry.store_base import TelemetryStore, create_tables_sql
from gridpilot.telemetry.verify import ReadingBatch, VerifiedBatch


def _arrow_table(**columns: tuple[Any, Any]) -> Any:
    """Return a pyarrow table from ``name=(values, arrow type)`` (numpy columns are not copied)."""
    import pyarrow as pa

    return pa.table({name: pa.array(v, t) for name, (v, t) in columns.items()})


def _insert_registered(con: Any, table: str, data: Any) -> None:
    """``INSERT INTO table SELECT * FROM data`` (a DataFrame or Arrow table, no copy)."""
    con.register("_gp_in", data)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _gp_in")
    finally:
        con.unregister("_gp_in")


class DuckDBStore(TelemetryStore):
    """Telemetry in DuckDB (embedded, the default). ``path``: a file or ``":memory:"``.

    Readings are appended as Arrow tables (zero-copy from the numpy columns).
    """

    _PH = "?"
    _DEVICES_IN = "list_contains(?, r.device)"
    _TIME_PH = "epoch_ms(?::BIGINT)"
    _BUCKET_FN = "time_bucket"
    _FIRST_SQL = "arg_min(value, ts)"
    _LAST_SQL = "arg_max(value, ts)"

    def __init__(self, path: str = ":memory:", *, prefix: str = "tm") -> None:
        import duckdb

        super().__init__(prefix)
        self.path = path
        try:
            self.con = duckdb.connect(path)
        except duckdb.Error as exc:
            raise GridpilotError(f"cannot open DuckDB store {path!r}: {exc}") from None
        self.con.execute(create_tables_sql(prefix))
        self._seed_quantities(self.con)

    # ------------------------------------------------------------------ backend hooks
    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    def _fetch(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def _time_param(self, ms: int) -> int:
        return ms

    def _latest_sql(self, where: str) -> str:
        p = self.prefix
        return f"""SELECT d.device_id, r.quantity, max(r.ts) AS ts, arg_max(r.value, r.ts) AS value
                FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                GROUP BY d.device_id, r.quantity ORDER BY d.device_id, r.quantity"""

    def _insert_devices(self, rows: pd.DataFrame) -> None:
        _insert_registered(self.con, f"{self.prefix}_devices", rows)

    def _append_readings(self, cur: Any, readings: ReadingBatch) -> int:
        import pyarrow as pa

        if not len(readings):
            return 0
        tbl = _arrow_table(
            device=(readings.device, pa.int32()),
            quantity=(readings.quantity, pa.int16()),
            ts=(readings.ts_ms, pa.timestamp("ms")),
            value=(readings.value, pa.float64()),
        )
        _insert_registered(cur, f"{self.prefix}_readings", tbl)
        return len(readings)

    def _insert_messages(self, cur: Any, batch: VerifiedBatch) -> None:
        _insert_registered(cur, f"{self.prefix}_messages", self._message_rows(batch))

    def _insert_frames(self, cur: Any, batch: VerifiedBatch) -> None:
        import pyarrow as pa

        m = batch.messages
        tbl = _arrow_table(
            device=(m.device, pa.int32()),
            seq=(m.seq, pa.int64()),
            sent=(m.sent_ms, pa.timestamp("ms")),
            frame=(batch.frames, pa.binary()),
        )
        _insert_registered(cur, f"{self.prefix}_frames", tbl)

    # ------------------------------------------------------------------ public
    def ingest_readings(self, readings: ReadingBatch) -> int:
        """Append readings (already verified) in one statement; returns rows written."""
        return self._append_readings(self.con, readings)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()
