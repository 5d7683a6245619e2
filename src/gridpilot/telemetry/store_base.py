"""The store interface and the logic both telemetry stores share (schema, checks, queries).

Tables, all named ``<prefix>_*``:

* ``readings(device INTEGER, quantity SMALLINT, ts TIMESTAMP, value DOUBLE)``: one row per
  reading (long form); ``device`` is the registry index, ``quantity`` the catalogue code.
* ``readings_agg(device, quantity, bucket, bucket_s, n, mean, min, max, first, last,
  first_ts, last_ts)``: old readings compacted by :meth:`TelemetryStore.downsample`, one
  row per (device, quantity, bucket); ``first_ts``/``last_ts`` (the times of ``first`` and
  ``last``) let late readings be merged into a compacted bucket.
* ``devices(idx, device_id, kind, feeder, bus, gateway)``: the registry's mapping, used by
  the per-feeder aggregates and to answer in device ids.
* ``quantities(quantity, name, unit)``: the catalogue, for people reading the tables in SQL.
* ``messages(device, kind, seq, key_id, sent, received, n_readings)``: every accepted message.
* ``records(device, kind, seq, ts, name, payload)``: accepted events, commands and acks
  (``payload`` is the JSON body).
* ``rejections(received, reason, device_id, seq, detail, n)``: refused messages and why; a
  row stands for ``n`` refusals (a malformed payload's frames, or refusals over the limits
  summarised, see :mod:`gridpilot.telemetry.refusals`). Text in it is escaped wire text.
* ``frames(device, seq, sent, frame)``: signed frames archived for audit (``keep_frames``).

Timestamps are UTC, stored without a time zone. A backend (:mod:`store_duckdb`,
:mod:`store_postgres`) supplies the connection, its SQL dialect (placeholders, time
parameters, bucketing function), its bulk-write paths and its latest-value query; the
validation, the query building and the queries whose SQL is the same live here.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, UnknownComponentError, ValidationError
from gridpilot.telemetry.refusals import Rejection
from gridpilot.telemetry.registry import DeviceRegistry
from gridpilot.telemetry.safe_text import wire_text
from gridpilot.telemetry.schema import QUANTITIES, QUANTITY_BY_NAME
from gridpilot.telemetry.store_rows import (
    check_new_devices,
    devices_rows,
    message_rows,
    record_rows,
    rejection_rows,
)
from gridpilot.telemetry.store_schema import (
    _PREFIX_RE,
    _QUANTITY_NAMES,
    TABLE_COLUMNS,
    TelemetryStats,
    TimeLike,
    _bucket,
    create_tables_sql,
    to_ms,
)
from gridpilot.telemetry.verify import ReadingBatch, VerifiedBatch

log = logging.getLogger(__name__)


class TelemetryStore(ABC):
    """The interface both stores implement. Queries answer in device ids and quantity names.

    A backend sets the dialect (``_PH`` placeholder, ``_DEVICES_IN`` device filter,
    ``_TIME_PH`` time parameter, ``_BUCKET_FN`` time bucketing function, ``_FIRST_SQL`` /
    ``_LAST_SQL`` value at the earliest / latest ``ts`` of a group, ``_SNAPSHOT_SQL`` to make
    a transaction see one snapshot, ``_TABLES``) and
    implements the abstract hooks below; everything else is shared.
    """

    prefix: str
    _PH: ClassVar[str]
    _DEVICES_IN: ClassVar[str]
    _TIME_PH: ClassVar[str]
    _BUCKET_FN: ClassVar[str]
    _FIRST_SQL: ClassVar[str]
    _LAST_SQL: ClassVar[str]
    _SNAPSHOT_SQL: ClassVar[str | None] = None
    _TABLES: ClassVar[tuple[str, ...]] = tuple(TABLE_COLUMNS)

    def __init__(self, prefix: str) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValidationError(
                issues=[Issue("store", "prefix", "must match [a-z_][a-z0-9_]{0,40}", value=prefix)]
            )
        self.prefix = prefix
        self._device_index: dict[str, int] | None = None

    # ------------------------------------------------------------------ backend hooks
    @abstractmethod
    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame:
        """Run a query; return its rows as a DataFrame."""

    @abstractmethod
    def _fetch(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query; return its rows as tuples."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """Open a transaction; yield a cursor (``execute``/``executemany``); commit or roll back."""

    @abstractmethod
    def _append_readings(self, cur: Any, readings: ReadingBatch) -> int:
        """Bulk-append readings through ``cur``; return the number of rows."""

    @abstractmethod
    def _insert_messages(self, cur: Any, batch: VerifiedBatch) -> None:
        """Bulk-insert the batch's accepted messages through ``cur``."""

    @abstractmethod
    def _insert_frames(self, cur: Any, batch: VerifiedBatch) -> None:
        """Bulk-insert the batch's archived signed frames through ``cur``."""

    @abstractmethod
    def _insert_devices(self, rows: pd.DataFrame) -> None:
        """Insert new ``devices`` rows (columns as :meth:`_devices_rows`) in one transaction."""

    @abstractmethod
    def _latest_sql(self, where: str) -> str:
        """Return the latest-value query (device_id, quantity, ts, value) for ``where``."""

    @abstractmethod
    def _time_param(self, ms: int) -> Any:
        """Return the query parameter for a time given in ms since epoch (fits ``_TIME_PH``)."""

    def _times(self, df: pd.DataFrame, col: str) -> pd.DataFrame:
        """Return ``df`` with ``col`` as datetime64 (the driver's answer is kept by default)."""
        return df

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # ------------------------------------------------------------------ writing
    def sync_devices(self, registry: DeviceRegistry) -> int:
        """Add the registry's devices not yet in the store; returns how many were added.

        Raises ``ValidationError`` if the store was written with a different registry.
        """
        p = self.prefix
        ((stored, last),) = self._fetch(
            f"SELECT count(*), (SELECT device_id FROM {p}_devices ORDER BY idx DESC LIMIT 1) "
            f"FROM {p}_devices"
        )
        self._check_new_devices(registry, int(stored), last)
        rows = self._devices_rows(registry, int(stored))
        if len(rows):
            self._insert_devices(rows)
            self._device_index = None
        return len(rows)

    def ingest_readings(self, readings: ReadingBatch) -> int:
        """Append readings (already verified) in one transaction; returns rows written."""
        with self._transaction() as cur:
            return self._append_readings(cur, readings)

    def write(self, batch: VerifiedBatch) -> int:
        """Store a verified batch: the accepted part in one transaction, then the rejections.

        Readings, messages, records and frames are stored all or none. The rejection rows
        follow in a transaction of their own, so that they can never take valid data down
        with them; if they fail anyway the error is logged and the data stays stored.
        Returns the number of readings written.
        """
        with self._transaction() as cur:
            n = self._append_readings(cur, batch.readings)
            if len(batch.messages):
                self._insert_messages(cur, batch)
            if batch.records:
                cur.executemany(self._insert_sql("records"), self._record_rows(batch))
            if batch.frames:
                self._insert_frames(cur, batch)
        if batch.rejections:
            self.write_rejections(batch.rejections)
        return n

    def write_rejections(self, rejections: Sequence[Rejection]) -> bool:
        """Store rejection rows (text escaped again, to be safe) in one transaction.

        Returns False, after logging the error, if the store refused them (the caller's data
        is not affected); True when stored.
        """
        try:
            with self._transaction() as cur:
                cur.executemany(self._insert_sql("rejections"), rejection_rows(rejections))
        except Exception as exc:  # diagnostics only: never lose or block data over them
            log.error(
                "could not store %d telemetry rejection rows: %s",
                len(rejections),
                wire_text(exc, 300),
            )
            return False
        return True

    # ------------------------------------------------------------------ queries
    def latest(
        self,
        device_ids: Sequence[str] | None = None,
        quantity: str | None = None,
        since: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return the latest reading per (device, quantity): columns device_id, quantity, ts, value.

        ``since`` restricts the answer to readings at or after that time (and lets DuckDB
        skip older row groups); devices with nothing newer are left out.
        """
        where, params = self._where(device_ids, quantity, since, None)
        df = self._query_df(self._latest_sql(where), params)
        return self._name_quantities(self._times(df, "ts"))

    def range(
        self,
        device_ids: str | Sequence[str] | None,
        start: TimeLike,
        end: TimeLike,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Return readings with start <= ts < end: columns ts, device_id, quantity, value, by ts."""
        where, params = self._where(device_ids, quantity, start, end)
        p = self.prefix
        df = self._query_df(
            f"""SELECT r.ts, d.device_id, r.quantity, r.value
                FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                ORDER BY r.ts, d.device_id, r.quantity""",
            params,
        )
        return self._name_quantities(self._times(df, "ts"))

    def aggregate_by_feeder(
        self,
        quantity: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        bucket_s: int = 900,
    ) -> pd.DataFrame:
        """Return per feeder and time bucket: feeder, bucket, sum, mean, min, max, n_devices, n_readings.

        Each device is first averaged within the bucket; ``sum`` adds those means over the
        feeder's devices (e.g. the feeder's load in kW), ``mean`` averages them, ``min`` and
        ``max`` are over the raw readings. Values are in the quantity's unit.
        """
        b = _bucket(bucket_s)
        where, params = self._where(None, quantity, start, end)
        p = self.prefix
        df = self._query_df(
            f"""WITH per_dev AS (
                  SELECT d.feeder, r.device,
                         {self._BUCKET_FN}(INTERVAL '{b} seconds', r.ts, TIMESTAMP '1970-01-01') AS bucket,
                         avg(r.value) AS v, min(r.value) AS mn, max(r.value) AS mx, count(*) AS n
                  FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                  GROUP BY 1, 2, 3)
                SELECT feeder, bucket, sum(v) AS sum, avg(v) AS mean, min(mn) AS min, max(mx) AS max,
                       count(*) AS n_devices, sum(n)::BIGINT AS n_readings
                FROM per_dev GROUP BY 1, 2 ORDER BY 1, 2""",
            params,
        )
        for c in ("sum", "mean", "min", "max"):
            df[c] = df[c].astype(np.float64)
        return self._times(df, "bucket")

    # ------------------------------------------------------------------ retention
    def downsample(self, before: TimeLike, bucket_s: int = 3600) -> dict[str, Any]:
        """Compact raw readings older than ``before`` into ``readings_agg``, in one transaction.

        ``before`` is floored to a multiple of ``bucket_s`` seconds from 1970-01-01 (the
        effective ``cut``), so a bucket is never split between raw and aggregate rows. Every
        raw reading with ``ts < cut`` is aggregated per (device, quantity, bucket) (the same
        bucketing as :meth:`aggregate_by_feeder`) into ``n, mean, min, max, first, last``
        (with ``first_ts``/``last_ts``), written to ``readings_agg`` and deleted from
        ``readings``. A second call with the same ``before`` finds nothing left to do.

        Late readings for an already-compacted bucket are merged into its aggregate row
        (same device, quantity, bucket and ``bucket_s``): ``n`` summed, ``mean`` weighted by
        ``n``, ``min``/``max`` combined, ``first``/``last`` the values at the earliest /
        latest time. Use one ``bucket_s`` per store: rows of different widths are kept apart.

        Returns ``{"raw_removed", "agg_rows_written" (inserted + merged), "agg_rows_merged",
        "cut" (pd.Timestamp), "bucket_s"}``. Raises ``ValidationError`` naming ``bucket_s`` or
        ``before``; on any error the transaction rolls back and nothing stored changes.
        """
        b = _bucket(bucket_s)
        before_ms = to_ms(before, "before")
        cut_ms = before_ms // (b * 1000) * (b * 1000)
        try:
            cut = pd.Timestamp(cut_ms, unit="ms")
        except (ValueError, OverflowError) as exc:
            raise ValidationError(
                issues=[Issue("query", "before", f"time out of range: {exc}", value=before)]
            ) from None
        cut_sql = f"TIMESTAMP '{cut.strftime('%Y-%m-%d %H:%M:%S')}'"
        p, tmp = self.prefix, "_gp_agg_new"
        key = " AND ".join(f"a.{c} = x.{c}" for c in ("device", "quantity", "bucket", "bucket_s"))
        cols = ", ".join(c.split()[0] for c in TABLE_COLUMNS["readings_agg"].split(","))
        with self._transaction() as cur:
            if self._SNAPSHOT_SQL:  # aggregate and delete the same rows, whatever commits meanwhile
                cur.execute(self._SNAPSHOT_SQL)
            cur.execute(
                f"""CREATE TEMP TABLE {tmp} AS
                    SELECT device, quantity,
                           {self._BUCKET_FN}(INTERVAL '{b} seconds', ts, TIMESTAMP '1970-01-01')
                             AS bucket,
                           CAST({b} AS INTEGER) AS bucket_s, CAST(count(*) AS INTEGER) AS n,
                           avg(value) AS mean, min(value) AS min, max(value) AS max,
                           {self._FIRST_SQL} AS first, {self._LAST_SQL} AS last,
                           min(ts) AS first_ts, max(ts) AS last_ts
                    FROM {p}_readings WHERE ts < {cut_sql} GROUP BY 1, 2, 3"""
            )
            ((n_rows, n_raw),) = cur.execute(
                f"SELECT count(*), coalesce(sum(n), 0) FROM {tmp}"
            ).fetchall()
            ((n_merged,),) = cur.execute(
                f"SELECT count(*) FROM {tmp} x JOIN {p}_readings_agg a ON {key}"
            ).fetchall()
            if n_merged:
                cur.execute(
                    f"""UPDATE {p}_readings_agg AS a SET
                          n = a.n + x.n,
                          mean = (a.mean * a.n + x.mean * x.n) / (a.n + x.n),
                          min = least(a.min, x.min), max = greatest(a.max, x.max),
                          first = CASE WHEN x.first_ts < a.first_ts THEN x.first ELSE a.first END,
                          last = CASE WHEN x.last_ts >= a.last_ts THEN x.last ELSE a.last END,
                          first_ts = least(a.first_ts, x.first_ts),
                          last_ts = greatest(a.last_ts, x.last_ts)
                        FROM {tmp} x WHERE {key}"""
                )
            cur.execute(
                f"""INSERT INTO {p}_readings_agg ({cols}) SELECT {cols} FROM {tmp} x
                    WHERE NOT EXISTS (SELECT 1 FROM {p}_readings_agg a WHERE {key})"""
            )
            cur.execute(f"DELETE FROM {p}_readings WHERE ts < {cut_sql}")
            cur.execute(f"DROP TABLE {tmp}")
        return {
            "raw_removed": int(n_raw),
            "agg_rows_written": int(n_rows),
            "agg_rows_merged": int(n_merged),
            "cut": cut,
            "bucket_s": b,
        }

    def range_agg(
        self,
        device_ids: str | Sequence[str] | None,
        start: TimeLike,
        end: TimeLike,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Return compacted rows with start <= bucket < end, by bucket (see :meth:`downsample`).

        Columns: bucket, device_id, quantity, bucket_s, n, mean, min, max, first, last,
        first_ts, last_ts.
        """
        where, params = self._where(device_ids, quantity, start, end, time_col="r.bucket")
        p = self.prefix
        df = self._query_df(
            f"""SELECT r.bucket, d.device_id, r.quantity, r.bucket_s, r.n, r.mean, r.min, r.max,
                       r.first, r.last, r.first_ts, r.last_ts
                FROM {p}_readings_agg r JOIN {p}_devices d ON d.idx = r.device {where}
                ORDER BY r.bucket, d.device_id, r.quantity, r.bucket_s""",
            params,
        )
        for c in ("bucket_s", "n"):
            df[c] = df[c].astype(np.int64)
        for c in ("mean", "min", "max", "first", "last"):
            df[c] = df[c].astype(np.float64)
        for c in ("bucket", "first_ts", "last_ts"):
            df = self._times(df, c)
        return self._name_quantities(df)

    def last_sent(self) -> pd.Timestamp | None:
        """Return the send time of the newest accepted message (UTC, no zone), None if none."""
        ((t,),) = self._fetch(f"SELECT max(sent) FROM {self.prefix}_messages")
        return None if t is None else pd.Timestamp(t)

    def last_seqs(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (device indices, highest accepted seq) from the messages table (int64 arrays)."""
        df = self._query_df(
            f"SELECT device, max(seq) AS seq FROM {self.prefix}_messages GROUP BY device", []
        )
        return df["device"].to_numpy(np.int64), df["seq"].to_numpy(np.int64)

    def signed_frames(
        self, device_id: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[bytes]:
        """Return the archived signed frames sent by ``device_id`` (by send time), in seq order.

        Only frames ingested with ``keep_frames=True`` are archived; check them with
        :meth:`Verifier.audit` and decode them with :func:`gridpilot.telemetry.decode_readings`.
        """
        (dev,) = self._device_indices([device_id]) or [0]
        conds, params = self._time_conds("sent", start, end)
        rows = self._fetch(
            f"SELECT frame FROM {self.prefix}_frames "
            f"WHERE {' AND '.join([f'device = {self._PH}', *conds])} ORDER BY seq",
            [dev, *params],
        )
        return [bytes(r[0]) for r in rows]

    def stats(self) -> TelemetryStats:
        """Return the store's :class:`TelemetryStats` (accepted, refused by reason, devices, span)."""
        p = self.prefix
        ((n_read, n_dev_rep, t0, t1),) = self._fetch(
            f"SELECT count(*), count(DISTINCT device), min(ts), max(ts) FROM {p}_readings"
        )
        by_kind = dict(self._fetch(f"SELECT kind, count(*) FROM {p}_messages GROUP BY 1"))
        by_reason = dict(
            self._fetch(
                f"SELECT reason, sum(coalesce(n, 1)) FROM {p}_rejections GROUP BY 1 ORDER BY 2 DESC"
            )
        )
        ((n_rec,),) = self._fetch(f"SELECT count(*) FROM {p}_records")
        ((n_dev,),) = self._fetch(f"SELECT count(*) FROM {p}_devices")
        ((n_agg, n_agg_read),) = self._fetch(
            f"SELECT count(*), coalesce(sum(n), 0) FROM {p}_readings_agg"
        )
        return TelemetryStats(
            accepted_messages=int(sum(by_kind.values())),
            readings=int(n_read),
            records=int(n_rec),
            rejected=int(sum(by_reason.values())),
            rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
            devices_registered=int(n_dev),
            devices_reporting=int(n_dev_rep),
            first_ts=None if t0 is None else pd.Timestamp(t0),
            last_ts=None if t1 is None else pd.Timestamp(t1),
            accepted_by_kind={str(k): int(v) for k, v in by_kind.items()},
            aggregate_rows=int(n_agg),
            aggregated_readings=int(n_agg_read),
        )

    def rejections(self, limit: int = 100) -> pd.DataFrame:
        """Return the latest rejection rows: received, reason, device_id, seq, detail, n.

        ``n`` is how many refused messages the row stands for (1 but for summaries).
        """
        df = self._query_df(
            f"SELECT * FROM {self.prefix}_rejections ORDER BY received DESC LIMIT {self._PH}",
            [int(limit)],
        )
        return self._times(df, "received")

    def records(self, kind: str | None = None) -> pd.DataFrame:
        """Return accepted events/commands/acks: device_id, kind, seq, ts, name, payload (dict)."""
        p = self.prefix
        cond, params = (f"WHERE e.kind = {self._PH}", [kind]) if kind else ("", [])
        df = self._query_df(
            f"""SELECT d.device_id, e.kind, e.seq, e.ts, e.name, e.payload FROM {p}_records e
                JOIN {p}_devices d ON d.idx = e.device {cond} ORDER BY e.ts, e.seq""",
            params,
        )
        df["payload"] = [json.loads(x) for x in df["payload"]]
        return self._times(df, "ts")

    def drop(self) -> None:
        """Drop this prefix's tables (tests and resets), in one transaction."""
        with self._transaction() as cur:
            for t in self._TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {self.prefix}_{t}")

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _insert_sql(self, table: str, suffix: str = "") -> str:
        """``INSERT INTO <prefix>_<table> VALUES (?, ...)`` with one placeholder per column."""
        n = len(TABLE_COLUMNS[table].split(","))
        values = ", ".join([self._PH] * n)
        return f"INSERT INTO {self.prefix}_{table} VALUES ({values}){suffix}"

    def _seed_quantities(self, cur: Any) -> None:
        """Insert the quantity catalogue (codes already there are kept)."""
        cur.executemany(
            self._insert_sql("quantities", " ON CONFLICT DO NOTHING"),
            [(q.code, q.name, q.unit) for q in QUANTITIES],
        )

    def _time_conds(
        self, col: str, start: TimeLike | None, end: TimeLike | None
    ) -> tuple[list[str], list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if start is not None:
            conds.append(f"{col} >= {self._TIME_PH}")
            params.append(self._time_param(to_ms(start)))
        if end is not None:
            conds.append(f"{col} < {self._TIME_PH}")
            params.append(self._time_param(to_ms(end)))
        return conds, params

    def _where(
        self,
        device_ids: str | Sequence[str] | None,
        quantity: str | None,
        start: TimeLike | None,
        end: TimeLike | None,
        time_col: str = "r.ts",
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        devs = self._device_indices(device_ids)
        if devs is not None:
            conds.append(self._DEVICES_IN)
            params.append(devs)
        q = self._quantity_code(quantity)
        if q is not None:
            conds.append(f"r.quantity = {self._PH}")
            params.append(q)
        time_conds, time_params = self._time_conds(time_col, start, end)
        conds += time_conds
        params += time_params
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    @staticmethod
    def _quantity_code(quantity: str | None) -> int | None:
        if quantity is None:
            return None
        q = QUANTITY_BY_NAME.get(quantity)
        if q is None:
            raise UnknownComponentError(
                "quantity", quantity, f"known: {', '.join(sorted(QUANTITY_BY_NAME))}"
            )
        return q.code

    def _device_indices(self, device_ids: str | Sequence[str] | None) -> list[int] | None:
        if device_ids is None:
            return None
        ids = [device_ids] if isinstance(device_ids, str) else list(device_ids)
        index = self._load_device_index()
        out = []
        for d in ids:
            if d not in index:
                self._device_index = None
                index = self._load_device_index()
                if d not in index:
                    raise UnknownComponentError("device", d, "not in this store's devices table")
            out.append(index[d])
        return out

    def _load_device_index(self) -> dict[str, int]:
        if self._device_index is None:
            df = self._query_df(f"SELECT idx, device_id FROM {self.prefix}_devices", [])
            self._device_index = dict(zip(df["device_id"], df["idx"].astype(int), strict=True))
        return self._device_index

    @staticmethod
    def _name_quantities(df: pd.DataFrame) -> pd.DataFrame:
        if "quantity" in df:
            df["quantity"] = _QUANTITY_NAMES[df["quantity"].to_numpy(np.int64)]
        return df

    _check_new_devices = staticmethod(check_new_devices)
    _devices_rows = staticmethod(devices_rows)
    _message_rows = staticmethod(message_rows)
    _record_rows = staticmethod(record_rows)


__all__ = [
    "TABLE_COLUMNS",
    "TelemetryStats",
    "TelemetryStore",
    "TimeLike",
    "create_tables_sql",
    "to_ms",
]
