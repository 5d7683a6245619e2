"""Scheduling of the fleet: day-ahead / rolling intraday LP (HiGHS) with network limits, then a twin check.

Per window the fleet is aggregated per bus (:func:`~gridpilot.flex.aggregate.aggregate`), an LP
chooses per-bus battery, EV, water heater and PV-curtailment power and the inverters' reactive
power, minimising energy cost + CO2 cost + a peak charge + battery wear + V2G payments +
curtailment and Q costs, subject to each aggregate's power and energy limits, the inverters'
ratings (a polygon in P and Q) and the linearised network (voltage band through dV/dP and dV/dQ
from the twin, branch ratings through tree flows, transformer rating), with penalised slacks on
the network rows so that what flexibility cannot fix is reported rather than hidden. The first
``commit_steps`` of the window are disaggregated to devices (Q to the inverters), the fleet state
advances and the next window starts (rolling). Finally the realised plan (with its Q) and the
uncontrolled case are both run through the twin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.flex.aggregate import (
    CLASSES,
    BusAggregate,
    Dispatch,
    aggregate,
    disaggregate,
    disaggregate_q,
)
from gridpilot.flex.fleet import Fleet
from gridpilot.flex.network import NetworkModel, build_network
from gridpilot.flex.signals import Signals, default_signals
from gridpilot.lp import LP
from gridpilot.model import Grid


@dataclass
class PlanConfig:
    """Limits and weights of the scheduler (units in the names; EUR)."""

    vmin_pu: float = 0.95
    vmax_pu: float = 1.05
    line_limit_pct: float = 100.0
    trafo_limit_pct: float = 100.0
    co2_eur_per_t: float = 80.0
    peak_eur_per_mw: float = 400.0
    battery_wear_eur_per_mwh: float = 15.0
    v2g_fee_eur_per_mwh: float = 60.0
    curtail_eur_per_mwh: float = 80.0
    slack_v_eur_per_pu: float = 2e4
    slack_mw_eur_per_mw: float = 1e4
    horizon_steps: int = 144
    commit_steps: int = 96
    strict: bool = False
    margin_pu: float = 0.003
    corrections: int = 3
    band_margin_pu: float = 0.002
    exact_check_devices: int = 30_000
    max_groups: int = 16
    q_support: bool = True
    q_max_frac: float = 0.44
    q_polygon_sides: int = 12
    q_eur_per_mvarh: float = 2.0
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.q_max_frac <= 1.0:
            raise ValidationError(
                f"plan config: q_max_frac must be in [0, 1], got {self.q_max_frac}"
            )
        if self.q_polygon_sides < 4:
            raise ValidationError(
                f"plan config: q_polygon_sides must be >= 4, got {self.q_polygon_sides}"
            )
        if self.q_eur_per_mvarh < 0:
            raise ValidationError(
                f"plan config: q_eur_per_mvarh must be >= 0, got {self.q_eur_per_mvarh}"
            )
        if not 0 < self.vmin_pu < self.vmax_pu:
            raise ValidationError(
                f"plan config: need 0 < vmin_pu < vmax_pu, got {self.vmin_pu}, {self.vmax_pu}"
            )
        if self.commit_steps <= 0 or self.horizon_steps < self.commit_steps:
            raise ValidationError(
                f"plan config: need 0 < commit_steps <= horizon_steps, got {self.commit_steps}, "
                f"{self.horizon_steps}"
            )


@dataclass
class WindowPlan:
    """One window's per-bus class powers (steps, n_bus) MW and its stats (times incl. its twin-corrected re-solves)."""

    targets: dict[str, np.ndarray]
    objective_eur: float
    solve_s: float
    build_s: float
    n_vars: int
    n_rows: int
    slack: dict[str, float]
    worst: str
    pn_mw: np.ndarray | None = None
    corrections: int = 0
    q_mvar: np.ndarray | None = None
    structure: dict[str, np.ndarray] = field(default_factory=dict)
    basis: Any = None
    warm_solves: int = 0


def _check_feasible(agg: BusAggregate) -> None:
    """Refuse windows whose device requests cannot be met at all, naming the constraint."""
    gap = agg.ev_c_lo_mwh - agg.ev_c_hi_mwh
    if np.any(gap > 1e-9):
        k, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise InfeasibleError(
            f"EV energy at bus {int(agg.bus_id[j])}: departures need {agg.ev_c_lo_mwh[k, j]:.4f} "
            f"MWh by step {agg.t0 + k} but at most {agg.ev_c_hi_mwh[k, j]:.4f} MWh can be charged",
            binding=f"ev departure energy (bus {int(agg.bus_id[j])}, step {agg.t0 + k})",
        )
    dt = agg.step_h
    need = np.cumsum(agg.wh_draw_mw, axis=0) * dt - agg.wh_e0_mwh
    can = np.arange(1, agg.steps + 1)[:, None] * dt * agg.wh_p_max_mw
    gap = need - can
    if np.any(gap > 1e-6):
        k, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise InfeasibleError(
            f"water heaters at bus {int(agg.bus_id[j])}: draws exceed what the heaters can "
            f"reheat by step {agg.t0 + k} ({gap[k, j]:.4f} MWh short)",
            binding=f"water heater comfort band (bus {int(agg.bus_id[j])}, step {agg.t0 + k})",
        )


