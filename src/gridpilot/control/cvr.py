"""Volt/VAR optimisation with conservation voltage reduction (CVR) on unbalanced feeders.

Method (simple and verified): for each decision period (default one hour of 15-minute
steps) the band is Range A less a margin for every node-phase a regulator moves, in every
step of the period (:mod:`gridpilot.control.cvr_band`; node-phases no tap moves, the
source side of every regulator, are reported apart, not weighed). Where moving all
regulators together does not reach the band, single regulators are moved as the tap
sensitivities suggest, each move solved exactly; where the period's exact solve still
leaves a regulated node-phase outside Range A in some step, that period is decided step
by step (back-off).
The previous period's taps are held while they keep the band; a tap step down (all
regulators together, then each alone) is taken only where it saves at least
``min_gain_pct`` of the period's energy per operation; taps leaving the band are raised
together until back in it (else the search starts from the state OpenDSS's own controls
reach at the period's start, the baseline QSTS). Capacitors (``cap_search``) keep their
state unless switching one (at most one per period) brings the period back into the band or
saves ``min_gain_pct``; the taps are then chosen again. Smart inverters (the grid's
``invcontrols``) follow their IEEE 1547 curves in every solve, in the baseline and here, so
every tap and capacitor choice is verified with the inverters' reactive power. Every chosen state is
solved exactly by the engine; energy is the substation's input. Savings exist only where
loads draw less at lower voltage (constant-Z/I, exponential CVR or ZIP loads).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import LoadShape, ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CvrOptions:
    """Limits (pu), margin (pu) kept inside them, steps per decision and tap search depth."""

    vmin_pu: float = 0.95
    vmax_pu: float = 1.05
    margin_pu: float = 0.005
    period_steps: int = 4
    max_lower_taps: int = 16
    per_regulator: bool = True
    min_gain_pct: float = 0.05  # energy a tap operation must save, % of the period's
    match_baseline_ops: bool = True
    max_replans: int = 4
    cap_search: bool = True  # switch capacitors where it helps (else: the baseline's states)
    max_cap_ops: int = -1  # capacitor step operations allowed over the run (-1: no limit)
    day_plan: bool = False  # one day-ahead DP schedule per device (control.cvr_plan)
    plan_iterations: int = 6  # exact checks (each followed by a re-plan) of the day plan

    def validate(self) -> None:
        """Raise :class:`ValidationError` naming the first bad field and its value."""
        for name in ("vmin_pu", "vmax_pu"):
            val = getattr(self, name)
            if not (0.0 < val <= 2.0) or not np.isfinite(val):
                raise ValidationError(f"{name} must be within 0-2 pu, got {val!r}")
        if not (0.0 <= self.margin_pu < (self.vmax_pu - self.vmin_pu) / 2):
            raise ValidationError(
                f"margin_pu must be >= 0 and leave a band, got {self.margin_pu!r}"
            )
        if self.vmin_pu >= self.vmax_pu:
            raise ValidationError(
                f"vmin_pu ({self.vmin_pu}) must be below vmax_pu ({self.vmax_pu})"
            )
        if self.plan_iterations < 1:
            raise ValidationError(f"plan_iterations must be >= 1, got {self.plan_iterations!r}")
        if self.period_steps < 1 or self.max_lower_taps < 0:
            raise ValidationError(
                f"period_steps must be >= 1 and max_lower_taps >= 0, got {self.period_steps!r}, "
                f"{self.max_lower_taps!r}"
            )


@dataclass
class RunFigures:
    """One run over the horizon: energy in (kWh), violation minutes (any node-phase; and
    only node-phases a regulator moves, ``violation_min_regulated``), operations."""

    energy_kwh: float
    violation_min: float
    tap_ops: int
    cap_ops: int
    vmin_pu: float
    vmax_pu: float
    violation_min_regulated: float = 0.0  # minutes with a regulator-moved node-phase outside
    v_lo: list[float] = field(default_factory=list, repr=False)  # per step, pu
    v_hi: list[float] = field(default_factory=list, repr=False)

    def numbers(self) -> dict[str, Any]:
        """The figures without the per-step series (JSON-ready)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("v_lo", "v_hi")}


