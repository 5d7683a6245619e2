"""Receding-horizon scheduling from a forecast: one window of the scheduler, planned now.

:func:`gridpilot.flex.plan` schedules a fleet over the grid's own profiles (perfect foresight,
day-ahead windows). A control loop plans from *its* forecast instead, again and again from the
devices' present state: :func:`plan_ahead` takes the forecast injections of the grid (metered
load forecast, generation, EV stations, flexible loads; per step of the fleet's 15 minutes),
takes out what the fleet would draw on its own (its uncontrolled baseline, already inside a
metered load forecast), solves one window of the scheduler's LP
(:func:`~gridpilot.flex.window.solve_window`: energy price, CO2, a peak charge, battery wear,
voltage band through dV/dP and dV/dQ from the twin, branch and transformer ratings) and keeps
the first ``commit_steps`` steps as per-device set points
(:func:`~gridpilot.flex.dr.schedule_setpoints`). The planned feeder import is the base import
plus the fleet's planned power (the linear model; the twin checks a re-solve when the linear
model put a bus outside the band, ``corrections``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.flex.aggregate import aggregate, disaggregate
from gridpilot.flex.dr import DR_CLASSES, EventPlan, schedule_setpoints
from gridpilot.flex.fleet import Fleet
from gridpilot.flex.network import NetworkModel
from gridpilot.flex.schedule import group_buses
from gridpilot.flex.signals import Signals
from gridpilot.flex.twin_check import twin_correction
from gridpilot.flex.window import PlanConfig, WindowInput, WindowPlan, solve_window
from gridpilot.lp import silence_banner
from gridpilot.twin import Injections

log = logging.getLogger(__name__)


@dataclass
class AheadPlan:
    """One receding-horizon plan (powers in the grid's MW, + consumption; 15-min steps).

    ``import_mw`` (T,) the planned feeder import (base + the fleet's planned power),
    ``import_base_mw`` (T,) the forecast with the fleet on its own (its baseline), ``fleet_mw``
    per class (T,) the fleet's planned power and ``fleet_base_mw`` (T,) its baseline;
    ``setpoints`` the per-device set points of the first ``commit_steps`` steps;
    ``planning_ms`` the wall time of the whole call (``lp_ms`` the LP build + solve).
    """

    t0: int
    steps: int
    step_h: float
    import_mw: np.ndarray
    import_base_mw: np.ndarray
    fleet_mw: dict[str, np.ndarray]
    fleet_base_mw: np.ndarray
    setpoints: EventPlan
    window: WindowPlan
    planning_ms: float
    lp_ms: float
    corrections: int = 0
    unresolved: list[str] = field(default_factory=list)

    @property
    def peak_mw(self) -> float:
        """Planned peak import over the horizon, MW."""
        return float(self.import_mw.max()) if self.import_mw.size else 0.0

    @property
    def peak_base_mw(self) -> float:
        """Forecast peak import with the fleet on its own, MW."""
        return float(self.import_base_mw.max()) if self.import_base_mw.size else 0.0

    def summary(self, hours: float | None = None) -> dict[str, Any]:
        """JSON-able figures (rounded lists over the first ``hours`` of the horizon, default all)."""
        n = self.steps if hours is None else min(self.steps, round(hours / self.step_h))

        def r(a: np.ndarray) -> list[float]:
            return [round(float(x), 4) for x in a[:n]]

        return {
            "steps": n,
            "step_min": round(self.step_h * 60),
            "import_mw": r(self.import_mw),
            "import_base_mw": r(self.import_base_mw),
            "fleet_mw": r(sum(self.fleet_mw.values())),  # type: ignore[arg-type]
            "fleet_base_mw": r(self.fleet_base_mw),
            "fleet_class_mw": {c: r(v) for c, v in self.fleet_mw.items()},
            "peak_mw": round(self.peak_mw, 4),
            "peak_base_mw": round(self.peak_base_mw, 4),
            "objective_eur": round(float(self.window.objective_eur), 2),
            "planning_ms": round(self.planning_ms, 1),
            "lp_ms": round(self.lp_ms, 1),
            "corrections": self.corrections,
            "unresolved": self.unresolved[:5],
        }


def _twin_base(
    net: NetworkModel, inj: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Base voltages (T, n_bus), feeder import (T,), tree flows P and Q (T, n_edge) of ``inj``."""
    T = inj["load_p_mw"].shape[0]
    ts = net.twin.timeseries(T, injections=Injections.from_mapping(inj), outputs=("v_pu",))
    v0 = np.nan_to_num(np.asarray(ts.v_pu, np.float64), nan=1.0)
    p = net.bus_net_load(inj)
    q = net.bus_net_load(inj, "q")
    flow0 = np.asarray((net.ptdf_all @ p.T).T)
    qflow0 = np.asarray((net.ptdf_all @ q.T).T)
    return v0, np.nan_to_num(np.asarray(ts.source_p_mw, np.float64)), flow0, qflow0


def _check_inputs(
    net: NetworkModel,
    fleet: Fleet,
    inj: dict[str, np.ndarray],
    signals: Signals,
    commit_steps: int,
) -> int:
    """Check the forecast's shapes against the model, signals and fleet; returns its steps T."""
    if "load_p_mw" not in inj or inj["load_p_mw"].ndim != 2:
        raise ValidationError("plan_ahead: injections need a (T, n_load) 'load_p_mw'")
    T, n_load = inj["load_p_mw"].shape
    if n_load != len(net.grid.load):
        raise ValidationError(
            f"plan_ahead: 'load_p_mw' has {n_load} loads, the network model's grid "
            f"{len(net.grid.load)} (its loads plus one per device bus)"
        )
    if signals.price_eur_per_mwh.size != T:
        raise ValidationError(
            f"plan_ahead: signals have {signals.price_eur_per_mwh.size} steps, injections {T}"
        )
    if not 0 < commit_steps <= T:
        raise ValidationError(f"plan_ahead: commit_steps must be in 1..{T}, got {commit_steps}")
    if not np.all(np.isin(fleet.buses(), net.flex_bus_id)):
        raise ValidationError("plan_ahead: the fleet has devices at buses the model lacks")
    return int(T)


def _solve_corrected(
    win: WindowInput, fleet: Fleet, inj: dict[str, np.ndarray], group: np.ndarray
) -> tuple[WindowPlan, float, int]:
    """Solve the window, re-solving where the twin (the fleet's planned power per bus) finds the
    linear model's voltages wrong; returns the last plan, the LP seconds and the corrections."""
    net, cfg, agg = win.net, win.cfg, win.agg
    avail = np.zeros((agg.steps, len(fleet.pv)))
    vs_g = win.v_sens if win.v_sens is not None else net.v_sens
    lp_s = 0.0
    it = 0
    for it in range(cfg.corrections + 1):
        wp = solve_window(win)
        win.warm = wp if cfg.warm_start else None
        lp_s += wp.solve_s + wp.build_s
        if it == cfg.corrections:
            break
        d = disaggregate(fleet, agg.t0, wp.targets, net.flex_bus_id, avail, group=group)
        inj_w = {k: v.copy() for k, v in inj.items()}
        inj_w["load_p_mw"][:, net.flex_load_pos] += sum(d.p_mw[c] for c in DR_CLASSES)
        inj_twin = Injections.from_mapping(inj_w)
        ts = net.twin.timeseries(agg.steps, injections=inj_twin, outputs=("v_pu",))
        v_next = twin_correction(ts.v_pu, win.v0, wp, cfg, vs_g)  # P only, as planned here
        if v_next is None:
            break
        log.debug("plan_ahead at step %d: twin correction %d", agg.t0, it + 1)
        win.v0 = v_next
    return wp, lp_s, it


def plan_ahead(  # noqa: PLR0913
    net: NetworkModel,
    fleet: Fleet,
    t0: int,
    injections: dict[str, np.ndarray],
    signals: Signals,
    config: PlanConfig | None = None,
    *,
    commit_steps: int = 4,
    baseline_in_load: bool = True,
    plan_id: str = "schedule",
    grouping: tuple[np.ndarray, Any, Any, Any] | None = None,
) -> AheadPlan:
    """Plan ``fleet`` (state of flex step ``t0``) over the forecast ``injections`` and return
    an :class:`AheadPlan` with the first ``commit_steps`` steps as per-device set points.

    ``injections``: the forecast for the *network model's* grid (``net.grid``: the grid's
    tables plus one zero load per device bus), (T, n) MW/Mvar per key as
    :meth:`gridpilot.twin.Twin.timeseries` takes them, one row per 15-minute step from ``t0``.
    With ``baseline_in_load`` the loads' forecast includes what the fleet draws on its own (a
    metered load's forecast): that baseline is taken out at the device buses before planning.
    ``signals`` (T,) price and carbon intensity. ``grouping``: a cached
    :func:`~gridpilot.flex.schedule.group_buses` of ``net`` and ``fleet``'s buses.
    Raises :class:`~gridpilot.errors.ValidationError` on shapes that do not match.
    """
    t_all = time.perf_counter()
    silence_banner()
    cfg = config or PlanConfig()
    inj = {k: np.array(v, np.float64, copy=True) for k, v in injections.items()}
    T = _check_inputs(net, fleet, inj, signals, commit_steps)
    buses = net.flex_bus_id
    avail = np.zeros((T, len(fleet.pv)))
    # the fleet on its own (its baseline), per bus: inside a metered forecast, taken out
    base_d = disaggregate(fleet, t0, {}, buses, avail, steps=T)
    base_bus: np.ndarray = sum(base_d.p_mw[c] for c in DR_CLASSES)  # type: ignore[assignment]
    if baseline_in_load:
        inj["load_p_mw"][:, net.flex_load_pos] -= base_bus
    v0, p0, flow0, qflow0 = _twin_base(net, inj)
    group, vs_g, ptdf_g, vq_g = grouping or group_buses(net, fleet, cfg.max_groups)
    agg = aggregate(fleet, t0, T, buses, avail, group)
    win = WindowInput(agg, net, v0, p0, flow0, qflow0, signals, cfg, vs_g, ptdf_g, vq_g)
    wp, lp_s, it = _solve_corrected(win, fleet, inj, group)
    assert wp.pn_mw is not None
    tg = {c: wp.targets[c][:commit_steps] for c in DR_CLASSES}
    sp = schedule_setpoints(fleet, t0, tg, plan_id=plan_id, buses=buses, group=group)
    fleet_mw = {c: wp.targets[c].sum(axis=1) for c in DR_CLASSES}
    planned = wp.pn_mw.sum(axis=1)
    return AheadPlan(
        t0,
        T,
        fleet.step_h,
        p0 + planned,
        p0 + base_bus.sum(axis=1),
        fleet_mw,
        base_bus.sum(axis=1),
        sp,
        wp,
        (time.perf_counter() - t_all) * 1e3,
        lp_s * 1e3,
        it,
        [wp.worst] if wp.worst else [],
    )


__all__ = ["AheadPlan", "plan_ahead"]