def plan_window(
    agg: BusAggregate,
    net: NetworkModel,
    v0: np.ndarray,
    p0_mw: np.ndarray,
    flow0: np.ndarray,
    qflow0: np.ndarray,
    sig: Signals,
    cfg: PlanConfig,
    v_sens: np.ndarray | None = None,
    ptdf: Any = None,
    v_sens_q: np.ndarray | None = None,
    warm: WindowPlan | None = None,
) -> WindowPlan:
    """Solve one window's LP for ``agg``.

    ``v0`` (T, n_bus) base voltages, ``p0_mw`` (T,) base feeder import, ``flow0``/``qflow0``
    (T, n_edge) base tree-edge flows (MW/Mvar), all with the devices at zero. Returns the per-bus
    class targets. Raises :class:`InfeasibleError` (``binding`` named) when the device limits
    cannot be met, or in ``strict`` mode when a network limit would need a slack. ``v_sens``,
    ``ptdf`` and ``v_sens_q`` override the network's per-bus matrices when ``agg`` is per bus group.

    With ``cfg.q_support`` the inverters' reactive power is a decision too (``q_mvar`` of the
    result, generator convention): within ``q_max_frac`` x rating and an inscribed
    ``q_polygon_sides``-gon of the rating circle with the active power, acting on the voltage
    rows through dV/dQ, at ``q_eur_per_mvarh`` (losses) so it is used only where it helps.

    ``warm``: the previous solve of the same window (a twin-corrected re-solve changes only the
    base voltages, i.e. row bounds). Its row and Q masks are kept (the union with this solve's:
    extra rows that cannot bind and Q columns bounded at 0 leave the optimum unchanged), so the
    LP has the same columns and rows and the simplex starts from its optimal basis.
    """
    v_sens = net.v_sens if v_sens is None else v_sens
    v_sens_q = net.v_sens_q if v_sens_q is None else v_sens_q
    ptdf = net.ptdf if ptdf is None else ptdf
    t_build = time.perf_counter()
    _check_feasible(agg)
    T, nf = agg.steps, agg.bus_id.size
    dt = agg.step_h
    lp = LP()
    eta = agg.bat_eta
    energy_cost = dt * (sig.price_eur_per_mwh + cfg.co2_eur_per_t * sig.co2_t_per_mwh)  # (T,)
    ec = np.broadcast_to(energy_cost[:, None], (T, nf))
    wear = dt * cfg.battery_wear_eur_per_mwh
    bc = lp.var("bc", (T, nf), 0.0, np.broadcast_to(agg.bat_p_max_mw, (T, nf)), ec + wear / 2)
    bd = lp.var("bd", (T, nf), 0.0, np.broadcast_to(agg.bat_p_max_mw, (T, nf)), -ec + wear / 2)
    e_lo = np.broadcast_to(agg.bat_e_min_mwh, (T, nf)).copy()
    e_lo[-1] = np.minimum(np.maximum(agg.bat_e0_mwh, agg.bat_e_min_mwh), agg.bat_e_max_mwh)
    eb = lp.var("eb", (T, nf), e_lo, np.broadcast_to(agg.bat_e_max_mwh, (T, nf)))
    pc = lp.var("pc", (T, nf), 0.0, agg.ev_p_hi_mw, ec)
    pd = lp.var(
        "pd",
        (T, nf),
        0.0,
        -agg.ev_p_lo_mw,
        -ec + dt * (cfg.v2g_fee_eur_per_mwh + cfg.battery_wear_eur_per_mwh),
    )
    x = lp.var("x", (T, nf), agg.ev_c_lo_mwh[1:], agg.ev_c_hi_mwh[1:])
    pw = lp.var("pw", (T, nf), 0.0, np.broadcast_to(agg.wh_p_max_mw, (T, nf)), ec)
    w_lo = np.zeros((T, nf))
    w_lo[-1] = np.minimum(agg.wh_e0_mwh, 0.5 * agg.wh_e_max_mwh)
    w = lp.var("w", (T, nf), w_lo, np.broadcast_to(agg.wh_e_max_mwh, (T, nf)))
    cu = lp.var("cu", (T, nf), 0.0, agg.pv_avail_mw, ec + dt * cfg.curtail_eur_per_mwh)
    pn = lp.var("pn", (T, nf), -np.inf, np.inf)
    peak = lp.var("peak", (1,), -np.inf, np.inf, cfg.peak_eur_per_mw)
    ones = np.ones(T * nf)
    r = np.arange(T * nf)
    # storage dynamics: state[k] - state[k-1] - dt*(...) = rhs
    prev = r - nf
    has_prev = prev >= 0

    def dyn(
        group: str, state: np.ndarray, flows: list[tuple[np.ndarray, np.ndarray]], rhs: np.ndarray
    ) -> None:
        rr = [r, r[has_prev]]
        cc = [state.ravel(), state.ravel()[prev[has_prev]]]
        vv = [ones, -ones[has_prev]]
        for col, coef in flows:
            rr.append(r)
            cc.append(col.ravel())
            vv.append(np.broadcast_to(coef, (T, nf)).ravel())
        lp.rows_add(
            group,
            T * nf,
            np.concatenate(rr),
            np.concatenate(cc),
            np.concatenate(vv),
            rhs.ravel(),
            rhs.ravel(),
        )

    rhs_b = np.zeros((T, nf))
    rhs_b[0] = agg.bat_e0_mwh
    dyn("battery energy balance", eb, [(bc, -dt * eta), (bd, dt / eta)], rhs_b)
    dyn("ev energy balance", x, [(pc, -dt), (pd, dt)], np.zeros((T, nf)))
    rhs_w = -dt * agg.wh_draw_mw
    rhs_w[0] += agg.wh_e0_mwh
    dyn("water heater energy balance", w, [(pw, -dt)], rhs_w)
    # net device power per bus
    lp.rows_add(
        "net power",
        T * nf,
        np.tile(r, 7),
        np.concatenate(
            [pn.ravel(), bc.ravel(), bd.ravel(), pc.ravel(), pd.ravel(), pw.ravel(), cu.ravel()]
        ),
        np.concatenate([ones, -ones, ones, -ones, ones, -ones, -ones]),
        0.0,
        0.0,
    )
    # bounds of net power for pruning rows that can never bind
    pn_hi = agg.bat_p_max_mw + agg.ev_p_hi_mw + agg.wh_p_max_mw + agg.pv_avail_mw
    pn_lo = -agg.bat_p_max_mw + agg.ev_p_lo_mw
    slack_groups: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    prev_struct = warm.structure if warm is not None else {}
    structure: dict[str, np.ndarray] = {}

    def mask(key: str, m: np.ndarray) -> np.ndarray:
        """``m`` or, on a warm re-solve, its union with the previous solve's mask (same shape)."""
        old = prev_struct.get(key)
        out = m | old if old is not None and old.shape == m.shape else m
        structure[key] = out
        return out

    # reactive power of the inverters: qa absorbed, qi injected (Mvar, both >= 0)
    use_q = bool(
        cfg.q_support
        and v_sens_q is not None
        and agg.pv_s_mva is not None
        and np.any(agg.pv_s_mva > 0)
    )
    q_terms: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]] = []
    qcap = np.zeros(nf)
    qa_hi = qi_hi = np.zeros((T, nf))
    bus_lbl = [f"bus {int(b)}" for b in net.grid.bus.ids]
    # de-energised buses (v0 = 0) are not constrained
    live = v0 > 0.5
    vlo = np.where(live, cfg.vmin_pu + cfg.band_margin_pu - v0, -np.inf)
    vhi = np.where(live, cfg.vmax_pu - cfg.band_margin_pu - v0, np.inf)
    if use_q:
        assert agg.pv_s_mva is not None and agg.pv_out_mw is not None and v_sens_q is not None
        # Q only acts on the voltage rows, step by step (no energy): absorbing is offered at steps
        # where an upper voltage row can bind whatever the active power does, injecting where a
        # lower one can; elsewhere Q = 0 (it would only cost). This keeps the LP small.
        vp, vn = np.clip(v_sens, 0, None), np.clip(v_sens, None, 0)
        over = ((pn_hi @ vp.T + pn_lo @ vn.T) > vhi - cfg.margin_pu).any(axis=1)
        under = ((pn_lo @ vp.T + pn_hi @ vn.T) < vlo + cfg.margin_pu).any(axis=1)
        s_inv = agg.pv_s_mva
        qcap = cfg.q_max_frac * s_inv
        qcost = dt * cfg.q_eur_per_mvarh
        qa_hi = np.where(over[:, None], qcap[None, :], 0.0)
        qi_hi = np.where(under[:, None], qcap[None, :], 0.0)
        # rows of the rating polygon for the union of offered steps (warm re-solves); where Q is
        # not offered now its bound is 0 and such a row cannot bind (cu >= 0, p_out <= S)
        qa_hs = np.where(mask("q_over", over)[:, None], qcap[None, :], 0.0)
        qi_hs = np.where(mask("q_under", under)[:, None], qcap[None, :], 0.0)
        qa = lp.var("qa", (T, nf), 0.0, qa_hi, qcost)
        qi = lp.var("qi", (T, nf), 0.0, qi_hi, qcost)
        q_terms = [
            (v_sens_q, qa, np.zeros((T, nf)), qa_hi),
            (-v_sens_q, qi, np.zeros((T, nf)), qi_hi),
        ]
        # apparent power: inscribed polygon of the rating circle, cos(th) P + sin(th) Q <= S cos(pi/N),
        # with P = output - curtailment; only the sides facing P >= 0 that can bind
        n_side = cfg.q_polygon_sides
        th = 2 * np.pi * (np.arange(n_side) + 0.5) / n_side
        th = th[(np.cos(th) > 1e-9) & (np.abs(np.sin(th)) > 1e-9)]
        p_out = np.minimum(agg.pv_out_mw, s_inv)
        s_in = s_inv * np.cos(np.pi / n_side)
        for n_a, a_ in enumerate(th.tolist()):
            ca, sa = float(np.cos(a_)), float(np.sin(a_))
            can = (ca * p_out + abs(sa) * (qi_hs if sa > 0 else qa_hs) > s_in + 1e-9) & (s_inv > 0)
            can = mask(f"inverter rating {n_a}", can)
            tt, jj = np.nonzero(can)
            if tt.size == 0:
                continue
            k = np.arange(tt.size)
            lp.rows_add(
                "inverter rating",
                tt.size,
                np.concatenate([k, k, k]),
                np.concatenate([cu[tt, jj], qi[tt, jj], qa[tt, jj]]),
                np.concatenate(
                    [np.full(tt.size, -ca), np.full(tt.size, sa), np.full(tt.size, -sa)]
                ),
                -np.inf,
                s_in[jj] - ca * p_out[tt, jj],
            )

    def soft_rows(
        group: str,
        terms: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]],
        lo: np.ndarray,
        hi: np.ndarray,
        labels: list[str],
        penalty: float,
        margin: float,
    ) -> None:
        """Rows lo <= sum_k coef_k @ var_k[t] <= hi for each (t, row) that can bind.

        ``terms``: (coef (n_rows, nf) dense or sparse, var columns (T, nf), var lower, var upper (T, nf)).
        """
        dens = [
            (c.toarray() if hasattr(c, "toarray") else np.asarray(c), v, vl, vh)
            for c, v, vl, vh in terms
        ]
        d_hi = sum(
            vh @ np.clip(d, 0, None).T + vl @ np.clip(d, None, 0).T for d, _, vl, vh in dens
        )  # (T, n_rows)
        d_lo = sum(vl @ np.clip(d, 0, None).T + vh @ np.clip(d, None, 0).T for d, _, vl, vh in dens)
        keep = mask("rows " + group, (d_hi > hi - margin) | (d_lo < lo + margin))
        tt, ii = np.nonzero(keep)
        if tt.size == 0:
            return
        nr = tt.size
        slo = lp.var(group + ":lo", (nr,), 0.0, np.inf, penalty)
        shi = lp.var(group + ":hi", (nr,), 0.0, np.inf, penalty)
        rr, cc, vv = [np.arange(nr), np.arange(nr)], [slo, shi], [np.ones(nr), -np.ones(nr)]
        for dense, var, _, _ in dens:
            nzr, nzc = np.nonzero(dense)
            # rows: for each kept (t, i), the nonzeros of coef row i at var[t, :]
            order = np.argsort(nzr, kind="stable")
            nzr, nzc = nzr[order], nzc[order]
            start = np.searchsorted(nzr, np.arange(dense.shape[0]))
            cnt = np.bincount(nzr, minlength=dense.shape[0])
            rep = cnt[ii]
            rr.append(np.repeat(np.arange(nr), rep))
            offs = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
            kk = start[ii].repeat(rep) + offs
            cc.append(var[tt.repeat(rep), nzc[kk]])
            vv.append(dense[nzr[kk], nzc[kk]])
        lp.rows_add(
            group,
            nr,
            np.concatenate(rr),
            np.concatenate(cc),
            np.concatenate(vv),
            lo[tt, ii],
            hi[tt, ii],
        )
        slack_groups[group] = (
            slo,
            shi,
            [
                f"{labels[i]} at step {agg.t0 + t}"
                for t, i in zip(tt.tolist(), ii.tolist(), strict=True)
            ],
        )

    p_term = (v_sens, pn, np.broadcast_to(pn_lo, (T, nf)), np.broadcast_to(pn_hi, (T, nf)))
    soft_rows(
        "voltage band", [p_term, *q_terms], vlo, vhi, bus_lbl, cfg.slack_v_eur_per_pu, cfg.margin_pu
    )
    s_max = net.edge_s_max_mva * cfg.line_limit_pct / 100.0
    rated = np.isfinite(s_max)
    if rated.any():
        ri = np.flatnonzero(rated)
        # reactive flow: the base case's plus, conservatively, all the inverter Q offered at that
        # step below the branch (at steps where Q is not offered, nothing is added)
        qf = np.abs(qflow0[:, rated]) + np.asarray(np.abs(ptdf[ri]) @ np.maximum(qa_hi, qi_hi).T).T
        pmax = np.sqrt(np.clip(s_max[None, rated] ** 2 - qf**2, 0, None))
        soft_rows(
            "branch rating",
            [(ptdf[ri], *p_term[1:])],
            -pmax - flow0[:, rated],
            pmax - flow0[:, rated],
            [net.edge_name[i] for i in ri],
            cfg.slack_mw_eur_per_mw,
            0.0,
        )
    if np.isfinite(net.trafo_s_max_mva):
        smax = net.trafo_s_max_mva * cfg.trafo_limit_pct / 100.0
        soft_rows(
            "transformer rating",
            [(np.ones((1, nf)), *p_term[1:])],
            (-smax - p0_mw)[:, None],
            (smax - p0_mw)[:, None],
            ["transformers"],
            cfg.slack_mw_eur_per_mw,
            0.0,
        )
    # peak: peak >= p0 + sum_j pn
    lp.rows_add(
        "peak",
        T,
        np.concatenate([np.arange(T), np.repeat(np.arange(T), nf)]),
        np.concatenate([np.full(T, peak[0]), pn.ravel()]),
        np.concatenate([np.ones(T), -np.ones(T * nf)]),
        p0_mw,
        np.inf,
    )
    h = lp.to_highs(basis=warm.basis if warm is not None else None)
    warm_solves = int(h.getOptions().solver == "simplex" and warm is not None)
    build_s = time.perf_counter() - t_build
    t0 = time.perf_counter()
    xs, obj = lp.solve(h=h)
    solve_s = time.perf_counter() - t0
    targets = {
        "battery": lp.value(xs, "bc") - lp.value(xs, "bd"),
        "ev": lp.value(xs, "pc") - lp.value(xs, "pd"),
        "water_heater": lp.value(xs, "pw"),
        "pv_curtail": lp.value(xs, "cu"),
    }
    slack: dict[str, float] = {}
    worst, worst_v = "", 0.0
    for g, (slo, shi, labels) in slack_groups.items():
        s = xs[slo] + xs[shi]
        slack[g] = float(s.max()) if s.size else 0.0
        if s.size and s.max() > max(worst_v, 1e-6):
            k = int(np.argmax(s))
            worst, worst_v = f"{g}: {labels[k]} (by {s[k]:.4g})", float(s[k])
    if cfg.strict and worst:
        raise InfeasibleError(
            f"schedule: the flexibility cannot keep the network within limits; worst: {worst}",
            binding=worst,
        )
    q = lp.value(xs, "qi") - lp.value(xs, "qa") if use_q else np.zeros((T, nf))
    basis = h.getBasis()
    return WindowPlan(
        targets,
        obj,
        solve_s,
        build_s,
        lp.n,
        lp.m,
        slack,
        worst,
        lp.value(xs, "pn"),
        q_mvar=q,
        structure=structure,
        basis=basis if basis.valid else None,
        warm_solves=warm_solves,
    )


