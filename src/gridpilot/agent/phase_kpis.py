"""Node-phase KPIs of a run on a three-phase world (a
:class:`~gridpilot.agent.worldtypes.PhaseAwareWorld`), beside the scenarios' balanced ones.

Per step, from the world's per-node-phase result (the physics, not the loop's view): the
lowest and highest voltage of any energised node-phase, minutes with any energised node-phase
outside the band (default ANSI C84.1 Range A, 0.95-1.05 pu), node-phase-minutes outside it,
and the largest voltage unbalance of a three-phase bus.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.model import OperatingLimits

PHASE_KPI_UNITS = {
    "vmin_node_phase_pu": "pu",
    "vmax_node_phase_pu": "pu",
    "phase_voltage_violation_min": "min",
    "node_phase_violation_min": "node-phase min",
    "max_unbalance_pct": "%",
}


class PhaseKpis:
    """Accumulates the node-phase KPIs step by step (``limits``: the band, default Range A)."""

    def __init__(self, step_s: float, limits: OperatingLimits | None = None) -> None:
        self.minutes = step_s / 60.0
        self.limits = limits or OperatingLimits()
        self.vmin = float("inf")
        self.vmax = float("-inf")
        self.viol_min = 0.0
        self.node_min = 0.0
        self.vuf = 0.0
        self.worst: dict[str, Any] = {}
        self.series: dict[str, list[Any]] = {"vmin_phase_pu": [], "vmax_phase_pu": []}

    def add(self, world: Any) -> None:
        """Add the world's latest step (``world.phase_result()`` and ``world.live_nodes()``)."""
        res = world.phase_result()
        if res is None:
            return
        live = world.live_nodes()
        v = res.v_pu[live]
        if v.size == 0:
            self.series["vmin_phase_pu"].append(None)
            self.series["vmax_phase_pu"].append(None)
            return
        lo, hi = float(v.min()), float(v.max())
        if lo < self.vmin:
            self.vmin = lo
            self.worst["vmin_node"] = _node(res, live, int(np.argmin(v)))
        if hi > self.vmax:
            self.vmax = hi
            self.worst["vmax_node"] = _node(res, live, int(np.argmax(v)))
        out = (v < self.limits.v_min_pu - 1e-9) | (v > self.limits.v_max_pu + 1e-9)
        if out.any():
            self.viol_min += self.minutes
            self.node_min += self.minutes * int(out.sum())
        vuf = res.unbalance()
        if len(vuf):
            on = {res.nodes[i][0] for i in np.flatnonzero(live)}
            vals = vuf[[b in on for b in vuf.index]]
            if len(vals):
                self.vuf = max(self.vuf, float(vals.max()))
        self.series["vmin_phase_pu"].append(round(lo, 5))
        self.series["vmax_phase_pu"].append(round(hi, 5))

    def finish(self) -> dict[str, float]:
        """The KPIs (NaN extremes where no node-phase was ever energised)."""
        fin = np.isfinite
        return {
            "vmin_node_phase_pu": round(self.vmin, 6) if fin(self.vmin) else float("nan"),
            "vmax_node_phase_pu": round(self.vmax, 6) if fin(self.vmax) else float("nan"),
            "phase_voltage_violation_min": round(self.viol_min, 6),
            "node_phase_violation_min": round(self.node_min, 6),
            "max_unbalance_pct": round(self.vuf, 6),
        }


def _node(res: Any, live: np.ndarray, k: int) -> str:
    b, n = res.nodes[int(np.flatnonzero(live)[k])]
    return f"{b}.{n}"


__all__ = ["PHASE_KPI_UNITS", "PhaseKpis"]
