"""An append-only ledger of Ed25519-signed transactions in hash-chained blocks.

* A :class:`Transaction` is ``kind`` + canonical JSON ``body`` + the signer's public key +
  an Ed25519 signature over ``DOMAIN | kind | body``. Its hash (the tx id) is SHA-256 over
  all four. Transactions the market operator itself issues (trades, settlements, payments)
  may carry an empty signature: they are then signed *as a batch* by the operator's
  signature on the block header, whose Merkle root commits to every transaction in it.
  Orders and registrations of participants always carry their own signature.
* A block header (height, previous block hash, Merkle root, time, tx count) is hashed and
  the hash signed by the operator. The Merkle tree is RFC 6962 style (the domain-separated
  tx hashes are the leaves, node ``H(0x01|l|r)``, an odd last node moves up unchanged).
* :func:`Ledger.verify` recomputes every tx hash, signature, Merkle root, header hash,
  operator signature and chain link and names the first bad block.
* :class:`InclusionProof` lets a participant check alone, with only the operator's public
  key, that a transaction is in a block.

Storage sits behind :class:`LedgerBackend` (``MemoryBackend``; ``SQLiteBackend``, the
embedded default; ``DuckDBBackend`` for ``.duckdb`` files). An EVM chain can be a backend later: see docs/market.md.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gridpilot.errors import AuthError, Issue, UnknownComponentError, ValidationError
from gridpilot.market.crypto import KeyPair, canonical_json, sha256, verify_many, verify_signature

DOMAIN = b"gridpilot-ledger-v1|"
TX_KINDS = ("register", "order", "trade", "contract", "meter", "settlement", "payment", "note")
_HEADER = struct.Struct(">Q32s32sqI32s")  # height, prev, merkle root, time ns, n_tx, operator key
ZERO_HASH = b"\x00" * 32


# --- transactions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Transaction:
    """One ledger entry. ``body`` is canonical JSON bytes; ``signature`` empty = batch-signed
    by the operator through the block signature."""

    kind: str
    body: bytes
    signer: bytes
    signature: bytes = b""

    @staticmethod
    def signing_bytes(kind: str, body: bytes) -> bytes:
        """The exact bytes a signer signs."""
        return DOMAIN + kind.encode("ascii") + b"|" + body

    @classmethod
    def create(
        cls, kind: str, payload: dict[str, Any], key: KeyPair, sign: bool = True
    ) -> Transaction:
        """A transaction of ``payload`` by ``key`` (signed unless ``sign`` is False)."""
        if kind not in TX_KINDS:
            raise ValidationError(
                f"transaction kind {kind!r} unknown; known: {', '.join(TX_KINDS)}"
            )
        body = canonical_json(payload)
        sig = key.sign(cls.signing_bytes(kind, body)) if sign else b""
        return cls(kind, body, key.public_key, sig)

    @property
    def hash(self) -> bytes:
        """The transaction id: SHA-256 of kind, signer, signature and body (32 bytes)."""
        return tx_hash(self.kind, self.signer, self.signature, self.body)

    def payload(self) -> dict[str, Any]:
        """The decoded body."""
        out: dict[str, Any] = json.loads(self.body)
        return out


def tx_hash(kind: str, signer: bytes, signature: bytes, body: bytes) -> bytes:
    """SHA-256 id of a transaction given its stored fields."""
    return hashlib.sha256(
        b"".join(
            (
                b"GPTX1|",
                kind.encode("ascii"),
                b"|",
                signer,
                bytes((len(signature),)),
                signature,
                body,
            )
        )
    ).digest()


# --- Merkle trees -------------------------------------------------------------------------
def _leaf(h: bytes) -> bytes:
    # transaction hashes are already domain-separated (prefix "GPTX1|", never the 0x01 of an
    # inner node), so they serve as the leaves directly: no second-preimage confusion
    return h


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle root (32 bytes) over transaction hashes; the zero hash for an empty block."""
    if not hashes:
        return ZERO_HASH
    level = [_leaf(h) for h in hashes]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_path(hashes: Sequence[bytes], index: int) -> list[tuple[str, bytes]]:
    """Audit path of leaf ``index``: a list of ``(side, sibling)`` from the leaf up, side
    ``"L"`` when the sibling is on the left."""
    level = [_leaf(h) for h in hashes]
    path: list[tuple[str, bytes]] = []
    i = index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            path.append(("L" if sib < i else "R", level[sib]))
        nxt = [_node(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, i = nxt, i // 2
    return path


def root_from_path(tx: bytes, path: Sequence[tuple[str, bytes]]) -> bytes:
    """The Merkle root implied by a transaction hash and its audit path."""
    h = _leaf(tx)
    for side, sib in path:
        h = _node(sib, h) if side == "L" else _node(h, sib)
    return h


# --- blocks -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockHeader:
    """A block header; ``hash`` is SHA-256 of the packed header, ``signature`` the
    operator's Ed25519 signature of that hash."""

    height: int
    prev_hash: bytes
    merkle_root: bytes
    time_ns: int
    n_tx: int
    operator: bytes
    hash: bytes = b""
    signature: bytes = b""

    def packed(self) -> bytes:
        """The bytes that are hashed."""
        return _HEADER.pack(
            self.height, self.prev_hash, self.merkle_root, self.time_ns, self.n_tx, self.operator
        )

    def compute_hash(self) -> bytes:
        """SHA-256 of :meth:`packed` (32 bytes)."""
        return sha256(b"GPBLOCK1|" + self.packed())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (hex for bytes)."""
        return {
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "merkle_root": self.merkle_root.hex(),
            "time_ns": self.time_ns,
            "n_tx": self.n_tx,
            "operator": self.operator.hex(),
            "hash": self.hash.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockHeader:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["height"]),
            bytes.fromhex(d["prev_hash"]),
            bytes.fromhex(d["merkle_root"]),
            int(d["time_ns"]),
            int(d["n_tx"]),
            bytes.fromhex(d["operator"]),
            bytes.fromhex(d["hash"]),
            bytes.fromhex(d["signature"]),
        )


@dataclass(frozen=True)
class InclusionProof:
    """Everything a participant needs to check that a transaction is in the ledger: the
    transaction's hash, its Merkle audit path and the signed block header."""

    tx_hash: bytes
    index: int
    path: list[tuple[str, bytes]]
    header: BlockHeader

    def verify(self, operator_public_key: bytes | None = None) -> bool:
        """True when the path leads to the header's Merkle root, the header hash is right and
        the operator's signature on it is valid (against ``operator_public_key`` when given,
        which a participant should take from a trusted source, else the header's own key)."""
        h = self.header
        if operator_public_key is not None and operator_public_key != h.operator:
            return False
        if root_from_path(self.tx_hash, self.path) != h.merkle_root:
            return False
        if h.compute_hash() != h.hash:
            return False
        return verify_signature(h.operator, h.signature, h.hash)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tx_hash": self.tx_hash.hex(),
            "index": self.index,
            "path": [[s, p.hex()] for s, p in self.path],
            "header": self.header.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InclusionProof:
        """Inverse of :meth:`to_dict`."""
        return cls(
            bytes.fromhex(d["tx_hash"]),
            int(d["index"]),
            [(str(s), bytes.fromhex(p)) for s, p in d["path"]],
            BlockHeader.from_dict(d["header"]),
        )


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
        self.headers.append(header)
        self.txs.append(list(txs))
        self.hashes.append(list(hashes))
        for i, h in enumerate(hashes):
            self._where[h] = (header.height, i)

    def head(self) -> BlockHeader | None:
        return self.headers[-1] if self.headers else None

    def iter_blocks(self) -> Iterator[tuple[BlockHeader, list[Transaction], list[bytes]]]:
        yield from zip(self.headers, self.txs, self.hashes, strict=True)

    def block(self, height: int) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        if not 0 <= height < len(self.headers):
            raise UnknownComponentError("block", height)
        return self.headers[height], self.txs[height], self.hashes[height]

    def locate(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._where.get(tx_hash)

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    def close(self) -> None:
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
            int(row[0]),
            bytes(row[1]),
            bytes(row[2]),
            int(row[3]),
            int(row[4]),
            bytes(row[5]),
            bytes(row[6]),
            bytes(row[7]),
        )

    def _block(self, row: tuple[Any, ...]) -> tuple[BlockHeader, list[Transaction], list[bytes]]:
        """The block of a ``blocks`` row, with its transactions (by index) and their hashes."""
        rows = self.con.execute(
            "SELECT hash, kind, signer, signature, body FROM txs WHERE height = ? ORDER BY idx",
            [row[0]],
        ).fetchall()
        return (
            self._header(row),
            [Transaction(str(r[1]), bytes(r[4]), bytes(r[2]), bytes(r[3])) for r in rows],
            [bytes(r[0]) for r in rows],
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
        return None if row is None else str(row[0])

    def close(self) -> None:
        self.con.close()


class SQLiteBackend(_SQLBackend):
    """Blocks in one SQLite file (the embedded default); ``":memory:"`` for a temporary one."""

    def __init__(self, path: str | Path) -> None:
        self.path = self._prepare_path(path)
        self.con = sqlite3.connect(self.path)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(_SCHEMA)
        self.con.commit()

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
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

    def __init__(self, path: str | Path) -> None:
        import duckdb

        self.path = self._prepare_path(path)
        self.con = duckdb.connect(self.path)
        for stmt in _DUCK_SCHEMA:
            self.con.execute(stmt)

    def append(
        self, header: BlockHeader, txs: Sequence[Transaction], hashes: Sequence[bytes]
    ) -> None:
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
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])


# --- the ledger ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`Ledger.verify`: ``ok``; ``first_bad_block`` (None when ok) and
    ``reason``; counts and timing (``seconds``)."""

    ok: bool
    blocks: int
    txs: int
    first_bad_block: int | None
    reason: str
    seconds: float
    head_hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class Ledger:
    """Append-only signed blocks on a :class:`LedgerBackend`.

    ``operator``: the key pair that signs block headers (needed to append; a read-only
    ledger opened for verification needs only the stored operator public key).
    """

    def __init__(
        self, backend: LedgerBackend | None = None, operator: KeyPair | None = None
    ) -> None:
        self.backend: LedgerBackend = backend if backend is not None else MemoryBackend()
        self.operator = operator
        stored = self.backend.get_meta("operator")
        if operator is not None:
            if stored is None:
                self.backend.set_meta("operator", operator.public_key.hex())
            elif stored != operator.public_key.hex():
                raise AuthError(
                    f"ledger belongs to operator {stored[:16]}..., not {operator.public_key.hex()[:16]}..."
                )
        self._registered: set[bytes] = set()
        self._seen: set[bytes] = set()  # tx hashes in the chain: a replayed transaction is refused
        self._head = self.backend.head()
        if self._head is not None and operator is not None:
            for _, txs, stored in self.backend.iter_blocks():
                self._note_registrations(txs)
                self._seen.update(stored)

    @classmethod
    def open(cls, path: str | Path, operator: KeyPair | None = None) -> Ledger:
        """A ledger in the file ``path`` (created when missing and ``operator`` given):
        DuckDB for a ``.duckdb`` suffix, SQLite (the default) otherwise."""
        p = Path(path)
        if operator is None and not p.exists():
            raise UnknownComponentError("ledger file", str(path), "no such file")
        backend: LedgerBackend = DuckDBBackend(p) if p.suffix == ".duckdb" else SQLiteBackend(p)
        return cls(backend, operator)

    @property
    def operator_key(self) -> bytes:
        """The operator's public key (32 bytes)."""
        if self.operator is not None:
            return self.operator.public_key
        stored = self.backend.get_meta("operator")
        if stored is None:
            raise AuthError("ledger has no operator key stored")
        return bytes.fromhex(stored)

    @property
    def height(self) -> int:
        """Number of blocks."""
        return 0 if self._head is None else self._head.height + 1

    def _note_registrations(self, txs: Sequence[Transaction]) -> None:
        for t in txs:
            if t.kind == "register":
                self._registered.add(bytes.fromhex(t.payload()["public_key"]))

    def _check(
        self,
        txs: Sequence[Transaction],
        op: bytes,
        registered: set[bytes],
        workers: int | None,
        check_signatures: bool = True,
    ) -> tuple[list[bytes], np.ndarray, list[str]]:
        """Hashes, per-tx validity and the reasons of invalid ones."""
        hashes = [tx_hash(t.kind, t.signer, t.signature, t.body) for t in txs]
        ok = np.ones(len(txs), bool)
        why = [""] * len(txs)
        signed = [i for i, t in enumerate(txs) if t.signature]
        for i, t in enumerate(txs):
            if t.kind not in TX_KINDS:
                ok[i], why[i] = False, f"unknown kind {t.kind!r}"
            elif not t.signature and t.signer != op:
                ok[i], why[i] = False, "unsigned transaction not issued by the operator"
            elif (
                t.signature
                and t.signer != op
                and t.kind != "register"
                and t.signer not in registered
            ):
                ok[i], why[i] = False, "signer is not a registered participant"
        if signed and check_signatures:
            good = verify_many(
                [txs[i].signer for i in signed],
                [txs[i].signature for i in signed],
                [Transaction.signing_bytes(txs[i].kind, txs[i].body) for i in signed],
                workers,
            )
            for j in np.flatnonzero(~good):
                ok[signed[j]], why[signed[j]] = False, "bad signature"
        return hashes, ok, why

    def append_block(
        self,
        txs: Sequence[Transaction],
        time_ns: int | None = None,
        workers: int | None = None,
        check_signatures: bool = True,
    ) -> BlockHeader:
        """Check, seal and store one block; returns its header.

        Every signed transaction's signature is verified, unsigned ones must come from the
        operator, and participants' transactions need an earlier (or same-block) registration
        by the operator. Raises :class:`AuthError` naming the first bad transaction (and
        stores nothing) otherwise. ``check_signatures=False`` skips the Ed25519 checks for a
        caller that has just verified them itself (the market at order intake); hashes,
        authorisation and everything :meth:`verify` does still apply.
        """
        if self.operator is None:
            raise AuthError("this ledger was opened read-only (no operator key): cannot append")
        op = self.operator.public_key
        registered = self._registered | {
            bytes.fromhex(t.payload()["public_key"])
            for t in txs
            if t.kind == "register" and t.signer == op
        }
        hashes, ok, why = self._check(txs, op, registered, workers, check_signatures)
        block_seen: set[bytes] = set()
        for i, h_ in enumerate(hashes):
            if h_ in self._seen or h_ in block_seen:
                ok[i], why[i] = False, "replayed: the same transaction is already in the ledger"
            block_seen.add(h_)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise AuthError(
                f"transaction {i} ({txs[i].kind}, {hashes[i].hex()[:16]}...) refused: {why[i]}"
            )
        prev = self._head.hash if self._head is not None else ZERO_HASH
        h = BlockHeader(
            self.height,
            prev,
            merkle_root(hashes),
            time.time_ns() if time_ns is None else int(time_ns),
            len(txs),
            op,
        )
        digest = h.compute_hash()
        h = BlockHeader(
            h.height,
            h.prev_hash,
            h.merkle_root,
            h.time_ns,
            h.n_tx,
            h.operator,
            digest,
            self.operator.sign(digest),
        )
        self.backend.append(h, txs, hashes)
        self._head = h
        self._registered = registered
        self._seen |= block_seen
        return h

    def verify(
        self,
        workers: int | None = None,
        check_signatures: bool = True,
        expect_head: str | None = None,
    ) -> VerifyReport:
        """Check the whole chain; returns a :class:`VerifyReport` naming the first bad block.

        Per block: stored height, every tx hash recomputed against the stored one, tx kinds,
        authorisation (registered signers, operator-only unsigned txs), Ed25519 signatures
        (skipped with ``check_signatures=False``), Merkle root, header hash, the operator's
        signature and the link to the previous block. ``expect_head`` (hex) also catches a
        chain cut short at the end, which nothing inside the chain can reveal.
        """
        t0 = time.perf_counter()
        try:
            op = self.operator_key
        except AuthError as exc:
            return VerifyReport(False, 0, 0, 0, str(exc), time.perf_counter() - t0, "")
        registered: set[bytes] = set()
        seen: set[bytes] = set()
        bad: dict[int, str] = {}
        prev = ZERO_HASH
        n_blocks = n_txs = 0
        sig_keys: list[bytes] = []
        sig_sigs: list[bytes] = []
        sig_msgs: list[bytes] = []
        sig_block: list[int] = []
        hdr_msgs: list[tuple[int, BlockHeader]] = []
        for pos, (hdr, txs, stored) in enumerate(self.backend.iter_blocks()):
            n_blocks += 1
            n_txs += len(txs)

            def fail(reason: str, pos: int = pos) -> None:
                bad.setdefault(pos, reason)

            if hdr.height != pos:
                fail(f"stored height {hdr.height} at position {pos}")
            if hdr.operator != op:
                fail("block operator key differs from the ledger's")
            if hdr.n_tx != len(txs) or len(stored) != len(txs):
                fail(f"header says {hdr.n_tx} transactions, {len(txs)} stored")
            hashes = []
            for i, t in enumerate(txs):
                try:
                    h = tx_hash(t.kind, t.signer, t.signature, t.body)
                except (UnicodeEncodeError, ValueError):
                    fail(f"transaction {i} unreadable")
                    h = b""
                hashes.append(h)
                if h in seen:
                    fail(f"transaction {i} replays an earlier transaction")
                seen.add(h)
                if i < len(stored) and h != stored[i]:
                    fail(f"transaction {i} hash mismatch (stored {stored[i].hex()[:16]}...)")
                if t.kind not in TX_KINDS:
                    fail(f"transaction {i} has unknown kind {t.kind!r}")
                if not t.signature:
                    if t.signer != op:
                        fail(f"transaction {i} unsigned and not by the operator")
                else:
                    if t.signer != op and t.kind != "register" and t.signer not in registered:
                        fail(f"transaction {i} signer not registered")
                    if check_signatures:
                        sig_keys.append(t.signer)
                        sig_sigs.append(t.signature)
                        sig_msgs.append(Transaction.signing_bytes(t.kind, t.body))
                        sig_block.append(pos)
                if t.kind == "register" and t.signer == op:
                    try:
                        registered.add(bytes.fromhex(t.payload()["public_key"]))
                    except (ValueError, KeyError, TypeError):
                        fail(f"transaction {i} registration unreadable")
            if merkle_root(hashes) != hdr.merkle_root:
                fail("Merkle root mismatch")
            digest = hdr.compute_hash()
            if digest != hdr.hash:
                fail("header hash mismatch")
            if hdr.prev_hash != prev:
                fail("previous-hash link broken")
            hdr_msgs.append((pos, hdr))
            prev = hdr.hash
        if check_signatures:
            for pos, hdr in hdr_msgs:
                sig_keys.append(hdr.operator)
                sig_sigs.append(hdr.signature)
                sig_msgs.append(hdr.hash)
                sig_block.append(pos)
            good = verify_many(sig_keys, sig_sigs, sig_msgs, workers)
            for j in np.flatnonzero(~good):
                bad.setdefault(sig_block[j], "bad signature (transaction or block)")
        head = prev.hex() if n_blocks else ""
        if expect_head is not None and head != expect_head.lower() and not bad:
            bad[n_blocks] = (
                f"head {head[:16]}... is not the expected {expect_head[:16]}... (chain cut short?)"
            )
        dt = time.perf_counter() - t0
        if bad:
            first = min(bad)
            return VerifyReport(False, n_blocks, n_txs, first, bad[first], dt, head)
        return VerifyReport(True, n_blocks, n_txs, None, "", dt, head)

    def proof(self, tx: bytes | str) -> InclusionProof:
        """Inclusion proof of transaction ``tx`` (hash bytes or hex)."""
        try:
            h = bytes.fromhex(tx) if isinstance(tx, str) else bytes(tx)
        except ValueError:
            h = b""
        if len(h) != 32:
            raise ValidationError(
                issues=[
                    Issue(
                        "transaction",
                        "hash",
                        "must be 32 bytes (64 hex characters)",
                        value=str(tx)[:80],
                    )
                ]
            )
        where = self.backend.locate(h)
        if where is None:
            raise UnknownComponentError("transaction", h.hex(), "not in this ledger")
        header, _, hashes = self.backend.block(where[0])
        return InclusionProof(h, where[1], merkle_path(hashes, where[1]), header)

    def transactions(self, kind: str | None = None) -> Iterator[tuple[int, Transaction]]:
        """Every stored transaction (height, tx), optionally of one kind."""
        for hdr, txs, _ in self.backend.iter_blocks():
            for t in txs:
                if kind is None or t.kind == kind:
                    yield hdr.height, t

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()