@dataclass
class CaseMetrics:
    """Twin-verified figures of one case over the horizon (units in the names)."""

    peak_mw: float
    energy_mwh: float
    cost_eur: float
    co2_t: float
    v_violation_min: float
    loading_violation_min: float
    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    losses_mwh: float
    converged_steps: int


@dataclass
class Plan:
    """A schedule and its check: per-step per-class fleet totals, metrics of both cases, stats."""

    t0: int
    steps: int
    step_h: float
    bus_id: np.ndarray
    planned: dict[str, np.ndarray]
    uncontrolled: dict[str, np.ndarray]
    controlled_metrics: CaseMetrics
    uncontrolled_metrics: CaseMetrics
    ev_sessions_departed: int
    ev_shortfall_sessions: int
    ev_shortfall_mwh: float
    v2g_mwh: float
    v2g_paid_eur: float
    comfort_violation_steps: int
    limit_violations: int
    tracking_error_mwh: float
    windows: list[WindowPlan]
    fleet_summary: dict[str, Any]
    flex_share_of_peak: float
    unresolved: list[str] = field(default_factory=list)
    fleet_after: Fleet | None = None
    q_mvar: np.ndarray | None = None
    pv_q_mvar: np.ndarray | None = None
    q_tracking_error_mvarh: float = 0.0
    q_support: bool = False

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-step arrays)."""
        c, u = asdict(self.controlled_metrics), asdict(self.uncontrolled_metrics)
        return {
            "steps": self.steps,
            "step_h": self.step_h,
            "fleet": self.fleet_summary,
            "controlled": c,
            "uncontrolled": u,
            "peak_reduction_pct": 100.0 * (1 - c["peak_mw"] / u["peak_mw"])
            if u["peak_mw"] > 0
            else 0.0,
            "flex_share_of_peak": self.flex_share_of_peak,
            "ev": {
                "sessions_departed": self.ev_sessions_departed,
                "short_sessions": self.ev_shortfall_sessions,
                "shortfall_mwh": self.ev_shortfall_mwh,
                "v2g_mwh": self.v2g_mwh,
                "v2g_paid_eur": self.v2g_paid_eur,
            },
            "water_heater_comfort_violation_steps": self.comfort_violation_steps,
            "device_limit_violations": self.limit_violations,
            "tracking_error_mwh": self.tracking_error_mwh,
            "curtailed_mwh": float(self.planned["pv_curtail"].sum() * self.step_h),
            "reactive": self.reactive_summary(),
            "lp": {
                "windows": len(self.windows),
                "solve_s": sum(w.solve_s for w in self.windows),
                "build_s": sum(w.build_s for w in self.windows),
                "max_vars": max((w.n_vars for w in self.windows), default=0),
                "max_rows": max((w.n_rows for w in self.windows), default=0),
                "twin_corrections": sum(w.corrections for w in self.windows),
                "warm_solves": sum(w.warm_solves for w in self.windows),
            },
            "unresolved": self.unresolved[:10],
        }

    def reactive_summary(self) -> dict[str, Any]:
        """The inverters' reactive power in the plan: Mvarh absorbed/injected, largest set point, tracking."""
        q = self.pv_q_mvar if self.pv_q_mvar is not None else np.zeros((self.steps, 0))
        return {
            "q_support": self.q_support,
            "absorbed_mvarh": float(np.clip(-q, 0, None).sum() * self.step_h),
            "injected_mvarh": float(np.clip(q, 0, None).sum() * self.step_h),
            "max_abs_mvar": float(np.abs(q).max()) if q.size else 0.0,
            "tracking_error_mvarh": self.q_tracking_error_mvarh,
        }

    def table(self) -> dict[str, list[float]]:
        """Per-step fleet totals (MW; reactive power Mvar, + injected) of the plan and the uncontrolled case."""
        out = {f"plan_{c}_mw": v.sum(axis=1).round(5).tolist() for c, v in self.planned.items()}
        if self.q_mvar is not None:
            out["plan_q_mvar"] = self.q_mvar.sum(axis=1).round(5).tolist()
        out.update(
            {
                f"uncontrolled_{c}_mw": v.sum(axis=1).round(5).tolist()
                for c, v in self.uncontrolled.items()
            }
        )
        return out


