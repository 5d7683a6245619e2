"""Telemetry stores: DuckDB embedded (default) and PostgreSQL (psycopg 3, binary COPY).

Both have the same interface (:class:`TelemetryStore`). Tables, all named ``<prefix>_*``:

* ``readings(device INTEGER, quantity SMALLINT, ts TIMESTAMP, value DOUBLE)``: one row per
  reading (long form); ``device`` is the registry index, ``quantity`` the catalogue code.
* ``devices(idx, device_id, kind, feeder, bus, gateway)``: the registry's mapping, used by
  the per-feeder aggregates and to answer in device ids.
* ``quantities(quantity, name, unit)``: the catalogue, for people reading the tables in SQL.
* ``messages(device, kind, seq, key_id, sent, received, n_readings)``: every accepted message.
* ``records(device, kind, seq, ts, name, payload)``: accepted events, commands and acks
  (``payload`` is the JSON body).
* ``rejections(received, reason, device_id, seq, detail)``: every refused message and why.

Timestamps are UTC, stored without a time zone.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import GridpilotError, Issue, UnknownComponentError, ValidationError
from gridpilot.telemetry.registry import DeviceRegistry
from gridpilot.telemetry.schema import QUANTITIES, QUANTITY_BY_NAME
from gridpilot.telemetry.verify import KIND_NAMES, ReadingBatch, VerifiedBatch

TimeLike = int | float | str | datetime | pd.Timestamp | np.datetime64
_PREFIX_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_QUANTITY_NAMES = np.array([q.name for q in QUANTITIES], dtype=object)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since the Unix epoch


def to_ms(t: TimeLike) -> int:
    """Return ``t`` (ms since epoch as int, ISO string, datetime, Timestamp) as ms since epoch, UTC."""
    if isinstance(t, int | np.integer):
        return int(t)
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            issues=[Issue("query", "time", f"not a time: {exc}", value=t)]
        ) from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1_000_000)


@dataclass
class TelemetryStats:
    """Counts of a store: what was accepted, refused (by reason), which devices, what time span."""

    accepted_messages: int
    readings: int
    records: int
    rejected: int
    rejected_by_reason: dict[str, int]
    devices_registered: int
    devices_reporting: int
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None
    accepted_by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as a JSON-able dict (times as ISO strings)."""
        return {
            "accepted_messages": self.accepted_messages,
            "accepted_by_kind": self.accepted_by_kind,
            "readings": self.readings,
            "records": self.records,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "devices_registered": self.devices_registered,
            "devices_reporting": self.devices_reporting,
            "first_ts": None if self.first_ts is None else self.first_ts.isoformat(),
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
        }


