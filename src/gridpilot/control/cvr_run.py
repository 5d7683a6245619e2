"""The CVR day: the baseline (OpenDSS's own controls, replayed for energy) and the
optimised schedule (see :mod:`gridpilot.control.cvr` for the method)."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from gridpilot.control.cvr import (
    CvrOptions,
    CvrResult,
    RunFigures,
    shaped,
    source_kw,
    v_pu,
)
from gridpilot.control.cvr_band import Band, make_band, repair, tap_sensitivity
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import twin_for
from gridpilot.twin.unbalanced.qsts import QstsOptions, load_multipliers

log = logging.getLogger(__name__)


def twin_of(grid: ThreePhaseGrid) -> UnbalancedTwin:
    """The engine for a CVR run: with the grid's smart inverters on their curves (an
    :class:`InverterTwin`, control iterations in every solve) where it has any."""
    return twin_for(grid)


def _powers(tw: UnbalancedTwin, steps: int, res_s: float) -> np.ndarray:
    return tw.loads.s_va[:, None] * load_multipliers(
        tw, QstsOptions(steps=steps, resolution_s=res_s)
    )


def _set_caps(tw: UnbalancedTwin, closed: dict[str, int]) -> None:
    for c in tw.grid.capacitors:
        k = int(closed.get(c.name.lower(), sum(c.states)))
        tw.set_cap(c.name, [1] * k + [0] * (len(c.states) - k))


class _Tally:
    """Energy, violation minutes and extremes over solved columns."""

    def __init__(self, res_s: float, opts: CvrOptions, ctl: np.ndarray | None = None) -> None:
        self.res_s, self.o, self.ctl = res_s, opts, ctl
        self.kwh = 0.0
        self.bad_steps = self.bad_ctl = 0
        self.vmin, self.vmax = np.inf, -np.inf
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, tw: UnbalancedTwin, v: np.ndarray) -> None:
        vp = v_pu(tw, v)
        lo, hi = np.nanmin(vp, axis=0), np.nanmax(vp, axis=0)
        self.kwh += float(source_kw(tw, v).sum()) * self.res_s / 3600.0
        self.bad_steps += int(np.sum((lo < self.o.vmin_pu - 1e-9) | (hi > self.o.vmax_pu + 1e-9)))
        if self.ctl is not None:
            with np.errstate(invalid="ignore"):
                out = (vp < self.o.vmin_pu - 1e-9) | (vp > self.o.vmax_pu + 1e-9)
            self.bad_ctl += int(np.sum(np.any(out & self.ctl[:, None], axis=0)))
        self.vmin, self.vmax = min(self.vmin, float(lo.min())), max(self.vmax, float(hi.max()))
        self.lo += [round(float(x), 6) for x in lo]
        self.hi += [round(float(x), 6) for x in hi]

    def figures(self, tap_ops: int, cap_ops: int) -> RunFigures:
        return RunFigures(round(self.kwh, 3), self.bad_steps * self.res_s / 60.0, tap_ops,
                          cap_ops, round(self.vmin, 6), round(self.vmax, 6),
                          self.bad_ctl * self.res_s / 60.0, self.lo, self.hi)  # fmt: skip


def baseline(grid: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions,
             ctl: np.ndarray | None = None
             ) -> tuple[RunFigures, dict[str, np.ndarray], dict[str, np.ndarray]]:  # fmt: skip
    """OpenDSS's own controls (the engine's QSTS, time mode) over the horizon; energy and
    violations from replaying each step at the taps and capacitor states it ran at.
    Returns the figures, and the tap (pu) and closed-step series per device."""
    tw = twin_of(grid)
    q = tw.qsts(steps, res_s, keep_taps=True)
    rp = twin_of(grid)
    s_all = _powers(rp, steps, res_s)
    names_t, names_c = list(q.tap_series), list(q.cap_series)
    state = np.column_stack([q.tap_series[n] for n in names_t] + [q.cap_series[n] for n in names_c]
                            + [np.zeros(steps)])  # fmt: skip
    tally = _Tally(res_s, opts, ctl)
    k = 0
    while k < steps:
        j = k + 1
        while j < steps and np.array_equal(state[j], state[k]):
            j += 1
        for i, n in enumerate(names_t):
            rp.set_tap(n, float(state[k, i]))
        _set_caps(rp, {n: int(state[k, len(names_t) + i]) for i, n in enumerate(names_c)})
        v, _ = rp.solve(s_all[:, k:j])
        tally.add(rp, v)
        k = j
    figs = tally.figures(int(sum(q.tap_ops.values())), int(sum(q.cap_ops.values())))
    return figs, q.tap_series, q.cap_series


class _Period:
    """Evaluate regulator tap states over one decision period's steps against the band."""

    def __init__(self, tw: UnbalancedTwin, s: np.ndarray, opts: CvrOptions, band: Band) -> None:
        self.tw, self.s, self.o, self.band = tw, s, opts, band
        self.v0: np.ndarray | None = None

    def solve(self, taps: dict[str, float]) -> tuple[np.ndarray, float, float]:
        """Voltages, excess over the band (pu) and energy (kW summed over the steps)."""
        for n, t in taps.items():
            self.tw.set_tap(n, t)
        v, _ = self.tw.solve(self.s, self.v0)
        self.v0 = v
        return v, self.band.excess(v_pu(self.tw, v)), float(source_kw(self.tw, v).sum())


