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

The window LP lives in :mod:`gridpilot.flex.window`, the twin runs in
:mod:`gridpilot.flex.twin_check`; their names are importable from here as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.flex.aggregate import (
    CLASSES,
    Dispatch,
    aggregate,
    disaggregate,
    disaggregate_q,
)
from gridpilot.flex.fleet import Fleet
from gridpilot.flex.network import NetworkModel, build_network
from gridpilot.flex.signals import Signals, default_signals
from gridpilot.flex.twin_check import (
    Case,
    CaseMetrics,
    base_case,
    evaluate,
    pv_available,
    run_case,
    twin_correction,
)
from gridpilot.flex.twin_check import base_case as _base
from gridpilot.flex.window import (
    PlanConfig,
    WindowInput,
    WindowPlan,
    _check_feasible,
    plan_window,
    solve_window,
)
from gridpilot.model import Grid

log = logging.getLogger(__name__)

__all__ = [
    "Case",
    "CaseMetrics",
    "Plan",
    "PlanConfig",
    "WindowInput",
    "WindowPlan",
    "_base",
    "_check_feasible",
    "base_case",
    "evaluate",
    "group_buses",
    "plan",
    "plan_window",
    "pv_available",
    "run_case",
    "solve_window",
    "twin_correction",
    "uncontrolled_dispatch",
]


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


@dataclass
class _Setup:
    """What every window of one :func:`plan` call shares (grid-wide, fixed for the call)."""

    net: NetworkModel
    cfg: PlanConfig
    t0: int
    steps: int
    prof_steps: int
    buses: np.ndarray
    sig_all: Signals
    group: np.ndarray
    vs_g: np.ndarray
    ptdf_g: Any
    vq_g: np.ndarray | None
    spread: dict[str, np.ndarray]


@dataclass
class _Rolling:
    """The rolling plan's running totals over the committed steps (units in the names)."""

    fleet: Fleet
    planned: dict[str, np.ndarray]
    q_bus_mvar: np.ndarray
    q_dev_mvar: np.ndarray
    v2g_mwh: np.ndarray
    q_err_mvarh: float = 0.0
    windows: list[WindowPlan] = field(default_factory=list)
    limit_violations: int = 0
    comfort_steps: int = 0
    departed: set[int] = field(default_factory=set)
    departed_short: dict[int, float] = field(default_factory=dict)
    track_mwh: float = 0.0
    unresolved: list[str] = field(default_factory=list)


def _check_ev_requests(fleet: Fleet, t0: int, steps: int) -> None:
    """Refuse EV requests that cannot be met at all up front, naming the session."""
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


def _network(
    grid: Grid, fleet: Fleet, steps: int, t0: int, net: NetworkModel | None
) -> tuple[NetworkModel, np.ndarray, int]:
    """Check the steps asked for; returns the network model, the fleet's buses and the profile length."""
    if steps <= 0:
        raise ValidationError(f"steps: must be positive, got {steps}")
    buses = fleet.buses()
    net = net or build_network(grid, buses, t_ref=t0)
    prof_steps = net.grid.profiles.steps if net.grid.profiles is not None else 10**9
    if t0 + steps > prof_steps:
        raise ValidationError(
            f"steps: the grid has {prof_steps} profile steps, asked for {t0}+{steps}"
        )
    return net, buses, prof_steps


