"""The device side: build and sign frames (readings, events, commands, acknowledgements)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridpilot.errors import Issue, ValidationError
from gridpilot.telemetry.schema import (
    FORMAT_VERSION,
    QUANTITY_BY_NAME,
    MessageKind,
    canonical_json,
    encode_col1,
    pack_unsigned,
)


class DeviceSigner:
    """Signs frames for one principal (device, gateway or operator) with its Ed25519 key.

    ``seq`` is the last sequence number used; each frame takes the next one. ``clock``
    returns the current time in seconds since the Unix epoch (injectable for tests and
    simulations).
    """

    def __init__(
        self,
        device_id: str,
        private_key: Ed25519PrivateKey | bytes,
        *,
        key_id: int = 1,
        seq: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        self.key = (
            Ed25519PrivateKey.from_private_bytes(bytes(private_key))
            if isinstance(private_key, bytes | bytearray)
            else private_key
        )
        self.key_id = int(key_id)
        self.seq = int(seq)
        self.clock = clock

    def rotate(self, new_key: Ed25519PrivateKey, key_id: int | None = None) -> None:
        """Switch to ``new_key`` (key id: ``key_id`` or the current id + 1)."""
        self.key = new_key
        self.key_id = self.key_id + 1 if key_id is None else int(key_id)

    def _header(self, kind: MessageKind, enc: str, sent_ms: int | None) -> dict[str, Any]:
        self.seq += 1
        return {
            "v": FORMAT_VERSION,
            "kind": str(kind),
            "dev": self.device_id,
            "kid": self.key_id,
            "seq": self.seq,
            "ts_ms": int(self.clock() * 1000) if sent_ms is None else int(sent_ms),
            "enc": enc,
        }

    def sign_frame(self, header: dict[str, Any], body: bytes) -> bytes:
        """Return the complete signed frame for ``header`` and ``body`` (no checks)."""
        unsigned = pack_unsigned(header, body)
        return unsigned + self.key.sign(unsigned)

    def readings(
        self,
        ts_ms: np.ndarray | Sequence[int],
        values: Mapping[str, np.ndarray | Sequence[float]],
        *,
        devices: Sequence[str] | None = None,
        dev_pos: np.ndarray | Sequence[int] | None = None,
        sent_ms: int | None = None,
    ) -> bytes:
        """Return a signed ``readings`` frame.

        ``ts_ms``: int64 timestamps (ms since epoch, UTC), one per row. ``values``: quantity
        name (see ``QUANTITIES``) -> float array, one value per row. A gateway passes
        ``devices`` (the device ids) and ``dev_pos`` (per row, the position in ``devices``);
        a device sending its own readings passes neither.
        """
        ts = np.asarray(ts_ms, dtype=np.int64)
        n = int(ts.shape[0])
        names = list(values)
        issues = [
            Issue("readings", "quantity", "unknown quantity", value=q)
            for q in names
            if q not in QUANTITY_BY_NAME
        ]
        cols = [np.asarray(values[q], dtype=np.float64) for q in names]
        issues += [
            Issue("readings", q, f"has {c.shape} values for {n} timestamps", value=c.shape)
            for q, c in zip(names, cols, strict=True)
            if c.shape != (n,)
        ]
        if (devices is None) != (dev_pos is None):
            issues.append(Issue("readings", "devices", "give both devices and dev_pos, or neither"))
        pos = None if dev_pos is None else np.asarray(dev_pos, dtype=np.int64)
        if (
            pos is not None
            and devices is not None
            and (pos.shape != (n,) or (n and (pos.min() < 0 or pos.max() >= len(devices))))
        ):
            issues.append(Issue("readings", "dev_pos", f"must be {n} positions in devices"))
        if issues:
            raise ValidationError(issues=issues)
        header = self._header(MessageKind.READINGS, "col1", sent_ms)
        header["n"] = n
        header["q"] = names
        if devices is not None:
            header["devs"] = [str(d) for d in devices]
        return self.sign_frame(header, encode_col1(ts, cols, pos))

    def _json_frame(self, kind: MessageKind, body: dict[str, Any], sent_ms: int | None) -> bytes:
        return self.sign_frame(self._header(kind, "json", sent_ms), canonical_json(body))

    def event(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        severity: str = "info",
        ts_ms: int | None = None,
        sent_ms: int | None = None,
    ) -> bytes:
        """Return a signed ``event`` frame (e.g. ``name="fault_detected"``, JSON-able ``data``)."""
        t = int(self.clock() * 1000) if ts_ms is None else int(ts_ms)
        body = {"name": name, "severity": severity, "ts_ms": t, "data": dict(data or {})}
        return self._json_frame(MessageKind.EVENT, body, sent_ms)

    def command(
        self,
        target: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        cmd_id: str,
        sent_ms: int | None = None,
    ) -> bytes:
        """Return a signed ``command`` frame for device ``target`` (sent by the operator)."""
        body = {"target": target, "name": name, "args": dict(args or {}), "cmd_id": cmd_id}
        return self._json_frame(MessageKind.COMMAND, body, sent_ms)

    def ack(
        self, cmd_id: str, status: str = "ok", detail: str = "", *, sent_ms: int | None = None
    ) -> bytes:
        """Return a signed ``ack`` frame answering command ``cmd_id`` (status ok|failed|refused)."""
        body = {"cmd_id": cmd_id, "status": status, "detail": detail}
        return self._json_frame(MessageKind.ACK, body, sent_ms)