def _spread_weights(fleet: Fleet, buses: np.ndarray, group: np.ndarray) -> dict[str, np.ndarray]:
    """Per class, each bus's share of its group's rating (1 where a group is one bus)."""
    from gridpilot.flex.aggregate import bus_matrix

    ratings = {
        "battery": (fleet.batteries.bus, fleet.batteries.p_max_mw),
        "ev": (fleet.ev.bus, fleet.ev.p_max_mw),
        "water_heater": (fleet.water_heaters.bus, fleet.water_heaters.p_rated_mw),
        "pv_curtail": (fleet.pv.bus, fleet.pv.s_rated_mva * fleet.pv.curtailable),
    }
    out = {}
    for c, (bus, r) in ratings.items():
        w = np.asarray(bus_matrix(bus, buses) @ r) + 1e-12
        tot = np.bincount(group, weights=w, minlength=int(group.max()) + 1 if group.size else 0)
        out[c] = w / tot[group]
    return out


def group_buses(
    net: NetworkModel, fleet: Fleet, max_groups: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]:
    """Cluster the fleet's buses into at most ``max_groups`` groups of similar network impact.

    k-means on each bus's voltage-sensitivity column (dV at every bus per MW there). Returns
    the group of each fleet bus and the group-level dV/dP (n_bus, K) and branch PTDF (n_edge,
    K): averages of the members' columns weighted by their device power, and the group-level
    dV/dQ (n_bus, K) weighted by inverter rating (None when the network has none). Groups of
    one bus each (exact) when there are no more buses than ``max_groups``.
    """
    buses = net.flex_bus_id
    nf = buses.size
    if nf <= max_groups:
        return np.arange(nf), net.v_sens, net.ptdf, net.v_sens_q
    from scipy.cluster.vq import kmeans2

    from gridpilot.flex.aggregate import bus_matrix

    wt = (
        np.asarray(
            bus_matrix(fleet.batteries.bus, buses) @ fleet.batteries.p_max_mw
            + bus_matrix(fleet.water_heaters.bus, buses) @ fleet.water_heaters.p_rated_mw
            + bus_matrix(fleet.ev.bus, buses) @ fleet.ev.p_max_mw
            + bus_matrix(fleet.pv.bus, buses) @ fleet.pv.s_rated_mva
        )
        + 1e-9
    )
    feats = np.column_stack([net.v_sens.T, 1e-3 * net.ptdf.T.toarray()])
    _, lab = kmeans2(feats, max_groups, seed=seed, minit="++", missing="warn")
    _, group = np.unique(lab, return_inverse=True)
    k = int(group.max()) + 1
    g = csr_matrix((wt, (np.arange(nf), group)), shape=(nf, k))
    norm = np.asarray(g.sum(axis=0)).ravel()
    g = g @ csr_matrix((1.0 / norm, (np.arange(k), np.arange(k))), shape=(k, k))
    vq = None
    if net.v_sens_q is not None:
        wq = np.asarray(bus_matrix(fleet.pv.bus, buses) @ fleet.pv.s_rated_mva) + 1e-9
        gq = csr_matrix((wq, (np.arange(nf), group)), shape=(nf, k))
        nq = np.asarray(gq.sum(axis=0)).ravel()
        vq = np.asarray(
            net.v_sens_q @ (gq @ csr_matrix((1.0 / nq, (np.arange(k), np.arange(k))), shape=(k, k)))
        )
    return group, np.asarray(net.v_sens @ g), (net.ptdf @ g).tocsr(), vq


