"""The receiving side: parse, authenticate and check frames; columnar output, reasons for refusals.

Checks, in order, for every frame (the first failure is the reason it is refused):

1. framing and header JSON                         -> ``malformed`` / ``unsupported_version``
2. principal registered                            -> ``unknown_device``
3. key id known, not revoked or past its grace     -> ``unknown_key`` / ``revoked_key``
4. Ed25519 signature over the exact bytes          -> ``bad_signature``
5. sequence number above the last accepted one     -> ``replayed_seq``
6. send time within the allowed clock skew         -> ``clock_skew``
7. body: decodable, quantities known, rows for devices this principal may speak for,
   reading times not in the future, values finite and in range
   -> ``malformed`` / ``unknown_quantity`` / ``unknown_device`` / ``unauthorised_device`` /
      ``future_timestamp`` / ``out_of_range``

A message is accepted or refused whole. A refused message never reaches the store and never
consumes a sequence number; the other messages in the same batch are unaffected.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature

from gridpilot.telemetry.registry import DeviceRegistry, KeyStatus
from gridpilot.telemetry.schema import (
    FORMAT_VERSION,
    QUANTITIES,
    QUANTITY_BY_NAME,
    QUANTITY_HI,
    QUANTITY_LO,
    FrameError,
    MessageKind,
    decode_batch,
    decode_col1,
    parse_frame,
)

log = logging.getLogger("gridpilot.telemetry")

KIND_CODES: dict[str, int] = {str(k): i for i, k in enumerate(MessageKind)}
KIND_NAMES: tuple[str, ...] = tuple(str(k) for k in MessageKind)


class RejectReason(StrEnum):
    """Why a message was refused."""

    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_SEQ = "replayed_seq"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_QUANTITY = "unknown_quantity"
    UNAUTHORISED_DEVICE = "unauthorised_device"
    FUTURE_TIMESTAMP = "future_timestamp"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True)
class Rejection:
    """One refused message: the reason, in words, and what could be read of its sender."""

    reason: RejectReason
    detail: str
    device_id: str | None = None
    seq: int | None = None
    received_ms: int = 0


@dataclass
class ReadingBatch:
    """Readings in long columnar form: one row per (device, quantity, ts) value.

    ``device``: int32 registry index; ``quantity``: int16 code (see ``QUANTITIES``);
    ``ts_ms``: int64 ms since the Unix epoch, UTC; ``value``: float64 in the quantity's unit.
    """

    device: np.ndarray
    quantity: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return int(self.value.shape[0])

    @classmethod
    def empty(cls) -> ReadingBatch:
        """Return a batch with no rows."""
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def concat(cls, parts: list[ReadingBatch]) -> ReadingBatch:
        """Return the rows of ``parts`` one after another (one copy per column)."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.device for p in parts]),
            np.concatenate([p.quantity for p in parts]),
            np.concatenate([p.ts_ms for p in parts]),
            np.concatenate([p.value for p in parts]),
        )

    @classmethod
    def from_arrays(
        cls,
        device: np.ndarray,
        quantity: np.ndarray | int,
        ts_ms: np.ndarray,
        value: np.ndarray,
    ) -> ReadingBatch:
        """Build a batch from arrays (``quantity`` may be one code for all rows)."""
        v = np.ascontiguousarray(value, np.float64)
        q = (
            np.full(v.shape[0], quantity, np.int16)
            if np.isscalar(quantity)
            else np.ascontiguousarray(quantity, np.int16)
        )
        return cls(
            np.ascontiguousarray(device, np.int32), q, np.ascontiguousarray(ts_ms, np.int64), v
        )


@dataclass
class MessageLog:
    """Accepted messages, columnar: principal index, kind code, seq, key id, times, readings."""

    device: np.ndarray  # int32
    kind: np.ndarray  # int8, index into KIND_NAMES
    seq: np.ndarray  # int64
    key_id: np.ndarray  # int32
    sent_ms: np.ndarray  # int64
    received_ms: np.ndarray  # int64
    n_readings: np.ndarray  # int32

    def __len__(self) -> int:
        return int(self.device.shape[0])


@dataclass(frozen=True)
class Record:
    """An accepted event, command or acknowledgement."""

    device: int  # registry index of the sender
    device_id: str
    kind: str
    seq: int
    ts_ms: int
    name: str  # event name, command name or ack status
    payload: dict[str, Any]