def day_band(grid: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions
             ) -> tuple[np.ndarray, Band]:  # fmt: skip
    """Tap sensitivities at the day's first step (at the grid's own taps) and the band."""
    tw = twin_of(grid)
    regs = {s.ctl.name.lower(): tw.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
            for s in tw.regs}  # fmt: skip
    sens = tap_sensitivity(tw, _powers(tw, steps, res_s)[:, :1], regs)
    return sens, make_band(opts, sens, regs)


def optimise(grid: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions,  # noqa: PLR0913
             base_taps: dict[str, np.ndarray], base_caps: dict[str, np.ndarray],
             day: tuple[np.ndarray, Band] | None = None,
             ) -> tuple[RunFigures, list[float], dict[str, list[float]]]:  # fmt: skip
    """Choose taps per period (capacitors as the baseline at the period's start); returns
    the day's figures, the decision times (ms) and the chosen taps per period."""
    tw = twin_of(grid)
    s_all = _powers(tw, steps, res_s)
    regs = {s.ctl.name.lower(): tw.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
            for s in tw.regs}  # fmt: skip
    sens, band = day if day is not None else day_band(grid, steps, res_s, opts)
    prev = tw.taps()
    prev_caps = {c.name.lower(): sum(c.states) for c in tw.grid.capacitors}
    tally, ms = _Tally(res_s, opts, band.ctl), []
    chosen: dict[str, list[float]] = {n: [] for n in regs}
    tap_ops = cap_ops = 0
    sizes = {c.name.lower(): len(c.states) for c in tw.grid.capacitors}
    for p0 in range(0, steps, opts.period_steps):
        t0 = time.perf_counter()
        caps = dict(prev_caps) if opts.cap_search else {n: int(x[p0]) for n, x in base_caps.items()}
        _set_caps(tw, caps)
        start = {n: float(base_taps[n][p0]) for n in regs}
        per = _Period(tw, s_all[:, p0 : p0 + opts.period_steps], opts, band)
        taps, v = _choose(per, start, prev, regs, sens)
        left = opts.max_cap_ops - cap_ops if opts.max_cap_ops >= 0 else 1 << 30
        if opts.cap_search and caps:
            caps, v, changed = _cap_search(per, taps, caps, sizes, v, left)
            if changed:  # taps again at the new capacitor states (hold, or step down)
                taps, v = _choose(per, start, taps, regs, sens)
        segs = _backoff(per, taps, v, {n: base_taps[n][p0:] for n in regs}, regs, sens)
        ms.append((time.perf_counter() - t0) * 1e3)
        for n in regs:
            chosen[n].append(taps[n])
        for seg_taps, seg_v in segs:
            tally.add(tw, seg_v)
            tap_ops += sum(round(abs(seg_taps[n] - prev[n]) / w.tap_step) for n, w in regs.items())
            prev = seg_taps
        cap_ops += sum(abs(caps.get(n, k) - k) for n, k in prev_caps.items())
        prev_caps = {**prev_caps, **caps}
    return tally.figures(tap_ops, cap_ops), ms, chosen


