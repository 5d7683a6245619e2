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
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin
from gridpilot.twin.unbalanced.qsts import QstsOptions, load_multipliers

log = logging.getLogger(__name__)


def twin_of(grid: ThreePhaseGrid) -> UnbalancedTwin:
    """The engine for a CVR run: with the grid's smart inverters on their curves (an
    :class:`InverterTwin`, control iterations in every solve) where it has any."""
    if any(c.enabled for c in grid.invcontrols):
        return InverterTwin(grid)
    return UnbalancedTwin(grid)


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

    def __init__(self, res_s: float, opts: CvrOptions) -> None:
        self.res_s, self.o = res_s, opts
        self.kwh = 0.0
        self.bad_steps = 0
        self.vmin, self.vmax = np.inf, -np.inf
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, tw: UnbalancedTwin, v: np.ndarray) -> None:
        vp = v_pu(tw, v)
        lo, hi = np.nanmin(vp, axis=0), np.nanmax(vp, axis=0)
        self.kwh += float(source_kw(tw, v).sum()) * self.res_s / 3600.0
        self.bad_steps += int(np.sum((lo < self.o.vmin_pu - 1e-9) | (hi > self.o.vmax_pu + 1e-9)))
        self.vmin, self.vmax = min(self.vmin, float(lo.min())), max(self.vmax, float(hi.max()))
        self.lo += [round(float(x), 6) for x in lo]
        self.hi += [round(float(x), 6) for x in hi]

    def figures(self, tap_ops: int, cap_ops: int) -> RunFigures:
        return RunFigures(round(self.kwh, 3), self.bad_steps * self.res_s / 60.0, tap_ops,
                          cap_ops, round(self.vmin, 6), round(self.vmax, 6), self.lo, self.hi)  # fmt: skip


