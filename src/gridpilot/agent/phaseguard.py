"""The guard's node-phase check on a three-phase feeder: a switching plan simulated in the
controller's own unbalanced twin of the feeder model, per node-phase.

The loop's guard simulates every plan in its balanced twin (the feeder's positive-sequence
view); on a :class:`~gridpilot.agent.worldtypes.PhaseAwareWorld` it also runs
:class:`PhaseCheck` on switching plans: the feeder model (``world.grid3p``, the network the
utility knows; not the world's state) in the unbalanced twin, with the injections the guard was
given (the controller's estimates) placed per phase, before and after the plan. A plan is
refused when a node-phase it energises would be outside the guard's band, or when it makes the
lowest or highest node-phase voltage worse beyond the band. The regulators act on the simulated
feeder as they would in the field (the twin's local controls), except those the loop commanded:
the taps of executed plans, still held in the field (:attr:`PhaseCheck.held`, until the crew
hands the feeder back), in both states, and the plan's own taps in the state after it.

The same held taps reach the guard's balanced twin: :meth:`PhaseCheck.view_tap_pos` places them
on the view's transformers (a regulator bank at its members' mean tap, as
:meth:`~gridpilot.model.threephase.balanced.PhaseView.set_taps` does), so the balanced check
and the node-phase check judge the same regulator state as the world's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.agent.phaseinj import PhaseInjections
from gridpilot.agent.phasephysics import PhasePhysics, Step, regulator_names
from gridpilot.model import Grid
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import TAP_STEPS, balanced_view

log = logging.getLogger(__name__)
SETTLE_S = 600.0  # the regulators get this long to act in the simulated step


def _extreme(st: Step, nodes: list[tuple[str, int]], low: bool) -> tuple[float | None, str]:
    v = st.result.v_pu
    live = st.live_nodes
    if not st.converged or not live.any():
        return None, ""
    idx = np.flatnonzero(live)
    k = int(idx[np.argmin(v[idx]) if low else np.argmax(v[idx])])
    return round(float(v[k]), 5), f"{nodes[k][0]}.{nodes[k][1]}"


@dataclass
class PhaseCheck:
    """Node-phase simulation of switching plans on the feeder model (see the module notes).

    ``PhaseCheck.build(grid3p, controller_grid)``: ``controller_grid`` the loop's view with its
    devices (same ids as :func:`~gridpilot.model.threephase.balanced.balanced_view`).
    ``held``: the regulator taps (id -> pu) the loop commanded and the field holds (the guard
    records them when a plan with tap commands is executed, and releases them at the crew's
    report)."""

    injections: PhaseInjections
    physics: PhasePhysics
    grid: Grid
    regulators: list[str]
    held: dict[int, float] = field(default_factory=dict)

    @classmethod
    def build(cls, grid3p: ThreePhaseGrid, controller_grid: Grid) -> PhaseCheck:
        """The check on ``grid3p`` with the controller's view ``controller_grid``."""
        view = balanced_view(grid3p)
        inj = PhaseInjections(grid3p, view, controller_grid)
        return cls(inj, PhasePhysics(inj.grid, view), controller_grid, regulator_names(grid3p))

    def view_tap_pos(self, grid: Grid, taps: dict[int, float]) -> np.ndarray:
        """``grid``'s transformer ``tap_pos`` (the loop's view) with the regulators ``taps``
        (id -> pu) placed: each view transformer a commanded regulator belongs to at its
        members' mean tap, the members not commanded at the view's present tap."""
        t = grid.transformer
        pos = np.asarray(t["tap_pos"]).copy()
        if not taps:
            return pos
        xf = {r.name.lower(): r.transformer.lower() for r in self.physics.grid.regcontrols}
        want = {xf[self.regulators[r]]: float(v) for r, v in taps.items()}
        for k, members in self.physics.view.transformer_members.items():
            if not any(m in want for m in members):
                continue
            p = int(t.index_of(k)[0])
            step = float(t["tap_step_percent"][p]) / 100.0 or 0.00625
            now = 1.0 + float(pos[p]) * step
            mean = float(np.mean([want.get(m, now) for m in members]))
            pos[p] = int(np.clip(round((mean - 1.0) / step), -TAP_STEPS, TAP_STEPS))
        return pos

    def _open(self, closed: np.ndarray) -> frozenset[str]:
        sw = self.grid.switch
        names = self.physics.view.switch_branch
        return frozenset(names[int(i)] for i, c in zip(sw.ids, closed, strict=True) if not c)

    def _solve(
        self, closed: np.ndarray, inj: dict[str, Any], taps: dict[int, float] | None = None
    ) -> Step:
        """One state settled; ``taps`` (regulator id -> pu) held for this solve only."""
        mp, mq = self.injections.multipliers(self.grid, inj)
        ph = self.physics
        held = dict(ph.held)
        try:
            for r, tap in (taps or {}).items():
                ph.hold(self.regulators[r], tap)
            return ph.settle(self._open(np.asarray(closed, bool)), mp, mq, SETTLE_S)
        finally:
            ph.held = held

    def check(  # noqa: PLR0913
        self,
        before_closed: np.ndarray,
        after_closed: np.ndarray,
        inj_before: dict[str, Any],
        inj_after: dict[str, Any],
        v_band: tuple[float, float],
        tol: float,
        taps: dict[int, float] | None = None,
    ) -> tuple[list[str], dict[str, Any]]:
        """Reasons to refuse (none: []) and the node-phase figures before and after (the
        :attr:`held` taps in both, the plan's regulator ``taps``, id -> pu, held after it)."""
        b = self._solve(before_closed, inj_before, self.held)
        a = self._solve(after_closed, inj_after, {**self.held, **(taps or {})})
        nodes = self.physics.nodes
        lo, hi = v_band
        (bmin, _), (bmax, _) = _extreme(b, nodes, True), _extreme(b, nodes, False)
        (amin, amin_n), (amax, amax_n) = _extreme(a, nodes, True), _extreme(a, nodes, False)
        info = {"vmin_node_phase_pu": amin, "vmin_node_phase": amin_n,
                "vmax_node_phase_pu": amax, "vmax_node_phase": amax_n,
                "vmin_node_phase_pu_before": bmin, "vmax_node_phase_pu_before": bmax}  # fmt: skip
        if not a.converged:
            return ["the three-phase power flow after the plan does not converge"], info
        reasons = []
        v = a.result.v_pu
        new = a.live_nodes & ~b.live_nodes
        out = new & ((v < lo - tol) | (v > hi + tol))
        if out.any():
            k = int(np.flatnonzero(out)[0])
            reasons.append(
                f"{int(out.sum())} re-energised node-phase(s) would be outside {lo}-{hi} pu, "
                f"e.g. {nodes[k][0]}.{nodes[k][1]} at {v[k]:.3f} pu"
            )
        if (
            amin is not None
            and amin < lo - tol
            and amin < (bmin if bmin is not None else 9.0) - tol
        ):
            reasons.append(f"node-phase {amin_n} at {amin} pu below {lo} pu and worse than before")
        if (
            amax is not None
            and amax > hi + tol
            and amax > (bmax if bmax is not None else -9.0) + tol
        ):
            reasons.append(f"node-phase {amax_n} at {amax} pu above {hi} pu and worse than before")
        return reasons, info


__all__ = ["PhaseCheck"]