def _backoff(per: _Period, taps: dict[str, float], v: np.ndarray, base: dict[str, np.ndarray],
             regs: dict, sens: np.ndarray) -> list[tuple[dict[str, float], np.ndarray]]:  # type: ignore[type-arg]  # fmt: skip
    """The period as decided, or, where its exact solve leaves a regulated node-phase
    outside Range A in some step (one tap state cannot serve the whole period), each step
    decided on its own from the period's taps (held where they keep the band). Returns
    (taps, voltages) per segment, in time order; taps are left at the last segment's."""
    band, tw = per.band, per.tw
    if per.s.shape[1] == 1 or not band.breach_steps(v_pu(tw, v)).any():
        return [(taps, v)]
    segs = []
    prev = taps
    for k in range(per.s.shape[1]):
        one = _Period(tw, per.s[:, k : k + 1], per.o, band)
        start = {n: float(x[k]) for n, x in base.items()}
        prev, vk = _choose(one, start, prev, regs, sens)
        segs.append((prev, vk))
    log.debug("CVR: a period split into %d steps (one tap state broke Range A)", len(segs))
    return segs


def _choose(per: _Period, start: dict[str, float], prev: dict[str, float],  # noqa: C901
            regs: dict, sens: np.ndarray) -> tuple[dict[str, float], np.ndarray]:  # type: ignore[type-arg]  # fmt: skip
    """The period's taps, in the band (per node-phase, every step). Hold the previous taps
    while they keep the band; else move them (all together, up if the deepest breach is
    low, down if high) until back in it, else do the same from the baseline's state
    (``start``); keep the least-violating state tried and, if it still breaks the band,
    move single regulators as the tap sensitivities ``sens`` suggest (:func:`repair`).
    Then step down (all together, then one regulator; a step the sensitivities predict to
    break the band by over 1e-3 pu is not solved) only where a step saves at least
    ``min_gain_pct`` of the period's energy per tap operation (any saving when the hold
    failed)."""
    o, band = per.o, per.band

    def moved(base: dict[str, float], names: list[str], d: int) -> dict[str, float]:
        return {n: (min(max(t + d * regs[n].tap_step, regs[n].min_tap), regs[n].max_tap)
                    if n in names else t) for n, t in base.items()}  # fmt: skip

    tried: list[tuple[float, float, dict[str, float], np.ndarray]] = []
    for x0 in [prev, start] if prev != start else [start]:
        x = dict(x0)
        v, ex, e = per.solve(x)
        tried.append((ex, e, x, v))
        d = 1 if band.too_low(v_pu(per.tw, v)) else -1
        for _ in range(o.max_lower_taps):
            if ex == 0.0:
                break
            nxt = moved(x, list(regs), d)
            if nxt == x:
                break
            x = nxt
            v, ex, e = per.solve(x)
            tried.append((ex, e, x, v))
        if ex == 0.0:
            break
    ex, best_e, best, best_v = _pick(tried)
    if ex > 0.0 and regs:
        best, best_v = repair(per, band, sens, regs, (best, best_v), 4 * len(regs))
        best_v, ex, best_e = per.solve(best)
    gain = o.min_gain_pct if best == prev else 0.0
    names_all = list(regs)
    groups = [names_all] + ([[n] for n in regs] if o.per_regulator and len(regs) > 1 else [])
    for names in groups:
        cols = [names_all.index(n) for n in names]
        for _ in range(o.max_lower_taps):
            cand = moved(best, names, -1)
            if cand == best:
                break
            pred = band.excess(v_pu(per.tw, best_v) - sens[:, cols].sum(axis=1)[:, None])
            if pred > ex + 1e-3:
                break
            v, ex2, e = per.solve(cand)
            need = gain / 100 * abs(best_e) * len(names)
            if not (ex2 <= ex and best_e - e >= max(need, 1e-9)):
                break
            best, best_v, best_e = cand, v, e
    for n, t in best.items():
        per.tw.set_tap(n, t)
    return best, best_v


