"""Day-ahead CVR plan: one tap schedule per regulator and one state schedule per capacitor
over the whole horizon, chosen by dynamic programming with a switching cost, every plan
checked in the full unbalanced twin.

* **Linear model per step.** From a reference state (the grid's own taps, every capacitor
  as it is) each device is moved by one unit (a tap step; a capacitor's closed steps by
  one) and the whole horizon solved exactly: ``S[j]`` (node-phases × steps, pu per unit)
  and ``dp[j]`` (kW per unit per step). Around a verified plan ``x`` with exact voltages
  ``B``, a state ``y`` gives ``B + Σ_j S[j] (y_j − x_j)``.
* **DP per device (coordinate descent).** With every other device held at its schedule,
  one device's schedule over positions × steps minimises energy (kWh, linear) + ``W_MARGIN``
  × the summed breach of the margin band + ``W_RANGE`` × the summed breach of Range A
  (regulated node-phases only, :class:`~gridpilot.control.cvr_band.Band`) + ``lam`` × its
  operations (tap steps moved; capacitors switch only at period boundaries). Sweeps over
  all devices repeat until none changes.
* **Operation budget.** ``lam`` (kWh an operation must save) is raised until the linear
  plan uses no more tap operations than the budget (the baseline's); capacitor
  operations are capped the same way.
* **Start.** Per step, the most central state of :func:`range_a_bound`, rounded
  (:func:`lp_start`), so moves needing several devices at once are already made.
* **Verified.** The plan is solved exactly (steps grouped by equal state); the exact
  voltages become the next ``B`` and the DP runs again from the plan (each device kept
  near its schedule at steps the exact solve held, ``TRUST``), until the exact solve keeps
  every regulated node-phase inside Range A or ``iterations`` are spent. Steps still
  outside get a neighbouring step's state, then a sequential LP (:func:`exact_fix`, exact
  at every state; taps only, then capacitors too) trimmed back toward the neighbours'
  states (:func:`trim`), then a local exact search (:func:`local_fix`: single and paired
  one-unit moves, each solved exactly, greedy by the day's Range A breach); each is kept
  only while the day's tap and capacitor operations, counted on the whole plan, stay
  within the budget. The figures reported are the exact solve's, never the model's.
* **Bound** (:func:`range_a_bound`): where a step still breaks Range A, a linear programme
  over every control (taps and capacitor steps continuous within their ranges, linearised
  at the plan) gives the least possible largest breach; above zero no control state holds
  that step inside Range A (to the linearisation, which the exact solve at the LP's
  rounded state measures).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from gridpilot.control.cvr import v_pu
from gridpilot.control.cvr_band import Band
from gridpilot.twin.unbalanced import UnbalancedTwin

log = logging.getLogger(__name__)
W_MARGIN = 1e4  # kWh per pu per node-phase-step outside the margin band
W_RANGE = 1e8  # kWh per pu per node-phase-step outside Range A
WINDOW = 6  # positions (units) beyond a schedule's range a DP sweep considers
SWEEPS = 6  # coordinate-descent sweeps at most
TRUST = 50.0  # kWh per unit moved from a verified step that held Range A
LAM_MAX = 1e4  # kWh per operation: above it, operations are what the band needs


@dataclass
class Devices:
    """The controls a plan schedules: regulators (positions = tap pu values) and
    capacitors (positions = closed steps), in this order."""

    names: list[str]
    is_cap: np.ndarray  # bool per device
    pos: list[np.ndarray]  # allowed positions per device
    unit: np.ndarray  # tap step (pu) or 1 closed step
    x0: np.ndarray  # the state before the horizon (operations count from it)

    @classmethod
    def of(cls, tw: UnbalancedTwin) -> Devices:
        """The twin's regulators and capacitors, at their present states."""
        names, caps, pos, unit, x0 = [], [], [], [], []
        for s in tw.regs:
            w = tw.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
            k = max(w.num_taps, 1)
            names.append(s.ctl.name.lower())
            caps.append(False)
            pos.append(np.round(w.min_tap + np.arange(k + 1) * w.tap_step, 9))
            unit.append(w.tap_step)
            x0.append(w.tap)
        for c in tw.grid.capacitors:
            names.append(c.name.lower())
            caps.append(True)
            pos.append(np.arange(len(c.states) + 1, dtype=float))
            unit.append(1.0)
            x0.append(float(sum(c.states)))
        return cls(names, np.array(caps, bool), pos, np.array(unit), np.array(x0))

    def apply(self, tw: UnbalancedTwin, x: np.ndarray) -> None:
        """Impose state ``x`` (one value per device) on the twin."""
        for n, c, val, size in zip(self.names, self.is_cap, x, self.pos, strict=True):
            if c:
                k = round(val)
                tw.set_cap(n, [1] * k + [0] * (len(size) - 1 - k))
            else:
                tw.set_tap(n, float(val))

    def ops(self, plan: np.ndarray) -> tuple[int, int]:
        """Tap and capacitor operations of ``plan`` (devices × steps) from ``x0``."""
        full = np.column_stack([self.x0, plan])
        moves = np.rint(np.abs(np.diff(full, axis=1)) / self.unit[:, None]).sum(axis=1)
        return int(moves[~self.is_cap].sum()), int(moves[self.is_cap].sum())


