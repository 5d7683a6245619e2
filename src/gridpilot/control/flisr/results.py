"""What FLISR decides and under which limits: :class:`Limits`, :class:`SwitchAction` and
:class:`FlisrResult` (the public face of :mod:`gridpilot.control.flisr`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.control.flisr.location import Location
from gridpilot.model.limits import OperatingLimits, canonical_limit_names


@dataclass(frozen=True, init=False)
class Limits(OperatingLimits):
    """FLISR's operating limits: the shared :class:`~gridpilot.model.limits.OperatingLimits`
    (voltage band ``v_min_pu``..``v_max_pu``, set an emergency band here; branch loading
    ``loading_max_pct``) plus ``relax_to_prefault``: the band is widened to what the grid
    already had before the fault (a feeder that ran at 0.91 pu is not asked for 0.95).

    Built from shared limits with :meth:`from_limits`. The old keyword ``max_loading_pct``
    (third positional) is still accepted and read as ``loading_max_pct``.
    """

    relax_to_prefault: bool = True

    def __init__(
        self,
        v_min_pu: float = 0.95,
        v_max_pu: float = 1.05,
        max_loading_pct: float | None = None,
        relax_to_prefault: bool = True,
        *,
        loading_max_pct: float | None = None,
    ) -> None:
        kw = canonical_limit_names(
            {"max_loading_pct": max_loading_pct, "loading_max_pct": loading_max_pct}
        )
        load = kw["loading_max_pct"]
        object.__setattr__(self, "v_min_pu", v_min_pu)
        object.__setattr__(self, "v_max_pu", v_max_pu)
        object.__setattr__(self, "loading_max_pct", 100.0 if load is None else load)
        object.__setattr__(self, "relax_to_prefault", bool(relax_to_prefault))
        self.__post_init__()

    @property
    def max_loading_pct(self) -> float:
        """The old name of :attr:`loading_max_pct` (%)."""
        return self.loading_max_pct

    @classmethod
    def from_limits(cls, limits: OperatingLimits, relax_to_prefault: bool = True) -> Limits:
        """FLISR limits holding the values of the shared ``limits`` (returned as is when it
        already is a :class:`Limits`)."""
        if isinstance(limits, Limits):
            return limits
        return cls(
            limits.v_min_pu,
            limits.v_max_pu,
            loading_max_pct=limits.loading_max_pct,
            relax_to_prefault=relax_to_prefault,
        )


@dataclass
class SwitchAction:
    """One step of a switching plan: switch id, ``close`` (True) or open, and why."""

    switch: int
    close: bool
    reason: str  # isolate | reclose | sectionalise | restore

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "switch": self.switch,
            "action": "close" if self.close else "open",
            "reason": self.reason,
        }


@dataclass
class FlisrResult:
    """A FLISR decision: where the fault is, what to switch, and what it achieves.

    Switch, line and load lists hold ids. Powers in kW: ``interrupted_kw`` lost supply at the
    trip, ``isolated_kw`` of it lies inside the isolated sections, ``restorable_kw`` is the
    rest that a closable path could reach, ``restored_kw`` what the plan brings back,
    ``shed_kw`` restorable load deliberately left off, ``unserved_kw`` everything interrupted
    and not restored. ``vmin_pu_after``/``max_loading_pct_after`` describe the grid after the
    plan (``verified_by`` says by which power flow: ``"twin"``, ``"radial-sweep"`` or ``"none"``).
    ``verified`` is False when the twin's check of the final state fails the plan's own
    ``limits_used`` even after planning again (``notes`` say why); such a plan must not be
    executed unattended (the CLI exits with status 3). ``decision_ms`` is wall time from
    indications to verified plan; ``decision_cpu_ms`` the CPU time of the deciding thread over
    the same span (on a busy machine the difference is time spent waiting for a core).
    """

    location: Location
    located_lines: list[int]
    isolated_sections: list[int]
    isolate: list[int]
    restore: list[int]
    open_for_restore: list[int]
    plan: list[SwitchAction]
    shed_loads: list[int]
    interrupted_kw: float
    isolated_kw: float
    restorable_kw: float
    restored_kw: float
    shed_kw: float
    unserved_kw: float
    vmin_pu_after: float
    max_loading_pct_after: float
    limits_used: dict[str, float]
    verified_by: str
    decision_ms: float
    switch_closed_after: np.ndarray
    locked_open: list[int]
    notes: list[str] = field(default_factory=list)
    decision_cpu_ms: float = float("nan")
    verified: bool = True

    @property
    def restored_share(self) -> float:
        """Restored share of restorable load (1.0 when nothing was restorable)."""
        return self.restored_kw / self.restorable_kw if self.restorable_kw > 1e-9 else 1.0

    def summary(self) -> dict[str, Any]:
        """The headline fields as plain JSON-able values."""
        return {
            "located": self.located_lines,
            "located_sections": self.isolated_sections,
            "candidates": [
                {
                    "section": c.section,
                    "lines": c.line_ids,
                    "confidence": c.confidence,
                    "cost": c.cost,
                }
                for c in self.location.candidates[:5]
            ],
            "isolate": self.isolate,
            "restore": self.restore,
            "open_for_restore": self.open_for_restore,
            "plan": [a.as_dict() for a in self.plan],
            "shed": self.shed_loads,
            "interrupted_kw": round(self.interrupted_kw, 3),
            "isolated_kw": round(self.isolated_kw, 3),
            "restorable_kw": round(self.restorable_kw, 3),
            "restored_kw": round(self.restored_kw, 3),
            "shed_kw": round(self.shed_kw, 3),
            "unserved_kw": round(self.unserved_kw, 3),
            "restored_share": round(self.restored_share, 6),
            "vmin_pu_after": round(self.vmin_pu_after, 6),
            "max_loading_pct_after": round(self.max_loading_pct_after, 3),
            "limits": self.limits_used,
            "verified": self.verified,
            "verified_by": self.verified_by,
            "decision_ms": round(self.decision_ms, 3),
            "decision_cpu_ms": round(self.decision_cpu_ms, 3),
            "notes": self.notes,
        }
