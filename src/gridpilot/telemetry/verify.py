"""The receiving side: parse, authenticate and check frames; columnar output, reasons for refusals.

Checks, in order, for every frame (the first failure is the reason it is refused):

0. the payload: at most ``max_payload_bytes`` and ``max_frames_per_payload`` frames,
   batch framing intact                            -> ``malformed`` (once, for the payload)
1. framing and header JSON                         -> ``malformed`` / ``unsupported_version``
   (frames of one payload that do not parse: one refusal per payload and reason)
2. principal registered                            -> ``unknown_device``
3. key id known, not revoked or past its grace     -> ``unknown_key`` / ``revoked_key``
4. Ed25519 signature over the exact bytes          -> ``bad_signature``
5. signer = the sender whose topic it came on      -> ``wrong_topic`` (when the topic is known)
6. sequence number above the last accepted one     -> ``replayed_seq``
7. send time within the allowed clock skew         -> ``clock_skew``
8. body: decodable, quantities known, rows for devices this principal may speak for,
   reading times not in the future, values finite and in range
   -> ``malformed`` / ``unknown_quantity`` / ``unknown_device`` / ``unauthorised_device`` /
      ``future_timestamp`` / ``out_of_range``

A message is accepted or refused whole. A refused message never reaches the store and never
consumes a sequence number; the other messages in the same batch are unaffected. Refusals
are counted in full but kept (and logged) one by one only within :class:`RefusalLimits`;
every text from the wire is escaped (:mod:`gridpilot.telemetry.safe_text`) first.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from cryptography.exceptions import InvalidSignature

from gridpilot.telemetry.batches import (
    KIND_CODES,
    KIND_NAMES,
    MessageLog,
    ReadingBatch,
    Record,
    VerifiedBatch,
)
from gridpilot.telemetry.refusals import RefusalLimits, RefusalLog, Rejection, RejectReason
from gridpilot.telemetry.registry import DeviceRegistry, KeyStatus
from gridpilot.telemetry.safe_text import wire_text
from gridpilot.telemetry.schema import (
    FORMAT_VERSION,
    QUANTITIES,
    QUANTITY_BY_NAME,
    QUANTITY_HI,
    QUANTITY_LO,
    FrameError,
    decode_batch,
    decode_col1,
    parse_frame,
)

__all__ = [  # the batch types live in batches.py, refusals in refusals.py; both re-exported
    "KIND_CODES",
    "KIND_NAMES",
    "MessageLog",
    "ReadingBatch",
    "Record",
    "RefusalLimits",
    "RejectReason",
    "Rejection",
    "VerifiedBatch",
    "Verifier",
]

log = logging.getLogger("gridpilot.telemetry")


@functools.lru_cache(maxsize=1024)
def _quantity_info(
    names: tuple[str, ...],
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(codes, codes as int16, lower bounds (k, 1), upper bounds (k, 1)); KeyError if unknown."""
    codes = tuple(QUANTITY_BY_NAME[q].code for q in names)
    ca = np.asarray(codes, np.int64)
    return codes, ca.astype(np.int16), QUANTITY_LO[ca][:, None], QUANTITY_HI[ca][:, None]


MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_FRAMES_PER_PAYLOAD = 10_000


