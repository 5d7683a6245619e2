"""Rows the telemetry stores write: devices, messages, records and rejections, from a
registry or a verified batch (wire text escaped); see :mod:`gridpilot.telemetry.store_base`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.telemetry.refusals import MAX_DETAIL, MAX_ID, Rejection
from gridpilot.telemetry.registry import DeviceRegistry
from gridpilot.telemetry.safe_text import wire_int, wire_text, wire_text_or_none
from gridpilot.telemetry.verify import KIND_NAMES, VerifiedBatch


def check_new_devices(registry: DeviceRegistry, stored: int, last_id: str | None) -> None:
    """Refuse a store written with another registry: its ``stored`` devices (the last
    ``last_id``) must be the registry's first ones, in order."""
    if stored > len(registry) or (stored and registry.ids[stored - 1] != last_id):
        raise ValidationError(
            issues=[
                Issue(
                    "store",
                    "devices",
                    "the store was written with a different device registry "
                    f"({stored} devices stored, last {last_id!r})",
                )
            ]
        )


def devices_rows(registry: DeviceRegistry, start: int) -> pd.DataFrame:
    """The ``devices`` rows of the registry's devices from index ``start`` on."""
    df = registry.frame().iloc[start:]
    return df[["idx", "device_id", "kind", "feeder", "bus", "gateway"]]


def message_rows(batch: VerifiedBatch) -> pd.DataFrame:
    """The ``messages`` rows of a batch's accepted messages (times as datetime64)."""
    m = batch.messages
    return pd.DataFrame(
        {
            "device": m.device,
            "kind": np.array(KIND_NAMES, dtype=object)[m.kind.astype(np.int64)],
            "seq": m.seq,
            "key_id": m.key_id,
            "sent": pd.to_datetime(m.sent_ms, unit="ms"),
            "received": pd.to_datetime(m.received_ms, unit="ms"),
            "n_readings": m.n_readings,
        }
    )


def record_rows(batch: VerifiedBatch) -> list[tuple[Any, ...]]:
    """The ``records`` rows of a batch's events, commands and acks (names escaped)."""
    return [
        (
            r.device,
            r.kind,
            r.seq,
            pd.Timestamp(r.ts_ms, unit="ms").to_pydatetime(),
            wire_text(r.name),
            json.dumps(r.payload),
        )
        for r in batch.records
    ]


def rejection_rows(rejections: Sequence[Rejection]) -> list[tuple[Any, ...]]:
    """Rows for the rejections table; every text escaped (see :func:`wire_text`)."""
    return [
        (
            pd.Timestamp(r.received_ms, unit="ms").to_pydatetime(),
            str(r.reason),
            wire_text_or_none(r.device_id, MAX_ID),
            wire_int(r.seq),
            wire_text(r.detail, MAX_DETAIL),
            int(r.count),
        )
        for r in rejections
    ]
