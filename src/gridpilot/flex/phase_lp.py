"""The LP of the phase-aware schedule: device powers per phase and step, per-phase limits, cuts.

Columns (MW, + drawn): EV charge and V2G discharge per (session, phase, step) on the phases the
session's charger may use while plugged in (a phase-switching charger shares a step between
phases: its per-phase powers are the step's time shares); in ``plan`` mode also each point's
aggregated home batteries (charge, discharge, energy) and water heaters (power, thermal
energy); the net draw ``P[k, t]`` of each injection point (bus, phase); per-phase peaks.

Rows: the EV sessions' charger rating and energy requests (shortfall as a costed slack), V2G
state of charge, battery and tank energy balances, the per-phase demand limit (costed slack),
and cutting planes that linearise the voltage unbalance factor and node-phase voltages around
the last full power flow (:class:`Cut`; slacks costed). The costs rank: energy requests, then
limits, then the per-phase peaks and the energy price.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gridpilot.lp import INF, LP

SHORT_EUR_PER_MWH = 1e5
VUF_EUR_PER_PCT_STEP = 2e3
V_EUR_PER_PU_STEP = 2e5
LIMIT_EUR_PER_MW_STEP = 1e4
PEAK_EUR_PER_MW = 50.0
V2G_EUR_PER_MWH = 30.0
DEEPER_FACTOR = 100.0
"""A cut's slack beyond its ``gap`` (deeper than the uncontrolled fleet went) costs this many
times its ordinary slack."""


@dataclass
class Devices:
    """Device data on the horizon (``T`` steps), indexed by injection point ``k``.

    EV columns are triples (session ``es``, phase index ``ephi`` 0..2, or 11 for a 240 V
    charger across both legs of a split-phase service, step ``et``) at point ``ek``; ``own`` each session's own phase index; ``need`` per session (MWh inside the horizon), ``pmax`` per session, ``v2g``
    sessions' energy bounds ``e_lo``/``e_hi`` relative to arrival. Batteries and water
    heaters are aggregated per point (``b_*`` / ``w_*`` arrays over points; empty in
    ``balance`` mode). ``p_fixed`` (points x T) is what is not scheduled (PV, and in
    ``balance`` mode the batteries' and water heaters' own behaviour). ``sess``: each
    session's position in the fleet's EV table.
    """

    T: int
    step_h: float
    es: np.ndarray
    ephi: np.ndarray
    et: np.ndarray
    ek: np.ndarray
    need: np.ndarray
    own: np.ndarray
    pmax: np.ndarray
    v2g: np.ndarray
    e_lo: np.ndarray
    e_hi: np.ndarray
    p_fixed: np.ndarray
    b_k: np.ndarray
    b_p: np.ndarray
    b_e0: np.ndarray
    b_lo: np.ndarray
    b_hi: np.ndarray
    w_k: np.ndarray
    w_p: np.ndarray
    w_e0: np.ndarray
    w_hi: np.ndarray
    w_draw: np.ndarray
    sess: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Cut:
    """Linear rows ``coef @ P[:, t] - slack <= rhs`` (one per entry) with a slack cost each.

    With ``gap`` (one per row, >= 0) the slack is two columns: up to ``gap`` at ``cost``,
    beyond it at :data:`DEEPER_FACTOR` x ``cost`` (the limit is the row's bound, the gap how
    far the uncontrolled fleet already went past it, so going further costs much more)."""

    t: np.ndarray
    coef: np.ndarray | sp.csr_matrix  # (rows, points), dense or sparse
    rhs: np.ndarray
    cost: float
    name: str
    gap: np.ndarray | None = None


@dataclass
class Limits:
    """Per-phase limits: demand per phase (MW, 3 x T; inf = none), base demand (3 x T) and
    each point's phase index (0..2); ``point_cap_mw`` (optional, one per point, inf = none)
    caps each point's net draw at every step."""

    phase_mw: np.ndarray
    base_mw: np.ndarray
    point_phase: np.ndarray
    point_cap_mw: np.ndarray | None = None