def _cap_search(per: _Period, taps: dict[str, float], caps: dict[str, int],
                sizes: dict[str, int], v: np.ndarray, left: int
                ) -> tuple[dict[str, int], np.ndarray, bool]:  # fmt: skip
    """Switch at most one capacitor (all its steps) for the period: the one that brings the
    extremes closest into the band, else (band kept) the one saving most energy, at least
    ``min_gain_pct`` of the period's; one whose steps exceed the ``left`` operations is not
    tried. Returns the states, voltages and whether one moved."""
    o, tw = per.o, per.tw
    e0 = float(source_kw(tw, v).sum())
    best = (per.band.excess(v_pu(tw, v)), e0, caps, v)
    for n, k in caps.items():
        if (k or sizes[n]) > left:
            continue
        cand = {**caps, n: 0 if k else sizes[n]}
        _set_caps(tw, cand)
        v2, ex, e = per.solve(taps)
        if ex < best[0] - 1e-6 or (
            ex <= best[0] + 1e-12 and best[1] - e >= o.min_gain_pct / 100 * abs(e0)
        ):
            best = (ex, e, cand, v2)
    _set_caps(tw, best[2])
    return best[2], best[3], best[2] is not caps


def _pick(tried: list) -> tuple:  # type: ignore[type-arg]
    """The least-violating tried state, then the least energy: (excess, energy, taps, v)."""
    ex, e, x, v = min(tried, key=lambda t: (round(t[0], 9), t[1]))
    return ex, e, x, v


def _day_ahead(g: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions,
               base: RunFigures, band: Band) -> CvrResult:  # fmt: skip
    """The day-ahead plan (:func:`gridpilot.control.cvr_plan.plan_day`) within the
    baseline's tap and capacitor operations (any number without ``match_baseline_ops``),
    its figures from the plan's exact solve."""
    from gridpilot.control.cvr_plan import plan_day

    t0 = time.perf_counter()
    tw = twin_of(g)
    s_all = _powers(tw, steps, res_s)
    big = 1 << 30
    budget = (base.tap_ops, base.cap_ops) if opts.match_baseline_ops else (big, big)
    dp = plan_day(tw, s_all, band, res_s / 3600.0, budget, opts.period_steps,
                  opts.plan_iterations)  # fmt: skip
    tally = _Tally(res_s, opts, band.ctl)
    tally.add(tw, dp.v)
    ms = [(time.perf_counter() - t0) * 1e3]
    names = dp.devices.names
    chosen = {n: [float(x) for x in dp.plan[i, :: opts.period_steps]]
              for i, n in enumerate(names) if not dp.devices.is_cap[i]}  # fmt: skip
    res = CvrResult(g.name, steps, res_s, base, tally.figures(dp.tap_ops, dp.cap_ops), ms, chosen)
    res.extra = {"method": "day_plan", "plan_iterations": dp.iterations,
                 "plan_kwh_per_op": list(dp.lam),
                 "plan_steps_out_of_range_a": int(dp.breach_steps.sum())}  # fmt: skip
    return res


def cvr_day(grid: ThreePhaseGrid, load_mult: np.ndarray, resolution_s: float = 900.0,
            opts: CvrOptions | None = None) -> CvrResult:  # fmt: skip
    """Volt/VAR optimisation with CVR over the profile ``load_mult`` (one multiplier per
    step of ``resolution_s`` seconds) against OpenDSS's own controls; returns a
    :class:`CvrResult` (energy in kWh, violation minutes, operations, decision times).

    With ``opts.match_baseline_ops`` the day is re-planned with the energy a tap operation
    must save raised fourfold (at most ``opts.max_replans`` times) until it uses no more
    tap operations than the baseline; the last plan is returned either way and says so."""
    opts = opts or CvrOptions()
    opts.validate()
    g = shaped(grid, load_mult, resolution_s)
    steps = len(load_mult)
    day = day_band(g, steps, resolution_s, opts)
    base, taps, caps = baseline(g, steps, resolution_s, opts, day[1].ctl)
    if opts.day_plan:
        return _day_ahead(g, steps, resolution_s, opts, base, day[1])
    o = opts
    if opts.match_baseline_ops and opts.max_cap_ops < 0:
        o = dataclasses.replace(o, max_cap_ops=base.cap_ops)
    for i in range(opts.max_replans + 1):
        opt, ms, chosen = optimise(g, steps, resolution_s, o, taps, caps, day)
        if not opts.match_baseline_ops or opt.tap_ops <= base.tap_ops or i == opts.max_replans:
            break
        o = dataclasses.replace(o, min_gain_pct=o.min_gain_pct * 4)
    res = CvrResult(grid.name, steps, resolution_s, base, opt, ms, chosen)
    res.min_gain_pct = o.min_gain_pct
    return res
