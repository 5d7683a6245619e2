"""What unbalanced FLISR decides: the indications it reads, the limits check per node-phase
and branch-phase, and :class:`Flisr3pResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.model.limits import OperatingLimits
from gridpilot.twin.unbalanced.topology import SwitchedResult


@dataclass(frozen=True)
class Indications3p:
    """What the control room sees after a fault: each switch's fault-passage indicator
    (``fpi``: name → picked up) and the branches protection left open (``opened``: a
    locked-out recloser, a blown fuse); ``lockout`` False when protection cleared the fault
    by itself (a fuse, a successful reclose): then there is nothing to switch."""

    fpi: dict[str, bool]
    opened: tuple[str, ...] = ()
    lockout: bool = True


@dataclass(frozen=True)
class StateCheck:
    """A solved switch state against the limits: extremes over the energised node-phases
    (pu), the largest branch-phase loading (% of its normal rating), served kW, and
    whether the limits hold (``ok``) with the first violation named in ``why``."""

    ok: bool
    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    served_kw: float
    losses_kw: float
    why: str = ""


def check_state(
    out: SwitchedResult,
    limits: OperatingLimits,
    upper: bool = True,
    source_side: np.ndarray | None = None,
) -> StateCheck:
    """Check every energised node-phase against the band (its upper edge only if ``upper``,
    and not on the ``source_side`` node-phases: the source's own buses, which no switching or
    regulator of the feeder can lower) and every rated branch conductor against
    ``loading_max_pct``; returns a :class:`StateCheck`."""
    res = out.result
    vpu = res.v_pu
    live = out.energised
    if not live.any():
        return StateCheck(True, float("nan"), float("nan"), 0.0, 0.0, 0.0)
    lo_i = int(np.argmin(np.where(live, vpu, np.inf)))
    judged = live if source_side is None else live & ~source_side
    hi_i = int(np.argmax(np.where(judged, vpu, -np.inf)))
    rating = np.array([m[3] for m in res.branch_meta])
    i = np.abs(res.branch_i_a)
    load = np.where(rating > 0, 100.0 * i / np.where(rating > 0, rating, 1.0), 0.0)
    j = int(np.argmax(load)) if load.size else -1
    worst = float(load[j]) if j >= 0 else 0.0
    why = ""
    if vpu[lo_i] < limits.v_min_pu - 1e-9:
        why = f"{res.nodes[lo_i][0]}.{res.nodes[lo_i][1]} at {vpu[lo_i]:.4f} pu < {limits.v_min_pu}"
    elif upper and vpu[hi_i] > limits.v_max_pu + 1e-9:
        why = f"{res.nodes[hi_i][0]}.{res.nodes[hi_i][1]} at {vpu[hi_i]:.4f} pu > {limits.v_max_pu}"
    elif worst > limits.loading_max_pct + 1e-9:
        m = res.branch_meta[j]
        why = f"branch {m[0]} phase {m[2]} at {worst:.1f} % > {limits.loading_max_pct} %"
    return StateCheck(
        not why, float(vpu[lo_i]), float(vpu[hi_i]), worst, out.served_kw, res.losses_kw, why
    )


@dataclass
class Flisr3pResult:
    """An unbalanced FLISR decision.

    ``section``: the located faulted section (-1: none, e.g. a fuse cleared the fault and
    nothing is to switch); ``isolate`` switches opened around it; ``reclose`` protection
    devices closed again; ``restore`` ties closed; ``shed`` switches opened to leave load off
    so that the rest can be restored; ``plan`` the ordered actions (opens first). Powers in
    kW (nominal, at the load level decided for): ``interrupted_kw`` without supply after
    protection acted, ``isolated_kw`` inside the faulted section, ``restored_kw`` brought
    back, ``unserved_kw`` still without supply after the plan. ``after`` is the final
    state's check in the three-phase twin (``verified_by``: with the pre-fault taps frozen,
    or with its static controls acting); ``verified`` is True only when it holds
    ``limits_used``. ``taps`` / ``cap_states``: the regulators' taps (pu) and capacitors'
    steps the final state runs with (the frozen pre-fault ones, or the static controls'
    settled ones); ``tap_commands``: the regulators the plan lowers and holds by SCADA
    (regcontrol → pu) because their local control would leave a node-phase above the band
    (empty when the local controls suffice). ``decision_ms``: wall time from
    indications to plan (plans may come from the per-feeder precomputation, ``from_cache``).
    """

    section: int
    located_by: list[str]
    isolate: list[str]
    reclose: list[str]
    restore: list[str]
    shed: list[str]
    plan: list[tuple[str, str, str]]
    interrupted_kw: float
    isolated_kw: float
    restored_kw: float
    unserved_kw: float
    after: StateCheck
    limits_used: dict[str, float]
    verified: bool
    decision_ms: float
    final_state: dict[str, bool]
    verified_by: str = "unbalanced-twin"
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)
    taps: dict[str, float] = field(default_factory=dict)
    tap_commands: dict[str, float] = field(default_factory=dict)
    cap_states: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "section": self.section,
            "located_by": self.located_by,
            "isolate": self.isolate,
            "reclose": self.reclose,
            "restore": self.restore,
            "shed": self.shed,
            "plan": [{"switch": s, "action": a, "reason": r} for s, a, r in self.plan],
            "interrupted_kw": round(self.interrupted_kw, 3),
            "isolated_kw": round(self.isolated_kw, 3),
            "restored_kw": round(self.restored_kw, 3),
            "unserved_kw": round(self.unserved_kw, 3),
            "vmin_pu_after": round(self.after.vmin_pu, 6),
            "vmax_pu_after": round(self.after.vmax_pu, 6),
            "max_loading_pct_after": round(self.after.max_loading_pct, 3),
            "limits": self.limits_used,
            "verified": self.verified,
            "verified_by": self.verified_by,
            "decision_ms": round(self.decision_ms, 3),
            "from_cache": self.from_cache,
            "tap_commands": {k: round(v, 6) for k, v in self.tap_commands.items()},
            "taps": {k: round(v, 6) for k, v in self.taps.items()},
            "notes": self.notes,
        }
