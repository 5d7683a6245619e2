"""Ed25519 keys, signatures and canonical encodings for the market and its ledger.

Signatures use the ``cryptography`` package (OpenSSL). Measured on the 2-core build machine
(AMD EPYC VM, under contention): sign about 60 µs, verify about 190 µs per signature, and
threads do not help (the call holds the GIL), so :func:`verify_many` spreads large batches
over processes instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridpilot.errors import AuthError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data`` (32 bytes)."""
    return hashlib.sha256(data).digest()


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes of ``obj`` (sorted keys, no spaces, ASCII): the signed form."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair; ``public_key`` is the raw 32-byte public key."""

    private: Ed25519PrivateKey
    public_key: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh random key pair."""
        k = Ed25519PrivateKey.generate()
        return cls(k, k.public_key().public_bytes_raw())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """The key pair of a 32-byte seed (deterministic; for simulations and tests)."""
        if len(seed) != 32:
            raise AuthError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        k = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(k, k.public_key().public_bytes_raw())

    @classmethod
    def from_name(cls, name: str, secret: bytes = b"gridpilot-sim") -> KeyPair:
        """A deterministic key pair derived from a name (simulation only, never for real keys)."""
        return cls.from_seed(sha256(secret + b"/" + name.encode()))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self.private.sign(message)

    def seed_bytes(self) -> bytes:
        """The raw 32-byte private seed (keep it secret)."""
        from cryptography.hazmat.primitives import serialization

        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )


@lru_cache(maxsize=65536)
def _public(key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(key)


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``;
    False for a wrong signature or a malformed key or signature (never raises)."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        _public(bytes(public_key)).verify(bytes(signature), bytes(message))
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_chunk(args: tuple[Sequence[bytes], Sequence[bytes], Sequence[bytes]]) -> list[bool]:
    keys, sigs, msgs = args
    return [verify_signature(k, s, m) for k, s, m in zip(keys, sigs, msgs, strict=True)]


def default_workers() -> int:
    """Processes :func:`verify_many` uses by default: ``GRIDPILOT_VERIFY_WORKERS`` or 1."""
    try:
        return max(1, int(os.environ.get("GRIDPILOT_VERIFY_WORKERS", "1")))
    except ValueError:
        return 1


def verify_many(
    public_keys: Sequence[bytes],
    signatures: Sequence[bytes],
    messages: Sequence[bytes],
    workers: int | None = None,
    min_parallel: int = 4000,
) -> np.ndarray:
    """Verify many signatures; returns a bool array, True where valid.

    With ``workers`` > 1 and at least ``min_parallel`` signatures the work is split over
    that many forked processes (Ed25519 verification in ``cryptography`` holds the GIL,
    so threads would not run in parallel).
    """
    n = len(signatures)
    w = default_workers() if workers is None else max(1, int(workers))
    if w == 1 or n < min_parallel:
        return np.fromiter(_verify_chunk((public_keys, signatures, messages)), bool, n)
    import multiprocessing as mp

    step = math.ceil(n / w)
    parts = [
        (
            list(public_keys[i : i + step]),
            list(signatures[i : i + step]),
            list(messages[i : i + step]),
        )
        for i in range(0, n, step)
    ]
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=w, mp_context=ctx) as ex:
        out: list[bool] = []
        for r in ex.map(_verify_chunk, parts):
            out.extend(r)
    return np.asarray(out, bool)