@dataclass
class _BatchState:
    """What one :meth:`Verifier.verify` call has found so far."""

    now: int
    parts: list[ReadingBatch] = field(default_factory=list)
    msg_rows: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    pending: dict[int, int] = field(default_factory=dict)
    kept: list[bytes] = field(default_factory=list)


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
    a reading may be. ``clock`` returns seconds since the Unix epoch. ``max_payload_bytes``
    and ``max_frames_per_payload`` bound one payload (a larger one is refused whole, once);
    ``refusal_limits`` bounds the refusals kept and logged one by one per sender and window.
    """

    def __init__(  # noqa: PLR0913
        self,
        registry: DeviceRegistry,
        *,
        max_skew_s: float = 300.0,
        max_delay_s: float = 3600.0,
        max_age_s: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
        log_rejections: bool = True,
        keep_frames: bool = False,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_frames_per_payload: int = MAX_FRAMES_PER_PAYLOAD,
        refusal_limits: RefusalLimits | None = None,
    ) -> None:
        self.registry = registry
        self.max_skew_ms = int(max_skew_s * 1000)
        self.max_delay_ms = int(max_delay_s * 1000)
        self.max_age_ms = int(max_age_s * 1000)
        self.clock = clock
        self.keep_frames = keep_frames
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_frames_per_payload = int(max_frames_per_payload)
        self._refusals = RefusalLog(refusal_limits, log_enabled=log_rejections)
        self._gw_cache: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}

    @property
    def log_rejections(self) -> bool:
        """Whether kept refusals are logged (WARNING on ``gridpilot.telemetry``)."""
        return self._refusals.log_enabled

    @log_rejections.setter
    def log_rejections(self, value: bool) -> None:
        self._refusals.log_enabled = bool(value)

    # ------------------------------------------------------------------ public
    def verify(
        self,
        payloads: Iterable[bytes],
        *,
        commit: bool = True,
        senders: Sequence[str | None] | None = None,
    ) -> VerifiedBatch:
        """Verify every frame in ``payloads`` (frames or batches); returns a :class:`VerifiedBatch`.

        ``senders`` (one per payload, as the transport delivered it; None: not bound) names
        the principal whose telemetry topic each payload came on: a frame signed by anyone
        else is refused (``wrong_topic``). With ``commit`` (default) the accepted sequence
        numbers are recorded in the registry at once; pass ``commit=False`` and call
        :meth:`commit` after the data is safely stored.
        """
        st = _BatchState(now=int(self.clock() * 1000))
        for i, payload in enumerate(payloads):
            expected = senders[i] if senders is not None else None
            self._verify_payload(st, payload, expected)
        self._refusals.flush(st.rejections, st.now)
        m = np.array(st.msg_rows, dtype=np.int64).reshape(-1, 6)
        messages = MessageLog(
            device=m[:, 0].astype(np.int32),
            kind=m[:, 1].astype(np.int8),
            seq=m[:, 2].copy(),
            key_id=m[:, 3].astype(np.int32),
            sent_ms=m[:, 4].copy(),
            received_ms=np.full(len(m), st.now, np.int64),
            n_readings=m[:, 5].astype(np.int32),
        )
        out = VerifiedBatch(
            ReadingBatch.concat(st.parts),
            messages,
            st.records,
            st.rejections,
            st.now,
            st.pending,
            st.kept,
        )
        if commit:
            self.commit(out)
        return out

    def _verify_payload(self, st: _BatchState, payload: Any, expected: str | None) -> None:
        """Split one payload into frames and check each; a malformed payload is refused once."""
        try:
            size = len(payload)
        except TypeError:
            size = 0
        if size > self.max_payload_bytes:
            detail = f"payload of {size} bytes exceeds the {self.max_payload_bytes}-byte limit"
            self._refuse(
                st.rejections, RejectReason.MALFORMED, detail, None, None, st.now, expected
            )
            return
        try:
            frames, problems = decode_batch(payload, max_frames=self.max_frames_per_payload)
        except TypeError:
            frames, problems = [], [f"payload is {type(payload).__name__}, not bytes"]
        for p in problems:
            self._refuse(st.rejections, RejectReason.MALFORMED, p, None, None, st.now, expected)
        unparsed: dict[RejectReason, list[Any]] = {}  # reason -> [count, first detail]
        for raw in frames:
            try:
                frame = parse_frame(raw)
            except FrameError as exc:
                reason = (
                    RejectReason.UNSUPPORTED_VERSION
                    if "version" in str(exc)
                    else RejectReason.MALFORMED
                )
                unparsed.setdefault(reason, [0, str(exc)])[0] += 1
                continue
            self._verify_frame(st, frame, raw, expected)
        for reason, (n, first) in unparsed.items():  # one refusal per payload and reason
            detail = first if n == 1 else f"{n} of {len(frames)} frames in the payload: {first}"
            self._refuse(st.rejections, reason, detail, None, None, st.now, expected, n)

    def _verify_frame(self, st: _BatchState, frame: Any, raw: Any, expected: str | None) -> None:
        """Check one parsed frame; append it to ``st`` if valid, else refuse it."""
        h = frame.header
        dev_id = h.get("dev")
        seq = h.get("seq")
        try:
            idx, kind, kid, sent = self._check_header(h, frame, st.now, st.pending, expected)
            seq = int(h["seq"])
            if kind == "readings":
                part = self._readings(h, frame.body, idx, st.now)
                st.parts.append(part)
                n_read = len(part)
            else:
                st.records.append(self._record(h, frame.body, idx, kind, st.now))
                n_read = 0
            st.pending[idx] = seq
            st.msg_rows.append((idx, KIND_CODES[kind], seq, kid, sent, n_read))
            if self.keep_frames:
                st.kept.append(bytes(raw))
        except _Refused as r:
            self._refuse(st.rejections, r.reason, r.detail, dev_id, seq, st.now, expected)
        except Exception as exc:  # never let one odd message sink the batch
            log.exception(
                "unexpected error checking a telemetry message from %s", wire_text(dev_id)
            )
            self._refuse(
                st.rejections,
                RejectReason.MALFORMED,
                f"unexpected: {exc!r}",
                dev_id,
                seq,
                st.now,
                expected,
            )

    def _refuse(  # noqa: PLR0913
        self,
        out: list[Rejection],
        reason: RejectReason,
        detail: str,
        dev_id: Any,
        seq: Any,
        now: int,
        expected: str | None = None,
        count: int = 1,
    ) -> None:
        """Record a refusal (sanitised, within the limits; see :class:`RefusalLog`)."""
        self._refusals.refuse(
            out, reason, detail, dev_id, seq, now, sender_key=expected, count=count
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
    def _check_header(  # noqa: C901, PLR0912
        self,
        h: dict[str, Any],
        frame: Any,
        now: int,
        pending: dict[int, int],
        expected: str | None = None,
    ) -> tuple[int, str, int, int]:
        if h.get("v") != FORMAT_VERSION:
            raise _Refused(
                RejectReason.UNSUPPORTED_VERSION,
                f"envelope version {h.get('v')!r}, this reader speaks {FORMAT_VERSION}",
            )
        seq, kid, sent, kind = h.get("seq"), h.get("kid"), h.get("ts_ms"), h.get("kind")
        if not (  # fast path; the loops below name the culprit (the casts after: for mypy)
            type(h.get("dev")) is str
            and type(kid) is int
            and type(seq) is int
            and type(sent) is int
            and type(kind) is str
            and 0 < seq < 2**63
            and 0 <= kid < 2**31
            and 0 <= sent <= 2**62
        ):
            for name, typ in (
                ("dev", str),
                ("kid", int),
                ("seq", int),
                ("ts_ms", int),
                ("kind", str),
            ):
                if type(h.get(name)) is not typ:
                    raise _Refused(
                        RejectReason.MALFORMED,
                        f"header field '{name}' must be {typ.__name__}, got {h.get(name)!r}",
                    )
            for name, lo, hi in (("seq", 1, 2**63 - 1), ("kid", 0, 2**31 - 1), ("ts_ms", 0, 2**62)):
                if not lo <= h[name] <= hi:
                    raise _Refused(
                        RejectReason.MALFORMED,
                        f"header field '{name}' = {h[name]} outside [{lo}, {hi}]",
                    )
        seq, kid, sent, kind = cast(int, seq), cast(int, kid), cast(int, sent), cast(str, kind)
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
        if expected is not None and h["dev"] != expected:
            self._check_topic(idx, h["dev"], expected)
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

    def _check_topic(self, idx: int, dev: str, expected: str) -> None:
        """Refuse a frame signed by ``dev`` on ``expected``'s topic unless ``expected`` is the
        registered gateway of ``dev`` (a gateway may relay its devices' own signed frames)."""
        gw = self.registry.get_index(expected)
        if gw is None or int(self.registry.gateway_idx[idx]) != gw:
            raise _Refused(
                RejectReason.WRONG_TOPIC,
                f"signed by {dev!r} but sent on the telemetry topic of {expected!r}",
            )

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
            assert dev_pos is not None
            dev_rows = self._relayed_devices(h, devs, idx, now, dev_pos, n)
        if n:
            self._check_values(ts, values, codes, (lo, hi), now)
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

    def _relayed_devices(
        self,
        h: dict[str, Any],
        devs: list[Any],
        idx: int,
        now: int,
        dev_pos: np.ndarray,
        n: int,
    ) -> np.ndarray:
        """Registry index per reading row of a gateway's frame relaying ``devs``: each a
        registered device of this gateway (or the gateway itself) and not revoked at ``now``."""
        reg = self.registry
        try:
            ck = (idx, tuple(devs))
            hash(ck)
        except TypeError:
            raise _Refused(RejectReason.MALFORMED, "'devs' must be a list of device ids") from None
        didx = self._gw_cache.get(ck)
        if didx is None:
            if not all(isinstance(d, str) for d in devs):
                raise _Refused(RejectReason.MALFORMED, "'devs' must be a list of device ids")
            didx = np.empty(len(devs), np.int64)
            for j, d in enumerate(devs):
                i = reg.get_index(d)
                if i is None:
                    raise _Refused(RejectReason.UNKNOWN_DEVICE, f"device {d!r} is not registered")
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
        if n and int(dev_pos.max()) >= len(devs):
            raise _Refused(RejectReason.MALFORMED, "dev_pos points past the 'devs' list")
        rows: np.ndarray = didx[dev_pos]
        return rows

    def _check_values(
        self,
        ts: np.ndarray,
        values: np.ndarray,
        codes: Any,
        bounds: tuple[np.ndarray, np.ndarray],
        now: int,
    ) -> None:
        """Refuse readings in the future (beyond the clock skew), older than ``max_age_ms`` or
        outside their quantity's range (``bounds``: low and high per quantity row)."""
        lo, hi = bounds
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
        return Record(idx, h["dev"], kind, h["seq"], ts, wire_text(name), payload)