def _twin_voltages(
    s: _Setup,
    f: Fleet,
    win: WindowInput,
    avail: np.ndarray,
    inj: dict[str, np.ndarray],
    wp: WindowPlan,
) -> Any:
    """The twin's bus voltages (T, n_bus) pu with window plan ``wp`` applied to fleet ``f``.

    Small fleets: the devices' real response; large ones: group targets spread to buses by
    device ratings (cheap, no device simulation).
    """
    a, T = win.agg.t0, win.agg.steps
    if len(f.batteries) + len(f.ev) + len(f.water_heaters) <= s.cfg.exact_check_devices:
        sp = disaggregate(f, a, wp.targets, s.buses, avail, group=s.group).p_mw
    else:
        sp = {c: v[:, s.group] * s.spread[c][None, :] for c, v in wp.targets.items()}
    dev_w = sp["battery"] + sp["ev"] + sp["water_heater"]
    assert wp.q_mvar is not None  # solve_window always sets it
    _, q_w, _ = disaggregate_q(
        f, wp.q_mvar, avail, wp.targets["pv_curtail"], s.buses, s.group, s.cfg.q_max_frac
    )
    case = Case(s.net, a, T, dev_w, sp["pv_curtail"], inj, q_mvar=q_w)
    return run_case(case, ("v_pu",)).v_pu


def _solve_checked(s: _Setup, f: Fleet, a: int, T: int) -> tuple[WindowPlan, np.ndarray]:
    """Solve the window of ``T`` steps from ``a``, re-solving where the twin finds the linear model erred.

    Returns the last solve (its times include the re-solves) and the available PV power (T, n_pv) MW.
    """
    cfg = s.cfg
    inj, v0, p0, flow0, qflow0 = base_case(s.net, a, T)
    avail = pv_available(s.net, f, inj)
    agg = aggregate(f, a, T, s.buses, avail, s.group)
    sig = s.sig_all.window(a, T)
    win = WindowInput(agg, s.net, v0, p0, flow0, qflow0, sig, cfg, s.vs_g, s.ptdf_g, s.vq_g)
    solve_s = build_s = 0.0
    n_warm = 0
    for it in range(cfg.corrections + 1):
        wp = solve_window(win)
        wp.corrections = it
        solve_s += wp.solve_s
        build_s += wp.build_s
        n_warm += wp.warm_solves
        # a window's times include its re-solves
        wp.solve_s, wp.build_s, wp.warm_solves = solve_s, build_s, n_warm
        win.warm = wp if cfg.warm_start else None
        if it == cfg.corrections:
            break
        v_twin = _twin_voltages(s, f, win, avail, inj, wp)
        v_next = twin_correction(v_twin, win.v0, wp, cfg, s.vs_g, s.vq_g)
        if v_next is None:
            break
        log.debug("window at step %d: twin correction %d", a, it + 1)
        win.v0 = v_next
    return wp, avail


def _commit(s: _Setup, r: _Rolling, wp: WindowPlan, a: int, commit: int, avail: np.ndarray) -> None:
    """Disaggregate the first ``commit`` steps of ``wp`` to the devices and advance the fleet."""
    r.windows.append(wp)
    if wp.worst:
        r.unresolved.append(wp.worst)
    f = r.fleet
    tg = {c: v[:commit] for c, v in wp.targets.items()}
    d: Dispatch = disaggregate(f, a, tg, s.buses, avail[:commit], group=s.group)
    k = slice(a - s.t0, a - s.t0 + commit)
    for c in CLASSES:
        r.planned[c][k] = d.p_mw[c]
    assert wp.q_mvar is not None
    q_dev, q_bus, qe = disaggregate_q(
        f, wp.q_mvar[:commit], avail[:commit], tg["pv_curtail"], s.buses, s.group, s.cfg.q_max_frac
    )
    r.q_bus_mvar[k] = q_bus
    r.q_dev_mvar[k] = q_dev
    r.q_err_mvarh += qe
    r.limit_violations += d.limit_violations
    r.comfort_steps += d.comfort_violation_steps
    for i in d.ev_departed.tolist():
        r.departed.add(i)
        if d.ev_shortfall_mwh[i] > 1e-6:
            r.departed_short[i] = float(d.ev_shortfall_mwh[i])
    r.v2g_mwh += d.v2g_mwh
    r.track_mwh += float(np.abs(d.tracking_error_mw).sum() * f.step_h)
    r.fleet = d.fleet_after


