"""Pluggable policies: each looks at the estimated state and proposes plans; the guard decides.

A policy is any object with ``name: str`` and ``decide(ctx: Context) -> list[Plan]``. The
built-in ones:

- :class:`FlisrPolicy`: hands the control room's indications (trips, FPIs, lost voltage) to
  ``gridpilot.control``'s FLISR engine and turns its switching plan into a :class:`Plan`,
  adding demand response when the present demand needs it.
- :class:`VoltagePolicy`: volt/var by look-ahead: forecast the next half hour, simulate it, and
  on a predicted voltage or loading violation pick the cheapest fix among tie swaps x demand
  response levels x battery discharge, all simulated in one batch.
- :class:`RenewableDropPolicy`: demand response when renewable output falls sharply.
- :class:`FrequencyPolicy`: battery response to a generator trip (reported by its relay).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.guard import GuardLimits
from gridpilot.agent.world import EV_DR_SHARE, Observation
from gridpilot.control import FlisrEngine, Indications, Limits
from gridpilot.errors import ValidationError
from gridpilot.model import ElementType, GenKind, Grid
from gridpilot.twin import Twin, energised, supply_tree


@dataclass
class Context:
    """What a policy may use: the model, the twin, the estimated state and the controller's own state.

    ``injections(dr_level, ev_factor, steps_ahead)`` gives estimated injections (MW, table order),
    optionally forecast ``steps_ahead`` steps into the future.
    """

    grid: Grid
    twin: Twin
    limits: GuardLimits
    obs: Observation
    history: deque[Observation]
    load_est_mw: np.ndarray
    gen_est_mw: np.ndarray
    dr_share: float | np.ndarray  # share of each load's demand DR level 1 sheds (or per load)
    dr_level: float
    dr_requests: dict[str, float]
    ev_factor: float
    storage_cmd_mw: np.ndarray
    known_faults: set[int]
    section_buses: set[int]
    pre_fault_closed: np.ndarray  # switch states before the latest trip
    normal_closed: np.ndarray
    forecast_ratio: Any  # callable(steps_ahead: np.ndarray) -> (k, n_load) multipliers
    shared: dict[str, Any] = field(default_factory=dict)
    tripped: set[int] = field(default_factory=set)  # switch ids protection reported tripped
    locked_open: list[int] = field(default_factory=list)  # bounds of isolated sections (ids)
    ev_est_mw: np.ndarray | None = None  # EV charging, last seen where now de-energised
    flex_est_mw: np.ndarray | None = None  # flexible loads, likewise
    v_est_pu: np.ndarray | None = None  # latest state estimate per bus (pu, NaN: none)
    ev_dr_share: float = EV_DR_SHARE  # share of EV-station charging DR level 1 defers
    flexdr: Any = None  # the field's device registry under demand response (FlexDR), if any
    # callable(minutes_ahead, load_offset_mw=None) -> forecast injections (k, n) per key, MW
    forecast_injections: Any = None
    flex_signals: Any = None  # callable(steps) -> gridpilot.flex.Signals from now (15-min steps)

    def estimated_violation(self, margin_pu: float = 0.0) -> bool:
        """True when the latest state estimate has a bus within ``margin_pu`` of (or beyond) the
        voltage band; False without an estimate."""
        if self.v_est_pu is None:
            return False
        v = self.v_est_pu[np.isfinite(self.v_est_pu)]
        lim = self.limits
        return bool(
            v.size and (v.min() < lim.v_min_pu + margin_pu or v.max() > lim.v_max_pu - margin_pu)
        )

    def injections(
        self,
        dr_level: float | None = None,
        ev_factor: float | None = None,
        load_mult: np.ndarray | None = None,
        load_cut: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Estimated injections after DR/EV control; ``load_mult`` scales loads per load
        (forecast); ``load_cut`` the share of each load DR sheds (default ``level x dr_share``,
        e.g. zero outside the buses a targeted event sheds at)."""
        g = self.grid
        lvl = self.dr_level if dr_level is None else dr_level
        evf = self.ev_factor if ev_factor is None else ev_factor
        p = self.load_est_mw * (1.0 if load_mult is None else load_mult)
        base_p = np.where(g.load["p_mw"] > 0, g.load["p_mw"], 1.0)
        pf = g.load["q_mvar"] / base_p
        cut = 1.0 - (lvl * self.dr_share if load_cut is None else np.asarray(load_cut))
        out: dict[str, np.ndarray] = {"load_p_mw": p * cut, "load_q_mvar": p * pf * cut}
        if len(g.generator):
            out["gen_p_mw"] = self.gen_est_mw.copy()
        if len(g.storage):
            out["storage_p_mw"] = self.storage_deliverable(self.storage_cmd_mw)
        if len(g.ev_charger):
            evs = self.ev_dr_share
            now = max(self.ev_factor * (1.0 - evs * self.dr_level), 1e-6)
            ev = (self.obs.ev_p_mw if self.ev_est_mw is None else self.ev_est_mw) / now
            out["ev_p_mw"] = ev * evf * (1.0 - evs * lvl)
        if len(g.flex_load):
            fl = (
                (self.obs.flex_p_mw if self.flex_est_mw is None else self.flex_est_mw)
                / max(1.0 - self.dr_level, 1e-6)
                if self.dr_level < 1
                else g.flex_load["p_mw"] * 0.5
            )
            out["flex_p_mw"] = fl * (1.0 - lvl)
        return out

    def storage_deliverable(self, p_mw: np.ndarray, hold_h: float = 0.5) -> np.ndarray:
        """Battery set points (MW) the batteries can hold for ``hold_h`` hours from their present
        state of charge; a discharge they cannot sustain counts as zero."""
        g = self.grid
        e_mwh = self.obs.storage_soc * g.storage["e_mwh"]
        room_mwh = (1.0 - self.obs.storage_soc) * g.storage["e_mwh"]
        p = np.asarray(p_mw, np.float64)
        ok = np.where(p < 0, e_mwh >= -p * hold_h, room_mwh >= p * hold_h)
        return np.where(ok, p, 0.0)