class TelemetryStore(ABC):
    """The interface both stores implement. Queries answer in device ids and quantity names."""

    prefix: str

    def __init__(self, prefix: str) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValidationError(
                issues=[Issue("store", "prefix", "must match [a-z_][a-z0-9_]{0,40}", value=prefix)]
            )
        self.prefix = prefix
        self._device_index: dict[str, int] | None = None

    # ------------------------------------------------------------------ writing
    @abstractmethod
    def sync_devices(self, registry: DeviceRegistry) -> int:
        """Add the registry's devices not yet in the store; returns how many were added.

        Raises ``ValidationError`` if the store was written with a different registry.
        """

    @abstractmethod
    def ingest_readings(self, readings: ReadingBatch) -> int:
        """Append readings (already verified); returns the number of rows written."""

    @abstractmethod
    def write(self, batch: VerifiedBatch) -> int:
        """Store a verified batch (readings, messages, records, rejections) in one transaction.

        Returns the number of readings written. Either all of it is stored or none.
        """

    # ------------------------------------------------------------------ queries
    @abstractmethod
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

    @abstractmethod
    def range(
        self,
        device_ids: str | Sequence[str] | None,
        start: TimeLike,
        end: TimeLike,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Return readings with start <= ts < end: columns ts, device_id, quantity, value, by ts."""

    @abstractmethod
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

    def last_seqs(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (device indices, highest accepted seq) from the messages table (int64 arrays)."""
        df = self._query_df(
            f"SELECT device, max(seq) AS seq FROM {self.prefix}_messages GROUP BY device", []
        )
        return df["device"].to_numpy(np.int64), df["seq"].to_numpy(np.int64)

    @abstractmethod
    def signed_frames(
        self, device_id: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[bytes]:
        """Return the archived signed frames sent by ``device_id`` (by send time), in seq order.

        Only frames ingested with ``keep_frames=True`` are archived; check them with
        :meth:`Verifier.audit` and decode them with :func:`gridpilot.telemetry.decode_readings`.
        """

    @abstractmethod
    def stats(self) -> TelemetryStats:
        """Return the store's :class:`TelemetryStats`."""

    @abstractmethod
    def rejections(self, limit: int = 100) -> pd.DataFrame:
        """Return the latest refused messages: received, reason, device_id, seq, detail."""

    @abstractmethod
    def records(self, kind: str | None = None) -> pd.DataFrame:
        """Return accepted events/commands/acks: device_id, kind, seq, ts, name, payload (dict)."""

    @abstractmethod
    def drop(self) -> None:
        """Drop this prefix's tables (tests and resets)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
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

    @abstractmethod
    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame: ...

    @staticmethod
    def _name_quantities(df: pd.DataFrame) -> pd.DataFrame:
        if "quantity" in df:
            df["quantity"] = _QUANTITY_NAMES[df["quantity"].to_numpy(np.int64)]
        return df

    @staticmethod
    def _check_new_devices(registry: DeviceRegistry, stored: int, last_id: str | None) -> None:
        if stored > len(registry) or (stored and registry.ids[stored - 1] != last_id):
            raise ValidationError(
                issues=[
                    Issue(
                        "store",
                        "devices",
                        "the store was written with a different device registry "
                        f"({stored} devices stored, last {last_id!r})",
                    )
                ]
            )

    @staticmethod
    def _devices_rows(registry: DeviceRegistry, start: int) -> pd.DataFrame:
        df = registry.frame().iloc[start:]
        return df[["idx", "device_id", "kind", "feeder", "bus", "gateway"]]

    @staticmethod
    def _message_rows(batch: VerifiedBatch) -> pd.DataFrame:
        m = batch.messages
        return pd.DataFrame(
            {
                "device": m.device,
                "kind": np.array(KIND_NAMES, dtype=object)[m.kind.astype(np.int64)],
                "seq": m.seq,
                "key_id": m.key_id,
                "sent": pd.to_datetime(m.sent_ms, unit="ms"),
                "received": pd.to_datetime(m.received_ms, unit="ms"),
                "n_readings": m.n_readings,
            }
        )

    @staticmethod
    def _record_rows(batch: VerifiedBatch) -> list[tuple[Any, ...]]:
        return [
            (
                r.device,
                r.kind,
                r.seq,
                pd.Timestamp(r.ts_ms, unit="ms").to_pydatetime(),
                r.name,
                json.dumps(r.payload),
            )
            for r in batch.records
        ]

    @staticmethod
    def _rejection_rows(batch: VerifiedBatch) -> list[tuple[Any, ...]]:
        return [
            (
                pd.Timestamp(r.received_ms, unit="ms").to_pydatetime(),
                str(r.reason),
                r.device_id,
                r.seq,
                r.detail[:2000],
            )
            for r in batch.rejections
        ]


# ====================================================================== DuckDB
class DuckDBStore(TelemetryStore):
    """Telemetry in DuckDB (embedded, the default). ``path``: a file or ``":memory:"``.

    Readings are appended as Arrow tables (zero-copy from the numpy columns).
    """

    def __init__(self, path: str = ":memory:", *, prefix: str = "tm") -> None:
        import duckdb

        super().__init__(prefix)
        self.path = path
        try:
            self.con = duckdb.connect(path)
        except duckdb.Error as exc:
            raise GridpilotError(f"cannot open DuckDB store {path!r}: {exc}") from None
        p = prefix
        self.con.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {p}_readings (device INTEGER, quantity SMALLINT, ts TIMESTAMP, value DOUBLE);
            CREATE TABLE IF NOT EXISTS {p}_devices (idx INTEGER PRIMARY KEY, device_id VARCHAR, kind VARCHAR,
                feeder VARCHAR, bus BIGINT, gateway VARCHAR);
            CREATE TABLE IF NOT EXISTS {p}_quantities (quantity SMALLINT PRIMARY KEY, name VARCHAR, unit VARCHAR);
            CREATE TABLE IF NOT EXISTS {p}_messages (device INTEGER, kind VARCHAR, seq BIGINT, key_id INTEGER,
                sent TIMESTAMP, received TIMESTAMP, n_readings INTEGER);
            CREATE TABLE IF NOT EXISTS {p}_records (device INTEGER, kind VARCHAR, seq BIGINT, ts TIMESTAMP,
                name VARCHAR, payload VARCHAR);
            CREATE TABLE IF NOT EXISTS {p}_rejections (received TIMESTAMP, reason VARCHAR, device_id VARCHAR,
                seq BIGINT, detail VARCHAR);
            CREATE TABLE IF NOT EXISTS {p}_frames (device INTEGER, seq BIGINT, sent TIMESTAMP, frame BLOB);
            """
        )
        self.con.executemany(
            f"INSERT OR IGNORE INTO {p}_quantities VALUES (?, ?, ?)",
            [(q.code, q.name, q.unit) for q in QUANTITIES],
        )

    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    def sync_devices(self, registry: DeviceRegistry) -> int:
        """Add the registry's devices not yet in the store; returns how many were added."""
        p = self.prefix
        stored, last = self.con.execute(
            f"SELECT count(*), arg_max(device_id, idx) FROM {p}_devices"
        ).fetchall()[0]
        self._check_new_devices(registry, int(stored), last)
        rows = self._devices_rows(registry, int(stored))
        if len(rows):
            self.con.register("_gp_dev", rows)
            try:
                self.con.execute(f"INSERT INTO {p}_devices SELECT * FROM _gp_dev")
            finally:
                self.con.unregister("_gp_dev")
            self._device_index = None
        return len(rows)

    def _append_readings(self, readings: ReadingBatch) -> int:
        import pyarrow as pa

        if not len(readings):
            return 0
        tbl = pa.table(
            {
                "device": pa.array(readings.device, pa.int32()),
                "quantity": pa.array(readings.quantity, pa.int16()),
                "ts": pa.array(readings.ts_ms, pa.timestamp("ms")),
                "value": pa.array(readings.value, pa.float64()),
            }
        )
        self.con.register("_gp_in", tbl)
        try:
            self.con.execute(f"INSERT INTO {self.prefix}_readings SELECT * FROM _gp_in")
        finally:
            self.con.unregister("_gp_in")
        return len(readings)

    def ingest_readings(self, readings: ReadingBatch) -> int:
        """Append readings (already verified) in one statement; returns rows written."""
        return self._append_readings(readings)

    def write(self, batch: VerifiedBatch) -> int:
        """Store a verified batch in one transaction; returns the number of readings written."""
        p = self.prefix
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            n = self._append_readings(batch.readings)
            if len(batch.messages):
                msgs = self._message_rows(batch)
                con.register("_gp_msg", msgs)
                try:
                    con.execute(f"INSERT INTO {p}_messages SELECT * FROM _gp_msg")
                finally:
                    con.unregister("_gp_msg")
            if batch.records:
                con.executemany(
                    f"INSERT INTO {p}_records VALUES (?, ?, ?, ?, ?, ?)", self._record_rows(batch)
                )
            if batch.rejections:
                con.executemany(
                    f"INSERT INTO {p}_rejections VALUES (?, ?, ?, ?, ?)",
                    self._rejection_rows(batch),
                )
            if batch.frames:
                import pyarrow as pa

                m = batch.messages
                tbl = pa.table(
                    {
                        "device": pa.array(m.device, pa.int32()),
                        "seq": pa.array(m.seq, pa.int64()),
                        "sent": pa.array(m.sent_ms, pa.timestamp("ms")),
                        "frame": pa.array(batch.frames, pa.binary()),
                    }
                )
                con.register("_gp_frames", tbl)
                try:
                    con.execute(f"INSERT INTO {p}_frames SELECT * FROM _gp_frames")
                finally:
                    con.unregister("_gp_frames")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return n

    def latest(
        self,
        device_ids: Sequence[str] | None = None,
        quantity: str | None = None,
        since: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return the latest reading per (device, quantity): device_id, quantity, ts, value."""
        where, params = self._where(device_ids, quantity, since, None)
        p = self.prefix
        df = self._query_df(
            f"""SELECT d.device_id, r.quantity, max(r.ts) AS ts, arg_max(r.value, r.ts) AS value
                FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                GROUP BY d.device_id, r.quantity ORDER BY d.device_id, r.quantity""",
            params,
        )
        return self._name_quantities(df)

    def _where(
        self,
        device_ids: str | Sequence[str] | None,
        quantity: str | None,
        start: TimeLike | None,
        end: TimeLike | None,
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        devs = self._device_indices(device_ids)
        if devs is not None:
            conds.append("list_contains(?, r.device)")
            params.append(devs)
        q = self._quantity_code(quantity)
        if q is not None:
            conds.append("r.quantity = ?")
            params.append(q)
        if start is not None:
            conds.append("r.ts >= epoch_ms(?::BIGINT)")
            params.append(to_ms(start))
        if end is not None:
            conds.append("r.ts < epoch_ms(?::BIGINT)")
            params.append(to_ms(end))
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def range(
        self,
        device_ids: str | Sequence[str] | None,
        start: TimeLike,
        end: TimeLike,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Return readings with start <= ts < end: ts, device_id, quantity, value, ordered by ts."""
        where, params = self._where(device_ids, quantity, start, end)
        p = self.prefix
        df = self._query_df(
            f"""SELECT r.ts, d.device_id, r.quantity, r.value
                FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                ORDER BY r.ts, d.device_id, r.quantity""",
            params,
        )
        return self._name_quantities(df)

    def aggregate_by_feeder(
        self,
        quantity: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        bucket_s: int = 900,
    ) -> pd.DataFrame:
        """Per feeder and bucket: feeder, bucket, sum, mean, min, max, n_devices, n_readings."""
        b = _bucket(bucket_s)
        where, params = self._where(None, quantity, start, end)
        p = self.prefix
        return self._query_df(
            f"""WITH per_dev AS (
                  SELECT d.feeder, r.device, time_bucket(INTERVAL '{b} seconds', r.ts, TIMESTAMP '1970-01-01') AS bucket,
                         avg(r.value) AS v, min(r.value) AS mn, max(r.value) AS mx, count(*) AS n
                  FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                  GROUP BY 1, 2, 3)
                SELECT feeder, bucket, sum(v) AS sum, avg(v) AS mean, min(mn) AS min, max(mx) AS max,
                       count(*) AS n_devices, sum(n)::BIGINT AS n_readings
                FROM per_dev GROUP BY 1, 2 ORDER BY 1, 2""",
            params,
        )

    def signed_frames(
        self, device_id: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[bytes]:
        """Return ``device_id``'s archived signed frames (send time in [start, end)), by seq."""
        (dev,) = self._device_indices([device_id]) or [0]
        conds, params = ["device = ?"], [dev]
        if start is not None:
            conds.append("sent >= epoch_ms(?::BIGINT)")
            params.append(to_ms(start))
        if end is not None:
            conds.append("sent < epoch_ms(?::BIGINT)")
            params.append(to_ms(end))
        rows = self.con.execute(
            f"SELECT frame FROM {self.prefix}_frames WHERE {' AND '.join(conds)} ORDER BY seq",
            params,
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def stats(self) -> TelemetryStats:
        """Return the store's counts (accepted, refused by reason, devices, time span)."""
        p = self.prefix
        con = self.con
        n_read, n_dev_rep, t0, t1 = con.execute(
            f"SELECT count(*), count(DISTINCT device), min(ts), max(ts) FROM {p}_readings"
        ).fetchall()[0]
        by_kind = dict(
            con.execute(f"SELECT kind, count(*) FROM {p}_messages GROUP BY 1").fetchall()
        )
        by_reason = dict(
            con.execute(
                f"SELECT reason, count(*) FROM {p}_rejections GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        (n_rec,) = con.execute(f"SELECT count(*) FROM {p}_records").fetchall()[0]
        (n_dev,) = con.execute(f"SELECT count(*) FROM {p}_devices").fetchall()[0]
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
        )

    def rejections(self, limit: int = 100) -> pd.DataFrame:
        """Return the latest refused messages: received, reason, device_id, seq, detail."""
        return self._query_df(
            f"SELECT * FROM {self.prefix}_rejections ORDER BY received DESC LIMIT ?", [int(limit)]
        )

    def records(self, kind: str | None = None) -> pd.DataFrame:
        """Return accepted events/commands/acks: device_id, kind, seq, ts, name, payload (dict)."""
        p = self.prefix
        cond, params = ("WHERE e.kind = ?", [kind]) if kind else ("", [])
        df = self._query_df(
            f"""SELECT d.device_id, e.kind, e.seq, e.ts, e.name, e.payload FROM {p}_records e
                JOIN {p}_devices d ON d.idx = e.device {cond} ORDER BY e.ts, e.seq""",
            params,
        )
        df["payload"] = [json.loads(x) for x in df["payload"]]
        return df

    def drop(self) -> None:
        """Drop this prefix's tables."""
        for t in (
            "readings",
            "devices",
            "quantities",
            "messages",
            "records",
            "rejections",
            "frames",
        ):
            self.con.execute(f"DROP TABLE IF EXISTS {self.prefix}_{t}")

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()


def _bucket(bucket_s: int) -> int:
    b = int(bucket_s)
    if b <= 0 or b != bucket_s:
        raise ValidationError(
            issues=[
                Issue(
                    "query",
                    "bucket_s",
                    "must be a positive whole number of seconds",
                    value=bucket_s,
                )
            ]
        )
    return b


# ====================================================================== PostgreSQL
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


class PostgresStore(TelemetryStore):
    """Telemetry in PostgreSQL via psycopg 3; readings go in with binary ``COPY``.

    ``dsn``: a libpq connection string or URL. An index on (device, quantity, ts) serves the
    latest-value and range queries.
    """

    def __init__(self, dsn: str, *, prefix: str = "tm") -> None:
        import psycopg

        super().__init__(prefix)
        self.dsn = dsn
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise GridpilotError(f"cannot connect to PostgreSQL at {dsn!r}: {exc}") from None
        p = prefix
        with self.conn.transaction():
            self.conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {p}_readings (device INTEGER, quantity SMALLINT,
                    ts TIMESTAMP, value DOUBLE PRECISION);
                CREATE INDEX IF NOT EXISTS {p}_readings_ts ON {p}_readings USING brin (ts);
                CREATE TABLE IF NOT EXISTS {p}_latest (device INTEGER, quantity SMALLINT,
                    ts TIMESTAMP, value DOUBLE PRECISION, PRIMARY KEY (device, quantity));
                CREATE TABLE IF NOT EXISTS {p}_devices (idx INTEGER PRIMARY KEY, device_id TEXT,
                    kind TEXT, feeder TEXT, bus BIGINT, gateway TEXT);
                CREATE TABLE IF NOT EXISTS {p}_quantities (quantity SMALLINT PRIMARY KEY, name TEXT,
                    unit TEXT);
                CREATE TABLE IF NOT EXISTS {p}_messages (device INTEGER, kind TEXT, seq BIGINT,
                    key_id INTEGER, sent TIMESTAMP, received TIMESTAMP, n_readings INTEGER);
                CREATE TABLE IF NOT EXISTS {p}_records (device INTEGER, kind TEXT, seq BIGINT,
                    ts TIMESTAMP, name TEXT, payload TEXT);
                CREATE TABLE IF NOT EXISTS {p}_rejections (received TIMESTAMP, reason TEXT,
                    device_id TEXT, seq BIGINT, detail TEXT);
                CREATE TABLE IF NOT EXISTS {p}_frames (device INTEGER, seq BIGINT, sent TIMESTAMP,
                    frame BYTEA);
                """
            )
            self.conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _gp_latest_in (device INTEGER, quantity SMALLINT,"
                " ts TIMESTAMP, value DOUBLE PRECISION) ON COMMIT DELETE ROWS"
            )
            with self.conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {p}_quantities VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(q.code, q.name, q.unit) for q in QUANTITIES],
                )

    def _query_df(self, sql: str, params: list[Any]) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            cols = [c.name for c in cur.description or []]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def sync_devices(self, registry: DeviceRegistry) -> int:
        """Add the registry's devices not yet in the store; returns how many were added."""
        p = self.prefix
        row = self.conn.execute(
            f"SELECT count(*), (SELECT device_id FROM {p}_devices ORDER BY idx DESC LIMIT 1) FROM {p}_devices"
        ).fetchone()
        stored, last = (int(row[0]), row[1]) if row else (0, None)
        self._check_new_devices(registry, stored, last)
        rows = self._devices_rows(registry, stored)
        if len(rows):
            with (
                self.conn.transaction(),
                self.conn.cursor() as cur,
                cur.copy(
                    f"COPY {p}_devices (idx, device_id, kind, feeder, bus, gateway) FROM STDIN"
                ) as cp,
            ):
                for r in rows.itertuples(index=False):
                    cp.write_row((int(r[0]), r[1], r[2], r[3], int(r[4]), r[5]))
            self._device_index = None
        return len(rows)

    def _copy_readings(self, cur: Any, readings: ReadingBatch) -> int:
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

    def ingest_readings(self, readings: ReadingBatch) -> int:
        """Append readings (already verified) with one binary COPY; returns rows written."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            return self._copy_readings(cur, readings)

    def write(self, batch: VerifiedBatch) -> int:
        """Store a verified batch in one transaction; returns the number of readings written."""
        p = self.prefix
        with self.conn.transaction(), self.conn.cursor() as cur:
            n = self._copy_readings(cur, batch.readings)
            if len(batch.messages):
                m = batch.messages
                kinds = np.array(KIND_NAMES, dtype=object)[m.kind.astype(np.int64)]
                sent = pd.to_datetime(m.sent_ms, unit="ms").to_pydatetime()
                recv = pd.to_datetime(m.received_ms, unit="ms").to_pydatetime()
                with cur.copy(
                    f"COPY {p}_messages (device, kind, seq, key_id, sent, received, n_readings) FROM STDIN"
                ) as cp:
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
            if batch.records:
                cur.executemany(
                    f"INSERT INTO {p}_records VALUES (%s, %s, %s, %s, %s, %s)",
                    self._record_rows(batch),
                )
            if batch.rejections:
                cur.executemany(
                    f"INSERT INTO {p}_rejections VALUES (%s, %s, %s, %s, %s)",
                    self._rejection_rows(batch),
                )
            if batch.frames:
                m = batch.messages
                sent_dt = pd.to_datetime(m.sent_ms, unit="ms").to_pydatetime()
                with cur.copy(f"COPY {p}_frames (device, seq, sent, frame) FROM STDIN") as cp:
                    for i, fr in enumerate(batch.frames):
                        cp.write_row((int(m.device[i]), int(m.seq[i]), sent_dt[i], fr))
        return n

    def _where(
        self,
        device_ids: str | Sequence[str] | None,
        quantity: str | None,
        start: TimeLike | None,
        end: TimeLike | None,
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        devs = self._device_indices(device_ids)
        if devs is not None:
            conds.append("r.device = ANY(%s)")
            params.append(devs)
        q = self._quantity_code(quantity)
        if q is not None:
            conds.append("r.quantity = %s")
            params.append(q)
        if start is not None:
            conds.append("r.ts >= %s")
            params.append(pd.Timestamp(to_ms(start), unit="ms").to_pydatetime())
        if end is not None:
            conds.append("r.ts < %s")
            params.append(pd.Timestamp(to_ms(end), unit="ms").to_pydatetime())
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def latest(
        self,
        device_ids: Sequence[str] | None = None,
        quantity: str | None = None,
        since: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return the latest reading per (device, quantity): device_id, quantity, ts, value."""
        where, params = self._where(device_ids, quantity, since, None)
        p = self.prefix
        df = self._query_df(
            f"""SELECT d.device_id, r.quantity, r.ts, r.value FROM {p}_latest r
                JOIN {p}_devices d ON d.idx = r.device {where} ORDER BY d.device_id, r.quantity""",
            params,
        )
        return self._name_quantities(_pg_times(df, "ts"))

    def range(
        self,
        device_ids: str | Sequence[str] | None,
        start: TimeLike,
        end: TimeLike,
        quantity: str | None = None,
    ) -> pd.DataFrame:
        """Return readings with start <= ts < end: ts, device_id, quantity, value, ordered by ts."""
        where, params = self._where(device_ids, quantity, start, end)
        p = self.prefix
        df = self._query_df(
            f"""SELECT r.ts, d.device_id, r.quantity, r.value
                FROM {p}_readings r JOIN {p}_devices d ON d.idx = r.device {where}
                ORDER BY r.ts, d.device_id, r.quantity""",
            params,
        )
        return self._name_quantities(_pg_times(df, "ts"))

    def aggregate_by_feeder(
        self,
        quantity: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        bucket_s: int = 900,
    ) -> pd.DataFrame:
        """Per feeder and bucket: feeder, bucket, sum, mean, min, max, n_devices, n_readings."""
        b = _bucket(bucket_s)
        where, params = self._where(None, quantity, start, end)
        p = self.prefix
        df = self._query_df(
            f"""WITH per_dev AS (
                  SELECT d.feeder, r.device,
                         date_bin(INTERVAL '{b} seconds', r.ts, TIMESTAMP '1970-01-01') AS bucket,
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
        return _pg_times(df, "bucket")

    def signed_frames(
        self, device_id: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[bytes]:
        """Return ``device_id``'s archived signed frames (send time in [start, end)), by seq."""
        (dev,) = self._device_indices([device_id]) or [0]
        conds, params = ["device = %s"], [dev]
        if start is not None:
            conds.append("sent >= %s")
            params.append(pd.Timestamp(to_ms(start), unit="ms").to_pydatetime())
        if end is not None:
            conds.append("sent < %s")
            params.append(pd.Timestamp(to_ms(end), unit="ms").to_pydatetime())
        rows = self.conn.execute(
            f"SELECT frame FROM {self.prefix}_frames WHERE {' AND '.join(conds)} ORDER BY seq",
            params,
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def stats(self) -> TelemetryStats:
        """Return the store's counts (accepted, refused by reason, devices, time span)."""
        p = self.prefix
        c = self.conn
        row = c.execute(
            f"SELECT count(*), count(DISTINCT device), min(ts), max(ts) FROM {p}_readings"
        ).fetchone()
        assert row is not None
        n_read, n_dev_rep, t0, t1 = row
        by_kind = dict(c.execute(f"SELECT kind, count(*) FROM {p}_messages GROUP BY 1").fetchall())
        by_reason = dict(
            c.execute(
                f"SELECT reason, count(*) FROM {p}_rejections GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        n_rec = c.execute(f"SELECT count(*) FROM {p}_records").fetchone()
        n_dev = c.execute(f"SELECT count(*) FROM {p}_devices").fetchone()
        return TelemetryStats(
            accepted_messages=int(sum(by_kind.values())),
            readings=int(n_read),
            records=int(n_rec[0] if n_rec else 0),
            rejected=int(sum(by_reason.values())),
            rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
            devices_registered=int(n_dev[0] if n_dev else 0),
            devices_reporting=int(n_dev_rep),
            first_ts=None if t0 is None else pd.Timestamp(t0),
            last_ts=None if t1 is None else pd.Timestamp(t1),
            accepted_by_kind={str(k): int(v) for k, v in by_kind.items()},
        )

    def rejections(self, limit: int = 100) -> pd.DataFrame:
        """Return the latest refused messages: received, reason, device_id, seq, detail."""
        return _pg_times(
            self._query_df(
                f"SELECT * FROM {self.prefix}_rejections ORDER BY received DESC LIMIT %s",
                [int(limit)],
            ),
            "received",
        )

    def records(self, kind: str | None = None) -> pd.DataFrame:
        """Return accepted events/commands/acks: device_id, kind, seq, ts, name, payload (dict)."""
        p = self.prefix
        cond, params = ("WHERE e.kind = %s", [kind]) if kind else ("", [])
        df = self._query_df(
            f"""SELECT d.device_id, e.kind, e.seq, e.ts, e.name, e.payload FROM {p}_records e
                JOIN {p}_devices d ON d.idx = e.device {cond} ORDER BY e.ts, e.seq""",
            params,
        )
        df["payload"] = [json.loads(x) for x in df["payload"]]
        return _pg_times(df, "ts")

    def drop(self) -> None:
        """Drop this prefix's tables."""
        with self.conn.transaction():
            for t in (
                "readings",
                "latest",
                "devices",
                "quantities",
                "messages",
                "records",
                "rejections",
                "frames",
            ):
                self.conn.execute(f"DROP TABLE IF EXISTS {self.prefix}_{t}")

    def close(self) -> None:
        """Close the PostgreSQL connection."""
        self.conn.close()


def _copy_binary(cur: Any, table: str, data: bytes) -> None:
    with cur.copy(f"COPY {table} (device, quantity, ts, value) FROM STDIN (FORMAT BINARY)") as cp:
        step = 8 << 20
        for off in range(0, len(data), step):
            cp.write(data[off : off + step])


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


def _pg_times(df: pd.DataFrame, col: str) -> pd.DataFrame:
    df[col] = pd.to_datetime(df[col]) if len(df) else pd.Series([], dtype="datetime64[us]")
    return df


def open_store(url: str = "duckdb::memory:", *, prefix: str = "tm") -> TelemetryStore:
    """Open a store from a URL and return it.

    ``duckdb::memory:`` (default), ``duckdb:<path>`` or a path ending in ``.duckdb`` open
    a :class:`DuckDBStore`; ``postgresql://...`` or ``postgres://...`` a :class:`PostgresStore`.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, prefix=prefix)
    if url.startswith("duckdb:"):
        path = url[len("duckdb:") :]
        if path.startswith("//"):
            path = path[2:]
        return DuckDBStore(path or ":memory:", prefix=prefix)
    if url.endswith(".duckdb") or url == ":memory:":
        return DuckDBStore(url, prefix=prefix)
    raise ValidationError(
        issues=[
            Issue(
                "store",
                "url",
                "expected duckdb::memory:, duckdb:<path>, <path>.duckdb or postgresql://...",
                value=url,
            )
        ]
    )