def _finish(s: _Setup, r: _Rolling, fleet: Fleet) -> Plan:
    """Check the committed plan and the uncontrolled fleet in the twin; returns the :class:`Plan`."""
    t0, steps, cfg, net = s.t0, s.steps, s.cfg, s.net
    inj_all = net.injections(t0, steps)
    # uncontrolled: the same fleet, every device on its own (EVs charge on arrival, thermostats)
    u = uncontrolled_dispatch(fleet, t0, steps, s.buses, pv_available(net, fleet, inj_all))
    uncontrolled = u.p_mw
    sig = s.sig_all.window(t0, steps)
    planned = r.planned
    dev = planned["battery"] + planned["ev"] + planned["water_heater"]
    cm = evaluate(
        Case(net, t0, steps, dev, planned["pv_curtail"], inj_all, q_mvar=r.q_bus_mvar), sig, cfg
    )
    udev = uncontrolled["battery"] + uncontrolled["ev"] + uncontrolled["water_heater"]
    um = evaluate(Case(net, t0, steps, udev, np.zeros_like(udev), inj_all), sig, cfg)
    flex_mw = float(fleet.batteries.p_max_mw.sum() + fleet.water_heaters.p_rated_mw.sum())
    ev_mw = (
        float(np.max(aggregate(fleet, t0, steps, s.buses).ev_p_hi_mw.sum(axis=1))) if steps else 0.0
    )
    share = (flex_mw + ev_mw) / um.peak_mw if um.peak_mw > 0 else float("nan")
    paid = float(np.sum(r.v2g_mwh) * cfg.v2g_fee_eur_per_mwh)
    return Plan(
        t0,
        steps,
        fleet.step_h,
        s.buses,
        planned,
        uncontrolled,
        cm,
        um,
        len(r.departed),
        len(r.departed_short),
        float(sum(r.departed_short.values())),
        float(r.v2g_mwh.sum()),
        paid,
        r.comfort_steps,
        r.limit_violations,
        r.track_mwh,
        r.windows,
        fleet.summary(),
        share,
        r.unresolved,
        r.fleet,
        r.q_bus_mvar,
        r.q_dev_mvar,
        r.q_err_mvarh,
        cfg.q_support,
    )


def plan(  # noqa: PLR0913
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
    net, buses, prof_steps = _network(grid, fleet, steps, t0, net)
    sig_all = signals or default_signals(
        grid, min(prof_steps, t0 + steps + cfg.horizon_steps), fleet.step_h
    )
    _check_ev_requests(fleet, t0, steps)
    group, vs_g, ptdf_g, vq_g = group_buses(net, fleet, cfg.max_groups)
    s = _Setup(
        net=net,
        cfg=cfg,
        t0=t0,
        steps=steps,
        prof_steps=prof_steps,
        buses=buses,
        sig_all=sig_all,
        group=group,
        vs_g=vs_g,
        ptdf_g=ptdf_g,
        vq_g=vq_g,
        spread=_spread_weights(fleet, buses, group),
    )
    nf = buses.size
    r = _Rolling(
        fleet=fleet,
        planned={c: np.zeros((steps, nf)) for c in CLASSES},
        q_bus_mvar=np.zeros((steps, nf)),
        q_dev_mvar=np.zeros((steps, len(fleet.pv))),
        v2g_mwh=np.zeros(len(fleet.ev)),
    )
    for a in range(t0, t0 + steps, cfg.commit_steps):
        T = int(min(cfg.horizon_steps, s.prof_steps - a, len(s.sig_all.price_eur_per_mwh) - a))
        commit = min(cfg.commit_steps, t0 + steps - a)
        T = max(T, commit)
        wp, avail = _solve_checked(s, r.fleet, a, T)
        _commit(s, r, wp, a, commit, avail)
        if progress is not None:
            progress(a - t0 + commit, steps)
    return _finish(s, r, fleet)


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
