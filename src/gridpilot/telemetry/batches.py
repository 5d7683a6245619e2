"""The columnar results of verification: readings, accepted messages, records, the batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.telemetry.refusals import Rejection
from gridpilot.telemetry.schema import MessageKind

KIND_CODES: dict[str, int] = {str(k): i for i, k in enumerate(MessageKind)}
KIND_NAMES: tuple[str, ...] = tuple(str(k) for k in MessageKind)


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
        """Return {reason: number of refused messages} (summary rejections count several)."""
        out: dict[str, int] = {}
        for r in self.rejections:
            out[str(r.reason)] = out.get(str(r.reason), 0) + r.count
        return out
