"""Ledger storage: the :class:`LedgerBackend` protocol and its memory, SQLite and DuckDB
implementations. A backend stores and returns bytes faithfully; all checking lives in
:class:`gridpilot.market.ledger.Ledger`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from gridpilot.errors import UnknownComponentError
from gridpilot.market.ledger_records import BlockHeader, Transaction


# --- storage ------------------------------------------------------------------------------
class LedgerBackend(Protocol):
    """Where blocks live. An implementation stores exactly what it is given and returns it
    byte for byte; all checking happens in :class:`Ledger`. A backend must make
    ``append`` atomic (all of a block or nothing)."""

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
        """Store one block with its transactions and their hashes."""
        ...

    def head(self) -> BlockHeader | None:
        """The last block's header, None when empty."""
        ...

    def iter_blocks(self) -> Iterator[tuple[BlockHeader, list[Transaction], list[bytes]]]:
        """Every block in stored order (by height), with its transactions and stored hashes."""
        ...

    def block(self, height: int) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        """One block by height."""
        ...

    def locate(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a transaction, None when absent."""
        ...

    def get_meta(self, key: str) -> str | None:
        """A stored setting (such as the operator key)."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@dataclass
class MemoryBackend:
    """Blocks in Python lists (tests, simulations without a file)."""

    headers: list[BlockHeader] = field(default_factory=list)
    txs: list[list[Transaction]] = field(default_factory=list)
    hashes: list[list[bytes]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    _where: dict[bytes, tuple[int, int]] = field(default_factory=dict)

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
        """Store block ``header`` with its transactions and their hashes."""
        self.headers.append(header)
        self.txs.append(list(txs))
        self.hashes.append(list(hashes))
        for i, h in enumerate(hashes):
            self._where[h] = (header.height, i)

    def head(self) -> BlockHeader | None:
        """The newest block header, None when the ledger is empty."""
        return self.headers[-1] if self.headers else None

    def iter_blocks(self) -> Iterator[tuple[BlockHeader, list[Transaction], list[bytes]]]:
        """Every block in height order: (header, transactions, transaction hashes)."""
        yield from zip(self.headers, self.txs, self.hashes, strict=True)

    def block(self, height: int) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        """Block ``height``: (header, transactions, hashes); unknown heights raise."""
        if not 0 <= height < len(self.headers):
            raise UnknownComponentError("block", height)
        return self.headers[height], self.txs[height], self.hashes[height]

    def locate(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of transaction ``tx_hash``, None when not stored."""
        return self._where.get(tx_hash)

    def get_meta(self, key: str) -> str | None:
        """The metadata value stored under ``key``, None when absent."""
        return self.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Store metadata ``value`` under ``key`` (replacing an older value)."""
        self.meta[key] = value

    def close(self) -> None:
        """Release the backend (nothing to release in memory)."""
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, prev_hash BLOB NOT NULL,
  merkle_root BLOB NOT NULL, time_ns INTEGER NOT NULL, n_tx INTEGER NOT NULL, operator BLOB NOT NULL,
  hash BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
  kind TEXT NOT NULL, signer BLOB NOT NULL, signature BLOB NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (height, idx));
CREATE INDEX IF NOT EXISTS txs_hash ON txs (hash);
"""


def _blob(v: Any) -> bytes:
    """A stored BLOB as bytes. A value of another type (an edited row: TEXT read through
    ``text_factory=bytes``, a number) gives bytes that differ from any hash or signature, so
    :meth:`~gridpilot.market.ledger.Ledger.verify` names its block instead of failing to read it."""
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    return repr(v).encode("ascii", "backslashreplace")


def _text(v: Any) -> str:
    """A stored TEXT value as str (undecodable bytes replaced, so they never match)."""
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def _int(v: Any) -> int:
    """A stored INTEGER; -1 (never a valid height, count or time of a sealed block) for a
    value of another type, so that verification fails at its block."""
    return v if isinstance(v, int) and not isinstance(v, bool) else -1


class _SQLBackend:
    """What the SQL backends share: the ``blocks``/``txs``/``meta`` queries, whose SQL and
    DB-API calls are the same in SQLite and DuckDB. Subclasses open ``self.con`` and write
    blocks (``append``) and settings (``set_meta``) their own way."""

    con: Any

    @staticmethod
    def _prepare_path(path: str | Path) -> str:
        """Return ``path`` as a string, creating its folder unless it is ``":memory:"``."""
        p = str(path)
        if p != ":memory:":
            Path(p).parent.mkdir(parents=True, exist_ok=True)
        return p

    @staticmethod
    def _header_row(header: BlockHeader) -> list[Any]:
        """The ``blocks`` row of a header, in column order."""
        return [
            header.height,
            header.prev_hash,
            header.merkle_root,
            header.time_ns,
            header.n_tx,
            header.operator,
            header.hash,
            header.signature,
        ]

    @staticmethod
    def _header(row: tuple[Any, ...]) -> BlockHeader:
        return BlockHeader(
            _int(row[0]),
            _blob(row[1]),
            _blob(row[2]),
            _int(row[3]),
            _int(row[4]),
            _blob(row[5]),
            _blob(row[6]),
            _blob(row[7]),
        )

    def _block(self, row: tuple[Any, ...]) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        """The block of a ``blocks`` row, with its transactions (by index) and their hashes."""
        rows = self.con.execute(
            "SELECT hash, kind, signer, signature, body FROM txs WHERE height = ? ORDER BY idx",
            [row[0]],
        ).fetchall()
        return (
            self._header(row),
            [Transaction(_text(r[1]), _blob(r[4]), _blob(r[2]), _blob(r[3])) for r in rows],
            [_blob(r[0]) for r in rows],
        )

    def head(self) -> BlockHeader | None:
        row = self.con.execute("SELECT * FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        return None if row is None else self._header(row)

    def iter_blocks(self) -> Iterator[tuple[BlockHeader, list[Transaction], list[bytes]]]:
        blocks = self.con.execute("SELECT * FROM blocks ORDER BY height").fetchall()
        for row in blocks:
            yield self._block(row)

    def block(self, height: int) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        row = self.con.execute("SELECT * FROM blocks WHERE height = ?", [height]).fetchone()
        if row is None:
            raise UnknownComponentError("block", height)
        return self._block(row)

    def locate(self, tx_hash: bytes) -> tuple[int, int] | None:
        row = self.con.execute("SELECT height, idx FROM txs WHERE hash = ?", [tx_hash]).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else _text(row[0])

    def close(self) -> None:
        self.con.close()


class SQLiteBackend(_SQLBackend):
    """Blocks in one SQLite file (the embedded default); ``":memory:"`` for a temporary one."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.read_only = read_only
        if read_only:  # verification: never write, never switch the journal mode
            self.path = str(path)
            uri = "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
            self.con = sqlite3.connect(uri, uri=True)
            self.con.text_factory = bytes  # an edited TEXT cell need not be valid UTF-8
            return
        self.path = self._prepare_path(path)
        self.con = sqlite3.connect(self.path)
        self.con.text_factory = bytes
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(_SCHEMA)
        self.con.commit()

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
        """Store block ``header`` with its transactions and their hashes."""
        with self.con:  # one transaction: all of the block or nothing
            self.con.execute(
                "INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?)", self._header_row(header)
            )
            self.con.executemany(
                "INSERT INTO txs VALUES (?,?,?,?,?,?,?)",
                [
                    (header.height, i, h, t.kind, t.signer, t.signature, t.body)
                    for i, (t, h) in enumerate(zip(txs, hashes, strict=True))
                ],
            )

    def set_meta(self, key: str, value: str) -> None:
        """Store metadata ``value`` under ``key`` (replacing an older value)."""
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


_DUCK_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS blocks (height BIGINT PRIMARY KEY, prev_hash BLOB NOT NULL, "
    "merkle_root BLOB NOT NULL, time_ns BIGINT NOT NULL, n_tx INTEGER NOT NULL, operator BLOB NOT NULL, "
    "hash BLOB NOT NULL, signature BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS txs (height BIGINT NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
    "kind VARCHAR NOT NULL, signer BLOB NOT NULL, signature BLOB NOT NULL, body BLOB NOT NULL)",
]


class DuckDBBackend(_SQLBackend):
    """Blocks in one DuckDB file (transactions inserted through Arrow, one DB transaction per
    block). Same tables and columns as :class:`SQLiteBackend`."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        import duckdb

        self.read_only = read_only
        if read_only:
            self.path = str(path)
            self.con = duckdb.connect(self.path, read_only=True)
            return
        self.path = self._prepare_path(path)
        self.con = duckdb.connect(self.path)
        for stmt in _DUCK_SCHEMA:
            self.con.execute(stmt)

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
        """Store block ``header`` with its transactions and their hashes."""
        import pyarrow as pa

        n = len(txs)
        tbl = pa.table(
            {
                "height": pa.array([header.height] * n, pa.int64()),
                "idx": pa.array(range(n), pa.int32()),
                "hash": pa.array(list(hashes), pa.binary()),
                "kind": pa.array([t.kind for t in txs], pa.string()),
                "signer": pa.array([t.signer for t in txs], pa.binary()),
                "signature": pa.array([t.signature for t in txs], pa.binary()),
                "body": pa.array([t.body for t in txs], pa.binary()),
            }
        )
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                "INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?)", self._header_row(header)
            )
            self.con.register("_gp_new_txs", tbl)
            self.con.execute("INSERT INTO txs SELECT * FROM _gp_new_txs")
            self.con.unregister("_gp_new_txs")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def set_meta(self, key: str, value: str) -> None:
        """Store metadata ``value`` under ``key`` (replacing an older value)."""
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
