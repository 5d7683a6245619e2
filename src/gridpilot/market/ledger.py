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

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import AuthError, Issue, UnknownComponentError, ValidationError
from gridpilot.market.crypto import KeyPair, verify_many
from gridpilot.market.ledger_records import (
    DOMAIN,
    TX_KINDS,
    ZERO_HASH,
    BlockHeader,
    InclusionProof,
    Transaction,
    merkle_path,
    merkle_root,
    root_from_path,
    tx_hash,
)
from gridpilot.market.ledger_store import (
    DuckDBBackend,
    LedgerBackend,
    MemoryBackend,
    SQLiteBackend,
)


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


__all__ = [
    "DOMAIN",
    "TX_KINDS",
    "ZERO_HASH",
    "BlockHeader",
    "DuckDBBackend",
    "InclusionProof",
    "Ledger",
    "LedgerBackend",
    "MemoryBackend",
    "SQLiteBackend",
    "Transaction",
    "VerifyReport",
    "merkle_path",
    "merkle_root",
    "root_from_path",
    "tx_hash",
]
