"""The band a CVR plan keeps, per node-phase, and per-regulator tap moves to reach it.

* **Band per node-phase.** Range A less the margin on every node-phase a regulator moves
  (regulated). The node-phases no tap moves (the source side of every regulator: on
  ieee8500 the 115 kV source bus at the Vsource's 1.05 pu, the bus behind its reactor and
  the substation transformer's 12.47 kV side before the feeder regulator, up to 1.058 pu
  at light load) are left out of the decisions: no tap can lower them, and counting them
  made every state look equally violating, so the least-violating pick fell to energy
  alone and broke the regulated nodes. Their minutes outside Range A are reported apart
  (``violation_min`` counts every node-phase, ``violation_min_regulated`` the regulated
  ones).
* **Tap sensitivities.** The change of every node-phase (pu) per tap step of each
  regulator, from one exact solve per regulator at the day's first step (inverters, if
  any, on their curves in those solves).
* **Repair.** Where moving all regulators together does not reach the band (ieee8500: the
  feeder regulator's own set point is 126.5 V = 1.054 pu at the head while a secondary
  behind regulator 3's phase A is below 0.95), single regulators are moved one tap at a
  time, the move that the sensitivities predict lowers the summed excess most, each move
  solved exactly and kept only if the exact summed excess falls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gridpilot.control.cvr import CvrOptions, v_pu
from gridpilot.twin.unbalanced import UnbalancedTwin

log = logging.getLogger(__name__)
HARD = 10.0  # weight of a breach of Range A itself against one of the margin only


@dataclass
class Band:
    """Lower and upper limits (pu) per node-phase, and which node-phases a regulator moves
    (``ctl``): the decisions weigh those only; the others are reported apart."""

    lo: np.ndarray
    hi: np.ndarray
    ctl: np.ndarray
    vmin: float = 0.95  # Range A itself: a breach of it weighs HARD times a margin's
    vmax: float = 1.05

    def gaps(self, vp: np.ndarray) -> np.ndarray:
        """How far (pu) each regulated node-phase and step (``vp``: nodes × steps) is
        outside the band, plus ``HARD`` × how far outside Range A; 0 inside, dead (NaN) or
        not regulated."""
        with np.errstate(invalid="ignore"):
            g = np.fmax(self.lo[:, None] - vp, vp - self.hi[:, None])
            h = np.fmax(self.vmin - vp, vp - self.vmax)
        g = np.where(np.isfinite(g) & (g > 0), g, 0.0)
        g += HARD * np.where(np.isfinite(h) & (h > 0), h, 0.0)
        return np.where(self.ctl[:, None], g, 0.0)

    def excess(self, vp: np.ndarray) -> float:
        """The largest gap (pu)."""
        return float(self.gaps(vp).max(initial=0.0))

    def total(self, vp: np.ndarray) -> float:
        """The summed gaps (pu × node-phase-steps): what a repair move must lower."""
        return float(self.gaps(vp).sum())

    def breach_steps(self, vp: np.ndarray) -> np.ndarray:
        """Per step: whether a regulated node-phase is outside Range A itself."""
        with np.errstate(invalid="ignore"):
            out = (vp < self.vmin - 1e-9) | (vp > self.vmax + 1e-9)
        return np.any(out & self.ctl[:, None], axis=0)

    def too_low(self, vp: np.ndarray) -> bool:
        """Whether the deepest breach is below the band (else above, or none)."""
        with np.errstate(invalid="ignore"):
            low = np.nanmax((self.lo[:, None] - vp)[self.ctl], initial=-np.inf)
            high = np.nanmax((vp - self.hi[:, None])[self.ctl], initial=-np.inf)
        return bool(low > high)


def tap_sensitivity(tw: UnbalancedTwin, s_col: np.ndarray, regs: dict[str, Any]) -> np.ndarray:
    """pu change of every node-phase per tap step up of each regulator (nodes × regs), at
    the load powers ``s_col`` (one column) and the twin's present taps (restored after)."""
    taps = tw.taps()
    v0, _ = tw.solve(s_col)
    vp0 = v_pu(tw, v0)[:, 0]
    out = np.zeros((vp0.size, len(regs)))
    for j, (name, w) in enumerate(regs.items()):
        t = taps[name]
        sign = 1.0 if t + w.tap_step <= w.max_tap + 1e-9 else -1.0
        tw.set_tap(name, t + sign * w.tap_step)
        v, _ = tw.solve(s_col, v0)
        tw.set_tap(name, t)
        out[:, j] = sign * (v_pu(tw, v)[:, 0] - vp0)
    return np.nan_to_num(out)


def make_band(opts: CvrOptions, sens: np.ndarray, regs: dict[str, Any]) -> Band:
    """Range A less the margin on the node-phases a regulator moves by at least a third of
    a tap step (regulated); the others (the source side of every regulator) are not
    weighed by the decisions, only reported."""
    n = sens.shape[0]
    if not regs:
        ctl = np.ones(n, bool)
    else:
        step = min(w.tap_step for w in regs.values())
        ctl = np.max(np.abs(sens), axis=1, initial=0.0) >= step / 3
    m = opts.margin_pu * ctl
    log.debug("CVR band: %d of %d node-phases regulated", int(ctl.sum()), n)
    return Band(opts.vmin_pu + m, opts.vmax_pu - m, ctl, opts.vmin_pu, opts.vmax_pu)


class Solver(Protocol):
    """One decision period: solve a tap state, exactly."""

    tw: UnbalancedTwin

    def solve(self, taps: dict[str, float]) -> tuple[np.ndarray, float, float]:
        """Voltages, excess over the band (pu) and energy of a tap state."""
        ...


def repair(per: Solver, band: Band, sens: np.ndarray, regs: dict[str, Any],
           state: tuple[dict[str, float], np.ndarray], max_moves: int
           ) -> tuple[dict[str, float], np.ndarray]:  # fmt: skip
    """Single-regulator tap moves from ``state`` (taps, their voltages) while the exact
    summed excess falls: each time the regulator and number of steps the sensitivities
    predict best, solved exactly."""
    taps, v = state
    names = list(regs)
    vp = v_pu(per.tw, v)
    tot = band.total(vp)
    for _ in range(max_moves):
        if tot <= 0.0:
            break
        best: tuple[float, str, float] | None = None
        for j, n in enumerate(names):
            w = regs[n]
            for d in (1, -1):
                t, pred = taps[n], tot
                while w.min_tap - 1e-9 <= t + d * w.tap_step <= w.max_tap + 1e-9:
                    p = band.total(
                        vp + (t + d * w.tap_step - taps[n]) / w.tap_step * sens[:, j : j + 1]
                    )
                    if p >= pred - 1e-9:
                        break
                    t, pred = t + d * w.tap_step, p
                if pred < tot - 1e-9 and (best is None or pred < best[0]):
                    best = (pred, n, t)
        if best is None:
            break
        cand = {**taps, best[1]: best[2]}
        v2, _, _ = per.solve(cand)
        vp2 = v_pu(per.tw, v2)
        tot2 = band.total(vp2)
        if tot2 >= tot - 1e-12:
            break
        taps, v, vp, tot = cand, v2, vp2, tot2
    return taps, v
