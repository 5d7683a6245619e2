"""Ledger records: transactions, their hashes, Merkle trees, block headers, inclusion proofs.

The exact byte constructions (so that an outside verifier can be built from the docs, see
docs/market.md, "Ledger hashes"):

* tx hash = ``SHA-256("GPTX1|" | kind (ASCII) | "|" | signer (32) | len(signature) (1 byte) |
  signature | body)``;
* Merkle node = ``SHA-256(0x01 | left | right)``; the tx hashes are the leaves; an odd last
  node moves up unchanged; the root of an empty block is 32 zero bytes;
* block hash = ``SHA-256("GPBLOCK1|" | pack(">Q32s32sqI32s", height, prev_hash, merkle_root,
  time_ns, n_tx, operator))``, signed (Ed25519) by the operator.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridpilot.errors import Issue, ValidationError
from gridpilot.market.crypto import KeyPair, canonical_json, sha256, verify_signature

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

    def check(self, operator_public_key: bytes | None = None) -> str:
        """What is wrong with the proof ("" when nothing): the header's operator key is not
        ``operator_public_key`` (which a participant should take from a trusted source), the
        audit path does not lead to the header's Merkle root, the header hash is wrong, or the
        operator's signature on it is not valid. Without ``operator_public_key`` the header's
        own key is used, so a valid proof then says nothing about *who* signed."""
        h = self.header
        if operator_public_key is not None and operator_public_key != h.operator:
            return (
                f"block signed by operator key {h.operator.hex()[:16]}..., not the pinned "
                f"{operator_public_key.hex()[:16]}..."
            )
        if root_from_path(self.tx_hash, self.path) != h.merkle_root:
            return "the audit path does not lead to the header's Merkle root"
        if h.compute_hash() != h.hash:
            return "header hash mismatch (a header field was changed)"
        if not verify_signature(h.operator, h.signature, h.hash):
            return "bad operator signature on the block header"
        return ""

    def verify(self, operator_public_key: bytes | None = None) -> bool:
        """True when :meth:`check` finds nothing wrong."""
        return not self.check(operator_public_key)

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
        """Inverse of :meth:`to_dict`; raises :class:`ValidationError` naming the field for
        a hash that is not 32 bytes of hex or a path side other than "L"/"R"."""
        path = []
        for k, (side, sib) in enumerate(d["path"]):
            if side not in ("L", "R"):
                raise ValidationError(
                    issues=[Issue("proof", f"path[{k}] side", 'must be "L" or "R"', value=side)]
                )
            path.append((side, _hash32(sib, f"path[{k}] sibling")))
        return cls(
            _hash32(d["tx_hash"], "tx_hash"),
            int(d["index"]),
            path,
            BlockHeader.from_dict(d["header"]),
        )


def _hash32(text: Any, what: str) -> bytes:
    """32 bytes from hex ``text``; raises :class:`ValidationError` naming ``what``."""
    try:
        out = bytes.fromhex(str(text))
    except ValueError:
        out = b""
    if len(out) != 32:
        raise ValidationError(
            issues=[Issue("proof", what, "must be 64 hex characters", value=str(text)[:80])]
        )
    return out
