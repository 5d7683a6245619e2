"""Telemetry stores: DuckDB embedded (default) and PostgreSQL (psycopg 3, binary COPY).

Both have the same interface (:class:`TelemetryStore`, with the shared schema, checks and
queries, in :mod:`gridpilot.telemetry.store_base`); each backend keeps its own write path:
:class:`DuckDBStore` (:mod:`store_duckdb`, Arrow appends) and :class:`PostgresStore`
(:mod:`store_postgres`, binary ``COPY`` and a ``latest`` table). :func:`open_store` opens
either from a URL.
"""

from __future__ import annotations

from gridpilot.errors import Issue, ValidationError
from gridpilot.telemetry.store_base import TelemetryStats, TelemetryStore, TimeLike, to_ms
from gridpilot.telemetry.store_duckdb import DuckDBStore
from gridpilot.telemetry.store_postgres import PostgresStore, latest_rows, pg_copy_binary

__all__ = [
    "DuckDBStore",
    "PostgresStore",
    "TelemetryStats",
    "TelemetryStore",
    "TimeLike",
    "latest_rows",
    "open_store",
    "pg_copy_binary",
    "to_ms",
]


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