def baseline(grid: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions
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
    tally = _Tally(res_s, opts)
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
    """Evaluate regulator tap states over one decision period's steps."""

    def __init__(self, tw: UnbalancedTwin, s: np.ndarray, opts: CvrOptions) -> None:
        self.tw, self.s, self.o = tw, s, opts
        self.v0: np.ndarray | None = None

    def solve(self, taps: dict[str, float]) -> tuple[np.ndarray, float, float, float]:
        for n, t in taps.items():
            self.tw.set_tap(n, t)
        v, _ = self.tw.solve(self.s, self.v0)
        self.v0 = v
        vp = v_pu(self.tw, v)
        return v, float(np.nanmin(vp)), float(np.nanmax(vp)), float(source_kw(self.tw, v).sum())


def optimise(grid: ThreePhaseGrid, steps: int, res_s: float, opts: CvrOptions,
             base_taps: dict[str, np.ndarray], base_caps: dict[str, np.ndarray]
             ) -> tuple[RunFigures, list[float], dict[str, list[float]]]:  # fmt: skip
    """Choose taps per period (capacitors as the baseline at the period's start); returns
    the day's figures, the decision times (ms) and the chosen taps per period."""
    tw = twin_of(grid)
    s_all = _powers(tw, steps, res_s)
    regs = {s.ctl.name.lower(): tw.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
            for s in tw.regs}  # fmt: skip
    prev = tw.taps()
    prev_caps = {c.name.lower(): sum(c.states) for c in tw.grid.capacitors}
    tally, ms = _Tally(res_s, opts), []
    chosen: dict[str, list[float]] = {n: [] for n in regs}
    tap_ops = cap_ops = 0
    sizes = {c.name.lower(): len(c.states) for c in tw.grid.capacitors}
    for p0 in range(0, steps, opts.period_steps):
        t0 = time.perf_counter()
        caps = dict(prev_caps) if opts.cap_search else {n: int(x[p0]) for n, x in base_caps.items()}
        _set_caps(tw, caps)
        start = {n: float(base_taps[n][p0]) for n in regs}
        per = _Period(tw, s_all[:, p0 : p0 + opts.period_steps], opts)
        taps, v = _choose(per, start, prev, regs)
        left = opts.max_cap_ops - cap_ops if opts.max_cap_ops >= 0 else 1 << 30
        if opts.cap_search and caps:
            caps, v, changed = _cap_search(per, taps, caps, sizes, v, left)
            if changed:  # taps again at the new capacitor states (hold, or step down)
                taps, v = _choose(per, start, taps, regs)
        ms.append((time.perf_counter() - t0) * 1e3)
        tally.add(tw, v)
        for n, w in regs.items():
            tap_ops += round(abs(taps[n] - prev[n]) / w.tap_step)
            chosen[n].append(taps[n])
        cap_ops += sum(abs(caps.get(n, k) - k) for n, k in prev_caps.items())
        prev, prev_caps = taps, {**prev_caps, **caps}
    return tally.figures(tap_ops, cap_ops), ms, chosen


def _choose(per: _Period, start: dict[str, float], prev: dict[str, float],  # noqa: C901
            regs: dict) -> tuple[dict[str, float], np.ndarray]:  # type: ignore[type-arg]  # fmt: skip
    """The period's taps, in the band (Range A less the margin, every node-phase, every
    step). Hold the previous taps while they keep the band; else move them (all together,
    up if too low, down if too high) until back in it, else do the same from the
    baseline's state (``start``), else keep the least-violating state tried. Then step down
    (all together, then one regulator) only where a step saves at least ``min_gain_pct``
    of the period's energy per tap operation (any saving when the hold failed)."""
    o = per.o
    lo_b, hi_b = o.vmin_pu + o.margin_pu, o.vmax_pu - o.margin_pu

    def excess(lo: float, hi: float) -> float:
        return max(lo_b - lo, hi - hi_b, 0.0)

    def moved(base: dict[str, float], names: list[str], d: int) -> dict[str, float]:
        return {n: (min(max(t + d * regs[n].tap_step, regs[n].min_tap), regs[n].max_tap)
                    if n in names else t) for n, t in base.items()}  # fmt: skip

    tried: list[tuple[float, float, dict[str, float], np.ndarray]] = []
    for x0 in [prev, start] if prev != start else [start]:
        x = dict(x0)
        v, lo, hi, e = per.solve(x)
        tried.append((excess(lo, hi), e, x, v))
        d = 1 if lo < lo_b else -1
        for _ in range(o.max_lower_taps):
            if excess(lo, hi) == 0.0:
                break
            nxt = moved(x, list(regs), d)
            if nxt == x:
                break
            x = nxt
            v, lo, hi, e = per.solve(x)
            tried.append((excess(lo, hi), e, x, v))
        if excess(lo, hi) == 0.0:
            break
    ex, best_e, best, best_v = _pick(tried)
    gain = o.min_gain_pct if best == prev else 0.0
    groups = [list(regs)] + ([[n] for n in regs] if o.per_regulator and len(regs) > 1 else [])
    for names in groups:
        for _ in range(o.max_lower_taps):
            cand = moved(best, names, -1)
            if cand == best:
                break
            v, lo, hi, e = per.solve(cand)
            need = gain / 100 * abs(best_e) * len(names)
            if not (excess(lo, hi) <= ex and best_e - e >= max(need, 1e-9)):
                break
            best, best_v, best_e = cand, v, e
    for n, t in best.items():
        per.tw.set_tap(n, t)
    return best, best_v


def _excess(o: CvrOptions, lo: float, hi: float) -> float:
    """How far (pu) the extremes leave the band (Range A less the margin); 0 inside."""
    return max(o.vmin_pu + o.margin_pu - lo, hi - (o.vmax_pu - o.margin_pu), 0.0)


def _cap_search(per: _Period, taps: dict[str, float], caps: dict[str, int],
                sizes: dict[str, int], v: np.ndarray, left: int
                ) -> tuple[dict[str, int], np.ndarray, bool]:  # fmt: skip
    """Switch at most one capacitor (all its steps) for the period: the one that brings the
    extremes closest into the band, else (band kept) the one saving most energy, at least
    ``min_gain_pct`` of the period's; one whose steps exceed the ``left`` operations is not
    tried. Returns the states, voltages and whether one moved."""
    o, tw = per.o, per.tw
    vp = v_pu(tw, v)
    e0 = float(source_kw(tw, v).sum())
    best = (_excess(o, float(np.nanmin(vp)), float(np.nanmax(vp))), e0, caps, v)
    for n, k in caps.items():
        if (k or sizes[n]) > left:
            continue
        cand = {**caps, n: 0 if k else sizes[n]}
        _set_caps(tw, cand)
        v2, lo, hi, e = per.solve(taps)
        ex = _excess(o, lo, hi)
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
    base, taps, caps = baseline(g, steps, resolution_s, opts)
    o = opts
    if opts.match_baseline_ops and opts.max_cap_ops < 0:
        o = dataclasses.replace(o, max_cap_ops=base.cap_ops)
    for i in range(opts.max_replans + 1):
        opt, ms, chosen = optimise(g, steps, resolution_s, o, taps, caps)
        if not opts.match_baseline_ops or opt.tap_ops <= base.tap_ops or i == opts.max_replans:
            break
        o = dataclasses.replace(o, min_gain_pct=o.min_gain_pct * 4)
    res = CvrResult(grid.name, steps, resolution_s, base, opt, ms, chosen)
    res.min_gain_pct = o.min_gain_pct
    return res
