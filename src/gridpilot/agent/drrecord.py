"""The record of one demand-response event (:class:`DREventRecord`), for the API, the audit
log and the delivery check of :class:`~gridpilot.agent.flexlink.FlexDR`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEVICE_METHOD = (
    "device-level: the plan's baseline minus the participants' power measured between loop "
    "steps from the device registry (mean over the event)"
)


@dataclass
class DREventRecord:
    """One dispatched event, for the API and the audit log (powers in the grid's MW)."""

    id: str
    source: str
    level: float
    target_mw: float
    start: str
    duration_min: float
    buses: list[int]
    devices: dict[str, int]
    expected_reduction_mw: list[float]
    short_mw: float
    target_met: bool | None
    dispatch_ms: float
    commands: int = 0
    status: str = "active"  # active, released, superseded, renewed
    end: str | None = None
    measured_reduction_mw: float | None = None
    measured_method: str = (
        "metered load: its level over the 15 samples before the event times the load-shape "
        "forecast, minus the load during the event (mean)"
    )
    reason: str = ""
    pre_level_mw: float | None = None  # load over shape before the event
    during: list[tuple[float, float]] = field(default_factory=list)  # (load MW, shape) samples
    # mean reduction the participants reported (OpenADR VEN reports; gridpilot.protocols), MW
    reported_reduction_mw: float | None = None
    delivered: list[tuple[float, float]] = field(default_factory=list)  # (s since dispatch, MW)
    requested_level: float | None = None  # the loop's level (level may be raised by a top-up)
    topup_of: str | None = None  # the under-delivering event this one tops up
    delivered_mw: float | None = None  # measured over the check's last window
    delivered_share: float | None = None  # delivered_mw / target_mw
    reaction: str = ""  # what was done about an under-delivery

    @property
    def expected_mean_mw(self) -> float:
        """Mean expected reduction over the event's steps, MW."""
        r = self.expected_reduction_mw
        return float(np.mean(r)) if r else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the raw samples)."""
        return {
            "id": self.id,
            "program": "load_shed",
            "source": self.source,
            "level": self.level,
            "target_mw": round(self.target_mw, 6),
            "start": self.start,
            "end": self.end,
            "duration_min": self.duration_min,
            "buses": self.buses,
            "devices": self.devices,
            "expected_reduction_mw": [round(x, 6) for x in self.expected_reduction_mw],
            "expected_mean_mw": round(self.expected_mean_mw, 6),
            "short_mw": round(self.short_mw, 6),
            "target_met": self.target_met,
            "dispatch_ms": round(self.dispatch_ms, 2),
            "commands": self.commands,
            "status": self.status,
            "measured_reduction_mw": None
            if self.measured_reduction_mw is None
            else round(self.measured_reduction_mw, 6),
            "measured_method": self.measured_method,
            "reason": self.reason,
            "reported_reduction_mw": None
            if self.reported_reduction_mw is None
            else round(self.reported_reduction_mw, 6),
            "requested_level": self.requested_level,
            "topup_of": self.topup_of,
            "delivered_mw": None if self.delivered_mw is None else round(self.delivered_mw, 6),
            "delivered_share": None
            if self.delivered_share is None
            else round(self.delivered_share, 4),
            "reaction": self.reaction,
        }
