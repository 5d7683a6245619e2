"""Flexibility planning in the loop: a receding-horizon schedule of the flexible fleet (issue #9).

:class:`FlexPlanPolicy` plans, every ``every_min`` minutes of simulated time on the 15-minute
grid, the household devices of the field's registry (:class:`~gridpilot.agent.flexlink.FlexDR`'s
:meth:`~gridpilot.agent.flexlink.FlexDR.fleet`, in the grid's MW) and the grid's own batteries
over ``horizon_h`` hours with :func:`gridpilot.flex.plan_ahead`: one window of the scheduler's
LP (energy price and CO2 of :func:`gridpilot.flex.default_signals`, a peak charge on the feeder
import, battery wear, the voltage band through dV/dP and dV/dQ of the twin, branch and
transformer ratings), on the loop's own forecast (:meth:`Orchestrator.forecast_injections`:
the estimated demand times the load-shape forecast, generation on its profile shape from its
present level, EV stations and flexible loads held at their present level).

At every 15-minute step it sends the committed set points of that step as one
:class:`~gridpilot.agent.actions.Plan`: ``storage`` actions for the grid's batteries (where they
change) and the household devices' commands (``battery_setpoint``/``battery_auto``,
``ev_limit``, ``water_heater_pause``/``resume``: :func:`~gridpilot.agent.flexlink.setpoint_commands`,
the same command building as DR events) in ``plan.data["_commands"]``. The guard checks each
plan with the set points' change of every load (``plan.data["_load_delta_mw"]``) applied, and
the audit log records it like any plan (summary in ``plan.data["flex_plan"]``).

Precedence: a DR event of :class:`FlexDR` (a policy's or an operator's) wins: while one runs
the policy sends nothing and plans afresh once it has ended. The grid batteries are left to
another policy (e.g. volt/var) that holds them (``ctx.shared["storage_by"]``). During a fault
(protection operated, a bus dead, a known fault) the devices are handed back to their own
control and planning waits until the grid is whole again.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.flexlink import FLEX_STEP_S, release_commands, setpoint_commands
from gridpilot.errors import GridpilotError
from gridpilot.flex import (
    AheadPlan,
    Batteries,
    EventPlan,
    Fleet,
    NetworkModel,
    PlanConfig,
    build_network,
    plan_ahead,
    select_devices,
)
from gridpilot.flex.schedule import group_buses

STORAGE_ID0 = 1_000_000_000  # flex ids of the grid's batteries (household ids are positions)


def _subset_battery(plan: EventPlan, keep: np.ndarray) -> EventPlan:
    """``plan`` with only the battery rows ``keep`` (bool per battery)."""
    ids = dict(plan.device_ids)
    ids["battery"] = plan.device_ids["battery"][keep]

    def sub(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(d)
        out["battery"] = d["battery"][:, keep]
        return out

    return EventPlan(
        plan.event_id,
        plan.start,
        plan.steps,
        plan.step_h,
        plan.target_mw,
        ids,
        sub(plan.p_mw),
        sub(plan.baseline_mw),
        sub(plan.floor_mw),
        plan.reduction_mw,
        plan.room_mw,
        plan.opted_out,
        plan.limit_violations,
    )


class FlexPlanPolicy:
    """Receding-horizon flexibility planning on the field world (see the module docstring).

    ``FlexPlanPolicy(every_min=60, horizon_h=24, commit_steps=4, config=None)``: re-plans every
    ``every_min`` minutes (and after a DR event or a fault), ``horizon_h`` hours ahead, and
    keeps ``commit_steps`` 15-minute steps of per-device set points from each plan. ``config``
    the scheduler's :class:`~gridpilot.flex.PlanConfig` (default: the guard's voltage band less
    0.01 pu, one twin correction, warm-started re-solve). Does nothing on a world without a
    device registry (``ctx.flexdr`` None).
    """

    name = "flexplan"

    def __init__(  # noqa: PLR0913
        self,
        every_min: float = 60.0,
        horizon_h: float = 24.0,
        commit_steps: int = 4,
        config: PlanConfig | None = None,
        *,
        water_heaters: bool = False,
        ev_charge_eff: float = 0.92,
        ev_early_steps: int = 4,
    ) -> None:
        if not every_min >= FLEX_STEP_S / 60 or not horizon_h * 3600 >= FLEX_STEP_S * commit_steps:
            raise GridpilotError(
                f"flexplan: need every_min >= 15 and horizon_h covering commit_steps, got "
                f"{every_min}, {horizon_h}, {commit_steps}"
            )
        self.every_min = float(every_min)
        self.horizon_steps = round(horizon_h * 3600 / FLEX_STEP_S)
        self.commit_steps = int(commit_steps)
        self.config = config
        self.water_heaters = bool(water_heaters)
        self.ev_charge_eff = float(ev_charge_eff)
        self.ev_early_steps = int(ev_early_steps)
        self.plan: AheadPlan | None = None  # the plan in force
        self.plan_time: np.datetime64 | None = None
        self.with_storage = False
        self.held = False  # household devices under the schedule's set points
        self.step_k = -1
        self.planning_ms: list[float] = []
        self.errors = 0
        self._net: dict[bytes, tuple[NetworkModel, Any]] = {}
        self._seq = 0
        self._delta_bus: tuple[np.ndarray, np.ndarray] | None = None  # (bus ids, MW) in force

    # --- inputs -----------------------------------------------------------------------------------
    def _cfg(self, ctx: Any) -> PlanConfig:
        if self.config is not None:
            return self.config
        lim = ctx.limits
        return PlanConfig(
            vmin_pu=lim.v_min_pu + 0.01,
            vmax_pu=lim.v_max_pu - 0.01,
            horizon_steps=self.horizon_steps,
            commit_steps=self.commit_steps,
            corrections=1,
        )

    def _network(
        self, ctx: Any, buses: np.ndarray, fleet: Fleet, cfg: PlanConfig
    ) -> tuple[NetworkModel, Any]:
        """The scheduler's network model of the grid as switched now (sensitivities at the
        grid's nominal injections), cached per configuration."""
        key = ctx.obs.switch_closed.tobytes() + buses.tobytes()
        if key not in self._net:
            g = ctx.grid.copy()
            g.switch["closed"][:] = ctx.obs.switch_closed
            net = build_network(g, buses, t_ref=0, engine=getattr(ctx.twin, "mode", "pgm"))
            if len(self._net) >= 8:
                self._net.pop(next(iter(self._net)))
            self._net[key] = (net, group_buses(net, fleet, cfg.max_groups))
        return self._net[key]

    def _fleet(self, ctx: Any, now: np.datetime64, storage: bool) -> tuple[Fleet, int]:
        """The registry's batteries and EVs (grid MW; water heaters with ``water_heaters``) plus,
        with ``storage``, the grid's batteries. EV requests are grid energy (the battery's
        energy over ``ev_charge_eff``) due ``ev_early_steps`` before departure, where the dwell
        allows (at most 95 % of what the charger gives in it)."""
        f, t = ctx.flexdr.fleet(now)
        keep = {
            "battery": np.ones(len(f.batteries), bool),
            "ev": np.ones(len(f.ev), bool),
            "water_heater": np.full(len(f.water_heaters), self.water_heaters),
        }
        f = select_devices(f, keep)
        ev = f.ev
        if len(ev):
            start = np.maximum(ev.arrival, t)
            early = ev.departure - self.ev_early_steps
            ev.departure = np.where(early > start, early, ev.departure)
            room = np.maximum(ev.departure - start, 0) * ev.p_max_mw * f.step_h
            need = ev.e_need_mwh.copy()
            # a car plugged in now: all it lacks to its target (the adapter caps a request at 80 %
            # of what the charger gives in the dwell; deferred cars then leave short)
            d = ctx.flexdr.devices
            now_in = (ev.arrival <= t) & (t < ev.departure)
            lack = np.clip(
                np.asarray(d.ev_target_soc, np.float64)[ev.ev] - np.asarray(d.ev_soc)[ev.ev], 0, 1
            )
            need = np.where(now_in, np.maximum(need, lack * ev.e_cap_mwh), need)
            need = need / self.ev_charge_eff
            ev.e_need_mwh = np.minimum(need, np.minimum(0.95 * room, ev.e_cap_mwh - ev.e_arr_mwh))
            ev.e_need_mwh = np.maximum(ev.e_need_mwh, 0.0)
        g = ctx.grid
        if not storage or not len(g.storage):
            return f, t
        b, st = f.batteries, g.storage
        soc = np.clip(np.asarray(ctx.obs.storage_soc, np.float64), 0.0, 1.0)
        cat = Batteries(
            np.concatenate([b.id, STORAGE_ID0 + np.arange(len(st))]),
            np.concatenate([b.bus, st["bus"]]),
            np.concatenate([b.e_mwh, st["e_mwh"]]),
            np.concatenate([b.p_max_mw, st["p_max_mw"]]),
            np.concatenate([b.soc, soc]),
            np.concatenate([b.eta, st["eta"]]),
            np.concatenate([b.soc_min, np.minimum(0.1, soc)]),
            np.concatenate([b.soc_max, np.maximum(0.95, soc)]),
            np.concatenate([b.p_base_mw, np.zeros(len(st))]),
        )
        return Fleet(cat, f.ev, f.water_heaters, f.pv, f.step_h, f.meta), t

    def _on_loads(self, ctx: Any, bus_ids: np.ndarray, mw: np.ndarray) -> np.ndarray:
        """Per-bus MW spread over the loads at each bus (by estimated demand), per load."""
        g = ctx.grid
        out = np.zeros(len(g.load))
        if bus_ids.size == 0:
            return out
        lb = np.asarray(g.load["bus"], np.int64)
        w = np.maximum(ctx.load_est_mw, 1e-6)
        pos = np.searchsorted(bus_ids, lb)
        ok = (pos < bus_ids.size) & (bus_ids[np.clip(pos, 0, bus_ids.size - 1)] == lb)
        tot = np.zeros(bus_ids.size)
        np.add.at(tot, pos[ok], w[ok])
        out[ok] = mw[pos[ok]] * w[ok] / np.maximum(tot[pos[ok]], 1e-9)
        return out

    def _delta(self, plan: AheadPlan, k: int, ctx: Any) -> tuple[np.ndarray, np.ndarray]:
        """The set points' change against the devices' own baseline at committed step ``k``, per
        bus (bus ids sorted, MW; household devices only)."""
        sp = plan.setpoints
        f = ctx.flexdr
        d = f.devices
        bus_ids = ctx.grid.bus.ids
        parts_b, parts_v = [], []
        for c, meter in (
            ("battery", d.bat_meter),
            ("ev", d.ev_meter),
            ("water_heater", d.wh_meter),
        ):
            ids = sp.device_ids[c]
            if c == "battery":
                ids = ids[ids < STORAGE_ID0]
            n = ids.size
            if not n:
                continue
            dv = sp.p_mw[c][k, :n] - sp.baseline_mw[c][k, :n]
            if c == "water_heater":  # on/off: only the pauses act (see setpoint_commands)
                dv = np.minimum(dv, 0.0)
            parts_b.append(bus_ids[d.meter_bus[meter[ids]]])
            parts_v.append(dv)
        if not parts_b:
            return np.zeros(0, np.int64), np.zeros(0)
        b = np.concatenate(parts_b)
        ub, inv = np.unique(b, return_inverse=True)
        return ub, np.bincount(inv, weights=np.concatenate(parts_v), minlength=ub.size)

    # --- the decision -----------------------------------------------------------------------------
    def _replan(self, ctx: Any, now: np.datetime64) -> AheadPlan:
        t_wall = time.perf_counter()
        cfg = self._cfg(ctx)
        storage = ctx.shared.get("storage_by") in (None, self.name) and len(ctx.grid.storage) > 0
        fleet, t = self._fleet(ctx, now, storage)
        T = self.horizon_steps
        sig = ctx.flex_signals(T)
        buses = np.unique(np.concatenate([fleet.buses(), np.asarray(ctx.grid.storage["bus"])]))
        net, grouping = self._network(ctx, buses, fleet, cfg)
        # the loop's forecast, the devices' present schedule taken out of the metered level
        corr = None
        if self._delta_bus is not None:
            corr = self._on_loads(ctx, *self._delta_bus)
        fc = ctx.forecast_injections(np.arange(T) * FLEX_STEP_S / 60.0, load_offset_mw=corr)
        n_load = len(ctx.grid.load)
        inj = {k: v for k, v in fc.items() if k not in ("load_p_mw", "load_q_mvar")}
        for key in ("load_p_mw", "load_q_mvar"):
            a = np.zeros((T, len(net.grid.load)))
            a[:, :n_load] = fc[key]
            inj[key] = a
        if len(ctx.grid.storage):
            inj["storage_p_mw"] = (
                np.zeros((T, len(ctx.grid.storage)))
                if storage
                else np.tile(ctx.storage_cmd_mw, (T, 1))
            )
        self._seq += 1
        ap = plan_ahead(
            net,
            fleet,
            t,
            inj,
            sig,
            cfg,
            commit_steps=self.commit_steps,
            plan_id=f"flexplan-{self._seq}",
            grouping=grouping,
        )
        ap.planning_ms = (time.perf_counter() - t_wall) * 1e3
        self.planning_ms.append(ap.planning_ms)
        self.with_storage = storage
        return ap

    def _release(self, ctx: Any, why: str) -> list[Plan]:
        """Hand the household devices back to their own control (and the batteries to idle)."""
        plan = self.plan
        self.plan, self.plan_time, self.step_k = None, None, -1
        self._delta_bus = None
        if plan is None or not self.held:
            return []
        self.held = False
        ids = dict(plan.setpoints.device_ids)
        ids["battery"] = ids["battery"][ids["battery"] < STORAGE_ID0]
        cmds = release_commands(ctx.flexdr.devices, ids, f"{plan.setpoints.event_id}:release")
        acts = []
        if self.with_storage and ctx.shared.get("storage_by") == self.name:
            acts = [Action("storage", int(i), 0.0) for i in ctx.grid.storage.ids]
        return [
            Plan(
                acts,
                f"flexibility schedule suspended: {why}; devices back to their own control",
                self.name,
                {"_commands": cmds, "flex_plan": {"released": plan.setpoints.event_id}},
            )
        ]

    def _storage_actions(self, ctx: Any, sp: Any, k: int, is_st: np.ndarray) -> list[Action]:
        """The grid batteries' set points of step ``k`` (MW) where they change, when this
        schedule holds the batteries (or nobody does)."""
        acts: list[Action] = []
        if self.with_storage and ctx.shared.get("storage_by") in (None, self.name):
            st_p = sp.p_mw["battery"][k, is_st]
            st_ids = (sp.device_ids["battery"][is_st] - STORAGE_ID0).astype(np.int64)
            for j, p in zip(st_ids.tolist(), st_p.tolist(), strict=True):
                sid = int(ctx.grid.storage.ids[j])
                v = round(float(p), 4)
                if abs(v - float(ctx.storage_cmd_mw[j])) > 1e-3:
                    acts.append(Action("storage", sid, v))
        return acts

    def decide(self, ctx: Any) -> list[Plan]:
        """The schedule's set points for this 15-minute step (one plan), a release, or none."""
        fd = ctx.flexdr
        if fd is None or ctx.forecast_injections is None or ctx.flex_signals is None:
            return []
        obs = ctx.obs
        now = obs.time.astype("datetime64[s]")
        sec = int((now - now.astype("datetime64[D]")) / np.timedelta64(1, "s"))
        if fd.active is not None:  # a DR event runs: it has precedence
            self.plan, self.plan_time, self.step_k, self.held = None, None, -1, False
            self._delta_bus = None
            return []
        if ctx.known_faults or ctx.tripped or not obs.energised.all() or obs.fpi.any():
            return self._release(ctx, "fault or outage on the feeder")
        if sec % FLEX_STEP_S >= obs.step_s:  # not the first loop step of a 15-minute interval
            return []
        k = -1
        if self.plan is not None and self.plan_time is not None:
            el = int((now - self.plan_time) / np.timedelta64(1, "s"))
            k = el // FLEX_STEP_S
            if el >= self.every_min * 60 or k >= self.plan.setpoints.steps:
                k = -1
        if k < 0:
            try:
                self.plan = self._replan(ctx, now)
            except GridpilotError as exc:  # e.g. an infeasible device request: said, not hidden
                self.errors += 1
                ctx.shared["flex_plan"] = {"time": str(now), "error": str(exc)[:300]}
                return self._release(ctx, f"planning failed: {exc}")
            self.plan_time = now - np.timedelta64(sec % FLEX_STEP_S, "s")
            k = 0
            ctx.shared["flex_plan"] = {
                "time": str(self.plan_time),
                "id": self.plan.setpoints.event_id,
                "horizon_h": self.horizon_steps * FLEX_STEP_S / 3600,
                "every_min": self.every_min,
                "storage": self.with_storage,
                **self.plan.summary(),
            }
        ap = self.plan
        assert ap is not None
        self.step_k = k
        sp = ap.setpoints
        is_st = sp.device_ids["battery"] >= STORAGE_ID0
        house = _subset_battery(sp, ~is_st)
        cmds = setpoint_commands(fd.devices, house, k, f"{sp.event_id}:{k}")
        acts = self._storage_actions(ctx, sp, k, is_st)
        new_delta = self._delta(ap, k, ctx)
        old = self._on_loads(ctx, *self._delta_bus) if self._delta_bus else 0.0
        load_delta = self._on_loads(ctx, *new_delta) - old
        self._delta_bus = new_delta
        self.held = True
        fleet_k = float(sum(v[k] for v in ap.fleet_mw.values()))
        info = {
            "id": sp.event_id,
            "step": k,
            "planned_import_mw": round(float(ap.import_mw[k]), 4),
            "planned_fleet_mw": round(fleet_k, 4),
            "fleet_base_mw": round(float(ap.fleet_base_mw[k]), 4),
            "devices": {c: int(v.size) for c, v in house.device_ids.items()},
            "planning_ms": round(ap.planning_ms, 1),
            "peak_mw": round(ap.peak_mw, 4),
            "peak_base_mw": round(ap.peak_base_mw, 4),
        }
        return [
            Plan(
                acts,
                f"flexibility schedule {sp.event_id} step {k}: fleet {fleet_k:+.3f} MW (own "
                f"{float(ap.fleet_base_mw[k]):+.3f} MW), planned import "
                f"{float(ap.import_mw[k]):.3f} MW; horizon peak {ap.peak_mw:.3f} MW against "
                f"{ap.peak_base_mw:.3f} MW with the devices on their own",
                self.name,
                {"_commands": cmds, "_load_delta_mw": load_delta, "flex_plan": info},
            )
        ]


__all__ = ["STORAGE_ID0", "FlexPlanPolicy"]