@dataclass
class Model:
    """Exact voltages ``b`` (pu, node-phases × steps) and energy ``e`` (kW per step) at a
    verified plan ``x``, and the per-unit sensitivities ``s`` / ``dp`` of every device."""

    s: np.ndarray  # devices × node-phases × steps (pu per unit)
    dp: np.ndarray  # devices × steps (kW per unit)
    b: np.ndarray
    e: np.ndarray
    x: np.ndarray  # devices × steps
    h: float  # hours per step
    unit: np.ndarray  # per device
    rel: list[np.ndarray] = field(default_factory=list)  # node-phases each device moves
    good: np.ndarray | None = None  # steps the exact solve held in Range A (trust region)


def solve_plan(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, plan: np.ndarray
               ) -> np.ndarray:  # fmt: skip
    """Exact voltages (V, nodes × steps) of ``plan``: steps of equal state solved together."""
    steps = s_all.shape[1]
    v = np.zeros((len(tw.net.nodes), steps), complex)
    keys = [tuple(np.round(plan[:, t], 9)) for t in range(steps)]
    for key in dict.fromkeys(keys):
        cols = [t for t in range(steps) if keys[t] == key]
        dev.apply(tw, np.array(key))
        v[:, cols], _ = tw.solve(s_all[:, cols])
    return v


