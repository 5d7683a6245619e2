"""Device registry: who may send telemetry, with which Ed25519 key, for which feeder and bus.

Every principal (meter, inverter, gateway, the operator that signs commands) has an index
(int, dense, stable: the order of registration), a current public key with a key id, an
optional gateway allowed to sign on its behalf, and a feeder/bus for aggregates. Key
rotation keeps the previous key valid for a grace period; revocation ends all keys. The
registry also holds each principal's last accepted sequence number (replay protection).

Arrays, not one object per device, so that a million devices fit comfortably.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridpilot.errors import Issue, UnknownComponentError, ValidationError

NEVER_MS = np.iinfo(np.int64).max


def generate_key() -> Ed25519PrivateKey:
    """Return a fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey | bytes) -> bytes:
    """Return the 32 raw public-key bytes of a private key, public key or raw bytes."""
    if isinstance(key, bytes | bytearray):
        if len(key) != 32:
            raise ValidationError(
                issues=[Issue("key", "public_key", "must be 32 raw bytes", value=len(key))]
            )
        return bytes(key)
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_bytes(key: Ed25519PrivateKey) -> bytes:
    """Return the 32 raw private-key bytes (the seed) of ``key``."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def keys_from_seeds(seeds: np.ndarray) -> list[Ed25519PrivateKey]:
    """Return private keys from an (n, 32) uint8 array of seeds (deterministic test fleets)."""
    return [Ed25519PrivateKey.from_private_bytes(bytes(s)) for s in np.asarray(seeds, np.uint8)]


@dataclass(frozen=True)
class DeviceInfo:
    """One registered principal, as seen from outside the registry."""

    idx: int
    device_id: str
    kind: str
    feeder: str
    bus: int
    gateway: str | None
    key_id: int
    revoked: bool


class KeyStatus:
    """Outcome codes of :meth:`DeviceRegistry.key_for`."""

    OK = 0
    UNKNOWN_KEY = 1
    REVOKED = 2


class DeviceRegistry:
    """Registered principals, their keys, feeder/bus mapping and last sequence numbers."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._kinds: list[str] = []
        self._kind_code: dict[str, int] = {}
        self._feeders: list[str] = []
        self._feeder_code: dict[str, int] = {}
        n0 = 0
        self._kind = np.zeros(n0, np.int16)
        self._feeder = np.zeros(n0, np.int32)
        self._bus = np.zeros(n0, np.int64)
        self._gateway = np.zeros(n0, np.int64)
        self._pub = np.zeros((n0, 32), np.uint8)
        self._has_key = np.zeros(n0, bool)
        self._kid = np.zeros(n0, np.int32)
        self._revoked_ms = np.zeros(n0, np.int64)
        self.last_seq = np.zeros(n0, np.int64)
        # previous keys after rotation: idx -> list of (kid, raw, valid_until_ms)
        self._old: dict[int, list[tuple[int, bytes, int]]] = {}
        self._key_cache: dict[tuple[int, int], Ed25519PublicKey] = {}

    # ---------------------------------------------------------------- registration
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._index

    def _code(self, table: list[str], codes: dict[str, int], value: str) -> int:
        c = codes.get(value)
        if c is None:
            c = codes[value] = len(table)
            table.append(value)
        return c

    def _codes(self, table: list[str], codes: dict[str, int], values: list[str]) -> np.ndarray:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        vcodes, uniq = pd.factorize(arr)
        umap = np.array([self._code(table, codes, str(u)) for u in uniq], np.int64)
        return umap[vcodes] if len(umap) else np.zeros(0, np.int64)

    def register(  # noqa: PLR0913
        self,
        device_id: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        *,
        kind: str = "meter",
        feeder: str = "",
        bus: int = -1,
        gateway: str | None = None,
        key_id: int = 1,
    ) -> int:
        """Register one principal; returns its index. Raises ``ValidationError`` on a duplicate id."""
        return int(
            self.register_many(
                [device_id],
                np.frombuffer(public_bytes(public_key), np.uint8).reshape(1, 32),
                kind=kind,
                feeder=[feeder],
                bus=[bus],
                gateway=None if gateway is None else [gateway],
                key_id=key_id,
            )[0]
        )

    def register_many(  # noqa: PLR0913
        self,
        device_ids: Sequence[str],
        public_keys: np.ndarray | Sequence[bytes | Ed25519PrivateKey | Ed25519PublicKey] | None,
        *,
        kind: str | Sequence[str] = "meter",
        feeder: str | Sequence[str] = "",
        bus: Sequence[int] | np.ndarray | None = None,
        gateway: str | Sequence[str | None] | None = None,
        key_id: int = 1,
    ) -> np.ndarray:
        """Register many principals at once; returns their indices (int64 array).

        ``public_keys`` is an (n, 32) uint8 array of raw keys or a sequence of 32-byte keys;
        None (or all-zero keys) registers devices without a key of their own, which only
        their gateway may speak for (messages in their own name are refused, ``unknown_key``).
        ``kind``/``feeder``/``gateway`` are one value for all or one per device. A gateway
        must already be registered. Nothing is registered if any id is a duplicate.
        """
        n = len(device_ids)
        ids = [str(d) for d in device_ids]
        if public_keys is None:
            pub = np.zeros((n, 32), np.uint8)
        elif isinstance(public_keys, np.ndarray):
            pub = np.asarray(public_keys, np.uint8)
        else:
            pub = np.frombuffer(b"".join(public_bytes(k) for k in public_keys), np.uint8)
            pub = pub.reshape(-1, 32)
        if pub.shape != (n, 32):
            raise ValidationError(
                issues=[Issue("device", "public_key", f"expected shape ({n}, 32)", value=pub.shape)]
            )
        has_key = pub.any(axis=1)  # an all-zero key (a placeholder) means "no key"
        dup = [d for d in ids if d in self._index]
        if len(set(ids)) != n:
            seen: set[str] = set()
            dup += [d for d in ids if d in seen or seen.add(d)]  # type: ignore[func-returns-value]
        if dup:
            raise ValidationError(
                issues=[Issue("device", "device_id", "already registered", tuple(dup[:5]), dup[0])]
            )
        kinds = [kind] * n if isinstance(kind, str) else list(kind)
        feeders = [feeder] * n if isinstance(feeder, str) else list(feeder)
        gws = [gateway] * n if gateway is None or isinstance(gateway, str) else list(gateway)
        buses = np.full(n, -1, np.int64) if bus is None else np.asarray(bus, np.int64)
        if not (len(kinds) == len(feeders) == len(gws) == len(buses) == n):
            raise ValidationError(
                issues=[Issue("device", "kind/feeder/bus/gateway", f"need {n} values each")]
            )
        gw_idx = np.full(n, -1, np.int64)
        if any(g is not None for g in gws):
            garr = np.empty(n, dtype=object)
            garr[:] = gws
            gcodes, guniq = pd.factorize(garr, use_na_sentinel=True)
            gmap = np.empty(len(guniq), np.int64)
            for j, g in enumerate(guniq):
                if g not in self._index:
                    raise UnknownComponentError("gateway", g, "register the gateway first")
                gmap[j] = self._index[g]
            gw_idx = np.where(gcodes >= 0, gmap[np.maximum(gcodes, 0)] if len(gmap) else -1, -1)
        base = len(self._ids)
        kind_codes = self._codes(self._kinds, self._kind_code, kinds).astype(np.int16)
        feeder_codes = self._codes(self._feeders, self._feeder_code, feeders).astype(np.int32)
        self._ids.extend(ids)
        self._index.update(zip(ids, range(base, base + n), strict=True))
        self._kind = np.concatenate([self._kind, kind_codes])
        self._feeder = np.concatenate([self._feeder, feeder_codes])
        self._bus = np.concatenate([self._bus, buses])
        self._gateway = np.concatenate([self._gateway, gw_idx])
        self._pub = np.concatenate([self._pub, pub])
        self._has_key = np.concatenate([self._has_key, has_key])
        self._kid = np.concatenate([self._kid, np.full(n, key_id, np.int32)])
        self._revoked_ms = np.concatenate([self._revoked_ms, np.full(n, NEVER_MS, np.int64)])
        self.last_seq = np.concatenate([self.last_seq, np.zeros(n, np.int64)])
        return np.arange(base, base + n, dtype=np.int64)

    # ---------------------------------------------------------------- keys
    def rotate_key(
        self,
        device_id: str,
        new_public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        *,
        grace_s: float = 0.0,
        now_ms: int | None = None,
    ) -> int:
        """Install a new key for ``device_id``; returns the new key id (old id + 1).

        The previous key stays valid for ``grace_s`` seconds after ``now_ms`` (default: now),
        so messages already in flight are not lost; after that it is refused as revoked.
        """
        i = self.index_of(device_id)
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        old_kid = int(self._kid[i])
        if self._has_key[i]:
            self._old.setdefault(i, []).append(
                (old_kid, bytes(self._pub[i]), now + int(grace_s * 1000))
            )
        self._pub[i] = np.frombuffer(public_bytes(new_public_key), np.uint8)
        self._has_key[i] = True
        self._kid[i] = old_kid + 1
        return old_kid + 1

    def revoke(self, device_id: str, *, now_ms: int | None = None) -> None:
        """Refuse every key of ``device_id`` from ``now_ms`` (default: now) on."""
        i = self.index_of(device_id)
        self._revoked_ms[i] = int(time.time() * 1000) if now_ms is None else int(now_ms)

    def key_for(self, idx: int, key_id: int, at_ms: int) -> tuple[int, Ed25519PublicKey | None]:
        """Return (:class:`KeyStatus` code, public key or None) for principal ``idx``'s key ``key_id``.

        ``at_ms`` is the receive time (ms since epoch) used for grace periods and revocation.
        """
        if at_ms >= self._revoked_ms[idx]:
            return KeyStatus.REVOKED, None
        if key_id == self._kid[idx]:
            if not self._has_key[idx]:
                return KeyStatus.UNKNOWN_KEY, None
            raw = self._pub[idx]
        else:
            for kid, old_raw, until in self._old.get(idx, ()):
                if kid == key_id:
                    if at_ms > until:
                        return KeyStatus.REVOKED, None
                    raw = np.frombuffer(old_raw, np.uint8)
                    break
            else:
                return KeyStatus.UNKNOWN_KEY, None
        ck = (idx, key_id)
        key = self._key_cache.get(ck)
        if key is None:  # (idx, key id) always names the same raw key, so caching is safe
            key = Ed25519PublicKey.from_public_bytes(bytes(raw))
            if len(self._key_cache) > 200_000:
                self._key_cache.clear()
            self._key_cache[ck] = key
        return KeyStatus.OK, key

    # ---------------------------------------------------------------- lookups
    def index_of(self, device_id: str) -> int:
        """Return the index of ``device_id``; raises ``UnknownComponentError`` if unregistered."""
        try:
            return self._index[device_id]
        except KeyError:
            raise UnknownComponentError("device", device_id, "register it first") from None

    def get_index(self, device_id: str) -> int | None:
        """Return the index of ``device_id`` or None if unregistered."""
        return self._index.get(device_id)

    def device_id(self, idx: int) -> str:
        """Return the id of the principal at index ``idx``."""
        return self._ids[idx]

    @property
    def ids(self) -> list[str]:
        """All registered ids in index order (do not mutate)."""
        return self._ids

    @property
    def gateway_idx(self) -> np.ndarray:
        """Index of each principal's gateway (-1: none), int64 array in index order."""
        return self._gateway

    @property
    def revoked_ms(self) -> np.ndarray:
        """Time each principal was revoked (ms since epoch; int64 max: never), in index order."""
        return self._revoked_ms

    def info(self, device_id: str) -> DeviceInfo:
        """Return a :class:`DeviceInfo` for ``device_id``."""
        i = self.index_of(device_id)
        g = int(self._gateway[i])
        return DeviceInfo(
            idx=i,
            device_id=device_id,
            kind=self._kinds[self._kind[i]],
            feeder=self._feeders[self._feeder[i]],
            bus=int(self._bus[i]),
            gateway=None if g < 0 else self._ids[g],
            key_id=int(self._kid[i]),
            revoked=bool(self._revoked_ms[i] != NEVER_MS),
        )

    def frame(self) -> pd.DataFrame:
        """Return the registry as a DataFrame: idx, device_id, kind, feeder, bus, gateway, key_id."""
        kinds = np.array(self._kinds, dtype=object)
        feeders = np.array(self._feeders, dtype=object)
        ids = np.array(self._ids, dtype=object)
        has_gw = self._gateway >= 0
        gw_ids = np.full(len(self), None, object)  # the gateway's device id, None where none
        gw_ids[has_gw] = ids[self._gateway[has_gw]]
        return pd.DataFrame(
            {
                "idx": np.arange(len(self), dtype=np.int64),
                "device_id": ids,
                "kind": kinds[self._kind] if len(self) else np.array([], object),
                "feeder": feeders[self._feeder] if len(self) else np.array([], object),
                "bus": self._bus,
                "gateway": gw_ids,
                "key_id": self._kid,
            }
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the registry (public keys only, no secrets) as JSON to ``path``."""
        doc = {
            "version": 1,
            "devices": [
                {
                    "id": d,
                    "kind": self._kinds[self._kind[i]],
                    "feeder": self._feeders[self._feeder[i]],
                    "bus": int(self._bus[i]),
                    "gateway": None if self._gateway[i] < 0 else self._ids[self._gateway[i]],
                    "key_id": int(self._kid[i]),
                    "public_key": bytes(self._pub[i]).hex() if self._has_key[i] else None,
                    "revoked_ms": None
                    if self._revoked_ms[i] == NEVER_MS
                    else int(self._revoked_ms[i]),
                    "old_keys": [
                        [kid, raw.hex(), until] for kid, raw, until in self._old.get(i, [])
                    ],
                    "last_seq": int(self.last_seq[i]),
                }
                for i, d in enumerate(self._ids)
            ],
        }
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: str | Path) -> DeviceRegistry:
        """Read a registry written by :meth:`save`."""
        try:
            doc = json.loads(Path(path).read_text())
            devices = doc["devices"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidationError(
                issues=[Issue("registry", "file", f"cannot read registry: {exc}", value=str(path))]
            ) from None
        reg = cls()
        for d in devices:
            if d.get("gateway") and d["gateway"] not in reg:
                raise ValidationError(
                    issues=[
                        Issue(
                            "registry",
                            "gateway",
                            "gateway listed after its devices",
                            (d["id"],),
                            d["gateway"],
                        )
                    ]
                )
            pk = d.get("public_key")
            i = int(
                reg.register_many(
                    [d["id"]],
                    None if pk is None else [bytes.fromhex(pk)],
                    kind=d.get("kind", "meter"),
                    feeder=[d.get("feeder", "")],
                    bus=[int(d.get("bus", -1))],
                    gateway=None if d.get("gateway") is None else [d["gateway"]],
                    key_id=int(d.get("key_id", 1)),
                )[0]
            )
            if d.get("revoked_ms") is not None:
                reg._revoked_ms[i] = int(d["revoked_ms"])
            if d.get("old_keys"):
                reg._old[i] = [(int(k), bytes.fromhex(r), int(u)) for k, r, u in d["old_keys"]]
            reg.last_seq[i] = int(d.get("last_seq", 0))
        return reg
