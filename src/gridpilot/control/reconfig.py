"""Reconfiguration for losses: which switches to open so that the grid is radial, every load is
served, limits hold and losses are least.

Method (no exhaustive search):

1. **Sequential switch opening** (Shirmohammadi & Hong, 1989): close every usable switch,
   solve the meshed network in the twin (power-grid-model), open the closed switch on a loop
   that carries the least current, repeat until the network is radial.
2. **Branch exchange** polish (Baran & Wu, 1989; Civanlar et al., 1988): for every open switch,
   close it and open each switch on the loop it makes; all exchanges of a round are checked
   at once by the batched radial AC power flow, the best one that lowers losses and holds the
   limits is taken; repeat until none improves. An open switch between trees fed by
   different sources closes a path through the upstream grid: opening a switch on it moves
   load from one source to the other (:mod:`gridpilot.control.reconfig_search`).
3. Branch exchange also from the starting state (when radial), and the starting state itself,
   are candidates: the result is the best of them in the twin (exact AC power flow), so it is
   never worse than the start.

Limits: the *target* band is the :class:`~gridpilot.control.flisr.Limits` given; the *hard*
band every candidate must hold is the target widened to the starting state's extremes (a
grid already outside the target is never made worse). With ``relax_to_prefault`` (the default)
the objective is least losses within the hard band; without it the target is a request: least
violation of the target first, then least losses. The result says which limits were used,
whether the target holds after, and which hard limits ruled out lower losses (binding).

On case33bw this finds the published optimum (open 7, 9, 14, 32, 37; 139.55 kW).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.control.flisr import Limits
from gridpilot.control.reconfig_search import Band, ExchangeSearch, better, kicked
from gridpilot.control.sections import Sections
from gridpilot.errors import InfeasibleError
from gridpilot.model import ElementType, Grid
from gridpilot.model.limits import OperatingLimits
from gridpilot.twin.injections import Injections

log = logging.getLogger(__name__)

KICKS = 4  # iterated local search: non-improving exchanges tried from the best local optimum


@dataclass
class ReconfigResult:
    """Outcome of :func:`reconfigure`.

    ``open``: switch ids left open; losses before/after (kW, twin); ``vmin_pu_*``,
    ``vmax_pu_after`` (pu) and ``max_loading_pct_after`` (%, lines I/Imax, transformers S/Sn);
    ``switch_closed``: the new states; ``solve_ms``: wall time; ``exchanges``: branch-exchange
    rounds. ``limits_target``: the limits asked for; ``limits_used``: the hard band every
    candidate held (the target widened to the start's extremes); ``target_holds``: whether the
    result holds the target; ``binding``: hard limits that ruled out lower losses; ``kept``:
    which candidate won (``"start"``, ``"from start"``, ``"from meshed"``); ``remarks``:
    sentences for people (why a target is not met, what was relaxed).
    """

    open: list[int]
    losses_kw_before: float
    losses_kw_after: float
    vmin_pu_before: float
    vmin_pu_after: float
    vmax_pu_after: float
    max_loading_pct_after: float
    switch_closed: np.ndarray
    solve_ms: float
    exchanges: int
    limits_target: dict[str, float] = field(default_factory=dict)
    limits_used: dict[str, float] = field(default_factory=dict)
    target_holds: bool = True
    binding: list[str] = field(default_factory=list)
    kept: str = ""
    remarks: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON headline fields."""
        return {
            "open": self.open,
            "losses_kw_before": round(self.losses_kw_before, 3),
            "losses_kw_after": round(self.losses_kw_after, 3),
            "vmin_pu_before": round(self.vmin_pu_before, 6),
            "vmin_pu_after": round(self.vmin_pu_after, 6),
            "vmax_pu_after": round(self.vmax_pu_after, 6),
            "max_loading_pct_after": round(self.max_loading_pct_after, 3),
            "limits_target": self.limits_target,
            "limits_used": self.limits_used,
            "target_holds": self.target_holds,
            "binding": self.binding,
            "kept": self.kept,
            "remarks": self.remarks,
            "exchanges": self.exchanges,
            "solve_ms": round(self.solve_ms, 1),
        }


def reconfigure(
    grid: Grid, limits: OperatingLimits | None = None, max_rounds: int = 50, kicks: int = KICKS
) -> ReconfigResult:
    """Loss-minimising radial configuration of ``grid`` from its present switch states.

    Only remote-controllable switches move and every load served at the start stays served.
    Limits as in the module docstring. ``kicks``: exchanges tried from the best local optimum
    to escape it (each followed by a branch-exchange search; 0 turns this off). Returns a :class:`ReconfigResult` never worse than the
    start (losses, and the hard band). Raises :class:`InfeasibleError` when the start does not
    converge or the grid has no switch that can move.
    """
    from gridpilot.twin import Twin

    t0 = time.perf_counter()
    lim = Limits.from_limits(limits) if limits is not None else Limits()
    sec = Sections(grid)
    sw = grid.switch
    movable = sw["remote"] & (sec.sw_a != sec.sw_b)
    if not movable.any():
        raise InfeasibleError(
            f"reconfigure: grid {grid.name!r} has no remote-controllable switch between two "
            "sections, so nothing can move"
            + (
                " (a MATPOWER case gets switches only when it marks ties as status-0 branches;"
                " see docs/flisr.md)"
                if grid.meta.get("source") == "matpower"
                else ""
            ),
            "switches",
        )
    twin = Twin(grid, validate=False, engine="pgm")
    start = sw["closed"].copy()
    before = twin.powerflow(Injections(switch_closed=start))
    if not before.converged:
        raise InfeasibleError("reconfigure: the starting state does not converge", "power flow")
    target = Band(lim.v_min_pu, lim.v_max_pu, lim.loading_max_pct)
    hard = Band(
        min(target.v_min_pu, before.vmin_pu - 1e-6),
        max(target.v_max_pu, before.vmax_pu + 1e-6),
        max(target.max_loading_pct, before.max_loading_pct + 1e-6),
    )
    served = sec.state(start).energised
    search = ExchangeSearch(
        grid, sec, movable, served, hard, target, use_target=not lim.relax_to_prefault
    )
    cands: list[tuple[str, np.ndarray]] = []
    if not sec.state(start).looped:
        cands.append(("start", start))
        cands.append(("from start", search.run(start.copy(), max_rounds)))
    meshed = _sequential_opening(grid, twin, sec, start | movable, movable, served)
    if meshed is not None:
        cands.append(("from meshed", search.run(meshed, max_rounds)))
    if not cands:
        raise InfeasibleError(
            "reconfigure: cannot open the loops without losing supply", "radiality"
        )
    # escape the local optimum of the best candidate so far (iterated local search)
    _, best_st = min(cands[1:] or cands, key=lambda c: _sweep_key(search, c[1]))
    cands.append(("kicked", kicked(search, best_st, kicks, max_rounds)))
    chosen = _best_in_twin(twin, cands, hard, target, not lim.relax_to_prefault)
    return _result(search, lim, before, chosen, t0)


def _sweep_key(search: ExchangeSearch, closed: np.ndarray) -> tuple[float, float]:
    """The sweep's objective of one state ((inf, inf) when outside the hard band)."""
    sc = search.score(closed[None, :])
    return sc.key(0, search.use_target) if sc.ok[0] else (np.inf, np.inf)


def _sequential_opening(
    grid: Grid,
    twin: Any,
    sec: Sections,
    closed: np.ndarray,
    movable: np.ndarray,
    served: np.ndarray,
) -> np.ndarray | None:
    """Shirmohammadi & Hong: from the meshed state, open the least-current closed switch whose
    opening keeps every served section supplied, until radial; None if that gets stuck."""
    sw = grid.switch
    line_of = np.full(len(sw), -1, np.int64)
    m = sw["et"] == ElementType.LINE
    line_of[m] = grid.line.position_map(sw["element"][m], "line")
    for _ in range(len(sw)):
        if not sec.state(closed).looped:
            return closed
        r = twin.powerflow(Injections(switch_closed=closed))
        if not r.converged:
            log.info("reconfigure: sequential opening stopped: a meshed state does not converge")
            return None
        cur = np.where(
            line_of >= 0, np.nan_to_num(r.line_i_ka[np.maximum(line_of, 0)], nan=0.0), np.inf
        )
        cand = np.flatnonzero(closed & movable)
        for s in cand[np.argsort(cur[cand], kind="stable")]:
            trial = closed.copy()
            trial[s] = False
            if np.array_equal(sec.state(trial).energised & served, served):
                closed = trial
                break
        else:
            log.info("reconfigure: sequential opening stuck: every opening loses supply")
            return None
    return closed if not sec.state(closed).looped else None


def _best_in_twin(
    twin: Any,
    cands: list[tuple[str, np.ndarray]],
    hard: Band,
    target: Band,
    use_target: bool,
) -> tuple[str, np.ndarray, Any]:
    """The candidate that is best in the twin: within the hard band, then the objective; the
    first (the start, when radial) wins ties. Returns its label, states and power flow."""
    best: tuple[str, np.ndarray, Any] | None = None
    best_key = (np.inf, np.inf)
    seen: set[bytes] = set()
    for label, closed in cands:
        k = np.packbits(closed).tobytes()
        if k in seen:
            continue
        seen.add(k)
        r = twin.powerflow(Injections(switch_closed=closed))
        if not r.converged or hard.broken(r.vmin_pu, r.vmax_pu, r.max_loading_pct):
            continue
        tv = float(target.violation(r.vmin_pu, r.vmax_pu, r.max_loading_pct)) if use_target else 0
        key = (round(tv, 9), float(r.losses_kw))
        if best is None or better(key, best_key):
            best, best_key = (label, closed, r), key
    if best is None:  # no candidate held the band in the twin: keep the start as it is
        log.warning("reconfigure: no candidate holds the band in the twin; keeping %r", cands[0][0])
        label, closed = cands[0]
        return label, closed, twin.powerflow(Injections(switch_closed=closed))
    return best


def _result(
    search: ExchangeSearch,
    lim: Limits,
    before: Any,
    chosen: tuple[str, np.ndarray, Any],
    t0: float,
) -> ReconfigResult:
    """Assemble the result with its limits, binding limits and remarks: ``before`` the start's
    twin power flow, ``chosen`` the configuration kept (label, switch states, power flow)."""
    grid, sec = search.grid, search.sections
    kept, closed, after = chosen
    target, hard = search.target, search.hard
    broken = target.broken(after.vmin_pu, after.vmax_pu, after.max_loading_pct)
    remarks = []
    widened = [
        n
        for n, a, b in zip(
            ("v_min_pu", "v_max_pu", "max_loading_pct"),
            (target.v_min_pu, target.v_max_pu, target.max_loading_pct),
            (hard.v_min_pu, hard.v_max_pu, hard.max_loading_pct),
            strict=True,
        )
        if abs(a - b) > 1e-9
    ]
    if widened:
        remarks.append(
            f"the start is already outside the target ({', '.join(widened)}): candidates had to "
            f"hold the start's own extremes instead (limits_used)"
        )
    if broken:
        vals = {"v_min_pu": after.vmin_pu, "v_max_pu": after.vmax_pu}
        vals["max_loading_pct"] = after.max_loading_pct
        what = ", ".join(f"{n} {getattr(target, n)} (after: {vals[n]:.4f})" for n in broken)
        remarks.append(
            f"target not met: {what}; "
            + (
                "no configuration found meets it (least violation first, then losses)"
                if not lim.relax_to_prefault
                else "losses were minimised within limits_used (ask for the target explicitly,"
                " e.g. --vmin, to put it before losses)"
            )
        )
    if kept == "start":
        remarks.append("the starting configuration was already the best found: nothing to switch")
    return ReconfigResult(
        open=[int(i) for i in grid.switch.ids[~closed & (sec.sw_a != sec.sw_b)]],
        losses_kw_before=before.losses_kw,
        losses_kw_after=after.losses_kw,
        vmin_pu_before=float(before.vmin_pu),
        vmin_pu_after=float(after.vmin_pu),
        vmax_pu_after=float(after.vmax_pu),
        max_loading_pct_after=float(after.max_loading_pct),
        switch_closed=closed,
        solve_ms=(time.perf_counter() - t0) * 1e3,
        exchanges=search.rounds,
        limits_target=target.as_dict(),
        limits_used=hard.as_dict(),
        target_holds=not broken,
        binding=sorted(search.blocked_by),
        kept=kept,
        remarks=remarks,
    )