class Policy(Protocol):
    """A decision maker: ``decide(ctx)`` returns plans (possibly none)."""

    name: str

    def decide(self, ctx: Context) -> list[Plan]:
        """Plans for the present step."""
        ...


def batch_eval(
    twin: Twin, inj_rows: list[dict[str, np.ndarray]], closed_rows: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Simulate many (injections, switch states) scenarios in one twin batch.

    Returns per-scenario arrays ``vmin_pu``, ``vmax_pu``, ``max_loading_pct``, ``losses_kw``,
    ``converged`` and ``energised_buses``.
    """
    n = len(closed_rows)
    keys = inj_rows[0].keys()
    stacked = {k: np.stack([r[k] for r in inj_rows]) for k in keys}
    sc = np.stack(closed_rows)
    ts = twin.timeseries(n, switch_closed=sc, outputs=("v_pu",), **stacked)
    assert ts.v_pu is not None
    en = ts.v_pu > 0.05
    return {
        "vmin_pu": ts.vmin_pu,
        "vmax_pu": ts.vmax_pu,
        "max_loading_pct": ts.max_loading_pct,
        "losses_kw": ts.losses_kw,
        "converged": ts.converged,
        "energised_buses": en.sum(axis=1),
    }


def _ok(ev: dict[str, np.ndarray], lim: GuardLimits, margin: float) -> np.ndarray:
    return (
        ev["converged"]
        & (ev["vmin_pu"] >= lim.v_min_pu + margin)
        & (ev["vmax_pu"] <= lim.v_max_pu - margin)
        & (ev["max_loading_pct"] <= lim.loading_max_pct)
    )


_ENGINES: dict[tuple[Any, ...], FlisrEngine] = {}


def _grid_key(grid: Grid) -> str:
    """A digest of a grid's tables (what the FLISR engine depends on)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{grid.name}|{grid.f_hz}".encode())
    for name in sorted(grid.tables):
        h.update(name.encode())
        h.update(np.ascontiguousarray(grid.tables[name].data).tobytes())
    return h.hexdigest()


class FlisrPolicy:
    """Fault location, isolation and service restoration by :mod:`gridpilot.control`'s FLISR.

    Acts when protection has operated (an FPI picked up or a breaker trip was reported) and
    buses are dead. The indications the control room has (:class:`~gridpilot.control.Indications`:
    reported trips, every FPI's state, lost voltage at load buses) go to one
    :class:`~gridpilot.control.FlisrEngine` built once per grid, with the switch states before
    the trip and the bounds of earlier isolations kept open. Its switching plan (isolate,
    reclose, sectionalise, restore; priority-weighted shedding where the feeders cannot take
    everything) becomes the agent's :class:`Plan`.

    The engine plans on the grid's nominal injections; this policy then simulates the plan's
    final state in the agent's twin at the present estimated demand and, if that leaves a
    voltage or loading outside the guard's limits, adds the lowest demand-response level that
    fixes it. If none does, it plans again on a one-off engine over a grid copy carrying the
    present estimate, and failing that it only isolates and recloses. ``budget_ms`` is the
    engine's search budget: generous by default so that a busy machine does not change the
    decision (the loop runs at minute steps).
    """

    name = "flisr"

    def __init__(
        self,
        budget_ms: float = 1000.0,
        dr_levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0),
        margin_pu: float = 0.005,
    ) -> None:
        if budget_ms <= 0:
            raise ValidationError(f"budget_ms: must be positive, got {budget_ms}")
        self.budget_ms = float(budget_ms)
        self.dr_levels = tuple(float(x) for x in dr_levels)
        self.margin_pu = float(margin_pu)
        self._engine: FlisrEngine | None = None
        self._engine_grid: Grid | None = None

    def engine(self, grid: Grid, limits: GuardLimits) -> FlisrEngine:
        """The control engine for ``grid``: built once per grid content and limits in a process
        (orchestrators on copies of one grid, as in N-1 sweeps and scenario batches, share it)."""
        if self._engine is None or self._engine_grid is not grid:
            lim = Limits(
                v_min_pu=limits.v_min_pu,
                v_max_pu=limits.v_max_pu,
                max_loading_pct=limits.loading_max_pct,
                relax_to_prefault=False,
            )
            key = (_grid_key(grid), lim, self.budget_ms)
            eng = _ENGINES.get(key)
            if eng is None:
                eng = FlisrEngine(grid.copy(), lim, verify="auto", budget_ms=self.budget_ms)
                _ENGINES[key] = eng
                while len(_ENGINES) > 8:
                    _ENGINES.pop(next(iter(_ENGINES)))
            self._engine, self._engine_grid = eng, grid
        return self._engine

    def _check(
        self, ctx: Context, steps: list[Any], levels: list[float]
    ) -> tuple[list[Action], np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Actions of switching ``steps``, final switch states, and their simulation at the
        present estimated demand for each DR level (one twin batch) with the within-limits flags."""
        g = ctx.grid
        actions = [Action("switch", a.switch, 1.0 if a.close else 0.0) for a in steps]
        closed = ctx.obs.switch_closed.copy()
        for a in actions:
            closed[int(g.switch.index_of([int(a.target or 0)])[0])] = bool(a.value)
        inj = [ctx.injections(dr_level=lv) for lv in levels]
        ev = batch_eval(ctx.twin, inj, [closed] * len(levels))
        return actions, closed, ev, _ok(ev, ctx.limits, self.margin_pu)

    def _present_engine(self, ctx: Context, dr_level: float) -> FlisrEngine:
        """A one-off engine on a copy of the grid carrying the present estimated injections."""
        g = ctx.grid.copy()
        inj = ctx.injections(dr_level=dr_level)
        g.load["p_mw"] = inj["load_p_mw"]
        g.load["q_mvar"] = inj["load_q_mvar"]
        for table, key in (
            ("generator", "gen_p_mw"),
            ("storage", "storage_p_mw"),
            ("ev_charger", "ev_p_mw"),
            ("flex_load", "flex_p_mw"),
        ):
            if key in inj and len(g[table]):
                g[table]["p_mw"] = inj[key]
        eng = self.engine(ctx.grid, ctx.limits)
        return FlisrEngine(g, eng.limits, verify="auto", budget_ms=self.budget_ms)

    @staticmethod
    def indications(ctx: Context) -> Indications:
        """What the control room sees: reported trips still open, every FPI, dead load buses."""
        g, obs = ctx.grid, ctx.obs
        sw = g.switch
        tripped = [
            int(x) for x in sorted(ctx.tripped) if not obs.switch_closed[sw.index_of([int(x)])[0]]
        ]
        has_fpi = np.flatnonzero(sw["fpi"])
        fpi = {int(sw.ids[k]): bool(obs.fpi[k]) for k in has_fpi}
        lb = g.bus.position_map(g.load["bus"]) if len(g.load) else np.zeros(0, np.int64)
        dead = np.unique(lb[~obs.energised[lb]])
        return Indications(tripped=tripped, fpi=fpi, lost_voltage=g.bus.ids[dead].tolist())

    def decide(self, ctx: Context) -> list[Plan]:
        """A FLISR plan, a release of this policy's demand response, or none."""
        obs, g = ctx.obs, ctx.grid
        if ctx.dr_requests.get(self.name, 0.0) > 0 and not ctx.known_faults:
            return [
                Plan(
                    [Action("dr", None, 0.0)],
                    "faults repaired: release the demand response used for restoration",
                    self.name,
                    {"dr_level": 0.0},
                )
            ]
        if not (obs.fpi.any() or ctx.tripped) or obs.energised.all():
            return []
        eng = self.engine(g, ctx.limits)
        ind = self.indications(ctx)
        res = eng.respond(ind, switch_closed=ctx.pre_fault_closed, locked_open=ctx.locked_open)
        if not res.plan:
            return []
        levels = [ctx.dr_level] + [lv for lv in self.dr_levels if lv > ctx.dr_level]
        # the engine planned on nominal injections: check the final state at present demand
        basis = "nominal demand"
        actions, closed, ev, ok = self._check(ctx, res.plan, levels)
        if not ok.any():
            # too much load now for that plan even with full DR: plan again on the present
            # estimate (at the highest DR level), then, failing that, isolate and reclose only
            pres = self._present_engine(ctx, levels[-1]).respond(
                ind, switch_closed=ctx.pre_fault_closed, locked_open=ctx.locked_open
            )
            actions, closed, ev, ok = self._check(ctx, pres.plan, levels)
            basis = "present demand (nominal plan outside limits now)"
            if ok.any():
                res = pres
            else:
                steps = [a for a in res.plan if a.reason in ("isolate", "reclose")]
                actions, closed, ev, ok = self._check(ctx, steps, levels)
                basis = "isolation only (no restoration within limits at present demand)"
                res.plan, res.restore, res.open_for_restore = steps, [], []
        pick = int(np.flatnonzero(ok)[0]) if ok.any() else 0
        dr_level = levels[pick]
        if dr_level != ctx.dr_level:
            actions.insert(0, Action("dr", None, dr_level))
        actions.append(Action("reset_fpi"))
        iso_pos = eng.sections.buses_of(res.isolated_sections)
        section_buses = sorted(int(x) for x in g.bus.ids[iso_pos])
        after_dead = ~energised(g, closed)
        after_dead[iso_pos] = False
        if ctx.section_buses:  # sections isolated for earlier faults stay off by design
            after_dead[g.bus.position_map(np.asarray(sorted(ctx.section_buses), np.int64))] = False
        n_dead = int(after_dead.sum())
        reason = (
            f"fault located in section(s) {res.isolated_sections} (lines {res.located_lines[:6]},"
            f" buses {section_buses[:6]}); isolate with switch(es) {res.isolate},"
            f" restore over {res.restore or 'nothing'}"
            + (f" after opening {res.open_for_restore}" if res.open_for_restore else "")
            + (
                f"; demand response {dr_level:.2f} to hold limits"
                if dr_level != ctx.dr_level
                else ""
            )
            + (f"; {n_dead} healthy bus(es) stay off" if n_dead else "")
        )
        if not res.verified:  # first, so that shortened event texts still say it
            reason = "plan NOT verified (fails its limits in the twin at nominal demand): " + reason
        summary = res.summary()
        data = {
            "indications": {"tripped": ind.tripped, "fpi": [k for k, v in ind.fpi.items() if v]},
            "section_buses": section_buses,
            "faulted_lines": res.located_lines,
            "boundary_switches": res.locked_open,
            "flisr": {
                k: summary[k]
                for k in (
                    "located_sections",
                    "candidates",
                    "isolate",
                    "restore",
                    "open_for_restore",
                    "plan",
                    "shed",
                    "restored_kw",
                    "unserved_kw",
                    "vmin_pu_after",
                    "verified",
                    "verified_by",
                    "decision_ms",
                    "notes",
                )
            },
            "present_demand_check": {
                "plan_basis": basis,
                "vmin_pu": round(float(ev["vmin_pu"][pick]), 4),
                "max_loading_pct": round(float(ev["max_loading_pct"][pick]), 2),
                "within_limits": bool(ok[pick]),
            },
            "unrestored_buses": g.bus.ids[after_dead].tolist(),
            "dr_level": dr_level,
        }
        return [Plan(actions, reason, self.name, data, tuple(res.located_lines))]


class VoltagePolicy:
    """Volt/var and congestion by look-ahead: forecast, simulate, fix predicted violations cheaply.

    Every ``every_steps`` steps it forecasts ``horizon_steps`` ahead and simulates the present
    configuration at the worst step. On a predicted violation it simulates, in one batch, tie
    swaps (close a tie, open a switch on the loop it forms) x DR levels, with batteries
    discharging, and picks: no violation first, then the lowest DR level, fewest switching
    operations, lowest losses. Without a predicted violation it releases DR when it can.
    """

    name = "voltvar"

    def __init__(
        self,
        every_steps: int = 5,
        horizon_steps: int = 30,
        margin_pu: float = 0.008,
        dr_levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    ) -> None:
        self.every_steps = every_steps
        self.horizon_steps = horizon_steps
        self.margin_pu = margin_pu
        self.dr_levels = dr_levels

    def _worst_step_mult(self, ctx: Context) -> np.ndarray:
        ahead = np.arange(0, self.horizon_steps + 1, max(self.horizon_steps // 6, 1))
        mult = ctx.forecast_ratio(ahead)  # (k, n_load)
        tot = (mult * ctx.load_est_mw).sum(axis=1)
        return mult[int(np.argmax(tot))]

    def decide(self, ctx: Context) -> list[Plan]:
        """A volt/var plan, or none."""
        obs, g, lim = ctx.obs, ctx.grid, ctx.limits
        # look ahead every ``every_steps`` steps, and at once when the state estimate shows a
        # bus outside the band (not merely within the margin: near the band for hours in a
        # heatwave, that would run the look-ahead every step)
        if (
            (obs.t % self.every_steps and not ctx.estimated_violation())
            or not obs.energised.any()
            or (obs.fpi.any() and not obs.energised.all())
        ):
            return []
        mult = self._worst_step_mult(ctx)
        own = self.name
        other_dr = max([v for k, v in ctx.dr_requests.items() if k != own], default=0.0)
        my_dr = ctx.dr_requests.get(own, 0.0)
        closed = obs.switch_closed
        bnd = self._boundary(ctx)
        blocked = set(g.switch.index_of(bnd).tolist()) if bnd else set()
        configs: list[tuple[np.ndarray, list[Action]]] = [(closed.copy(), [])]
        ties = [int(k) for k in np.flatnonzero(~closed & g.switch["remote"]) if k not in blocked]
        tree = supply_tree(g, closed) if ties else None
        for t in ties:
            for s in loop_switches(g, closed, t, tree):
                if s in blocked or g.switch["kind"][s] == 0:
                    continue
                c = closed.copy()
                c[t], c[s] = True, False
                configs.append(
                    (
                        c,
                        [
                            Action("switch", int(g.switch.ids[s]), 0.0),
                            Action("switch", int(g.switch.ids[t]), 1.0),
                        ],
                    )
                )
        # first: the present configuration at the present DR level
        base_inj = ctx.injections(dr_level=max(other_dr, my_dr), load_mult=mult)
        ev0 = batch_eval(ctx.twin, [base_inj], [closed])
        ok0 = bool(_ok(ev0, lim, self.margin_pu)[0])
        stor = len(g.storage) > 0
        if ok0:
            # batteries discharging at another policy's set point (the flexibility schedule's)
            # are not this policy's to release
            mine = stor and ctx.shared.get("storage_by", own) == own
            if my_dr <= 0 and not (mine and np.any(ctx.storage_cmd_mw < 0)):
                return []
            # try releasing: lower DR level, batteries idle
            lower = [lv for lv in self.dr_levels if lv < my_dr] or [0.0]
            rows = [ctx.injections(dr_level=max(other_dr, lv), load_mult=mult) for lv in lower]
            for r in rows:
                if "storage_p_mw" in r:
                    r["storage_p_mw"] = np.zeros(len(g.storage))
            ev = batch_eval(ctx.twin, rows, [closed] * len(rows))
            ok = _ok(ev, lim, self.margin_pu + 0.004)
            if not ok.any():
                return []
            lv = lower[int(np.flatnonzero(ok)[0])]
            acts = [Action("dr", None, lv)] + [
                Action("storage", int(i), 0.0) for i in g.storage.ids
            ]
            return [
                Plan(
                    acts,
                    f"forecast within limits without it: release demand response to {lv:.2f}",
                    own,
                    {"forecast_worst_vmin_pu": round(float(ev["vmin_pu"][0]), 4), "dr_level": lv},
                )
            ]
        rows_i, rows_c, meta = [], [], []
        for lv in self.dr_levels:
            if lv < my_dr:
                continue
            inj = ctx.injections(dr_level=max(other_dr, lv), load_mult=mult)
            if stor:
                inj["storage_p_mw"] = ctx.storage_deliverable(-g.storage["p_max_mw"])
            for ci, (c, _acts) in enumerate(configs):
                rows_i.append(inj)
                rows_c.append(c)
                meta.append((lv, ci))
        ev = batch_eval(ctx.twin, rows_i, rows_c)
        ok = _ok(ev, lim, self.margin_pu)
        if ok.any():
            cand = np.flatnonzero(ok)
            key = [(meta[i][0], len(configs[meta[i][1]][1]), ev["losses_kw"][i]) for i in cand]
            best = int(cand[min(range(len(cand)), key=lambda j: key[j])])
        else:
            best = int(np.nanargmax(np.where(ev["converged"], ev["vmin_pu"], -np.inf)))
        lv, ci = meta[best]
        acts = list(configs[ci][1])
        dr_buses: list[int] | None = None
        if ok.any() and lv > 0 and lv != my_dr and np.ndim(ctx.dr_share):
            # DR by devices per bus (FlexDR): at the buses behind an undervoltage when that
            # suffices, the fewest buses first
            tg = self._targeted(ctx, mult, other_dr, configs[ci][0], stor)
            if tg is not None:
                lv, dr_buses = tg
        if lv != my_dr or dr_buses:
            acts.append(Action("dr", None, lv))
        if stor:
            sp = ctx.storage_deliverable(-g.storage["p_max_mw"])
            acts += [
                Action("storage", int(i), float(v))
                for i, v in zip(g.storage.ids, sp, strict=True)
                if v != ctx.storage_cmd_mw[k_i(g, i)]
            ]
        if not acts:
            return []
        reason = (
            f"forecast lowest voltage {ev0['vmin_pu'][0]:.3f} pu / loading {ev0['max_loading_pct'][0]:.0f} % "
            f"in the next {self.horizon_steps} steps; fix: "
            + ", ".join(a.describe() for a in acts)
            + f" -> {ev['vmin_pu'][best]:.3f} pu, {ev['max_loading_pct'][best]:.0f} %"
            + ("" if ok.any() else " (best available, still outside limits)")
            + (f"; demand response at buses {dr_buses} only" if dr_buses else "")
        )
        data: dict[str, Any] = {
            "forecast_worst_vmin_pu": round(float(ev0["vmin_pu"][0]), 4),
            "after_vmin_pu": round(float(ev["vmin_pu"][best]), 4),
            "candidates": len(rows_c),
            "dr_level": lv,
        }
        if dr_buses:
            data["dr_buses"] = dr_buses
        return [
            Plan(
                acts,
                reason,
                own,
                data,
            )
        ]

    def _targeted(
        self,
        ctx: Context,
        mult: np.ndarray,
        other_dr: float,
        closed: np.ndarray,
        stor: bool,
    ) -> tuple[float, list[int]] | None:
        """DR at the buses behind the lowest voltage: (level, bus ids) of the smallest subtree
        of the supply tree containing that bus (going up from it) whose devices alone keep the
        forecast within limits at the lowest level; None when the problem is no undervoltage or
        no such subtree short of the whole feeder suffices (then DR is feeder-wide)."""
        g, lim = ctx.grid, ctx.limits
        share = np.asarray(ctx.dr_share, np.float64)
        n_load = len(g.load)

        def inj_for(lv: float, mask: np.ndarray) -> dict[str, np.ndarray]:
            cut = np.maximum(other_dr * share, lv * share * mask)
            inj = ctx.injections(dr_level=max(other_dr, lv), load_mult=mult, load_cut=cut)
            if stor:
                inj["storage_p_mw"] = ctx.storage_deliverable(-g.storage["p_max_mw"])
            return inj

        base = inj_for(0.0, np.zeros(n_load))
        ts = ctx.twin.timeseries(
            1,
            switch_closed=closed[None],
            outputs=("v_pu",),
            **{k: v[None] for k, v in base.items()},
        )
        v = np.asarray(ts.v_pu, np.float64)[0]
        on = v > 0.05
        if not on.any():
            return None
        b = int(np.argmin(np.where(on, v, np.inf)))
        if v[b] >= lim.v_min_pu + self.margin_pu:
            return None  # not an undervoltage (a loading problem): feeder-wide
        tree = supply_tree(g, closed)
        par = tree.parent
        anc: list[int] = []
        x = b
        while x >= 0 and par[x] >= 0:
            anc.append(x)
            x = int(par[x])
        n = len(g.bus)
        pos = np.full(n, -1, np.int64)
        pos[anc] = np.arange(len(anc))
        member = np.zeros((len(anc), n), bool)
        cur = np.arange(n)
        live = tree.supplied.copy()
        while live.any():
            hit = live & (pos[np.clip(cur, 0, None)] >= 0)
            member[pos[cur[hit]], np.flatnonzero(hit)] = True
            cur = np.where(live, par[np.clip(cur, 0, None)], -1)
            live = cur >= 0
        lb = g.bus.position_map(g.load["bus"])
        cands: list[np.ndarray] = []
        seen: set[bytes] = set()
        for i in range(len(anc)):
            m = member[i][lb] & (share > 0)
            if not m.any() or m.sum() == (share > 0).sum():
                continue
            if m.tobytes() in seen:
                continue
            seen.add(m.tobytes())
            cands.append(m)
        levels = [lv for lv in self.dr_levels if lv > 0]
        if not cands or not levels:
            return None
        rows = [inj_for(lv, m.astype(np.float64)) for m in cands for lv in levels]
        evb = batch_eval(ctx.twin, rows, [closed] * len(rows))
        okb = _ok(evb, lim, self.margin_pu).reshape(len(cands), len(levels))
        for i, m in enumerate(cands):  # nested, smallest first
            if okb[i].any():
                lv = levels[int(np.flatnonzero(okb[i])[0])]
                buses = sorted({int(x) for x in g.load["bus"][m]})
                return lv, buses
        return None

    @staticmethod
    def _boundary(ctx: Context) -> list[int]:
        return [int(x) for x in ctx.shared.get("boundary_switches", [])]


class RenewableDropPolicy:
    """Demand response when renewables drop: curtail enrolled demand to make up the lost MW.

    Compares wind+PV output with ``window_steps`` ago; a drop of at least ``min_drop_mw`` and
    ``threshold_share`` of the output then (faster than sunset) calls DR at the level that
    covers the drop (enrolled demand is ``dr_share`` of the loads plus flexible loads) for
    ``hold_steps`` steps.
    """

    name = "dr"

    def __init__(
        self,
        window_steps: int = 10,
        threshold_share: float = 0.35,
        min_drop_mw: float = 0.1,
        hold_steps: int = 60,
    ) -> None:
        self.window_steps = window_steps
        self.threshold_share = threshold_share
        self.min_drop_mw = min_drop_mw
        self.hold_steps = hold_steps
        self._until = -1

    def decide(self, ctx: Context) -> list[Plan]:
        """A DR plan, or none."""
        g, obs = ctx.grid, ctx.obs
        cur = ctx.dr_requests.get(self.name, 0.0)
        if cur > 0 and obs.t >= self._until:
            return [
                Plan(
                    [Action("dr", None, 0.0)],
                    "renewable drop over: release demand response",
                    self.name,
                    {"dr_level": 0.0},
                )
            ]
        if not len(g.generator) or len(ctx.history) <= self.window_steps or cur > 0:
            return []
        ren = np.isin(g.generator["kind"], (GenKind.WIND, GenKind.PV))
        cap = float(g.generator["p_mw"][ren].sum())
        if cap <= 0:
            return []
        then = ctx.history[-self.window_steps - 1]
        gb = g.bus.position_map(g.generator["bus"])
        ren = (
            ren & obs.energised[gb] & then.energised[gb]
        )  # a unit cut off by an outage is no renewable drop
        before = float(then.gen_p_mw[ren].sum())
        drop = before - float(obs.gen_p_mw[ren].sum())
        if drop < max(self.min_drop_mw, self.threshold_share * before):
            return []
        flex = obs.flex_p_mw.sum() if obs.flex_p_mw.size else 0.0
        if np.ndim(ctx.dr_share) == 0:
            sh = float(ctx.dr_share)  # type: ignore[arg-type]
            enrolled = float(obs.load_p_mw.sum() / max(1 - ctx.dr_level * sh, 1e-6) * sh + flex)
        else:  # per load (devices under FlexDR)
            sh_l = np.asarray(ctx.dr_share)
            un = obs.load_p_mw / np.maximum(1 - ctx.dr_level * sh_l, 1e-6)
            enrolled = float((un * sh_l).sum() + flex)
        lvl = float(np.clip(np.ceil(drop / max(enrolled, 1e-6) * 4) / 4, 0.25, 1.0))
        self._until = obs.t + self.hold_steps
        return [
            Plan(
                [Action("dr", None, lvl)],
                f"renewable output fell {drop:.2f} MW (from {before:.2f} MW; {cap:.2f} MW installed) in "
                f"{self.window_steps} steps: demand response level {lvl:.2f} covers about "
                f"{min(lvl * enrolled, drop):.2f} MW",
                self.name,
                {"drop_mw": round(drop, 4), "enrolled_mw": round(enrolled, 4), "dr_level": lvl},
            )
        ]


class FrequencyPolicy:
    """Frequency response: batteries discharge to replace a tripped generator for ``hold_steps``."""

    name = "frequency"

    def __init__(self, hold_steps: int = 15) -> None:
        self.hold_steps = hold_steps
        self._until = -1
        self._active = False

    def decide(self, ctx: Context) -> list[Plan]:
        """A battery plan, or none."""
        g, obs = ctx.grid, ctx.obs
        if not len(g.storage):
            return []
        trips = [e for e in obs.events if e.get("kind") == "device_trip"]
        if trips:
            lost = 0.0
            if len(ctx.history) > 1:
                prev = ctx.history[-2]
                lost = float(max(prev.gen_p_mw.sum() - obs.gen_p_mw.sum(), 0.0))
            pmax = g.storage["p_max_mw"]
            share = pmax / max(pmax.sum(), 1e-9)
            p = np.minimum(pmax, max(lost, 0.0) * share) if lost > 0 else pmax
            self._until = obs.t + self.hold_steps
            self._active = True
            acts = [
                Action("storage", int(i), -float(v)) for i, v in zip(g.storage.ids, p, strict=True)
            ]
            return [
                Plan(
                    acts,
                    f"generator trip reported ({trips[0].get('generator')}): {lost:.2f} MW lost;"
                    f" batteries discharge {float(p.sum()):.2f} MW",
                    self.name,
                    {"lost_mw": lost},
                )
            ]
        if self._active and obs.t >= self._until:
            self._active = False
            return [
                Plan(
                    [Action("storage", int(i), 0.0) for i in g.storage.ids],
                    "frequency response period over: batteries back to idle",
                    self.name,
                    {},
                )
            ]
        return []


def loop_switches(grid: Grid, closed: np.ndarray, tie: int, tree: Any = None) -> list[int]:
    """Positions of closed line switches on the loop that closing switch position ``tie`` forms.

    Empty when the tie is not a line switch or one of its ends is unsupplied. ``tree``: the
    :func:`~gridpilot.twin.supply_tree` of ``closed`` when the caller has it already.
    """
    sw, ln = grid.switch, grid.line
    if sw["et"][tie] != ElementType.LINE:
        return []
    p = int(ln.index_of(sw["element"][tie])[0])
    pm = grid.bus.position_map
    a, b = int(pm(ln["from_bus"][p : p + 1])[0]), int(pm(ln["to_bus"][p : p + 1])[0])
    tree = supply_tree(grid, closed) if tree is None else tree
    if not (tree.supplied[a] and tree.supplied[b]):
        return []

    def path(x: int) -> list[int]:
        out = [x]
        while tree.parent[x] >= 0:
            x = int(tree.parent[x])
            out.append(x)
        return out

    pa, pb = path(a), path(b)
    common = set(pa) & set(pb)
    loop_nodes = [x for x in pa if x not in common] + [x for x in pb if x not in common]
    loop_nodes += [next(x for x in pa if x in common)]
    on_loop = np.zeros(len(grid.bus), bool)
    on_loop[loop_nodes] = True
    ks = np.flatnonzero((sw["et"] == ElementType.LINE) & closed)
    q = ln.index_of(sw["element"][ks])
    f, t = pm(ln["from_bus"][q]), pm(ln["to_bus"][q])
    par = tree.parent
    hit = (q != p) & on_loop[f] & on_loop[t] & ((par[f] == t) | (par[t] == f))
    return [int(k) for k in ks[hit]]


def k_i(grid: Grid, storage_id: int) -> int:
    """Table position of a battery."""
    return int(grid.storage.index_of(int(storage_id))[0])


def default_policies() -> list[Any]:
    """The built-in policy set: FLISR, volt/var look-ahead, DR on renewable drop, frequency response."""
    return [FlisrPolicy(), VoltagePolicy(), RenewableDropPolicy(), FrequencyPolicy()]
