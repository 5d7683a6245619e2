"""The scheduler's twin runs: the base case with the devices at zero, a case with the fleet's
power applied, its metrics, and the correction of the linear model from the twin's voltages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.flex.fleet import Fleet
from gridpilot.flex.network import NetworkModel
from gridpilot.flex.signals import Signals
from gridpilot.flex.window import PlanConfig, WindowPlan
from gridpilot.twin import Injections


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
class Case:
    """One case for the twin: per-bus device power and PV curtailment (steps, n_flex) MW from ``t0``.

    ``inj``: the grid's injections over the steps (computed when None); ``q_mvar``: the
    inverters' reactive power (steps, n_flex) Mvar, + injected (none when None).
    """

    net: NetworkModel
    t0: int
    steps: int
    device_mw: np.ndarray
    curtail_mw: np.ndarray
    inj: dict[str, np.ndarray] | None = None
    q_mvar: np.ndarray | None = None


def base_case(
    net: NetworkModel, t0: int, steps: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Injections, base voltages, feeder import and tree flows with the devices at zero."""
    inj = net.injections(t0, steps)
    base = Injections(load_p_mw=inj["load_p_mw"])
    ts = net.twin.timeseries(steps, start=t0, injections=base, outputs=("v_pu",))
    v0 = np.nan_to_num(np.asarray(ts.v_pu, np.float64), nan=1.0)
    p = net.bus_net_load(inj)
    q = net.bus_net_load(inj, "q")
    flow0 = np.asarray((net.ptdf_all @ p.T).T)
    qflow0 = np.asarray((net.ptdf_all @ q.T).T)
    return inj, v0, np.nan_to_num(ts.source_p_mw), flow0, qflow0


def evaluate(case: Case, sig: Signals, cfg: PlanConfig) -> CaseMetrics:
    """Run ``case`` through the twin; returns its :class:`CaseMetrics`.

    Cost and CO2 are those of the feeder's net import (exports credited), violation minutes
    count steps with any bus outside the band or any branch above 100 % loading.
    """
    ts = run_case(case)
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


def _curtailed_gen_p(case: Case, gp: np.ndarray) -> np.ndarray:
    """The generators' power (steps, n_gen) MW with each bus's curtailment shared by its generators' output."""
    net, steps, curtail_mw = case.net, case.steps, case.curtail_mw
    if not (np.any(curtail_mw > 0) and len(net.grid.generator)):
        return gp
    g = net.grid
    gbus = np.searchsorted(net.flex_bus_id, g.generator["bus"])
    gbus_ok = (gbus < net.flex_bus_id.size) & (
        net.flex_bus_id[np.clip(gbus, 0, net.flex_bus_id.size - 1)] == g.generator["bus"]
    )
    idx = np.flatnonzero(gbus_ok)
    tot = np.zeros((steps, net.flex_bus_id.size))
    np.add.at(tot.T, gbus[idx], gp[:, idx].T)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(tot[:, gbus[idx]] > 0, curtail_mw[:, gbus[idx]] / tot[:, gbus[idx]], 0.0)
    gp[:, idx] *= 1 - np.clip(frac, 0, 1)
    return gp


def run_case(case: Case, outputs: tuple[str, ...] = ()) -> Any:
    """The twin's time series (``outputs`` per bus besides the extremes) of ``case``."""
    net = case.net
    inj = net.injections(case.t0, case.steps) if case.inj is None else case.inj
    lp_ = inj["load_p_mw"].copy()
    lp_[:, net.flex_load_pos] += case.device_mw
    lq = None
    if case.q_mvar is not None:
        lq = inj["load_q_mvar"].copy()
        lq[:, net.flex_load_pos] -= case.q_mvar
    gp = _curtailed_gen_p(case, inj["gen_p_mw"].copy())
    inj_case = Injections(load_p_mw=lp_, load_q_mvar=lq, gen_p_mw=gp)
    return net.twin.timeseries(case.steps, start=case.t0, injections=inj_case, outputs=outputs)


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