def _base(
    net: NetworkModel, t0: int, steps: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Injections, base voltages, feeder import and tree flows with the devices at zero."""
    inj = net.injections(t0, steps)
    ts = net.twin.timeseries(steps, start=t0, load_p_mw=inj["load_p_mw"], outputs=("v_pu",))
    v0 = np.nan_to_num(np.asarray(ts.v_pu, np.float64), nan=1.0)
    p = net.bus_net_load(inj)
    q = net.bus_net_load(inj, "q")
    flow0 = np.asarray((net.ptdf_all @ p.T).T)
    qflow0 = np.asarray((net.ptdf_all @ q.T).T)
    return inj, v0, np.nan_to_num(ts.source_p_mw), flow0, qflow0


def evaluate(
    net: NetworkModel,
    t0: int,
    steps: int,
    device_mw: np.ndarray,
    curtail_mw: np.ndarray,
    sig: Signals,
    cfg: PlanConfig,
    inj: dict[str, np.ndarray] | None = None,
    q_mvar: np.ndarray | None = None,
) -> CaseMetrics:
    """Run one case through the twin: per-bus device power and PV curtailment (steps, n_flex) MW,
    and the inverters' reactive power ``q_mvar`` (steps, n_flex) Mvar, + injected.

    Returns :class:`CaseMetrics`; cost and CO2 are those of the feeder's net import (exports
    credited), violation minutes count steps with any bus outside the band or any branch above
    100 % loading.
    """
    ts = run_case(net, t0, steps, device_mw, curtail_mw, inj, q_mvar=q_mvar)
    step_h = float(ts.meta.get("step_h", 0.25))
    imp = np.nan_to_num(ts.source_p_mw)
    vbad = (ts.vmin_pu < cfg.vmin_pu - 1e-4) | (ts.vmax_pu > cfg.vmax_pu + 1e-4)
    lbad = ts.max_loading_pct > 100.0 + 1e-3
    return CaseMetrics(
        peak_mw=float(np.max(imp)),
        energy_mwh=float(imp.sum() * step_h),
        cost_eur=float(np.sum(imp * sig.price_eur_per_mwh) * step_h),
        co2_t=float(np.sum(imp * sig.co2_t_per_mwh) * step_h),
        v_violation_min=float(vbad.sum() * step_h * 60),
        loading_violation_min=float(lbad.sum() * step_h * 60),
        vmin_pu=float(np.nanmin(ts.vmin_pu)),
        vmax_pu=float(np.nanmax(ts.vmax_pu)),
        max_loading_pct=float(np.nanmax(ts.max_loading_pct)),
        losses_mwh=float(np.nansum(ts.losses_kw) * step_h / 1e3),
        converged_steps=int(ts.converged.sum()),
    )


def run_case(
    net: NetworkModel,
    t0: int,
    steps: int,
    device_mw: np.ndarray,
    curtail_mw: np.ndarray,
    inj: dict[str, np.ndarray] | None = None,
    outputs: tuple[str, ...] = (),
    q_mvar: np.ndarray | None = None,
) -> Any:
    """The twin's time series with per-bus device power and PV curtailment ((steps, n_flex) MW) added,
    and the inverters' reactive power ``q_mvar`` ((steps, n_flex) Mvar, + injected) if given."""
    inj = net.injections(t0, steps) if inj is None else inj
    lp_ = inj["load_p_mw"].copy()
    lp_[:, net.flex_load_pos] += device_mw
    lq = None
    if q_mvar is not None:
        lq = inj["load_q_mvar"].copy()
        lq[:, net.flex_load_pos] -= q_mvar
    gp = inj["gen_p_mw"].copy()
    if np.any(curtail_mw > 0) and len(net.grid.generator):
        g = net.grid
        gbus = np.searchsorted(net.flex_bus_id, g.generator["bus"])
        gbus_ok = (gbus < net.flex_bus_id.size) & (
            net.flex_bus_id[np.clip(gbus, 0, net.flex_bus_id.size - 1)] == g.generator["bus"]
        )
        idx = np.flatnonzero(gbus_ok)
        tot = np.zeros((steps, net.flex_bus_id.size))
        np.add.at(tot.T, gbus[idx], gp[:, idx].T)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(
                tot[:, gbus[idx]] > 0, curtail_mw[:, gbus[idx]] / tot[:, gbus[idx]], 0.0
            )
        gp[:, idx] *= 1 - np.clip(frac, 0, 1)
    return net.twin.timeseries(
        steps, start=t0, load_p_mw=lp_, load_q_mvar=lq, gen_p_mw=gp, outputs=outputs
    )


