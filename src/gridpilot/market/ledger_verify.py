"""Verification of a whole ledger chain (behind :meth:`gridpilot.market.ledger.Ledger.verify`).

Trust: the operator key that every block must be signed with comes from the caller
(``operator_key``, "pinned": from a trusted source) or, when none is pinned, from the ledger
file itself. The second proves only that the file is consistent: an operator (or anyone
with write access) who rewrites the whole chain with another key and stores that key
passes. :class:`VerifyReport` says which of the two it was (``trust``).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.market.crypto import verify_many
from gridpilot.market.ledger_records import (
    TX_KINDS,
    ZERO_HASH,
    BlockHeader,
    Transaction,
    merkle_root,
    tx_hash,
)
from gridpilot.market.ledger_store import LedgerBackend

log = logging.getLogger(__name__)

TRUST_PINNED = "pinned"
TRUST_FILE = "not pinned: the operator key stored in the ledger file itself"


@dataclass(frozen=True)
class VerifyOptions:
    """What :func:`verify_chain` checks: ``operator_key`` (32 bytes) pins the key every block
    must be signed with and ``trust`` says where it came from; ``expect_head`` (64 hex) the
    published head hash; ``allow_empty`` accepts a chain with no blocks."""

    workers: int | None = None
    check_signatures: bool = True
    expect_head: str | None = None
    operator_key: bytes | None = None
    trust: str = TRUST_PINNED
    allow_empty: bool = False


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`Ledger.verify`: ``ok``; ``first_bad_block`` (a block that exists;
    None when ok or when the problem is not in a block: no blocks, no key) and ``reason``;
    counts and timing (``seconds``); ``operator`` (hex) the key the blocks were checked
    against and ``trust`` where it came from (pinned, or only the file's own)."""

    ok: bool
    blocks: int
    txs: int
    first_bad_block: int | None
    reason: str
    seconds: float
    head_hash: str
    operator: str = ""
    trust: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def parse_hash(text: str, what: str, n_bytes: int = 32) -> bytes:
    """``text`` (hex, any case, surrounding blanks ignored) as ``n_bytes`` bytes; raises
    :class:`ValidationError` naming ``what`` and the value otherwise."""
    try:
        out = bytes.fromhex(text.strip())
    except (ValueError, AttributeError):
        out = b""
    if len(out) != n_bytes:
        raise ValidationError(
            issues=[
                Issue(
                    "ledger",
                    what,
                    f"must be {n_bytes} bytes ({2 * n_bytes} hex characters)",
                    value=str(text)[:80],
                )
            ]
        )
    return out


@dataclass
class _Chain:
    """Running state of one verification pass."""

    op: bytes
    check_signatures: bool
    registered: set[bytes] = field(default_factory=set)
    seen: set[bytes] = field(default_factory=set)
    bad: dict[int, str] = field(default_factory=dict)
    prev: bytes = ZERO_HASH
    sig_keys: list[bytes] = field(default_factory=list)  # signatures checked in one batch
    sig_sigs: list[bytes] = field(default_factory=list)
    sig_msgs: list[bytes] = field(default_factory=list)
    sig_block: list[int] = field(default_factory=list)

    def fail(self, pos: int, reason: str) -> None:
        self.bad.setdefault(pos, reason)

    def want_signature(self, pos: int, key: bytes, sig: bytes, msg: bytes) -> None:
        if self.check_signatures:
            self.sig_keys.append(key)
            self.sig_sigs.append(sig)
            self.sig_msgs.append(msg)
            self.sig_block.append(pos)

    def tx(self, pos: int, i: int, t: Transaction, stored: bytes | None) -> bytes:
        """Check transaction ``i`` of block ``pos``; returns its recomputed hash."""
        try:
            h = tx_hash(t.kind, t.signer, t.signature, t.body)
        except (UnicodeEncodeError, ValueError, TypeError):
            self.fail(pos, f"transaction {i} unreadable")
            return b""
        if h in self.seen:
            self.fail(pos, f"transaction {i} replays an earlier transaction")
        self.seen.add(h)
        if stored is not None and h != stored:
            self.fail(pos, f"transaction {i} hash mismatch (stored {stored.hex()[:16]}...)")
        if t.kind not in TX_KINDS:
            self.fail(pos, f"transaction {i} has unknown kind {t.kind!r}")
        if not t.signature:
            if t.signer != self.op:
                self.fail(pos, f"transaction {i} unsigned and not by the operator")
        else:
            if t.signer != self.op and t.kind != "register" and t.signer not in self.registered:
                self.fail(pos, f"transaction {i} signer not registered")
            self.want_signature(
                pos, t.signer, t.signature, Transaction.signing_bytes(t.kind, t.body)
            )
        if t.kind == "register" and t.signer == self.op:
            try:
                self.registered.add(bytes.fromhex(t.payload()["public_key"]))
            except (ValueError, KeyError, TypeError):
                self.fail(pos, f"transaction {i} registration unreadable")
        return h

    def block(
        self, pos: int, hdr: BlockHeader, txs: Sequence[Transaction], stored: Sequence[bytes]
    ) -> None:
        """Check block ``pos`` (everything but the signatures, which are batched)."""
        if hdr.height != pos:
            self.fail(pos, f"stored height {hdr.height} at position {pos}")
        if hdr.operator != self.op:
            self.fail(
                pos,
                f"block operator key {hdr.operator.hex()[:16]}... is not the trusted "
                f"operator key {self.op.hex()[:16]}...",
            )
        if hdr.n_tx != len(txs) or len(stored) != len(txs):
            self.fail(pos, f"header says {hdr.n_tx} transactions, {len(txs)} stored")
        hashes = [
            self.tx(pos, i, t, stored[i] if i < len(stored) else None) for i, t in enumerate(txs)
        ]
        if merkle_root(hashes) != hdr.merkle_root:
            self.fail(pos, "Merkle root mismatch")
        try:
            digest = hdr.compute_hash()
        except struct.error:
            self.fail(pos, "header unreadable (a field out of range)")
            digest = b""
        if digest != hdr.hash:
            self.fail(pos, "header hash mismatch")
        if hdr.prev_hash != self.prev:
            self.fail(pos, "previous-hash link broken")
        self.want_signature(pos, hdr.operator, hdr.signature, hdr.hash)
        self.prev = hdr.hash

    def check_signatures_batch(self, workers: int | None) -> None:
        keys, sigs, msgs, where = self.sig_keys, self.sig_sigs, self.sig_msgs, self.sig_block
        if not keys:
            return
        good = verify_many(keys, sigs, msgs, workers)
        for j in np.flatnonzero(~good):
            self.fail(where[j], "bad signature (transaction or block)")


