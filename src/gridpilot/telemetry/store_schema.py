"""The telemetry stores' schema (:data:`TABLE_COLUMNS`, :func:`create_tables_sql`), time and
bucket arguments (:func:`to_ms`), and their counts (:class:`TelemetryStats`); see
:mod:`gridpilot.telemetry.store_base`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.telemetry.schema import QUANTITIES

TimeLike: TypeAlias = int | float | str | datetime | pd.Timestamp | np.datetime64
_PREFIX_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_QUANTITY_NAMES = np.array([q.name for q in QUANTITIES], dtype=object)

# Columns of the tables both stores have, in DuckDB's type names (see create_tables_sql).
TABLE_COLUMNS: dict[str, str] = {
    "readings": "device INTEGER, quantity SMALLINT, ts TIMESTAMP, value DOUBLE",
    "readings_agg": "device INTEGER, quantity SMALLINT, bucket TIMESTAMP, bucket_s INTEGER, "
    "n INTEGER, mean DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE, last DOUBLE, "
    "first_ts TIMESTAMP, last_ts TIMESTAMP",
    "devices": "idx INTEGER PRIMARY KEY, device_id VARCHAR, kind VARCHAR, feeder VARCHAR, "
    "bus BIGINT, gateway VARCHAR",
    "quantities": "quantity SMALLINT PRIMARY KEY, name VARCHAR, unit VARCHAR",
    "messages": "device INTEGER, kind VARCHAR, seq BIGINT, key_id INTEGER, sent TIMESTAMP, "
    "received TIMESTAMP, n_readings INTEGER",
    "records": "device INTEGER, kind VARCHAR, seq BIGINT, ts TIMESTAMP, name VARCHAR, "
    "payload VARCHAR",
    "rejections": "received TIMESTAMP, reason VARCHAR, device_id VARCHAR, seq BIGINT, "
    "detail VARCHAR, n INTEGER",
    "frames": "device INTEGER, seq BIGINT, sent TIMESTAMP, frame BLOB",
}


def create_tables_sql(prefix: str, type_names: Mapping[str, str] | None = None) -> str:
    """Return the ``CREATE TABLE IF NOT EXISTS`` statements for :data:`TABLE_COLUMNS`.

    ``type_names`` renames column types for a dialect (e.g. ``{"BLOB": "BYTEA"}``).
    """
    stmts = []
    for table, cols in TABLE_COLUMNS.items():
        for name, renamed in (type_names or {}).items():
            cols = re.sub(rf"\b{name}\b", renamed, cols)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {prefix}_{table} ({cols});")
    # stores made before the rejections' count column (rows stand for one refusal each)
    stmts.append(f"ALTER TABLE {prefix}_rejections ADD COLUMN IF NOT EXISTS n INTEGER DEFAULT 1;")
    return "\n".join(stmts)


def to_ms(t: TimeLike, name: str = "time") -> int:
    """Return ``t`` (ms since epoch as int, ISO string, datetime, Timestamp) as ms since epoch, UTC.

    Raises ``ValidationError`` naming ``name`` (the argument) and the value if ``t`` is not a time.
    """
    if isinstance(t, bool | np.bool_):
        raise ValidationError(issues=[Issue("query", name, "not a time: a bool", value=t)])
    if isinstance(t, int | np.integer):
        return int(t)
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(
            issues=[Issue("query", name, f"not a time: {exc}", value=t)]
        ) from None
    if ts is pd.NaT:
        raise ValidationError(issues=[Issue("query", name, "not a time (NaT/None)", value=t)])
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1_000_000)


def _bucket(bucket_s: int) -> int:
    """``bucket_s`` checked: a positive whole number of seconds (not a bool)."""
    try:
        b = int(bucket_s)
        whole = b > 0 and b == bucket_s and not isinstance(bucket_s, bool | np.bool_)
    except (ValueError, TypeError, OverflowError):
        whole = False
    if not whole:
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
    aggregate_rows: int = 0
    aggregated_readings: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as a JSON-able dict (times as ISO strings)."""
        return {
            "accepted_messages": self.accepted_messages,
            "accepted_by_kind": self.accepted_by_kind,
            "readings": self.readings,
            "aggregate_rows": self.aggregate_rows,
            "aggregated_readings": self.aggregated_readings,
            "records": self.records,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "devices_registered": self.devices_registered,
            "devices_reporting": self.devices_reporting,
            "first_ts": None if self.first_ts is None else self.first_ts.isoformat(),
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
        }
