"""Pluggable policies: each looks at the estimated state and proposes plans; the guard decides.

A policy is any object with ``name: str`` and ``decide(ctx: Context) -> list[Plan]``
(:class:`~gridpilot.agent.context.Policy`; :class:`~gridpilot.agent.context.Context` and
:func:`~gridpilot.agent.context.batch_eval` live in :mod:`gridpilot.agent.context`,
:class:`VoltagePolicy` in :mod:`gridpilot.agent.voltpolicy`; all importable from here). The
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
from typing import Any

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.context import (
    Context,
    FlexSignals,
    ForecastInjections,
    ForecastRatio,
    Policy,
    _ok,
    batch_eval,
)
from gridpilot.agent.guard import GuardLimits
from gridpilot.agent.voltpolicy import VoltagePolicy, k_i, loop_switches
from gridpilot.control import FlisrEngine, Indications, Limits
from gridpilot.errors import ValidationError
from gridpilot.model import GenKind, Grid
from gridpilot.twin import energised

_ENGINES: dict[tuple[Any, ...], FlisrEngine] = {}


def _grid_key(grid: Grid) -> str:
    """A digest of a grid's tables (what the FLISR engine depends on)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{grid.name}|{grid.f_hz}".encode())
    for name in sorted(grid.tables):
        h.update(name.encode())
        h.update(np.ascontiguousarray(grid.tables[name].data).tobytes())
    return h.hexdigest()


# the FLISR summary fields a FLISR plan carries in its data (in this order)
_FLISR_SUMMARY_KEYS: tuple[str, ...] = (
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
            lim = Limits.from_limits(limits.operating, relax_to_prefault=False)
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

    def _at_present_demand(
        self, ctx: Context, ind: Indications, res: Any, levels: list[float]
    ) -> tuple[Any, str, tuple[list[Action], np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """The engine's response ``res`` checked at the present demand for each DR level: kept,
        else planned again on the present estimate, else cut to isolation and reclosing.
        Returns the response, its basis and :meth:`_check`'s result for it."""
        # the engine planned on nominal injections: check the final state at present demand
        basis = "nominal demand"
        checked = self._check(ctx, res.plan, levels)
        if checked[3].any():
            return res, basis, checked
        # too much load now for that plan even with full DR: plan again on the present
        # estimate (at the highest DR level), then, failing that, isolate and reclose only
        pres = self._present_engine(ctx, levels[-1]).respond(
            ind, switch_closed=ctx.pre_fault_closed, locked_open=ctx.locked_open
        )
        checked = self._check(ctx, pres.plan, levels)
        basis = "present demand (nominal plan outside limits now)"
        if checked[3].any():
            return pres, basis, checked
        steps = [a for a in res.plan if a.reason in ("isolate", "reclose")]
        checked = self._check(ctx, steps, levels)
        basis = "isolation only (no restoration within limits at present demand)"
        res.plan, res.restore, res.open_for_restore = steps, [], []
        return res, basis, checked

    @staticmethod
    def indications(ctx: Context) -> Indications:
        """What the control room sees: reported trips still open, every FPI, dead load buses."""
        g, obs = ctx.grid, ctx.obs
        sw = g.switch
        tripped = [
            int(x) for x in sorted(ctx.tripped) if not obs.switch_closed[sw.index_of([int(x)])[0]]
        ]
        has_fpi = np.flatnonzero(sw["fpi"])
        fpi: dict[int, bool | None] = {int(sw.ids[k]): bool(obs.fpi[k]) for k in has_fpi}
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
        res, basis, (actions, closed, ev, ok) = self._at_present_demand(ctx, ind, res, levels)
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
            "flisr": {k: summary[k] for k in _FLISR_SUMMARY_KEYS},
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


def default_policies() -> list[Any]:
    """The built-in policy set: FLISR, volt/var look-ahead, DR on renewable drop, frequency response."""
    return [FlisrPolicy(), VoltagePolicy(), RenewableDropPolicy(), FrequencyPolicy()]


__all__ = [
    "Context",
    "FlexSignals",
    "FlisrPolicy",
    "ForecastInjections",
    "ForecastRatio",
    "FrequencyPolicy",
    "Policy",
    "RenewableDropPolicy",
    "VoltagePolicy",
    "batch_eval",
    "default_policies",
    "k_i",
    "loop_switches",
]