def _ev_cols(lp: LP, d: Devices) -> tuple[np.ndarray, np.ndarray]:
    """EV charge columns (all) and V2G discharge columns (-1 where the session has no V2G)."""
    n, h = d.es.size, d.step_h
    c = lp.var("ev_c", (n,), 0.0, d.pmax[d.es])
    sel = np.flatnonzero(d.v2g[d.es])
    dis = np.full(n, -1, np.int64)
    dis[sel] = lp.var("ev_d", (sel.size,), 0.0, d.pmax[d.es[sel]], V2G_EUR_PER_MWH * h)
    ns = d.need.size
    short = lp.var("ev_short", (ns,), 0.0, d.need, SHORT_EUR_PER_MWH)
    # charger rating: sum over phases of (c + d) <= pmax, one row per (session, step) that has
    # more than one column (a lone charge column is bounded by pmax already)
    uk, row, cnt = np.unique(d.es * d.T + d.et, return_inverse=True, return_counts=True)
    multi = (cnt[row] > 1) | (dis >= 0)
    keep = np.flatnonzero(multi)
    ur, rr = np.unique(row[keep], return_inverse=True)
    sel_m = np.flatnonzero(multi & (dis >= 0))
    rr_d = np.searchsorted(ur, row[sel_m])
    lp.rows_add(
        "ev rating",
        ur.size,
        np.r_[rr, rr_d],
        np.r_[c[keep], dis[sel_m]],
        np.ones(keep.size + sel_m.size),
        -np.inf,
        d.pmax[uk[ur] // d.T],
    )
    # energy request: h * sum(c - d) + short >= need
    lp.rows_add(
        "ev energy",
        ns,
        np.r_[d.es, d.es[sel], np.arange(ns)],
        np.r_[c, dis[sel], short],
        np.r_[np.full(n, h), np.full(sel.size, -h), np.ones(ns)],
        d.need,
        np.inf,
    )
    _v2g_soc(lp, d, c, dis)
    return c, dis


def _v2g_soc(lp: LP, d: Devices, c: np.ndarray, dis: np.ndarray) -> None:
    """V2G sessions: the energy added since arrival stays within [e_lo, e_hi] at every step."""
    sel = np.flatnonzero(dis >= 0)
    if not sel.size:
        return
    uk, row = np.unique(d.es[sel] * d.T + d.et[sel], return_inverse=True)
    s_of = uk // d.T
    e = lp.var("ev_e", (uk.size,), d.e_lo[s_of], d.e_hi[s_of])
    # e[s, t] = e[s, previous plugged step] + h * sum_phi (c - d)[s, phi, t]
    first = np.r_[True, s_of[1:] != s_of[:-1]]
    r_prev = np.flatnonzero(~first)
    h = d.step_h
    rows = np.r_[np.arange(uk.size), r_prev, row, row]
    cols = np.r_[e, e[r_prev - 1], c[sel], dis[sel]]
    vals = np.r_[
        np.ones(uk.size), -np.ones(r_prev.size), np.full(sel.size, -h), np.full(sel.size, h)
    ]
    lp.rows_add("v2g soc", uk.size, rows, cols, vals, 0.0, 0.0)


def _store(
    lp: LP, name: str, d: Devices, spec: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Aggregated stores per point: energy e[t] = e[t-1] + h (eta_in c - d / eta_out) - h draw.

    ``spec``: (p_max, e0, e_lo, e_hi) per store; returns net draw columns (stores, T, 2)."""
    pmax, e0, lo, hi = spec
    n, T, h = pmax.size, d.T, d.step_h
    if name == "battery":
        c = lp.var(f"{name}_c", (n, T), 0.0, pmax[:, None])
        dis = lp.var(f"{name}_d", (n, T), 0.0, pmax[:, None], 1.0 * h)
        eta, draw = 0.95, np.zeros((n, T))
    else:
        c = lp.var(f"{name}_c", (n, T), 0.0, pmax[:, None])
        dis = lp.var(f"{name}_d", (n, T), 0.0, 0.0)
        eta, draw = 1.0, d.w_draw
    e_lb = np.repeat(lo[:, None], T, 1)
    e_lb[:, -1] = np.minimum(np.maximum(lo, e0), hi)  # stores end at least as full as they start
    e = lp.var(f"{name}_e", (n, T), e_lb, hi[:, None])
    r = np.arange(n * T).reshape(n, T)
    rows = [r.ravel(), r.ravel(), r.ravel()]
    cols = [e.ravel(), c.ravel(), dis.ravel()]
    vals = [np.ones(n * T), np.full(n * T, -h * eta), np.full(n * T, h / eta)]
    rows.append(r[:, 1:].ravel())
    cols.append(e[:, :-1].ravel())
    vals.append(-np.ones(n * (T - 1)))
    rhs = -h * draw
    rhs[:, 0] += e0
    lp.rows_add(
        f"{name} energy",
        n * T,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        rhs.ravel(),
        rhs.ravel(),
    )
    return np.stack([c, dis], axis=-1)


def build(
    d: Devices, lim: Limits, price: np.ndarray
) -> tuple[LP, np.ndarray, dict[str, np.ndarray]]:
    """The LP without cuts; returns it, the point-draw columns ``P`` (points x T) and the
    device columns (add the cuts with :class:`CutSolver`)."""
    lp = LP(solver="simplex")
    K, T, h = d.p_fixed.shape[0], d.T, d.step_h
    cap = np.full(K, np.inf) if lim.point_cap_mw is None else lim.point_cap_mw
    p = lp.var("P", (K, T), -np.inf, np.repeat(cap[:, None], T, 1), price[None, :] * h)
    c, dis = _ev_cols(lp, d)
    rows = [np.arange(K * T)]
    cols = [p.ravel()]
    vals = [np.ones(K * T)]
    ev_row = d.ek * T + d.et
    v2g = dis >= 0
    rows += [ev_row, ev_row[v2g]]
    cols += [c, dis[v2g]]
    vals += [-np.ones(c.size), np.ones(int(v2g.sum()))]
    out = {"ev_c": c, "ev_d": dis}
    for name, k, spec in (
        ("battery", d.b_k, (d.b_p, d.b_e0, d.b_lo, d.b_hi)),
        ("water_heater", d.w_k, (d.w_p, d.w_e0, np.zeros(d.w_k.size), d.w_hi)),
    ):
        if k.size:
            cd = _store(lp, name, d, spec)
            r = (k[:, None] * T + np.arange(T)[None, :]).ravel()
            rows += [r, r]
            cols += [cd[..., 0].ravel(), cd[..., 1].ravel()]
            vals += [-np.ones(r.size), np.ones(r.size)]
            out[name] = cd
    lp.rows_add(
        "point balance",
        K * T,
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        d.p_fixed.ravel(),
        d.p_fixed.ravel(),
    )
    _phase_rows(lp, p, lim)
    return lp, p, out


def _phase_rows(lp: LP, p: np.ndarray, lim: Limits) -> None:
    """Per-phase demand: base + sum of the phase's points <= limit + slack, and <= peak z."""
    T = p.shape[1]
    z = lp.var("peak", (3,), -np.inf, np.inf, PEAK_EUR_PER_MW)
    slack = lp.var("phase slack", (3, T), 0.0, np.inf, LIMIT_EUR_PER_MW_STEP)
    for ph in range(3):
        ks = np.flatnonzero(lim.point_phase == ph)
        r = np.repeat(np.arange(T)[None, :], ks.size, 0).ravel()
        cols = p[ks].ravel()
        lp.rows_add(
            "phase peak",
            T,
            np.r_[r, np.arange(T)],
            np.r_[cols, np.full(T, z[ph])],
            np.r_[np.ones(cols.size), -np.ones(T)],
            -np.inf,
            -lim.base_mw[ph],
        )
        cap = lim.phase_mw[ph] - lim.base_mw[ph]
        if np.all(~np.isfinite(cap)):
            continue
        lp.rows_add(
            "phase limit",
            T,
            np.r_[r, np.arange(T)],
            np.r_[cols, slack[ph]],
            np.r_[np.ones(cols.size), -np.ones(T)],
            -np.inf,
            cap,
        )


class CutSolver:
    """The LP in HiGHS, with cut rows added (and re-bounded) round by round; each solve may
    take ``time_limit_s``.

    A cut's coefficients stay as first added; each round only moves the bounds of the rows
    already there (their new linearisation) and appends the new ones with their slacks, and
    the dual simplex restarts from the previous round's basis."""

    def __init__(self, lp: LP, p: np.ndarray, time_limit_s: float = 300.0) -> None:
        self.lp = lp
        self.p = p
        self.h = lp.to_highs(time_limit_s)
        self.time_limit_s = time_limit_s
        self.n = lp.n
        self.m = lp.m
        self.idx: dict[str, np.ndarray] = {}
        self.slack: dict[str, np.ndarray] = {}
        self.runs = 0
        self.objective = float("nan")

    def set_cuts(self, cuts: list[Cut]) -> None:
        """Move the bounds of the cuts already present and add the new ones (in ``cut`` order)."""
        for cut in cuts:
            have = self.idx.get(cut.name, np.zeros(0, np.int64))
            k = have.size
            if k:
                self.h.changeRowsBounds(  # type: ignore[attr-defined]  # in highspy, not its stubs
                    k, have.astype(np.int32), np.full(k, -INF), cut.rhs[:k]
                )
            if cut.rhs.size > k:
                self.idx[cut.name] = np.r_[have, self._add(cut, k)]

    def _slack_cols(self, name: str, cost: np.ndarray, ub: np.ndarray) -> np.ndarray:
        """Add slack columns (>= 0, ``ub``, ``cost`` each) of the cuts called ``name``."""
        new = cost.size
        self.h.addCols(
            new,
            cost,
            np.zeros(new),
            ub,
            0,
            np.zeros(new, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0),
        )
        slack = np.arange(self.n, self.n + new)
        self.slack[name] = np.r_[self.slack.get(name, np.zeros(0, np.int64)), slack]
        self.n += new
        return slack

    def _add(self, cut: Cut, k: int) -> np.ndarray:
        new = cut.rhs.size - k
        per = 1 if cut.gap is None else 2
        ub = np.full(new, INF) if cut.gap is None else np.maximum(cut.gap[k:], 0.0)
        slack = self._slack_cols(cut.name, np.full(new, cut.cost), ub)
        deep = np.zeros(0, np.int64)
        if cut.gap is not None:  # within the gap at the ordinary cost, beyond it dearer
            deep = self._slack_cols(
                cut.name, np.full(new, cut.cost * DEEPER_FACTOR), np.full(new, INF)
            )
        sub = sp.csr_matrix(cut.coef[k:])
        sub.eliminate_zeros()
        nnz = np.diff(sub.indptr)
        r = np.repeat(np.arange(new), nnz)
        t = cut.t[k:]
        rows = np.r_[r, np.arange(new), np.arange(deep.size)]
        cols = np.r_[self.p[sub.indices, t[r]], slack, deep]
        vals = np.r_[sub.data, -np.ones(per * new)]
        order = np.argsort(rows, kind="stable")
        starts = np.r_[0, np.cumsum(nnz + per)[:-1]].astype(np.int32)
        self.h.addRows(
            new,
            np.full(new, -INF),
            cut.rhs[k:],
            int(vals.size),
            starts,
            cols[order].astype(np.int32),
            vals[order],
        )
        rows = np.arange(self.m, self.m + new)
        self.m += new
        return rows

    def slack_sum(self, x: np.ndarray, name: str) -> float:
        """Total slack the solution ``x`` uses on the cuts called ``name``."""
        return float(x[self.slack.get(name, np.zeros(0, np.int64))].sum())

    def solve(self) -> np.ndarray:
        """Run HiGHS (the dual simplex from the last basis after the first run); the columns."""
        if self.runs:
            self.h.setOptionValue("solver", "simplex")
        # HiGHS's run time adds up over the runs of one model: the limit is per solve
        self.h.setOptionValue("time_limit", self.h.getRunTime() + self.time_limit_s)
        self.runs += 1
        x, self.objective = self.lp.solve(h=self.h)
        return x