def sensitivities(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, x: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """pu per unit of every device at every node-phase and step, and kW per unit, around the
    constant state ``x``; with the reference voltages (pu) and power (kW)."""
    from gridpilot.control.cvr import source_kw

    dev.apply(tw, x)
    v_ref, _ = tw.solve(s_all)
    vp_ref, p_ref = np.nan_to_num(v_pu(tw, v_ref)), source_kw(tw, v_ref)
    s = np.zeros((len(dev.names), *vp_ref.shape), np.float32)
    dp = np.zeros((len(dev.names), s_all.shape[1]))
    for j, p in enumerate(dev.pos):
        up = x[j] + dev.unit[j] <= p[-1] + 1e-9
        d = dev.unit[j] if up else -dev.unit[j]
        y = x.copy()
        y[j] += d
        dev.apply(tw, y)
        vj, _ = tw.solve(s_all, v_ref)
        sign = 1.0 if up else -1.0
        s[j] = sign * (np.nan_to_num(v_pu(tw, vj)) - vp_ref)
        dp[j] = sign * (source_kw(tw, vj) - p_ref)
    dev.apply(tw, x)
    return s, dp, vp_ref, p_ref


def _cost(m: Model, band: Band, vc: np.ndarray, j: int, cur: np.ndarray, pos: np.ndarray
          ) -> np.ndarray:  # fmt: skip
    """Steps × positions: energy (kWh) and weighted band breaches of device ``j`` at each
    position, every other device at its schedule (``vc``: the model's voltages there)."""
    rel = m.rel[j]
    lo, hi = band.lo[rel, None], band.hi[rel, None]
    vb, sj = vc[rel], m.s[j][rel]
    out = np.zeros((vc.shape[1], pos.size))
    unit = m.unit[j]
    for k, p in enumerate(pos):
        d = (p - cur) / unit
        w = vb + sj * d[None, :].astype(np.float32)
        g_m = np.maximum(np.maximum(lo - w, w - hi), 0.0).sum(axis=0)
        g_a = np.maximum(np.maximum(band.vmin - w, w - band.vmax), 0.0).sum(axis=0)
        out[:, k] = m.h * m.dp[j] * d + W_MARGIN * g_m + W_RANGE * g_a
        if m.good is not None:  # stay near the verified plan where it held Range A
            out[:, k] += TRUST * np.abs(p - m.x[j]) / unit * m.good
    return out


def _dp(cost: np.ndarray, pos: np.ndarray, unit: float, start: float, lam: float,
        fixed: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """The schedule (one position per step) of least summed cost + ``lam`` per unit moved
    from ``start``; where ``fixed[t]`` the position may not change at step t."""
    steps, npos = cost.shape
    trans = lam * np.rint(np.abs(pos[:, None] - pos[None, :]) / unit)  # from q (rows) to p
    big = np.where(np.eye(npos, dtype=bool), 0.0, np.inf)
    d = cost[0] + lam * np.rint(np.abs(pos - start) / unit)
    arg = np.zeros((steps, npos), int)
    for t in range(1, steps):
        tot = d[:, None] + (big if fixed is not None and fixed[t] else trans)
        arg[t] = np.argmin(tot, axis=0)
        d = cost[t] + tot[arg[t], np.arange(npos)]
    path = np.zeros(steps, int)
    path[-1] = int(np.argmin(d))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = arg[t, path[t]]
    return pos[path]


def linear_plan(m: Model, dev: Devices, band: Band, lam: tuple[float, float], period: int,
                start: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Coordinate descent from ``start`` (default: the model's plan): each device's schedule
    by :func:`_dp` (``lam``: kWh per tap and per capacitor operation) over the positions
    within ``WINDOW`` units of its present schedule, others held, until none changes."""
    cur = (m.x if start is None else start).copy()
    vc = (m.b + np.einsum("jnt,jt->nt", m.s, (cur - m.x) / dev.unit[:, None])).astype(np.float32)
    fixed = (np.arange(cur.shape[1]) % period) != 0
    for _ in range(SWEEPS):
        changed = False
        for j in range(len(dev.names)):
            c, u = dev.is_cap[j], dev.unit[j]
            pos = dev.pos[j]
            pos = pos[(pos >= cur[j].min() - WINDOW * u - 1e-9)
                      & (pos <= cur[j].max() + WINDOW * u + 1e-9)]  # fmt: skip
            cost = _cost(m, band, vc, j, cur[j], pos)
            new = _dp(cost, pos, u, dev.x0[j], lam[int(c)], fixed if c else None)
            if np.allclose(new, cur[j]):
                continue
            vc += m.s[j] * ((new - cur[j]) / u)[None, :].astype(np.float32)
            cur[j] = new
            changed = True
        if not changed:
            break
    return cur


def budget_plan(m: Model, dev: Devices, band: Band, budget: tuple[int, int], period: int,  # noqa: PLR0913
                lam0: tuple[float, float] = (1.0, 1.0), start: np.ndarray | None = None
                ) -> tuple[np.ndarray, tuple[float, float]]:  # fmt: skip
    """:func:`linear_plan` with the operation costs raised fourfold (from ``lam0``, each
    plan from the last) until the plan's tap and capacitor operations are within
    ``budget`` or the costs pass ``LAM_MAX`` (the operations the band itself needs); the
    plan and the costs used."""
    lam = list(lam0)
    plan = linear_plan(m, dev, band, (lam[0], lam[1]), period, start)
    ops = dev.ops(plan)
    while (ops[0] > budget[0] and lam[0] < LAM_MAX) or (ops[1] > budget[1] and lam[1] < LAM_MAX):
        lam = [lam[0] * (4.0 if ops[0] > budget[0] else 1.0),
               lam[1] * (4.0 if ops[1] > budget[1] else 1.0)]  # fmt: skip
        plan = linear_plan(m, dev, band, (lam[0], lam[1]), period, plan)
        ops = dev.ops(plan)
    log.info("CVR day plan: %d tap / %d cap ops (linear) at %s kWh per operation",
             ops[0], ops[1], lam)  # fmt: skip
    return plan, (lam[0], lam[1])


@dataclass
class DayPlan:
    """A verified day-ahead plan: the schedule (devices × steps), its exact voltages (V),
    the regulated steps still outside Range A, operations and the costs used."""

    devices: Devices
    plan: np.ndarray
    v: np.ndarray
    breach_steps: np.ndarray
    tap_ops: int
    cap_ops: int
    lam: tuple[float, float]
    iterations: int
    bounds: list[Bound] = field(default_factory=list)  # steps still outside Range A


def plan_day(tw: UnbalancedTwin, s_all: np.ndarray, band: Band, h: float,  # noqa: PLR0913
             budget: tuple[int, int], period: int, iterations: int = 4) -> DayPlan:  # fmt: skip
    """The day-ahead plan (see the module doc): linearise at the grid's own state, plan,
    solve exactly, re-plan around the exact voltages; returns the best verified plan
    (fewest regulated steps outside Range A, then fewest operations over the budget, then
    least energy)."""
    from gridpilot.control.cvr import source_kw

    dev = Devices.of(tw)
    steps = s_all.shape[1]
    s, dp, vp, _ = sensitivities(tw, dev, s_all, dev.x0)
    log.info("CVR day plan: sensitivities of %d devices over %d steps", len(s), steps)
    live = np.all(vp > 0.05, axis=1) & band.ctl
    rel = [np.flatnonzero(live & (np.abs(s[j]).max(axis=1) > 1e-5)) for j in range(len(s))]
    m = Model(s, dp, vp, np.zeros(steps), np.repeat(dev.x0[:, None], steps, 1), h, dev.unit, rel)
    best: tuple[tuple[float, float, float], DayPlan] | None = None
    lam = (1.0, 1.0)
    start: np.ndarray | None = lp_start(m, dev, band)
    for it in range(iterations):
        plan, lam = budget_plan(m, dev, band, budget, period, lam, start)
        start, lam = None, (max(1.0, lam[0] / 16), max(1.0, lam[1] / 16))
        v = solve_plan(tw, dev, s_all, plan)
        vpx = v_pu(tw, v)
        bad = band.breach_steps(vpx)
        taps, caps = dev.ops(plan)
        e = source_kw(tw, v)
        over = max(0, taps - budget[0]) + max(0, caps - budget[1])
        score = (float(bad.sum()), float(over), float(e.sum()))
        log.info("CVR day plan %d: %d steps out of Range A, %d tap / %d cap ops, %.1f kWh",
                 it, int(bad.sum()), taps, caps, e.sum() * h)  # fmt: skip
        if best is None or score < best[0]:
            best = (score, DayPlan(dev, plan, v, bad, taps, caps, lam, it + 1))
        if score[0] == 0.0 and score[1] == 0.0:
            break
        m.b, m.e, m.x, m.good = np.nan_to_num(vpx), e, plan, ~bad
    assert best is not None
    return _finish(tw, m, band, s_all, best[1], budget, period)


def _lp_fix(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, band: Band,  # noqa: PLR0913
            out: DayPlan, budget: tuple[int, int], period: int, t: int, frozen: np.ndarray
            ) -> bool:  # fmt: skip
    """Step ``t`` of ``out`` by :func:`exact_fix` (``frozen`` devices held; started from
    the step's state and from each neighbour's taps) and
    :func:`trim`; capacitors move over their whole switching period. Kept where the exact
    solve of every step it changes holds ``t`` in Range A, breaches no more in all, and the
    day's operations stay within ``budget`` (or no higher than before)."""
    near = out.plan[:, max(t - 1, 0) : t + 2]
    for k in range(near.shape[1]):  # from the step's own state, then its neighbours' taps
        x0 = near[:, k].copy()
        x0[dev.is_cap] = out.plan[dev.is_cap, t]
        x, vt = exact_fix(tw, dev, s_all[:, t : t + 1], band, x0, reach=1.0, frozen=frozen)
        if vt is None:
            continue
        x, vt = trim(tw, dev, s_all[:, t : t + 1], band, x, vt, near.min(1), near.max(1))
        if _accept(tw, dev, s_all, band, out, budget, period, t, x):
            return True
    return False


def _accept(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, band: Band,  # noqa: PLR0913
            out: DayPlan, budget: tuple[int, int], period: int, t: int, x: np.ndarray
            ) -> bool:  # fmt: skip
    """State ``x`` at step ``t`` of ``out``, capacitors over their switching period, else
    (where that breaks the period's other steps) at step ``t`` alone, as real banks may
    switch at any step; kept where the exact solve of every step it changes holds ``t`` in
    Range A, breaches no more in all, and the day's operations stay within ``budget`` (or
    no higher)."""
    t0 = t - t % period
    for span in (slice(t0, t0 + period), slice(t, t + 1)):
        trial = out.plan.copy()
        trial[~dev.is_cap, t] = x[~dev.is_cap]
        trial[dev.is_cap, span] = x[dev.is_cap, None]
        if _keep(tw, dev, s_all, band, out, budget, t, trial):
            return True
    return False


def _keep(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, band: Band,  # noqa: PLR0913
          out: DayPlan, budget: tuple[int, int], t: int, trial: np.ndarray) -> bool:  # fmt: skip
    """``trial`` replaces ``out``'s plan where :func:`_accept`'s checks pass."""
    ops, cur = dev.ops(trial), dev.ops(out.plan)
    cols = np.flatnonzero(np.any(trial != out.plan, axis=0))
    if cols.size == 0 or any(o > max(b, c) for o, b, c in zip(ops, budget, cur, strict=True)):
        return False
    v = solve_plan(tw, dev, s_all[:, cols], trial[:, cols])
    new, old = range_a_breach(band, v_pu(tw, v)), range_a_breach(band, v_pu(tw, out.v[:, cols]))
    if new[cols == t].sum() == 0.0 and new.sum() < old.sum():
        out.plan, out.v[:, cols] = trial, v
        return True
    return False


def _finish(tw: UnbalancedTwin, m: Model, band: Band, s_all: np.ndarray, out: DayPlan,  # noqa: PLR0913
            budget: tuple[int, int], period: int) -> DayPlan:  # fmt: skip
    """Steps of ``out`` still outside Range A: a neighbouring step's state, the sequential
    LP (:func:`_lp_fix`) over the
    taps, then with the capacitors; then the local exact search (:func:`local_fix`); each
    kept only within the operation budget; then the bound at the steps still outside."""
    dev = out.devices
    for t in np.flatnonzero(out.breach_steps):  # a neighbour's state: no extra operation
        for n in (t - 1, t + 1):
            if 0 <= n < out.plan.shape[1] and _accept(
                tw, dev, s_all, band, out, budget, period, int(t), out.plan[:, n].copy()
            ):
                break
    out.breach_steps = band.breach_steps(v_pu(tw, out.v))
    for frozen in (dev.is_cap, np.zeros_like(dev.is_cap)):  # taps only, then capacitors too
        for t in np.flatnonzero(out.breach_steps):
            _lp_fix(tw, dev, s_all, band, out, budget, period, int(t), frozen)
        out.breach_steps = band.breach_steps(v_pu(tw, out.v))
    for t in np.flatnonzero(out.breach_steps):
        out.plan, out.v = local_fix(tw, dev, s_all, band, out.plan, out.v, budget, period, int(t))
    out.breach_steps = band.breach_steps(v_pu(tw, out.v))
    out.tap_ops, out.cap_ops = dev.ops(out.plan)
    m.b, m.x, m.good = np.nan_to_num(v_pu(tw, out.v)), out.plan, None
    out.bounds = [range_a_bound(m, dev, band, int(t)) for t in np.flatnonzero(out.breach_steps)]
    return out


@dataclass
class Bound:
    """The least largest breach of Range A (pu) any control state can reach at one step, to
    the linear model (taps and capacitor steps continuous in their ranges), the state
    reaching it (one value per device) and the node-phases that bind (lowest, highest)."""

    step: int
    excess_pu: float
    state: np.ndarray
    binding: list[int]


def range_a_bound(m: Model, dev: Devices, band: Band, t: int,
                  reach: float | np.ndarray = np.inf) -> Bound:  # fmt: skip
    """Linear programme at step ``t`` (see the module doc): minimise ``e`` such that every
    live regulated node-phase lies within Range A widened by ``e``; each device moves at
    most ``reach`` units (one value, or one per device) from the model's state."""
    from scipy.optimize import linprog

    rows = np.flatnonzero(np.all(m.b > 0.05, axis=1) & band.ctl)
    a = m.s[:, rows, t].T.astype(float)  # node-phases × devices, pu per unit
    b = m.b[rows, t]
    nd = len(dev.names)
    r = np.broadcast_to(np.asarray(reach, float), (nd,))
    lo = np.array([max((p[0] - x) / u, -q)
                   for p, x, u, q in zip(dev.pos, m.x[:, t], dev.unit, r, strict=True)])  # fmt: skip
    hi = np.array([min((p[-1] - x) / u, q)
                   for p, x, u, q in zip(dev.pos, m.x[:, t], dev.unit, r, strict=True)])  # fmt: skip
    one = -np.ones((rows.size, 1))
    a_ub = np.vstack([np.hstack([a, one]), np.hstack([-a, one])])
    b_ub = np.concatenate([band.vmax - b, b - band.vmin])
    c = np.zeros(nd + 1)
    c[-1] = 1.0
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=[*zip(lo, hi, strict=True), (None, None)],
                  method="highs")  # fmt: skip
    if res.status != 0:
        raise RuntimeError(f"range_a_bound: LP at step {t} failed: {res.message}")
    z, e = res.x[:nd], float(res.x[-1])
    w = b + a @ z
    binding = [int(rows[np.argmin(w)]), int(rows[np.argmax(w)])]
    return Bound(t, e, m.x[:, t] + z * dev.unit, binding)


def lp_start(m: Model, dev: Devices, band: Band) -> np.ndarray:
    """Per step, the state of :func:`range_a_bound` (the most central in Range A, to the
    model) rounded to each device's positions: where coordinate descent starts, so that
    moves needing several devices at once (the head down, a downstream regulator up) are
    already made."""
    out = np.empty_like(m.x)
    for t in range(m.x.shape[1]):
        z = range_a_bound(m, dev, band, t).state
        out[:, t] = [p[np.argmin(np.abs(p - v))] for p, v in zip(dev.pos, z, strict=True)]
    return out


def exact_fix(tw: UnbalancedTwin, dev: Devices, s_col: np.ndarray, band: Band,  # noqa: PLR0913
              x: np.ndarray, rounds: int = 8, reach: float = 2.0,
              frozen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """One step held in Range A by a sequential LP: linearise exactly at ``x`` (one solve
    per device), move every device at most ``reach`` units to the LP's most central state,
    rounded, solve exactly; repeat. Returns the state and its voltages, or (``x``, None)
    if no round's exact solve holds every regulated node-phase inside Range A. Devices
    marked ``frozen`` keep their state."""
    r = reach if frozen is None else np.where(frozen, 0.0, reach)
    for _ in range(rounds):
        s, dp, vp, p = sensitivities(tw, dev, s_col, x)
        m = Model(s, dp, vp, p, x[:, None], 1.0, dev.unit)
        z = range_a_bound(m, dev, band, 0, r).state
        x = np.array([q[np.argmin(np.abs(q - v))] for q, v in zip(dev.pos, z, strict=True)])
        dev.apply(tw, x)
        v, _ = tw.solve(s_col)
        if not band.breach_steps(v_pu(tw, v))[0]:
            log.info("CVR day plan: a step held in Range A by the sequential LP")
            return x, v
    return x, None


def range_a_breach(band: Band, vp: np.ndarray, side: int = 0) -> np.ndarray:
    """Per step: the summed breach (pu) of Range A over the regulated node-phases (``vp``:
    pu, nodes × steps; dead nodes count nothing); ``side`` -1: below it only, +1: above."""
    with np.errstate(invalid="ignore"):
        lo, hi = band.vmin - vp, vp - band.vmax
        h = lo if side < 0 else hi if side > 0 else np.fmax(lo, hi)
    h = np.where(np.isfinite(h) & (h > 1e-9) & band.ctl[:, None], h, 0.0)
    return h.sum(axis=0)


def _moves(dev: Devices, x: np.ndarray) -> list[tuple[int, float, bool]]:
    """Every single move from state ``x``: one unit up or down per device, within range, at
    the step alone (False) or over the device's whole run of equal state (True)."""
    out = []
    for j, p in enumerate(dev.pos):
        for d in (dev.unit[j], -dev.unit[j]):
            if p[0] - 1e-9 <= x[j] + d <= p[-1] + 1e-9:
                out += [(j, float(d), False), (j, float(d), True)]
    return out


_Trial = tuple[float, np.ndarray, np.ndarray, np.ndarray, float, float]
_Cand = tuple[float, tuple[tuple[int, float, bool], ...], _Trial]  # breach change, moves, trial


@dataclass
class _Local:
    """The state of a local search: the plan, its exact voltages and per-step breaches."""

    tw: UnbalancedTwin
    dev: Devices
    s_all: np.ndarray
    band: Band
    plan: np.ndarray
    v: np.ndarray
    gap: np.ndarray  # per step, pu (range_a_breach)
    budget: tuple[int, int]
    period: int

    def cols(self, t: int, j: int, run: bool) -> np.ndarray:
        """Steps a move of device ``j`` at step ``t`` changes: the step (a capacitor's whole
        switching period), or with ``run`` every step of its run of equal state."""
        if run:
            same = np.isclose(self.plan[j], self.plan[j, t])
            a, b = t, t
            while a > 0 and same[a - 1]:
                a -= 1
            while b < same.size - 1 and same[b + 1]:
                b += 1
            return np.arange(a, b + 1)
        if not self.dev.is_cap[j]:
            return np.array([t])
        t0 = t - t % self.period
        return np.arange(t0, min(t0 + self.period, self.plan.shape[1]))

    def trial(self, t: int, move: tuple[tuple[int, float, bool], ...]) -> _Trial | None:
        """The day's breach change (pu) of ``move`` at step ``t``, the new plan, the steps
        solved and their voltages, the change below and above Range A; None where the
        operations would pass the budget."""
        new = self.plan.copy()
        cols = np.unique(np.concatenate([self.cols(t, j, r) for j, _, r in move]))
        for j, d, r in move:
            new[j, self.cols(t, j, r)] += d
            new[j] = np.round(new[j], 9)
        ops, cur = self.dev.ops(new), self.dev.ops(self.plan)
        if any(o > max(b, c) for o, b, c in zip(ops, self.budget, cur, strict=True)):
            return None
        v = np.zeros((self.v.shape[0], cols.size), complex)
        keys = [tuple(new[:, c]) for c in cols]
        for key in dict.fromkeys(keys):
            idx = [i for i, k in enumerate(keys) if k == key]
            self.dev.apply(self.tw, np.array(key))
            v[:, idx], _ = self.tw.solve(self.s_all[:, cols[idx]], self.v[:, cols[idx]])
        vp, old = v_pu(self.tw, v), v_pu(self.tw, self.v[:, cols])
        lo, hi = (float((range_a_breach(self.band, vp, k) - range_a_breach(self.band, old, k)).sum())
                  for k in (-1, 1))  # fmt: skip
        g = range_a_breach(self.band, vp)
        return float(g.sum() - self.gap[cols].sum()), new, cols, v, lo, hi


def local_fix(tw: UnbalancedTwin, dev: Devices, s_all: np.ndarray, band: Band,  # noqa: PLR0913
              plan: np.ndarray, v: np.ndarray, budget: tuple[int, int], period: int,
              t: int, pairs: int = 10) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Greedy exact search at step ``t``: every single move (one unit of one device at the
    step, a capacitor over its switching period, or over the device's run of equal state)
    and every pair of the ``pairs`` best singles,
    each solved exactly with the rest of the day fixed; the move lowering the day's summed
    Range A breach most is taken, while the day's tap and capacitor operations (counted on
    the whole plan) stay within ``budget`` (or no higher than the plan's own); repeated
    until step ``t`` holds Range A or no move helps. Returns the plan and its voltages."""
    st = _Local(tw, dev, s_all, band, plan.copy(), v.copy(),
                range_a_breach(band, v_pu(tw, v)), budget, period)  # fmt: skip
    while st.gap[t] > 0.0:
        singles: list[_Cand] = [(r[0], (mv,), r) for mv in _moves(dev, st.plan[:, t])
                   if (r := st.trial(t, (mv,))) is not None]  # fmt: skip
        singles.sort(key=lambda c: c[0])
        top = [c[1][0] for c in singles[:pairs]]  # best in all, below and above Range A
        for k in (4, 5):
            top += [c[1][0] for c in sorted(singles, key=lambda c: c[2][k])[: pairs // 2]]
        top = list(dict.fromkeys(top))
        duo: list[_Cand] = [(r[0], (a, b), r) for a, b in itertools.combinations(top, 2)
               if a[0] != b[0] and (r := st.trial(t, (a, b))) is not None]  # fmt: skip
        best = min(singles[:1] + duo, key=lambda c: c[0], default=None)
        if best is None or best[0] >= -1e-12:
            break
        _, _, (_, st.plan, cols, vc, _, _) = best
        st.v[:, cols] = vc
        st.gap[cols] = range_a_breach(band, v_pu(tw, vc))
        log.info("CVR day plan: step %d, moves %s, Range A breach %.4f pu", t, best[1], st.gap[t])
    return st.plan, st.v


def trim(tw: UnbalancedTwin, dev: Devices, s_col: np.ndarray, band: Band,  # noqa: PLR0913
         x: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """State ``x`` of one step (voltages ``v``, inside Range A) with each device moved one
    unit at a time toward ``[lo, hi]`` (per device: where it costs no extra operation)
    while the exact solve stays inside Range A; the state and its voltages."""
    changed = True
    while changed:
        changed = False
        for j in range(len(dev.names)):
            d = dev.unit[j] * (1.0 if x[j] < lo[j] - 1e-9 else -1.0 if x[j] > hi[j] + 1e-9 else 0.0)
            if d == 0.0:
                continue
            y = x.copy()
            y[j] = round(y[j] + d, 9)
            dev.apply(tw, y)
            vy, _ = tw.solve(s_col, v)
            if not band.breach_steps(v_pu(tw, vy))[0]:
                x, v, changed = y, vy, True
    dev.apply(tw, x)
    return x, v
