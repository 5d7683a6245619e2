"""Bounded bookkeeping of refused messages: every refusal counted, few of them kept one by one.

A hostile or broken sender can make millions of refusals (a batch of empty frames, a replay
loop). :class:`RefusalLog` keeps (and logs) the first ``max_per_sender`` refusals of each
sender and the first ``max_total`` of all senders per ``window_s`` of the receiver's clock;
the rest are counted and summarised in one :class:`Rejection` per reason per ``verify`` call
(its ``count`` says how many messages it stands for). Every text from the wire is made safe
(:func:`~gridpilot.telemetry.safe_text.wire_text`) before it is kept or logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gridpilot.telemetry.safe_text import wire_int, wire_text, wire_text_or_none

log = logging.getLogger("gridpilot.telemetry")

MAX_DETAIL = 500
MAX_ID = 100


class RejectReason(StrEnum):
    """Why a message was refused."""

    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_TOPIC = "wrong_topic"
    REPLAYED_SEQ = "replayed_seq"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_QUANTITY = "unknown_quantity"
    UNAUTHORISED_DEVICE = "unauthorised_device"
    FUTURE_TIMESTAMP = "future_timestamp"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True)
class Rejection:
    """Refused message(s): the reason, in words, and what could be read of the sender.

    ``device_id`` and ``detail`` are safe text (printable, one line, bounded); ``seq`` is
    None when absent or outside int64. ``count`` > 1 for a summary row that stands for
    several refusals (a malformed payload's frames, or refusals over the limits).
    """

    reason: RejectReason
    detail: str
    device_id: str | None = None
    seq: int | None = None
    received_ms: int = 0
    count: int = 1


@dataclass(frozen=True)
class RefusalLimits:
    """How many refusals are kept one by one per ``window_s`` seconds (receiver clock)."""

    max_per_sender: int = 20
    max_total: int = 200
    window_s: float = 60.0


@dataclass
class _Suppressed:
    count: int = 0
    senders: list[str] = field(default_factory=list)
    first_detail: str = ""


class RefusalLog:
    """Collects refusals into a list, within :class:`RefusalLimits`; logs the ones it keeps."""

    def __init__(self, limits: RefusalLimits | None = None, *, log_enabled: bool = True) -> None:
        self.limits = limits or RefusalLimits()
        self.log_enabled = log_enabled
        self._window_start_ms: int | None = None
        self._per_sender: dict[str, int] = {}
        self._total = 0
        self._suppressed: dict[RejectReason, _Suppressed] = {}

    def _roll(self, now_ms: int) -> None:
        start = self._window_start_ms
        if start is None or not 0 <= now_ms - start < self.limits.window_s * 1000:
            self._window_start_ms = now_ms
            self._per_sender.clear()
            self._total = 0

    def refuse(  # noqa: PLR0913
        self,
        out: list[Rejection],
        reason: RejectReason,
        detail: Any,
        dev_id: Any,
        seq: Any,
        now_ms: int,
        *,
        sender_key: str | None = None,
        count: int = 1,
    ) -> None:
        """Append a :class:`Rejection` to ``out`` (sanitised), or count it if over the limits."""
        self._roll(now_ms)
        dev = wire_text_or_none(dev_id, MAX_ID)
        key = sender_key if sender_key is not None else (dev or "?")
        key = wire_text(key, MAX_ID)
        lim = self.limits
        n_sender = self._per_sender.get(key, 0)
        if n_sender >= lim.max_per_sender or self._total >= lim.max_total:
            sup = self._suppressed.setdefault(reason, _Suppressed())
            sup.count += count
            if len(sup.senders) < 5 and key not in sup.senders:
                sup.senders.append(key)
            if not sup.first_detail:
                sup.first_detail = wire_text(detail, 120)
            return
        self._per_sender[key] = n_sender + 1
        self._total += 1
        r = Rejection(reason, wire_text(detail, MAX_DETAIL), dev, wire_int(seq), now_ms, count)
        out.append(r)
        if self.log_enabled:
            log.warning(
                "telemetry message refused: %s (device %s, seq %s%s): %s",
                reason,
                r.device_id,
                r.seq,
                f", {count} messages" if count > 1 else "",
                r.detail,
            )

    def flush(self, out: list[Rejection], now_ms: int) -> None:
        """Append one summary :class:`Rejection` per reason for the refusals over the limits."""
        for reason, sup in self._suppressed.items():
            senders = ", ".join(sup.senders) + (", ..." if len(sup.senders) >= 5 else "")
            detail = (
                f"{sup.count} more refusals over the limits ({self.limits.max_per_sender} per "
                f"sender, {self.limits.max_total} in all per {self.limits.window_s:g} s) not kept "
                f"one by one; senders: {senders}; e.g. {sup.first_detail}"
            )
            r = Rejection(reason, wire_text(detail, MAX_DETAIL), None, None, now_ms, sup.count)
            out.append(r)
            if self.log_enabled:
                log.warning("telemetry messages refused: %s x %d: %s", reason, sup.count, r.detail)
        self._suppressed.clear()
