"""Phase-aware scheduling and phase balancing of a :class:`PhaseFleet` on an unbalanced feeder.

:func:`plan_phases` schedules the fleet over a horizon so that, at every step,

* the demand per phase stays within ``phase_limit_mw`` (a feeder-head or transformer-phase
  capacity),
* the voltage unbalance factor (VUF, |V2|/|V1|) of every three-phase bus stays within
  ``vuf_limit_pct`` (2 % by default, EN 50160 / IEC 61000-2-2),
* every node-phase voltage stays within ``v_min_pu``..``v_max_pu`` (ANSI C84.1 Range A),

while the EV owners get the energy they asked for, at the least energy cost. ``mode="balance"``
moves only the EV chargers (which session draws how much on which phase at each step: the
phase balancing); ``mode="plan"`` also schedules the home batteries and water heaters (the
VPP schedule). Voltages and the VUF are linearised with sensitivities from the unbalanced twin
(:mod:`.phase_network`) and enforced by cutting planes; every round ends with a full
unbalanced power flow of all steps, the next round linearises around it, and a plan is
``feasible`` only when that full power flow shows no limit broken by the fleet. A bus-step
whose VUF (or a node-phase whose voltage) is already outside the limit with only the fleet's
fixed part (the grid's loads, PV, and in ``balance`` mode the batteries and water heaters as
they run on their own) may stay there as long as the schedule does not make it worse; where the fleet cannot meet a limit
the plan reports the best it achieved and why (``reason``).

Where the uncontrolled fleet already breaks a limit, the plan must not break it further at any
bus, node-phase or phase (its worst there, :func:`~.phase_score.set_floors`): the cuts' slack
beyond that costs 100 times more, rounds rank by (deepened, EV energy short, excess), and
uncontrolled charging is returned when no round beats it. ``status`` says which:
``feasible``, ``no_deeper`` (limits broken, nowhere further than uncontrolled charging) or
``uncontrolled``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.flex.phase_cuts import (
    MONITOR_PER_PHASE,
    SPARSE_REL,
    TOL_VUF_PCT,
    CutSet,
    active_steps,
    cut_stats,
    moved_points,
)
from gridpilot.flex.phase_fleet import PhaseFleet
from gridpilot.flex.phase_lp import CutSolver, Devices, Limits, build
from gridpilot.flex.phase_network import SENS_MODES, SOLAR_SHAPE, Check, PhaseNetwork, daily
from gridpilot.flex.phase_score import (
    assignment,
    deep_score,
    deeper,
    excess,
    point_caps,
    set_floors,
    short_mwh,
    status,
    worse_than,
)
from gridpilot.flex.phase_score import reason as explain
from gridpilot.model.threephase import ThreePhaseGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhasePlanConfig:
    """Horizon, limits and options of :func:`plan_phases` (limits checked on construction).

    ``t0``/``steps``: the horizon in absolute steps of the fleet's ``step_h`` (default noon to
    noon, over the evening EV sessions); ``phase_limit_mw``: demand limit per phase, one value
    for all three or one per phase (None: none); ``limit_window``: the absolute steps
    ``(start, end)`` the limit holds in (a demand-response event; None: the whole horizon); ``max_rounds``: linearise-solve-check rounds;
    ``sens``: the network's sensitivities, ``dense`` (every node-phase), ``rows`` (only the
    node-phases the cuts use, computed on demand) or ``auto`` (dense where it fits
    :data:`~.phase_network.MAX_SENS_GB`); ``monitor``: node-phases per feeder phase and side
    (and three-phase buses per phase) cut at every step from the first round (None:
    :data:`~.phase_cuts.MONITOR_PER_PHASE` with ``rows`` sensitivities, 0 with dense ones).
    """

    t0: int = 48
    steps: int = 96
    mode: str = "balance"
    vuf_limit_pct: float = 2.0
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    phase_limit_mw: float | tuple[float, float, float] | None = None
    limit_window: tuple[int, int] | None = None
    max_rounds: int = 10
    sens: str = "auto"
    monitor: int | None = None

    def __post_init__(self) -> None:
        bad: list[tuple[str, object, str]] = []
        if self.mode not in ("balance", "plan"):
            bad.append(("mode", self.mode, "must be 'balance' or 'plan'"))
        if not 0 < self.vuf_limit_pct <= 100:
            bad.append(("vuf_limit_pct", self.vuf_limit_pct, "must be in (0, 100]"))
        for name in ("v_min_pu", "v_max_pu"):
            if not 0 < getattr(self, name) <= 2:
                bad.append((name, getattr(self, name), "must be in (0, 2] pu"))
        if not self.v_min_pu < self.v_max_pu:
            bad.append(("v_min_pu", self.v_min_pu, "must be below v_max_pu"))
        if self.steps <= 0 or self.t0 < 0 or self.max_rounds <= 0:
            bad.append(
                (
                    "steps",
                    (self.t0, self.steps, self.max_rounds),
                    "need t0 >= 0, steps > 0, max_rounds > 0",
                )
            )
        lim = self.phase_limit_mw
        if lim is not None and not (np.size(lim) in (1, 3) and np.all(np.asarray(lim) > 0)):
            bad.append(("phase_limit_mw", lim, "must be > 0 (one value or one per phase)"))
        w = self.limit_window
        if w is not None and not (len(w) == 2 and w[0] < w[1]):
            bad.append(("limit_window", w, "must be (start, end) steps with start < end"))
        if self.monitor is not None and self.monitor < 0:
            bad.append(("monitor", self.monitor, "must be >= 0"))
        if self.sens not in SENS_MODES:
            bad.append(("sens", self.sens, f"must be one of {SENS_MODES}"))
        if bad:
            f, v, m = bad[0]
            raise ValidationError(f"phase plan: field '{f}' = {v!r}: {m}")


@dataclass
class PhasePlan:
    """A phase-aware plan: point draws, the EV schedule, and the checks before and after.

    ``p_mw`` (points x steps) is each injection point's net draw; ``ev`` the EV columns
    (session: position in the fleet's EV table, phase 1-3, horizon step, MW charged, MW
    discharged); ``checks`` the full power flows without
    the fleet (``none``), with its fixed part only (``fixed``), with the uncontrolled fleet
    (``before``) and with the plan (``after``); ``feasible`` whether ``after`` keeps every limit (see the module doc);
    ``cut_set`` the cutting planes the rounds ended with (:class:`~.phase_cuts.CutSet`).
    """

    points: list[tuple[str, int]]
    steps: np.ndarray
    p_mw: np.ndarray
    ev: dict[str, np.ndarray]
    checks: dict[str, Check]
    feasible: bool
    reason: str
    stats: dict[str, Any] = field(default_factory=dict)
    cut_set: CutSet | None = None

    def ev_mw_at(self, step: int, n_sessions: int) -> np.ndarray:
        """Net planned power (MW) of every EV session of the fleet (``n_sessions``) at absolute
        ``step`` (0 outside the plan), e.g. for :func:`~gridpilot.flex.phase_headroom`."""
        k = int(step) - int(self.steps[0])
        sel = self.ev["step"] == k
        net = self.ev["charge_mw"][sel] - self.ev["discharge_mw"][sel]
        return np.bincount(self.ev["session"][sel], net, n_sessions)

    def summary(self) -> dict[str, Any]:
        """VUF, voltages and phase demand before/after, EV energy, rounds and times.

        ``vuf_over_limit_bus_steps`` counts the bus-steps above the limit itself (also those
        the grid breaks with the fleet's fixed part alone); ``vuf_over_allowed_bus_steps``
        those above what the plan is held to (the limit, or the fixed part's VUF there)."""
        out: dict[str, Any] = dict(self.stats)
        for key, c in self.checks.items():
            live = c.v_pu > 0.05
            out[key] = {
                "vuf_max_pct": round(float(c.vuf_pct.max()), 4),
                "vuf_over_limit_bus_steps": int(
                    (c.vuf_pct > self.stats["vuf_limit_pct"] + TOL_VUF_PCT).sum()
                ),
                "v_max_pu": round(float(np.where(live, c.v_pu, 0).max()), 5),
                "v_min_pu": round(float(np.where(live, c.v_pu, 9).min()), 5),
                "phase_peak_mw": [round(float(x), 4) for x in c.phase_mw.max(axis=1)],
            }
        out["feasible"] = self.feasible
        out["reason"] = self.reason
        return out


def _horizon_sessions(pf: PhaseFleet, lo: int, hi: int) -> np.ndarray:
    ev = pf.fleet.ev
    return np.flatnonzero((ev.arrival < hi) & (ev.departure > lo) & (ev.e_need_mwh > 0))


def devices(pf: PhaseFleet, points: list[tuple[str, int]], cfg: PhasePlanConfig) -> Devices:
    """The LP's device data on the horizon (EV columns, aggregated stores, fixed draws)."""
    f, h = pf.fleet, pf.fleet.step_h
    T, t0 = cfg.steps, cfg.t0
    pos = {pt: k for k, pt in enumerate(points)}
    ev = f.ev
    sess = _horizon_sessions(pf, t0, t0 + T)
    bus = pf.device_bus("ev")
    es, ephi, et, ek = [], [], [], []
    own = pf.phase["ev"]
    for j, s in enumerate(sess):
        a, b = max(int(ev.arrival[s]), t0) - t0, min(int(ev.departure[s]), t0 + T) - t0
        # a 240 V charger across both legs of a split-phase service has that one column
        legs = own[s] not in (1, 2, 3)
        for ph in [int(own[s]) - 1] if legs else np.flatnonzero(pf.ev_phases[s]):
            k = pos[(bus[s], int(ph) + 1)]
            es.append(np.full(b - a, j))
            ephi.append(np.full(b - a, ph))
            et.append(np.arange(a, b))
            ek.append(np.full(b - a, k))
    dwell = (ev.departure[sess] - ev.arrival[sess]).astype(float)
    inside = (np.minimum(ev.departure[sess], t0 + T) - np.maximum(ev.arrival[sess], t0)) / dwell
    need = np.minimum(ev.e_need_mwh[sess] * inside, ev.p_max_mw[sess] * dwell * inside * h)
    cat = lambda x: np.concatenate(x).astype(np.int64) if x else np.zeros(0, np.int64)  # noqa: E731
    steps = np.arange(t0, t0 + T)
    fixed = np.zeros((len(points), T))
    pv_k = np.array(
        [pos[(b, int(p))] for b, p in zip(pf.device_bus("pv"), pf.phase["pv"], strict=True)],
        np.int64,
    )
    np.add.at(fixed, pv_k, -pf.pv_peak_mw[:, None] * daily(SOLAR_SHAPE, steps, h)[None, :])
    stores = _stores(pf, pos, steps, cfg.mode == "plan")
    fixed += stores.pop("fixed")
    return Devices(
        T=T,
        step_h=h,
        es=cat(es),
        ephi=cat(ephi),
        et=cat(et),
        ek=cat(ek),
        need=need,
        own=pf.phase["ev"][sess] - 1,
        pmax=ev.p_max_mw[sess],
        v2g=ev.v2g[sess],
        e_lo=np.minimum(ev.soc_floor[sess] * ev.e_cap_mwh[sess] - ev.e_arr_mwh[sess], 0.0),
        e_hi=ev.e_cap_mwh[sess] - ev.e_arr_mwh[sess],
        p_fixed=fixed,
        sess=sess,
        **stores,
    )


def _stores(
    pf: PhaseFleet, pos: dict[tuple[str, int], int], steps: np.ndarray, schedule: bool
) -> dict[str, np.ndarray]:
    """Batteries and water heaters aggregated per point (``schedule``) or as fixed draws."""
    f, K, T = pf.fleet, len(pos), steps.size
    bk = np.array(
        [
            pos[(b, int(p))]
            for b, p in zip(pf.device_bus("battery"), pf.phase["battery"], strict=True)
        ],
        np.int64,
    )
    wk = np.array(
        [
            pos[(b, int(p))]
            for b, p in zip(pf.device_bus("water_heater"), pf.phase["water_heater"], strict=True)
        ],
        np.int64,
    )
    wh, bt = f.water_heaters, f.batteries
    draw = wh.draw_mw(steps).T  # (heaters, T)
    fixed = np.zeros((K, T))
    empty = np.zeros(0)
    if not schedule:  # batteries idle at their baseline, heaters meet their draw as it comes
        np.add.at(fixed, bk, np.repeat(bt.p_base_mw[:, None], T, 1))
        np.add.at(fixed, wk, np.minimum(draw, wh.p_rated_mw[:, None]))
        return {
            "fixed": fixed,
            "b_k": empty.astype(np.int64),
            "b_p": empty,
            "b_e0": empty,
            "b_lo": empty,
            "b_hi": empty,
            "w_k": empty.astype(np.int64),
            "w_p": empty,
            "w_e0": empty,
            "w_hi": empty,
            "w_draw": np.zeros((0, T)),
        }
    ub, ib = np.unique(bk, return_inverse=True)
    uw, iw = np.unique(wk, return_inverse=True)
    agg = lambda idx, n, x: np.bincount(idx, x, minlength=n)  # noqa: E731
    w_draw = np.zeros((uw.size, T))
    np.add.at(w_draw, iw, draw)
    return {
        "fixed": fixed,
        "b_k": ub,
        "b_p": agg(ib, ub.size, bt.p_max_mw),
        "b_e0": agg(ib, ub.size, bt.energy_mwh),
        "b_lo": agg(ib, ub.size, bt.soc_min * bt.e_mwh),
        "b_hi": agg(ib, ub.size, bt.soc_max * bt.e_mwh),
        "w_k": uw,
        "w_p": agg(iw, uw.size, wh.p_rated_mw),
        "w_e0": agg(iw, uw.size, wh.energy_mwh),
        "w_hi": agg(iw, uw.size, wh.e_max_mwh),
        "w_draw": w_draw,
    }


def uncontrolled(d: Devices) -> tuple[np.ndarray, np.ndarray]:
    """EVs charge at full power on their own phase from arrival until their need is met;
    stores as in ``p_fixed`` (batteries idle, heaters meet their draws). Returns (P, ev MW)."""
    p = d.p_fixed.copy()
    ev_mw = np.zeros(d.es.size)
    got = np.zeros(d.need.size)
    own = np.flatnonzero(d.ephi == d.own[d.es])
    for i in own[np.lexsort((d.et[own], d.es[own]))]:  # on the charger's own phase only
        s, t = int(d.es[i]), int(d.et[i])
        if got[s] >= d.need[s] - 1e-12:
            continue
        mw = min(d.pmax[s], (d.need[s] - got[s]) / d.step_h)
        ev_mw[i] = mw
        got[s] += mw * d.step_h
        p[d.ek[i], t] += mw
    if d.w_k.size:  # heaters meet their draws as they come
        np.add.at(p, d.w_k, np.minimum(d.w_draw, d.w_p[:, None]))
    return p, ev_mw


def price_eur_per_mwh(steps: np.ndarray, step_h: float) -> np.ndarray:
    """A time-of-use energy price following the residential load shape (60-200 EUR/MWh)."""
    from gridpilot.flex.phase_network import LOAD_SHAPE

    s = daily(LOAD_SHAPE, steps, step_h)
    return 60.0 + 140.0 * (s - LOAD_SHAPE.min()) / (LOAD_SHAPE.max() - LOAD_SHAPE.min())


def _ev_result(d: Devices, x: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    c, di = x[cols["ev_c"]], cols["ev_d"]
    dis = np.where(di >= 0, x[np.maximum(di, 0)], 0.0)
    return {
        "session": d.sess[d.es] if d.sess.size else d.es,
        "phase": d.ephi + 1,
        "step": d.et,
        "charge_mw": c,
        "discharge_mw": dis,
    }


def _limit(cfg: PhasePlanConfig, steps: np.ndarray) -> np.ndarray:
    """The per-phase demand limit (MW, 3 x steps): inf outside the window or without a limit."""
    out = np.full((3, steps.size), np.inf)
    if cfg.phase_limit_mw is None:
        return out
    lo, hi = cfg.limit_window or (int(steps[0]), int(steps[-1]) + 1)
    inside = (steps >= lo) & (steps < hi)
    vals = np.broadcast_to(np.asarray(cfg.phase_limit_mw, np.float64).ravel(), (3,))
    out[:, inside] = vals[:, None]
    return out


@dataclass
class _Best:
    """The best round so far: its excess score, number, draws, power flow, EVs and VUF slack;
    ``deep`` how far it goes past the uncontrolled fleet's worst (:func:`deeper`), ``short``
    the EV energy it misses (MWh). Rounds rank by (deep, short, score)."""

    score: float
    round: int
    p: np.ndarray
    check: Check
    ev: dict[str, np.ndarray]
    vuf_slack: float
    objective: float
    deep: float = 0.0
    short: float = 0.0
    blend: float = 1.0

    @property
    def key(self) -> tuple[float, float, float]:
        """Rank: no violation deepened first, then every EV served, then the excess."""
        return (round(self.deep, 6), round(self.short, 6), self.score)


def _rounds(
    d: Devices,
    lin: CutSet,
    lim: Limits,
    price: np.ndarray,
    start: tuple[np.ndarray, Check],
    max_rounds: int,
) -> tuple[_Best, int, float]:
    """Solve, check, cut, repeat; returns the best round, the rounds run and the LP seconds."""
    t = time.perf_counter()
    lp, pcols, cols = build(d, lim, price)
    solver = CutSolver(lp, pcols[lin.cols])
    m0 = solver.m
    t_lp = time.perf_counter() - t
    p_hat, c_hat = start
    best: _Best | None = None
    r = 0
    for r in range(1, max_rounds + 1):
        t = time.perf_counter()
        solver.set_cuts(lin.cuts(p_hat, c_hat))
        lin.lp_rows = solver.m - m0
        try:
            x = solver.solve()
        except InfeasibleError as exc:  # e.g. HiGHS's time limit: keep the best round so far
            t_lp += time.perf_counter() - t
            if best is None:
                raise
            log.warning("phase plan round %d stopped: %s", r, exc)
            lin.stopped = str(exc)
            break
        dt = time.perf_counter() - t
        t_lp += dt
        p_hat = x[pcols]
        c_hat = lin.net.check(p_hat)
        dt_check = time.perf_counter() - t - dt
        ex = excess(lin, c_hat, lim.phase_mw)
        ev = _ev_result(d, x, cols)
        slack = solver.slack_sum(x, "vuf cut")
        cand = _Best(sum(ex.values()), r, p_hat, c_hat, ev, slack, solver.objective)
        dp = deeper(lin, c_hat)
        cand.deep, cand.short = deep_score(dp), short_mwh(d, ev)
        if best is None or cand.key <= best.key:
            best = cand
        n_bad = lin.add(c_hat)
        lin.broken.append(n_bad)
        log.info(
            "phase plan round %d: excess %s, deeper %s, short %.4f MWh, %d rows, %d broken; "
            "cuts+LP %.1f s, check %.1f s",
            *(r, ex, dp, cand.short, solver.m, n_bad, dt, dt_check),
        )
        if n_bad == 0:
            break
    assert best is not None
    return best, r, t_lp


BLEND_STEPS = 4
"""Bisection steps on the plan's share of a mix with uncontrolled charging (to 1/16)."""


def _blend(d: Devices, lin: CutSet, limit_mw: np.ndarray, best: _Best, unc: _Best) -> _Best:
    """The largest share a of ``best`` (bisection, ``BLEND_STEPS``) whose mix a x plan +
    (1 - a) x uncontrolled charging (a schedule too: both keep every device's limits and
    requests) deepens no violation in its full power flow and ranks no worse than uncontrolled
    charging; ``best`` if none does."""
    lo, hi = 0.0, 1.0
    found: _Best | None = None
    for _ in range(BLEND_STEPS):
        a = (lo + hi) / 2
        p = a * best.p + (1 - a) * unc.p
        c = lin.net.check(p)
        dp = deeper(lin, c)
        log.info("phase plan: %.4f x plan + uncontrolled deepens %s", a, dp)
        ev = {k: a * best.ev[k] + (1 - a) * unc.ev[k] for k in ("charge_mw", "discharge_mw")}
        ev = {**best.ev, **ev}
        score = sum(excess(lin, c, limit_mw).values())
        cand = _Best(score, best.round, p, c, ev, best.vuf_slack, best.objective)
        cand.deep, cand.short, cand.blend = deep_score(dp), short_mwh(d, ev), a
        if cand.key > unc.key:  # deepens something (or is no better): less of the plan
            hi = a
            continue
        lo, found = a, cand
    return best if found is None else found


def _uncontrolled_best(
    d: Devices, p_unc: np.ndarray, ev_mw: np.ndarray, before: Check, score: float
) -> _Best:
    """Uncontrolled charging as a candidate (round 0): what the plan must not be worse than."""
    ev = {
        "session": d.sess[d.es] if d.sess.size else d.es,
        "phase": d.ephi + 1,
        "step": d.et,
        "charge_mw": ev_mw,
        "discharge_mw": np.zeros_like(ev_mw),
    }
    return _Best(score, 0, p_unc, before, ev, 0.0, float("nan"))


def _limits(
    cfg: PhasePlanConfig,
    net: PhaseNetwork,
    d: Devices,
    checks: tuple[Check, Check, Check],
    p_unc: np.ndarray,
) -> tuple[CutSet, Limits]:
    """The cut set (limits relaxed where the fixed part breaks them, floors at the uncontrolled
    fleet's worst, the monitored set) and the per-phase limits and point caps."""
    none, fixed, before = checks
    lin = CutSet(
        net,
        np.maximum(cfg.vuf_limit_pct, fixed.vuf_pct),
        np.maximum(cfg.v_max_pu, fixed.v_pu),
        np.minimum(cfg.v_min_pu, fixed.v_pu),
        moved_points(d),
        SPARSE_REL if net.mode == "rows" else 0.0,
    )
    phase_mw = _limit(cfg, net.steps)
    set_floors(lin, before, phase_mw)
    cap = np.full(len(net.points), np.inf)
    if cfg.mode == "balance":  # (stores scheduled in "plan" mode may need more room)
        cap = point_caps(lin, before, p_unc)
    lim = Limits(phase_mw, none.phase_mw, net.point_phase - 1, cap)
    lin.add(before)
    per = cfg.monitor if cfg.monitor is not None else MONITOR_PER_PHASE * (net.mode == "rows")
    lin.monitor(before, per, active_steps(d))
    lin.every = active_steps(d) if net.mode == "rows" else None
    return lin, lim


def plan_phases(
    grid: ThreePhaseGrid,
    pf: PhaseFleet,
    cfg: PhasePlanConfig | None = None,
    net: PhaseNetwork | None = None,
) -> PhasePlan:
    """Schedule ``pf`` on ``grid`` within the per-phase limits of ``cfg`` (see the module doc).

    ``net`` may be given to reuse the sensitivities of an earlier call on the same grid, points
    and horizon. The plan is checked by a full unbalanced power flow of every step."""
    cfg = cfg or PhasePlanConfig()
    t_all = time.perf_counter()
    pf.validate(grid)
    points = pf.points()
    steps = np.arange(cfg.t0, cfg.t0 + cfg.steps)
    net = net or PhaseNetwork(grid, points, steps, pf.fleet.step_h, cfg.sens)
    if net.points != points or not np.array_equal(net.steps, steps):
        raise ValidationError("plan_phases: 'net' was built for other points or another horizon")
    t_net = time.perf_counter() - t_all
    d = devices(pf, points, cfg)
    none = net.check(np.zeros_like(d.p_fixed))
    fixed = net.check(d.p_fixed)
    p_unc, ev_unc = uncontrolled(d)
    before = net.check(p_unc)
    lin, lim = _limits(cfg, net, d, (none, fixed, before), p_unc)
    price = price_eur_per_mwh(steps, pf.fleet.step_h)
    best, rounds, t_lp = _rounds(d, lin, lim, price, (p_unc, before), cfg.max_rounds)
    ex_unc = excess(lin, before, lim.phase_mw)
    unc = _uncontrolled_best(d, p_unc, ev_unc, before, sum(ex_unc.values()))
    if best.deep > 0:  # went past the uncontrolled worst somewhere: step back towards it
        best = _blend(d, lin, lim.phase_mw, best, unc)
    if unc.key < best.key:  # never worse than doing nothing: keep that instead
        log.warning("phase plan: no round beat uncontrolled charging; returning it")
        best = unc
    ex = excess(lin, best.check, lim.phase_mw)
    ev = best.ev
    got = np.bincount(d.es, (ev["charge_mw"] - ev["discharge_mw"]) * d.step_h, d.need.size)
    short = float(np.maximum(d.need - got, 0).sum())
    deep = deeper(lin, best.check)
    stats = {
        "grid": grid.name,
        "mode": cfg.mode,
        "points": len(points),
        "steps": cfg.steps,
        "ev_sessions": int(d.need.size),
        "ev_requested_mwh": round(float(d.need.sum()), 5),
        "ev_delivered_mwh": round(float(np.minimum(got, d.need).sum()), 5),
        "ev_short_sessions": int((d.need - got > 1e-6).sum()),
        **assignment(d, ev, net.point_phase),
        "vuf_limit_pct": cfg.vuf_limit_pct,
        "rounds": rounds,
        "best_round": best.round,
        "plan_share": best.blend,
        "objective_eur": round(best.objective, 4) if np.isfinite(best.objective) else None,
        "worse_than_uncontrolled": worse_than(ex, ex_unc),
        "deeper_than_uncontrolled": deep,
        "capped_points": int(np.isfinite(np.asarray(lim.point_cap_mw)).sum()),
        "network_s": round(t_net, 3),
        "lp_s": round(t_lp, 3),
        "total_s": round(time.perf_counter() - t_all, 3),
        "excess": {k: round(v, 5) for k, v in ex.items()},
        **cut_stats(net, lin),
        "vuf_over_allowed_bus_steps": {
            k: int((c.vuf_pct > lin.vuf_allow + TOL_VUF_PCT).sum())
            for k, c in (("before", before), ("after", best.check))
        },
    }
    checks = {"none": none, "fixed": fixed, "before": before, "after": best.check}
    reason = explain(ex, short, lin, best.check, best.vuf_slack)
    if best.round == 0:
        reason = f"no planned round beat uncontrolled charging, which is returned: {reason}"
    feasible = best.score <= 0 and short <= 1e-6
    stats["status"] = status(feasible, best.round, deep)
    if stats["status"] == "no_deeper":
        reason += "; not feasible, but no limit broken further than by uncontrolled charging"
    return PhasePlan(points, steps, best.p, ev, checks, feasible, reason, stats, lin)