def pv_available(net: NetworkModel, fleet: Fleet, inj: dict[str, np.ndarray]) -> np.ndarray:
    """(T, n_pv) available PV power of the fleet's inverters, MW (from the grid's generator injections)."""
    return inj["gen_p_mw"][:, fleet.pv.gen_pos]


def twin_correction(
    v_twin_pu: Any,
    v_use: np.ndarray,
    wp: WindowPlan,
    cfg: PlanConfig,
    vs_g: np.ndarray,
    vq_g: np.ndarray | None = None,
) -> np.ndarray | None:
    """The base voltages (T, n_bus) pu for a re-solve of window plan ``wp``, corrected where
    the linear model's voltages (``v_use`` + the plan's P (and, with ``vq_g``, Q) sensitivities)
    differ from the twin's ``v_twin_pu`` with the plan applied (dead buses: no correction);
    None when the twin finds every live bus within ``cfg``'s band (± 1e-4 pu): no re-solve."""
    v_act = np.nan_to_num(np.asarray(v_twin_pu, np.float64), nan=1.0)
    live = v_act > 0.5
    bad = live & ((v_act > cfg.vmax_pu + 1e-4) | (v_act < cfg.vmin_pu - 1e-4))
    if not bad.any():
        return None
    assert wp.pn_mw is not None
    v_pred = v_use + wp.pn_mw @ np.asarray(vs_g).T
    if vq_g is not None and wp.q_mvar is not None:
        v_pred = v_pred - wp.q_mvar @ np.asarray(vq_g).T
    return v_use + np.where(live, v_act - v_pred, 0.0)


