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
from pathlib import Path

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
from gridpilot.market.ledger_verify import (
    TRUST_FILE,
    TRUST_PINNED,
    VerifyOptions,
    VerifyReport,
    verify_chain,
)


# --- the ledger ---------------------------------------------------------------------------
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
            for _, txs, hashes in self.backend.iter_blocks():
                self._note_registrations(txs)
                self._seen.update(hashes)

    @classmethod
    def open(cls, path: str | Path, operator: KeyPair | None = None) -> Ledger:
        """A ledger in the file ``path`` (created when missing and ``operator`` given):
        DuckDB for a ``.duckdb`` suffix, SQLite (the default) otherwise. Without ``operator``
        the file is opened read-only: verifying, listing and proving never change it."""
        p = Path(path)
        if operator is None and not p.exists():
            raise UnknownComponentError("ledger file", str(path), "no such file")
        ro = operator is None  # without the operator's key nothing can be appended: read only
        backend: LedgerBackend = (
            DuckDBBackend(p, read_only=ro) if p.suffix == ".duckdb" else SQLiteBackend(p, ro)
        )
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
        operator_key: bytes | None = None,
        allow_empty: bool = False,
    ) -> VerifyReport:
        """Check the whole chain; returns a :class:`VerifyReport` naming the first bad block.

        Per block: stored height, every tx hash recomputed against the stored one, tx kinds,
        authorisation (registered signers, operator-only unsigned txs), Ed25519 signatures
        (skipped with ``check_signatures=False``), Merkle root, header hash, the operator's
        signature and the link to the previous block. ``operator_key`` pins the key every
        block must carry (take it from a trusted source); without it the ledger's own key
        pair is used when it was opened with one, else the key stored in the file, which
        proves nothing against a rewrite of the whole chain (``report.trust`` says which).
        ``expect_head`` (hex) also catches a chain cut short or rewritten at the end, which
        nothing inside the chain can reveal. A chain with no blocks fails unless
        ``allow_empty``: it may have been wiped. Raises :class:`ValidationError` for a
        malformed ``expect_head`` or ``operator_key``.
        """
        if operator_key is not None:
            if len(operator_key) != 32:
                raise ValidationError(
                    issues=[
                        Issue("ledger", "operator_key", "must be 32 bytes", value=len(operator_key))
                    ]
                )
            trust = TRUST_PINNED
        elif self.operator is not None:
            operator_key, trust = self.operator.public_key, "pinned: the ledger's own key pair"
        else:
            trust = TRUST_FILE
        opts = VerifyOptions(
            workers, check_signatures, expect_head, operator_key, trust, allow_empty
        )
        return verify_chain(self.backend, opts)

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

    def tx_hashes(self, kind: str | None = None) -> Iterator[tuple[int, int, str, bytes]]:
        """``(height, index, kind, stored hash)`` of every transaction in chain order,
        optionally of one kind: the ids ``proof`` takes."""
        for hdr, txs, hashes in self.backend.iter_blocks():
            for i, (t, h) in enumerate(zip(txs, hashes, strict=False)):
                if kind is None or t.kind == kind:
                    yield hdr.height, i, t.kind, h

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