def _trusted_key(backend: LedgerBackend, opts: VerifyOptions) -> tuple[bytes | None, str, str]:
    """(key, trust, problem): the key blocks must carry, where it came from, and a problem
    with the file's stored key ("" when none)."""
    stored = backend.get_meta("operator")
    if opts.operator_key is not None:
        pinned = opts.operator_key
        if stored is not None and stored != pinned.hex():
            return (
                pinned,
                opts.trust,
                (
                    f"the file's stored operator key {stored[:16]}... is not the pinned "
                    f"{pinned.hex()[:16]}..."
                ),
            )
        return pinned, opts.trust, ""
    if stored is None:
        return None, TRUST_FILE, "ledger has no operator key stored and none is pinned"
    try:
        return parse_hash(stored, "stored operator key"), TRUST_FILE, ""
    except ValidationError as exc:
        return None, TRUST_FILE, str(exc)


def verify_chain(backend: LedgerBackend, opts: VerifyOptions) -> VerifyReport:
    """Check the whole chain in ``backend``; returns a :class:`VerifyReport` naming the first
    bad block (see :meth:`gridpilot.market.ledger.Ledger.verify`)."""
    t0 = time.perf_counter()
    expect = None if opts.expect_head is None else parse_hash(opts.expect_head, "expect_head")
    op, trust, problem = _trusted_key(backend, opts)
    if op is None:
        return VerifyReport(False, 0, 0, None, problem, time.perf_counter() - t0, "", "", trust)
    if trust == TRUST_FILE:
        log.info("ledger verified against its own stored operator key (none pinned)")
    chain = _Chain(op, opts.check_signatures)
    n_blocks = n_txs = 0
    for pos, (hdr, txs, stored) in enumerate(backend.iter_blocks()):
        n_blocks += 1
        n_txs += len(txs)
        try:
            chain.block(pos, hdr, txs, stored)
        except (TypeError, ValueError, AttributeError, struct.error) as exc:  # odd stored types
            chain.fail(pos, f"block unreadable ({type(exc).__name__}: {exc})")
            chain.prev = hdr.hash if isinstance(hdr.hash, bytes) else b""
    chain.check_signatures_batch(opts.workers)
    head = chain.prev.hex() if n_blocks else ""
    if expect is not None and head != expect.hex() and not chain.bad and n_blocks:
        chain.fail(
            n_blocks - 1,
            f"head block {n_blocks - 1} ({head[:16]}...) is not the expected head "
            f"{expect.hex()[:16]}...: the chain was rewritten or cut short",
        )
    if not problem and n_blocks == 0 and (expect is not None or not opts.allow_empty):
        problem = "no blocks: nothing was verified (an empty and a wiped ledger look the same)"
        if expect is not None:  # a published head cannot be in an empty chain
            problem += f"; expected head {expect.hex()[:16]}..."
    dt = time.perf_counter() - t0
    args = (n_blocks, n_txs)
    if chain.bad:
        first = min(chain.bad)
        reason = chain.bad[first] + (f"; also {problem}" if problem else "")
        return VerifyReport(False, *args, first, reason, dt, head, op.hex(), trust)
    if problem:
        return VerifyReport(False, *args, None, problem, dt, head, op.hex(), trust)
    return VerifyReport(True, *args, None, "", dt, head, op.hex(), trust)
