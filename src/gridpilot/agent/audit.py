"""The audit log: every action, proposal, refusal and command, with what, why, on which data, the result.

Embedded SQLite (a file, or memory), append-only and hash-chained: each row stores the SHA-256
of its content and of the previous row, so :meth:`AuditLog.verify` finds any row changed or
removed after the fact.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

_COLUMNS = (
    "id",
    "ts_ms",
    "sim_time",
    "actor",
    "kind",
    "what",
    "why",
    "data",
    "verdict",
    "result",
    "status",
    "prev_hash",
    "hash",
)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return str(x)


def dumps(x: Any) -> str:
    """Canonical JSON (sorted keys, NaN as null) of plain or numpy values."""
    return json.dumps(_jsonable(x), sort_keys=True, separators=(",", ":"))


class AuditLog:
    """Append-only, hash-chained audit log in SQLite.

    ``AuditLog()`` keeps it in memory; ``AuditLog("audit.sqlite")`` in a file (created if
    missing, appended to if present). Thread-safe.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, ts_ms INTEGER, sim_time TEXT, actor TEXT,"
            " kind TEXT, what TEXT, why TEXT, data TEXT, verdict TEXT, result TEXT, status TEXT,"
            " prev_hash TEXT, hash TEXT)"
        )
        self._db.commit()

    def _last_hash(self) -> str:
        row = self._db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else "0" * 64

    @staticmethod
    def _digest(prev: str, fields: tuple[Any, ...]) -> str:
        return hashlib.sha256((prev + "|" + "|".join(str(f) for f in fields)).encode()).hexdigest()

    def record(
        self,
        *,
        actor: str,
        kind: str,
        what: Any,
        why: str = "",
        data: Any = None,
        verdict: Any = None,
        result: Any = None,
        status: str = "done",
        sim_time: str = "",
    ) -> int:
        """Append one entry; returns its id.

        ``kind``: ``action``, ``proposal``, ``refused``, ``command``, ``auth``, ``event``,
        ``approval``; ``what``: the plan or command; ``why``: the reason in words; ``data``: the
        measurements/forecast/simulation it was based on; ``verdict``: the safety guard's answer;
        ``result``: what happened; ``status``: ``done``, ``refused``, ``pending``, ``approved``,
        ``rejected``, ``failed``.
        """
        fields = (
            int(time.time() * 1000),
            str(sim_time),
            actor,
            kind,
            dumps(what),
            why,
            dumps(data),
            dumps(verdict),
            dumps(result),
            status,
        )
        with self._lock:
            prev = self._last_hash()
            h = self._digest(prev, fields)
            cur = self._db.execute(
                "INSERT INTO audit (ts_ms, sim_time, actor, kind, what, why, data, verdict, result, status,"
                " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*fields, prev, h),
            )
            self._db.commit()
            return int(cur.lastrowid or 0)

    def entries(
        self, limit: int = 100, kind: str | None = None, actor: str | None = None, since_id: int = 0
    ) -> list[dict[str, Any]]:
        """Latest entries first (decoded JSON fields), optionally filtered."""
        q = "SELECT * FROM audit WHERE id > ?"
        args: list[Any] = [since_id]
        if kind:
            q += " AND kind = ?"
            args.append(kind)
        if actor:
            q += " AND actor = ?"
            args.append(actor)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        with self._lock:
            rows = self._db.execute(q, args).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_COLUMNS, r, strict=True))
            for k in ("what", "data", "verdict", "result"):
                d[k] = json.loads(d[k]) if d[k] else None
            out.append(d)
        return out

    def count(self, kind: str | None = None) -> int:
        """Number of entries (of one kind)."""
        with self._lock:
            if kind:
                return int(
                    self._db.execute(
                        "SELECT COUNT(*) FROM audit WHERE kind = ?", (kind,)
                    ).fetchone()[0]
                )
            return int(self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def verify(self) -> tuple[bool, int | None]:
        """Check the hash chain; returns (ok, id of the first bad row or None)."""
        prev = "0" * 64
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY id").fetchall()
        for r in rows:
            d = dict(zip(_COLUMNS, r, strict=True))
            fields = tuple(d[k] for k in _COLUMNS[1:11])
            if d["prev_hash"] != prev or self._digest(prev, fields) != d["hash"]:
                return False, int(d["id"])
            prev = d["hash"]
        return True, None

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