def plan(
    grid: Grid,
    fleet: Fleet,
    steps: int = 96,
    *,
    t0: int = 0,
    signals: Signals | None = None,
    config: PlanConfig | None = None,
    net: NetworkModel | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> Plan:
    """Schedule ``fleet`` on ``grid`` for ``steps`` steps from ``t0`` (rolling windows), and check it.

    Windows of ``config.horizon_steps`` are solved every ``config.commit_steps`` steps (a
    single window when ``steps <= commit_steps``: day-ahead; more: rolling intraday). The grid's
    profiles are the (perfect-foresight) forecast. Returns a :class:`Plan` with the twin-verified
    metrics of the plan and of the uncontrolled fleet over the same steps.
    """
    cfg = config or PlanConfig()
    if steps <= 0:
        raise ValidationError(f"steps: must be positive, got {steps}")
    buses = fleet.buses()
    net = net or build_network(grid, buses, t_ref=t0)
    prof_steps = net.grid.profiles.steps if net.grid.profiles is not None else 10**9
    if t0 + steps > prof_steps:
        raise ValidationError(
            f"steps: the grid has {prof_steps} profile steps, asked for {t0}+{steps}"
        )
    sig_all = signals or default_signals(
        grid, min(prof_steps, t0 + steps + cfg.horizon_steps), fleet.step_h
    )
    # EV requests that cannot be met at all are refused up front, naming the session
    live = (fleet.ev.departure > t0) & (fleet.ev.arrival < t0 + steps)
    short = fleet.ev.shortfall_mwh(fleet.step_h) * live
    if np.any(short > 1e-9):
        k = int(np.argmax(short))
        sid = int(fleet.ev.id[k])
        raise InfeasibleError(
            f"EV session {sid}: needs {fleet.ev.e_need_mwh[k]:.4f} MWh but p_max x plugged time "
            f"gives only {fleet.ev.e_need_mwh[k] - short[k]:.4f} MWh",
            binding=f"ev departure energy (session {sid})",
        )
    inj_all = net.injections(t0, steps)
    nf = buses.size
    group, vs_g, ptdf_g, vq_g = group_buses(net, fleet, cfg.max_groups)
    spread = _spread_weights(fleet, buses, group)
    planned = {c: np.zeros((steps, nf)) for c in CLASSES}
    q_bus_all = np.zeros((steps, nf))
    q_dev_all = np.zeros((steps, len(fleet.pv)))
    q_err = 0.0
    f = fleet
    windows: list[WindowPlan] = []
    viol = comfort = 0
    departed_short: dict[int, float] = {}
    departed: set[int] = set()
    v2g = np.zeros(len(fleet.ev))
    track = 0.0
    unresolved: list[str] = []
    for a in range(t0, t0 + steps, cfg.commit_steps):
        T = int(min(cfg.horizon_steps, prof_steps - a, len(sig_all.price_eur_per_mwh) - a))
        commit = min(cfg.commit_steps, t0 + steps - a)
        T = max(T, commit)
        inj, v0, p0, flow0, qflow0 = _base(net, a, T)
        avail = pv_available(net, f, inj)
        agg = aggregate(f, a, T, buses, avail, group)
        v_use = v0
        solve_s = build_s = 0.0
        n_warm = 0
        wp_prev: WindowPlan | None = None
        for it in range(cfg.corrections + 1):
            wp = plan_window(
                agg,
                net,
                v_use,
                p0,
                flow0,
                qflow0,
                sig_all.window(a, T),
                cfg,
                vs_g,
                ptdf_g,
                vq_g,
                warm=wp_prev if cfg.warm_start else None,
            )
            wp.corrections = it
            solve_s += wp.solve_s
            build_s += wp.build_s
            n_warm += wp.warm_solves
            # a window's times include its re-solves
            wp.solve_s, wp.build_s, wp.warm_solves = solve_s, build_s, n_warm
            wp_prev = wp
            if it == cfg.corrections:
                break
            # check the window's plan in the twin; where the linear model erred, correct it and re-solve
            # small fleets: the devices' real response; large ones: group targets spread to buses
            # by device ratings (cheap, no device simulation)
            if len(f.batteries) + len(f.ev) + len(f.water_heaters) <= cfg.exact_check_devices:
                sp = disaggregate(f, a, wp.targets, buses, avail, group=group).p_mw
            else:
                sp = {c: v[:, group] * spread[c][None, :] for c, v in wp.targets.items()}
            dev_w = sp["battery"] + sp["ev"] + sp["water_heater"]
            _, q_w, _ = disaggregate_q(
                f, wp.q_mvar, avail, wp.targets["pv_curtail"], buses, group, cfg.q_max_frac
            )
            ts_w = run_case(net, a, T, dev_w, sp["pv_curtail"], inj, ("v_pu",), q_mvar=q_w)
            v_next = twin_correction(ts_w.v_pu, v_use, wp, cfg, vs_g, vq_g)
            if v_next is None:
                break
            v_use = v_next
        windows.append(wp)
        if wp.worst:
            unresolved.append(wp.worst)
        tg = {c: v[:commit] for c, v in wp.targets.items()}
        d: Dispatch = disaggregate(f, a, tg, buses, avail[:commit], group=group)
        for c in CLASSES:
            planned[c][a - t0 : a - t0 + commit] = d.p_mw[c]
        q_dev, q_bus, qe = disaggregate_q(
            f, wp.q_mvar[:commit], avail[:commit], tg["pv_curtail"], buses, group, cfg.q_max_frac
        )
        q_bus_all[a - t0 : a - t0 + commit] = q_bus
        q_dev_all[a - t0 : a - t0 + commit] = q_dev
        q_err += qe
        viol += d.limit_violations
        comfort += d.comfort_violation_steps
        for i in d.ev_departed.tolist():
            departed.add(i)
            if d.ev_shortfall_mwh[i] > 1e-6:
                departed_short[i] = float(d.ev_shortfall_mwh[i])
        v2g += d.v2g_mwh
        track += float(np.abs(d.tracking_error_mw).sum() * f.step_h)
        f = d.fleet_after
        if progress is not None:
            progress(a - t0 + commit, steps)
    # uncontrolled: the same fleet, every device on its own (EVs charge on arrival, thermostats)
    u = uncontrolled_dispatch(fleet, t0, steps, buses, pv_available(net, fleet, inj_all))
    uncontrolled = u.p_mw
    sig = sig_all.window(t0, steps)
    dev = planned["battery"] + planned["ev"] + planned["water_heater"]
    cm = evaluate(net, t0, steps, dev, planned["pv_curtail"], sig, cfg, inj_all, q_mvar=q_bus_all)
    udev = uncontrolled["battery"] + uncontrolled["ev"] + uncontrolled["water_heater"]
    um = evaluate(net, t0, steps, udev, np.zeros_like(udev), sig, cfg, inj_all)
    flex_mw = float(fleet.batteries.p_max_mw.sum() + fleet.water_heaters.p_rated_mw.sum())
    ev_mw = (
        float(np.max(aggregate(fleet, t0, steps, buses).ev_p_hi_mw.sum(axis=1))) if steps else 0.0
    )
    share = (flex_mw + ev_mw) / um.peak_mw if um.peak_mw > 0 else float("nan")
    paid = float(np.sum(v2g) * cfg.v2g_fee_eur_per_mwh)
    return Plan(
        t0,
        steps,
        fleet.step_h,
        buses,
        planned,
        uncontrolled,
        cm,
        um,
        len(departed),
        len(departed_short),
        float(sum(departed_short.values())),
        float(v2g.sum()),
        paid,
        comfort,
        viol,
        track,
        windows,
        fleet.summary(),
        share,
        unresolved,
        f,
        q_bus_all,
        q_dev_all,
        q_err,
        cfg.q_support,
    )


def uncontrolled_dispatch(
    fleet: Fleet,
    t0: int,
    steps: int,
    buses: np.ndarray | None = None,
    pv_avail_mw: np.ndarray | None = None,
) -> Dispatch:
    """The customers' counterfactual: every device on its own for ``steps`` steps (no flexibility used).

    EVs charge at full power from arrival until their request is met, water heaters follow
    their thermostat (on below 20 % of the band's energy, off above 80 %), batteries idle.
    """
    return disaggregate(fleet, t0, {}, buses, pv_avail_mw, steps=steps)