@dataclass
class CvrResult:
    """The optimised day against the baseline (OpenDSS's own controls in the engine)."""

    grid: str
    steps: int
    resolution_s: float
    baseline: RunFigures
    optimised: RunFigures
    decision_ms: list[float] = field(default_factory=list)
    taps: dict[str, list[float]] = field(default_factory=dict)  # per period, pu
    min_gain_pct: float = 0.0  # the threshold the returned plan used
    extra: dict[str, Any] = field(default_factory=dict)  # method detail, added to summary()

    @property
    def energy_saved_pct(self) -> float:
        """Energy saved, % of the baseline's substation input."""
        return 100.0 * (1.0 - self.optimised.energy_kwh / self.baseline.energy_kwh)

    def summary(self) -> dict[str, Any]:
        """The comparison in numbers (JSON-ready)."""
        ms = np.asarray(self.decision_ms) if self.decision_ms else np.zeros(1)
        return {
            "grid": self.grid,
            "steps": self.steps,
            "resolution_s": self.resolution_s,
            "energy_saved_pct": round(self.energy_saved_pct, 3),
            "baseline": self.baseline.numbers(),
            "optimised": self.optimised.numbers(),
            "min_gain_pct": self.min_gain_pct,
            "tap_ops_within_baseline": self.optimised.tap_ops <= self.baseline.tap_ops,
            "decision_ms_p50": round(float(np.percentile(ms, 50)), 2),
            "decision_ms_p99": round(float(np.percentile(ms, 99)), 2),
            **self.extra,
        }


def shaped(grid: ThreePhaseGrid, load_mult: np.ndarray, resolution_s: float) -> ThreePhaseGrid:
    """The grid with every variable load following ``load_mult`` (one value per step) as its
    yearly shape."""
    mult = np.asarray(load_mult, float)
    if mult.ndim != 1 or mult.size == 0 or np.any(~np.isfinite(mult)) or np.any(mult < 0):
        raise ValidationError("load_mult must be a non-empty 1-D profile of finite values >= 0")
    h = resolution_s / 3600.0
    shape = LoadShape("cvr_day", mult, (np.arange(mult.size) + 1) * h, None, h)
    loads = [dataclasses.replace(ld, yearly="cvr_day") if ld.kind == "load" else ld
             for ld in grid.loads]  # fmt: skip
    return dataclasses.replace(grid, loads=loads, loadshapes={**grid.loadshapes, "cvr_day": shape})


def with_cvr_loads(
    grid: ThreePhaseGrid, cvr_watts: float = 0.8, cvr_vars: float = 3.0
) -> ThreePhaseGrid:
    """The grid with every consumer load as OpenDSS's exponential CVR model (model 4) with
    the given factors (%P per %V, %Q per %V)."""
    for name, val in (("cvr_watts", cvr_watts), ("cvr_vars", cvr_vars)):
        if not (0.0 <= val <= 10.0):
            raise ValidationError(f"{name} must be within 0-10, got {val!r}")
    loads = [dataclasses.replace(ld, model=4, cvr_watts=cvr_watts, cvr_vars=cvr_vars)
             if ld.kind == "load" else ld for ld in grid.loads]  # fmt: skip
    return dataclasses.replace(grid, loads=loads)


def source_kw(twin: UnbalancedTwin, v: np.ndarray) -> np.ndarray:
    """Real power into the feeder at the source (kW) of solved columns ``v`` (V)."""
    st = twin.net.src_stamp
    n1 = len(st.idx) // 2
    idx = st.idx[:n1]
    keep = idx >= 0
    vs = v[idx[keep]]
    i_inj = twin.net.i_source[idx[keep]][:, None] - st.y[:n1, :n1][np.ix_(keep, keep)] @ vs
    return np.sum(vs * np.conj(i_inj), axis=0).real / 1e3


def v_pu(twin: UnbalancedTwin, v: np.ndarray) -> np.ndarray:
    """Voltage magnitudes (pu) of solved columns; NaN where a node is dead (< 0.05 pu)."""
    vp = np.abs(v) / twin.net.vbase_v[:, None]
    return np.where(vp > 0.05, vp, np.nan)