@dataclass
class VerifiedBatch:
    """What :meth:`Verifier.verify` found in a set of payloads."""

    readings: ReadingBatch
    messages: MessageLog
    records: list[Record]
    rejections: list[Rejection]
    received_ms: int
    seq_updates: dict[int, int] = field(default_factory=dict)
    frames: list[bytes] = field(default_factory=list)  # accepted frames, if kept (audit)

    @property
    def accepted(self) -> int:
        """Number of accepted messages."""
        return len(self.messages)

    def rejected_by_reason(self) -> dict[str, int]:
        """Return {reason: count} of the refused messages."""
        out: dict[str, int] = {}
        for r in self.rejections:
            out[str(r.reason)] = out.get(str(r.reason), 0) + 1
        return out


@functools.lru_cache(maxsize=1024)
def _quantity_info(
    names: tuple[str, ...],
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(codes, codes as int16, lower bounds (k, 1), upper bounds (k, 1)); KeyError if unknown."""
    codes = tuple(QUANTITY_BY_NAME[q].code for q in names)
    ca = np.asarray(codes, np.int64)
    return codes, ca.astype(np.int16), QUANTITY_LO[ca][:, None], QUANTITY_HI[ca][:, None]


class _Refused(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_REQUIRED_JSON_KEYS = {
    "event": ("name",),
    "command": ("target", "name", "cmd_id"),
    "ack": ("cmd_id", "status"),
}


class Verifier:
    """Authenticates and checks frames against a :class:`DeviceRegistry`.

    ``max_skew_s``: how far a send time or reading time may be ahead of the receiver's
    clock; ``max_delay_s``: how long ago a message may have been sent; ``max_age_s``: how old
    a reading may be. ``clock`` returns seconds since the Unix epoch.
    """

    def __init__(
        self,
        registry: DeviceRegistry,
        *,
        max_skew_s: float = 300.0,
        max_delay_s: float = 3600.0,
        max_age_s: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
        log_rejections: bool = True,
        keep_frames: bool = False,
    ) -> None:
        self.registry = registry
        self.max_skew_ms = int(max_skew_s * 1000)
        self.max_delay_ms = int(max_delay_s * 1000)
        self.max_age_ms = int(max_age_s * 1000)
        self.clock = clock
        self.log_rejections = log_rejections
        self.keep_frames = keep_frames
        self._gw_cache: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}

    # ------------------------------------------------------------------ public
    def verify(self, payloads: Iterable[bytes], *, commit: bool = True) -> VerifiedBatch:
        """Verify every frame in ``payloads`` (frames or batches); returns a :class:`VerifiedBatch`.

        With ``commit`` (default) the accepted sequence numbers are recorded in the registry
        at once; pass ``commit=False`` and call :meth:`commit` after the data is safely stored.
        """
        now = int(self.clock() * 1000)
        parts: list[ReadingBatch] = []
        msg_rows: list[tuple[int, int, int, int, int, int]] = []
        records: list[Record] = []
        rejections: list[Rejection] = []
        pending: dict[int, int] = {}
        kept: list[bytes] = []
        for payload in payloads:
            try:
                frames, problems = decode_batch(payload)
            except TypeError:
                frames, problems = [], [f"payload is {type(payload).__name__}, not bytes"]
            for p in problems:
                self._refuse(rejections, RejectReason.MALFORMED, p, None, None, now)
            for raw in frames:
                dev_id: str | None = None
                seq: int | None = None
                try:
                    try:
                        frame = parse_frame(raw)
                    except FrameError as exc:
                        reason = (
                            RejectReason.UNSUPPORTED_VERSION
                            if "version" in str(exc)
                            else RejectReason.MALFORMED
                        )
                        raise _Refused(reason, str(exc)) from None
                    h = frame.header
                    dev_id = h.get("dev") if isinstance(h.get("dev"), str) else None
                    seq = h.get("seq") if isinstance(h.get("seq"), int) else None
                    idx, kind, kid, sent = self._check_header(h, frame, now, pending)
                    seq = int(h["seq"])
                    if kind == "readings":
                        part = self._readings(h, frame.body, idx, now)
                        parts.append(part)
                        n_read = len(part)
                    else:
                        records.append(self._record(h, frame.body, idx, kind, now))
                        n_read = 0
                    pending[idx] = seq
                    msg_rows.append((idx, KIND_CODES[kind], seq, kid, sent, n_read))
                    if self.keep_frames:
                        kept.append(bytes(raw))
                except _Refused as r:
                    self._refuse(rejections, r.reason, r.detail, dev_id, seq, now)
                except Exception as exc:  # never let one odd message sink the batch
                    log.exception("unexpected error checking a telemetry message")
                    self._refuse(
                        rejections, RejectReason.MALFORMED, f"unexpected: {exc!r}", dev_id, seq, now
                    )
        m = np.array(msg_rows, dtype=np.int64).reshape(-1, 6)
        messages = MessageLog(
            device=m[:, 0].astype(np.int32),
            kind=m[:, 1].astype(np.int8),
            seq=m[:, 2].copy(),
            key_id=m[:, 3].astype(np.int32),
            sent_ms=m[:, 4].copy(),
            received_ms=np.full(len(m), now, np.int64),
            n_readings=m[:, 5].astype(np.int32),
        )
        out = VerifiedBatch(
            ReadingBatch.concat(parts), messages, records, rejections, now, pending, kept
        )
        if commit:
            self.commit(out)
        return out

    def _refuse(
        self,
        out: list[Rejection],
        reason: RejectReason,
        detail: str,
        dev_id: str | None,
        seq: int | None,
        now: int,
    ) -> None:
        out.append(Rejection(reason, detail, dev_id, seq, now))
        if self.log_rejections:
            log.warning(
                "telemetry message refused: %s (device %s, seq %s): %s", reason, dev_id, seq, detail
            )

    def audit(self, frames: Iterable[bytes]) -> list[Rejection | None]:
        """Re-check archived frames: None where the signature verifies with the key the sender
        held when it sent the frame (rotation and revocation taken into account), else why not.

        Sequence numbers and clocks are not checked: this proves who signed what, later.
        """
        out: list[Rejection | None] = []
        for raw in frames:
            try:
                frame = parse_frame(raw)
            except FrameError as exc:
                out.append(Rejection(RejectReason.MALFORMED, str(exc)))
                continue
            h = frame.header
            dev, kid, sent = h.get("dev"), h.get("kid"), h.get("ts_ms")
            idx = self.registry.get_index(dev) if isinstance(dev, str) else None
            if idx is None or not isinstance(kid, int) or not isinstance(sent, int):
                out.append(Rejection(RejectReason.UNKNOWN_DEVICE, f"sender {dev!r} unknown", None))
                continue
            status, key = self.registry.key_for(idx, kid, sent)
            if status != KeyStatus.OK or key is None:
                out.append(
                    Rejection(
                        RejectReason.REVOKED_KEY
                        if status == KeyStatus.REVOKED
                        else RejectReason.UNKNOWN_KEY,
                        f"key id {kid} not valid at send time",
                        dev,
                        h.get("seq"),
                    )
                )
                continue
            try:
                key.verify(frame.signature, frame.signed)
            except InvalidSignature:
                out.append(
                    Rejection(
                        RejectReason.BAD_SIGNATURE, "signature does not verify", dev, h.get("seq")
                    )
                )
                continue
            out.append(None)
        return out

    def commit(self, batch: VerifiedBatch) -> None:
        """Record ``batch``'s accepted sequence numbers, so that replays are refused from now on."""
        if batch.seq_updates:
            idx = np.fromiter(batch.seq_updates.keys(), np.int64, len(batch.seq_updates))
            seq = np.fromiter(batch.seq_updates.values(), np.int64, len(batch.seq_updates))
            last = self.registry.last_seq
            last[idx] = np.maximum(last[idx], seq)

    # ------------------------------------------------------------------ checks
    def _check_header(
        self, h: dict[str, Any], frame: Any, now: int, pending: dict[int, int]
    ) -> tuple[int, str, int, int]:
        if h.get("v") != FORMAT_VERSION:
            raise _Refused(
                RejectReason.UNSUPPORTED_VERSION,
                f"envelope version {h.get('v')!r}, this reader speaks {FORMAT_VERSION}",
            )
        seq, kid, sent, kind = h.get("seq"), h.get("kid"), h.get("ts_ms"), h.get("kind")
        if not (  # fast path; the loops below name the culprit
            type(h.get("dev")) is str
            and type(kid) is int
            and type(seq) is int
            and type(sent) is int
            and type(kind) is str
            and 0 < seq < 2**63
            and 0 <= kid < 2**31
            and 0 <= sent <= 2**62
        ):
            for key, typ in (
                ("dev", str),
                ("kid", int),
                ("seq", int),
                ("ts_ms", int),
                ("kind", str),
            ):
                if type(h.get(key)) is not typ:
                    raise _Refused(
                        RejectReason.MALFORMED,
                        f"header field '{key}' must be {typ.__name__}, got {h.get(key)!r}",
                    )
            for key, lo, hi in (("seq", 1, 2**63 - 1), ("kid", 0, 2**31 - 1), ("ts_ms", 0, 2**62)):
                if not lo <= h[key] <= hi:
                    raise _Refused(
                        RejectReason.MALFORMED,
                        f"header field '{key}' = {h[key]} outside [{lo}, {hi}]",
                    )
        if kind not in KIND_CODES:
            raise _Refused(RejectReason.MALFORMED, f"header field 'kind' = {kind!r} is unknown")
        reg = self.registry
        idx = reg.get_index(h["dev"])
        if idx is None:
            raise _Refused(RejectReason.UNKNOWN_DEVICE, f"device {h['dev']!r} is not registered")
        status, key = reg.key_for(idx, h["kid"], now)
        if status == KeyStatus.UNKNOWN_KEY:
            raise _Refused(RejectReason.UNKNOWN_KEY, f"key id {h['kid']} is not registered")
        if status == KeyStatus.REVOKED or key is None:
            raise _Refused(RejectReason.REVOKED_KEY, f"key id {h['kid']} is revoked or expired")
        try:
            key.verify(frame.signature, frame.signed)
        except InvalidSignature:
            raise _Refused(
                RejectReason.BAD_SIGNATURE, f"signature does not verify with key id {h['kid']}"
            ) from None
        last = pending.get(idx)
        if last is None:
            last = int(reg.last_seq[idx])
        if seq <= last:
            raise _Refused(
                RejectReason.REPLAYED_SEQ, f"seq {seq} is not above the last accepted seq {last}"
            )
        if sent > now + self.max_skew_ms:
            raise _Refused(
                RejectReason.CLOCK_SKEW,
                f"sent {(sent - now) / 1000:.1f} s in the future (limit {self.max_skew_ms / 1000:.0f} s)",
            )
        if sent < now - self.max_delay_ms:
            raise _Refused(
                RejectReason.CLOCK_SKEW,
                f"sent {(now - sent) / 1000:.1f} s ago (limit {self.max_delay_ms / 1000:.0f} s)",
            )
        return idx, kind, kid, sent

    def _readings(self, h: dict[str, Any], body: bytes, idx: int, now: int) -> ReadingBatch:
        n, names, devs = h.get("n"), h.get("q"), h.get("devs")
        if h.get("enc") != "col1":
            raise _Refused(RejectReason.MALFORMED, f"readings encoding {h.get('enc')!r} unknown")
        if not isinstance(n, int) or n < 0 or not isinstance(names, list):
            raise _Refused(RejectReason.MALFORMED, "readings need integer 'n' >= 0 and list 'q'")
        try:
            qinfo = _quantity_info(tuple(names))
        except (KeyError, TypeError):
            bad_q = next(
                (q for q in names if not isinstance(q, str) or q not in QUANTITY_BY_NAME), names
            )
            raise _Refused(
                RejectReason.UNKNOWN_QUANTITY, f"quantity {bad_q!r} is not in the catalogue"
            ) from None
        codes, codes_i16, lo, hi = qinfo
        if devs is not None and not isinstance(devs, list):
            raise _Refused(RejectReason.MALFORMED, "'devs' must be a list of device ids")
        try:
            ts, dev_pos, values = decode_col1(body, n, len(codes), devs is not None)
        except FrameError as exc:
            raise _Refused(RejectReason.MALFORMED, str(exc)) from None
        k = len(codes)
        if devs is None:
            dev_rows: np.ndarray | int = idx
        else:
            reg = self.registry
            try:
                ck = (idx, tuple(devs))
                hash(ck)
            except TypeError:
                raise _Refused(
                    RejectReason.MALFORMED, "'devs' must be a list of device ids"
                ) from None
            didx = self._gw_cache.get(ck)
            if didx is None:
                if not all(isinstance(d, str) for d in devs):
                    raise _Refused(RejectReason.MALFORMED, "'devs' must be a list of device ids")
                didx = np.empty(len(devs), np.int64)
                for j, d in enumerate(devs):
                    i = reg.get_index(d)
                    if i is None:
                        raise _Refused(
                            RejectReason.UNKNOWN_DEVICE, f"device {d!r} is not registered"
                        )
                    didx[j] = i
                allowed = (reg.gateway_idx[didx] == idx) | (didx == idx)
                if not allowed.all():
                    bad = devs[int(np.argmin(allowed))]
                    raise _Refused(
                        RejectReason.UNAUTHORISED_DEVICE,
                        f"{h['dev']!r} is not the registered gateway of device {bad!r}",
                    )
                if len(self._gw_cache) > 10_000:
                    self._gw_cache.clear()
                self._gw_cache[ck] = didx  # ids and gateways never change once registered
            revoked = reg.revoked_ms[didx] <= now
            if revoked.any():
                raise _Refused(
                    RejectReason.REVOKED_KEY,
                    f"device {devs[int(np.argmax(revoked))]!r} is revoked",
                )
            assert dev_pos is not None
            if n and int(dev_pos.max()) >= len(devs):
                raise _Refused(RejectReason.MALFORMED, "dev_pos points past the 'devs' list")
            dev_rows = didx[dev_pos]
        if n:
            tmax = int(ts.max())
            if tmax > now + self.max_skew_ms:
                raise _Refused(
                    RejectReason.FUTURE_TIMESTAMP,
                    f"reading at ts_ms={tmax} is {(tmax - now) / 1000:.1f} s in the future",
                )
            tmin = int(ts.min())
            if tmin < now - self.max_age_ms:
                raise _Refused(
                    RejectReason.OUT_OF_RANGE,
                    f"reading at ts_ms={tmin} is older than {self.max_age_ms / 86400000:.0f} days",
                )
            ok = (values >= lo) & (values <= hi)  # NaN compares False
            if not ok.all():
                qi, row = np.unravel_index(int(np.argmin(ok)), ok.shape)
                q = QUANTITIES[codes[qi]]
                raise _Refused(
                    RejectReason.OUT_OF_RANGE,
                    f"{q.name} = {float(values[qi, row])!r} at row {row} is outside [{q.lo:g}, {q.hi:g}] {q.unit}",
                )
        return ReadingBatch(
            device=(
                np.full(n * k, dev_rows, np.int32)
                if isinstance(dev_rows, int)
                else np.concatenate([dev_rows.astype(np.int32)] * k)
            ),
            quantity=np.repeat(codes_i16, n),
            ts_ms=np.concatenate([ts] * k) if k != 1 else ts,
            value=values.reshape(-1),
        )

    def _record(self, h: dict[str, Any], body: bytes, idx: int, kind: str, now: int) -> Record:
        if h.get("enc") != "json":
            raise _Refused(RejectReason.MALFORMED, f"{kind} encoding {h.get('enc')!r} unknown")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Refused(
                RejectReason.MALFORMED, f"{kind} body is not valid JSON: {exc}"
            ) from None
        if not isinstance(payload, dict):
            raise _Refused(RejectReason.MALFORMED, f"{kind} body must be a JSON object")
        missing = [k for k in _REQUIRED_JSON_KEYS[kind] if k not in payload]
        if missing:
            raise _Refused(RejectReason.MALFORMED, f"{kind} body lacks {', '.join(missing)}")
        ts = payload.get("ts_ms", h["ts_ms"])
        if not isinstance(ts, int):
            raise _Refused(RejectReason.MALFORMED, f"{kind} 'ts_ms' must be an integer")
        if ts > now + self.max_skew_ms:
            raise _Refused(RejectReason.FUTURE_TIMESTAMP, f"{kind} at ts_ms={ts} is in the future")
        if ts < now - self.max_age_ms:
            raise _Refused(RejectReason.OUT_OF_RANGE, f"{kind} at ts_ms={ts} is too old")
        name = payload["status"] if kind == "ack" else payload["name"]
        return Record(idx, h["dev"], kind, h["seq"], ts, str(name), payload)
