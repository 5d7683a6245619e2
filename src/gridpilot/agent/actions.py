"""Actions and plans: what a policy or an operator asks the grid to do."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from gridpilot.errors import ValidationError

ACTION_KINDS = ("switch", "dr", "storage", "ev", "reset_fpi", "tap")
TAP_RANGE_PU = (0.5, 1.5)  # a regulator tap command outside it is bad input
_plan_ids = itertools.count(1)


@dataclass(frozen=True)
class Action:
    """One command to the field.

    ``kind``: ``switch`` (``target`` switch id, ``value`` 1 close / 0 open), ``dr`` (``value``
    demand-response level 0..1), ``storage`` (``target`` storage id, ``value`` MW, + charging),
    ``ev`` (``value`` EV smart-charging factor 0..1), ``reset_fpi`` (no target), ``tap``
    (``target`` regulator id on a three-phase feeder, ``value`` its tap in pu, held there).
    """

    kind: str
    target: int | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValidationError(
                f"action kind: unknown {self.kind!r}; known: {', '.join(ACTION_KINDS)}"
            )
        if self.kind in ("switch", "storage", "tap") and self.target is None:
            raise ValidationError(f"action {self.kind}: needs a target id")
        lo, hi = TAP_RANGE_PU
        if self.kind == "tap" and not lo <= float(self.value) <= hi:
            raise ValidationError(
                f"action tap: value must be within {lo}-{hi} pu, got {self.value}"
            )
        if self.kind in ("dr", "ev") and not 0.0 <= float(self.value) <= 1.0:
            raise ValidationError(
                f"action {self.kind}: value must be within [0, 1], got {self.value}"
            )

    def describe(self) -> str:
        """One line in words."""
        if self.kind == "switch":
            return f"{'close' if self.value else 'open'} switch {self.target}"
        if self.kind == "dr":
            return f"demand response level {self.value:.2f}"
        if self.kind == "storage":
            return f"battery {self.target} set point {self.value:+.3f} MW"
        if self.kind == "ev":
            return f"EV charging factor {self.value:.2f}"
        if self.kind == "tap":
            return f"regulator {self.target} tap to {self.value:.5f} pu (held)"
        return "reset fault-passage indicators"


@dataclass
class Plan:
    """An ordered list of actions with its reason, the policy (or operator) behind it and its data.

    ``data`` holds what the decision was based on (measurements, forecast, simulation results);
    ``id`` is unique in the process.
    """

    actions: list[Action]
    reason: str
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    faulted_lines: tuple[int, ...] = ()
    id: int = field(default_factory=lambda: next(_plan_ids))

    @property
    def taps(self) -> dict[int, float]:
        """The plan's regulator tap commands (regulator id -> pu; the last one per regulator)."""
        return {int(a.target or 0): float(a.value) for a in self.actions if a.kind == "tap"}

    @property
    def switch_ops(self) -> int:
        """Number of switching operations in the plan."""
        return sum(1 for a in self.actions if a.kind == "switch")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "id": self.id,
            "source": self.source,
            "reason": self.reason,
            "actions": [asdict(a) | {"text": a.describe()} for a in self.actions],
            "faulted_lines": list(self.faulted_lines),
        }
