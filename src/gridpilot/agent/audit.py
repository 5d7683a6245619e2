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

from gridpilot.agent.acting import with_role

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

    def record(  # noqa: PLR0913
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
        data = with_role(data)  # the caller's role, when the API is acting for one
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


_OTHERS = ("(others)", "", "*", "*")  # the overflow window's key: clients past ``max_open``


def _clip(s: str, n: int) -> str:
    """``s`` without control characters, at most ``n`` characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(s)[:n])


class RefusalLog:
    """Refused attempts (at command endpoints), audited in aggregate.

    The first refusal of a client (by ``actor``) at a route in a window of ``window_s`` seconds
    is written to ``audit`` at once; the others of that window are counted and written as one
    summary row (``"N more refused attempts from X to POST /path in 10 s"``) when the window
    has ended and the log is next touched (:meth:`refuse`, :meth:`flush`). At most ``max_open``
    windows are kept; refusals from further clients share one ``(others)`` window, so memory
    and rows per window stay bounded however many attempts come. Every row's
    ``what["refused"]`` is the number of attempts it stands for. Thread-safe; ``clock`` (s) is
    for tests.
    """

    def __init__(
        self,
        audit: AuditLog,
        window_s: float = 10.0,
        max_open: int = 1024,
        clock: Any = time.monotonic,
    ) -> None:
        self.audit, self.window_s, self.max_open, self.clock = audit, window_s, max_open, clock
        self._open: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def refuse(
        self, *, client: str, actor: str, method: str, route: str, path: str, why: str
    ) -> bool:
        """Count one refused attempt; returns True if it was written to the audit at once."""
        now = float(self.clock())
        key = (_clip(client, 64), _clip(actor, 80), _clip(method, 10), _clip(route, 200))
        with self._lock:
            self._flush(now, everything=False)
            w = self._open.get(key)
            if w is None and len(self._open) >= self.max_open:
                key = _OTHERS
                w = self._open.setdefault(key, {"start": now, "count": 0, "why": ""})
            if w is not None:
                w["count"] += 1
                w["why"] = _clip(why, 300)
                return False
            self._open[key] = {"start": now, "count": 0, "why": ""}
            self.audit.record(
                actor=key[1],
                kind="auth",
                what={"method": key[2], "path": _clip(path, 200), "client": key[0], "refused": 1},
                why=_clip(why, 300),
                status="refused",
            )
            return True

    def flush(self, everything: bool = False) -> int:
        """Write the summary rows of the windows that have ended (all, if ``everything``);
        returns the number of rows written."""
        with self._lock:
            return self._flush(float(self.clock()), everything)

    def open_windows(self) -> int:
        """Windows held in memory now."""
        return len(self._open)

    def _flush(self, now: float, everything: bool) -> int:
        written = 0
        for key in list(self._open):  # in opening order: stop at the first still open
            w = self._open[key]
            if not everything and now - w["start"] < self.window_s:
                break
            del self._open[key]
            if w["count"]:
                self._summary(key, w["count"], w["why"])
                written += 1
        return written

    def _summary(self, key: tuple[str, str, str, str], n: int, why: str) -> None:
        client, actor, method, route = key
        self.audit.record(
            actor=actor or "unknown",
            kind="auth",
            what={
                "method": method,
                "path": route,
                "client": client,
                "refused": n,
                "window_s": self.window_s,
            },
            why=f"{n} {'' if key == _OTHERS else 'more '}refused attempts from {client} to "
            f"{method} {route} in {self.window_s:g} s (last: {why})",
            status="refused",
        )
