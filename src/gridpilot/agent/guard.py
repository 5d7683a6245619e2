"""The safety guard: every plan is checked, and simulated in the twin, before it reaches the field.

Checks, in order (a plan is refused on the first class of failure, with every reason listed):

1. *Rate and count limits*: switching operations per plan, per switch per hour, per hour in
   total, and plans per minute.
2. *Device rules*: switches must exist and be remote-controllable; a disconnector is never
   operated while either side is energised; DR and EV levels within [0, 1]; battery set
   points within rating.
3. *Never energise a faulted section*: every intermediate switch state of the sequence is
   checked, not only the final one.
4. *No unplanned interruption*: buses energised before must stay energised, except the
   faulted section the plan declares it isolates.
5. *Simulated in the twin*: the final state must converge, be radial (if required) and keep
   voltages and loadings within limits, or at least not make an existing violation worse.
6. *Per node-phase* (a three-phase feeder, switching plans and regulator tap commands): the
   same voltage rules per node-phase in the unbalanced twin of the feeder model, with the
   plan's taps held (:mod:`gridpilot.agent.phaseguard`). A tap command needs that model: on a
   balanced grid it is refused.

The regulator taps the loop commanded and the field holds (executed plans' ``tap`` actions,
recorded by :meth:`SafetyGuard.commit` until :meth:`SafetyGuard.release_taps` at the crew's
report) are part of every check: the balanced twin's before and after states run with them on
the view's transformers (and the after state with the plan's own taps too), as does the
node-phase check.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.agent.actions import Plan
from gridpilot.model import Grid, SwitchKind, branch_status
from gridpilot.model.limits import OperatingLimits
from gridpilot.twin import Injections, PowerFlowResult, Twin, energised, meshes


@dataclass(frozen=True)
class GuardLimits(OperatingLimits):
    """Limits the guard enforces: the shared :class:`~gridpilot.model.limits.OperatingLimits`
    (voltages in pu, loading in percent) plus tolerances and rate limits (times in seconds).

    ``loading_max_pct`` applies to every line (current over its rating, I/Imax) and every
    transformer (apparent power over its rating, S/Sn, the larger of its two sides; pandapower's
    I/In reads S/Sn x Vn/V, e.g. 5 % more at 0.95 pu: see docs/flisr.md). Build it from shared
    limits with :meth:`from_limits`.
    """

    v_min_pu: float = 0.90
    v_max_pu: float = 1.10
    loading_max_pct: float = 100.0  # lines I/Imax and transformers S/Sn (larger side), %
    tolerance_pu: float = 0.002
    max_switch_ops_per_plan: int = 12
    max_ops_per_switch_per_hour: int = 4
    max_switch_ops_per_hour: int = 60
    max_plans_per_minute: int = 6
    max_tap_ops_per_regulator_per_hour: int = 8  # SCADA tap commands (wear, hunting)
    require_radial: bool = True
    remote_only: bool = True

    @classmethod
    def from_limits(cls, limits: OperatingLimits, **rest: Any) -> GuardLimits:
        """Guard limits holding the values of the shared ``limits``; ``rest``: the guard's own
        fields (tolerance, rate limits)."""
        if isinstance(limits, GuardLimits) and not rest:
            return limits
        return cls(limits.v_min_pu, limits.v_max_pu, limits.loading_max_pct, **rest)


@dataclass
class Verdict:
    """The guard's answer: ``ok`` and, if not, every reason; ``before``/``after`` simulated figures."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "ok": self.ok,
            "reasons": self.reasons,
            "before": self.before,
            "after": self.after,
            "checks": self.checks,
        }


def _sim_summary(grid: Grid, res: Any) -> dict[str, Any]:
    on = res.energised
    v = res.v_pu[on]
    return {
        "converged": bool(res.converged),
        "vmin_pu": round(float(v.min()), 5) if v.size and res.converged else None,
        "vmax_pu": round(float(v.max()), 5) if v.size and res.converged else None,
        # lines by current (I/Imax), transformers by apparent power (S/Sn, the larger side):
        # the guard's loading limit covers both (docs/flisr.md, "Transformer loading")
        "max_loading_pct": round(float(res.max_loading_pct), 2)
        if res.converged and (res.line_loading_pct.size or res.trafo_loading_pct.size)
        else None,
        "max_loading_branch": res.max_loading_branch if res.converged else None,
        "losses_kw": round(float(res.losses_kw), 2) if res.converged else None,
        "energised_buses": int(on.sum()),
        "buses": len(grid.bus),
    }


@dataclass
class _Walk:
    """A plan walked through the device rules (:meth:`SafetyGuard._walk`): switch states after
    each switching action, the final states, the injections (MW, by Injections field name) and the reasons."""

    states: list[np.ndarray]
    closed: np.ndarray
    injections: dict[str, Any]
    reasons: list[str]
    taps: dict[int, float] = field(default_factory=dict)


class SafetyGuard:
    """Checks plans against limits and simulates them in the twin.

    ``SafetyGuard(grid, twin=None, limits=None)``; :meth:`check` returns a :class:`Verdict`
    without side effects; :meth:`commit` records an executed plan for the rate limits.
    """

    def __init__(
        self, grid: Grid, twin: Twin | None = None, limits: OperatingLimits | None = None
    ) -> None:
        self.grid = grid
        self.twin = twin or Twin(grid)
        self.limits = GuardLimits.from_limits(limits) if limits is not None else GuardLimits()
        # the node-phase check of switching plans on a three-phase feeder (PhaseCheck), set by
        # the orchestrator on a PhaseAwareWorld; None on balanced grids
        self.phase: Any = None
        self._ops: deque[tuple[float, int]] = deque()  # (time s, switch position)
        self._tap_ops: deque[tuple[float, int]] = deque()  # (time s, regulator id)
        self._plans: deque[float] = deque()
        self._tap_twins: dict[bytes, Twin] = {}  # the balanced twin per view tap state

    def _prune(self, now_s: float) -> None:
        for ops in (self._ops, self._tap_ops):
            while ops and ops[0][0] < now_s - 3600.0:
                ops.popleft()
        while self._plans and self._plans[0] < now_s - 60.0:
            self._plans.popleft()

    def faulted_energised(
        self,
        closed: np.ndarray,
        faulted_lines: set[int] | tuple[int, ...],
        section_buses: set[int] | None = None,
    ) -> list[str]:
        """Faulted lines or section buses that would be energised with switch states ``closed``."""
        out: list[str] = []
        if not faulted_lines and not section_buses:
            return out
        g = self.grid
        en = energised(g, closed)
        if faulted_lines:
            st = branch_status(g, closed)
            pos = g.line.index_of(sorted(faulted_lines))
            fb = g.bus.position_map(g.line["from_bus"][pos])
            tb = g.bus.position_map(g.line["to_bus"][pos])
            live = (st["line_from"][pos] & en[fb]) | (st["line_to"][pos] & en[tb])
            out += [f"faulted line {int(g.line.ids[p])} would be energised" for p in pos[live]]
        if section_buses:
            bp = g.bus.position_map(np.asarray(sorted(section_buses), np.int64))
            out += [
                f"bus {int(g.bus.ids[b])} of the faulted section would be energised"
                for b in bp[en[bp]]
            ]
        return out

    def _rate_limits(self, plan: Plan) -> list[str]:
        """Reasons ``plan`` breaks the switching-operation and plan-rate limits (none: [])."""
        lim = self.limits
        reasons: list[str] = []
        if plan.switch_ops > lim.max_switch_ops_per_plan:
            reasons.append(
                f"{plan.switch_ops} switching operations in one plan (limit {lim.max_switch_ops_per_plan})"
            )
        if len(self._ops) + plan.switch_ops > lim.max_switch_ops_per_hour:
            reasons.append(
                f"switching operations in the last hour would exceed {lim.max_switch_ops_per_hour}"
            )
        if len(self._plans) + 1 > lim.max_plans_per_minute:
            reasons.append(f"more than {lim.max_plans_per_minute} plans in one minute")
        return reasons

    def _walk(  # noqa: C901
        self, plan: Plan, switch_closed: np.ndarray, injections: dict[str, np.ndarray]
    ) -> _Walk:
        """The plan's actions in order from ``switch_closed`` under the device rules: the switch
        states after each switching action, the final ones, the injections with the plan's
        battery set points (MW) and the reasons any action breaks a rule."""
        g, lim = self.grid, self.limits
        reasons: list[str] = []
        closed = np.asarray(switch_closed, bool).copy()
        inj: dict[str, Any] = {k: np.asarray(v, np.float64).copy() for k, v in injections.items()}
        per_switch: dict[int, int] = {}
        for _t, k in self._ops:
            per_switch[k] = per_switch.get(k, 0) + 1
        states = []
        for a in plan.actions:
            if a.kind == "switch":
                try:
                    k = int(g.switch.index_of(int(a.target or 0))[0])
                except KeyError:
                    reasons.append(f"switch {a.target} does not exist")
                    continue
                if lim.remote_only and not g.switch["remote"][k]:
                    reasons.append(f"switch {a.target} is not remote-controllable")
                if g.switch["kind"][k] == SwitchKind.DISCONNECTOR:
                    en = energised(g, closed)
                    b = g.bus.index_of(g.switch["bus"][k])[0]
                    if en[b]:
                        reasons.append(
                            f"disconnector {a.target} may not be operated while energised"
                        )
                per_switch[k] = per_switch.get(k, 0) + 1
                if per_switch[k] > lim.max_ops_per_switch_per_hour:
                    reasons.append(
                        f"switch {a.target} operated more than {lim.max_ops_per_switch_per_hour} times in an hour"
                    )
                closed[k] = bool(a.value)
                states.append(closed.copy())
            elif a.kind == "storage":
                try:
                    k = int(g.storage.index_of(int(a.target or 0))[0])
                except KeyError:
                    reasons.append(f"storage {a.target} does not exist")
                    continue
                pm = float(g.storage["p_max_mw"][k])
                if abs(a.value) > pm + 1e-9:
                    reasons.append(
                        f"storage {a.target} set point {a.value} MW beyond its rating {pm} MW"
                    )
                if "storage_p_mw" in inj:
                    inj["storage_p_mw"][k] = a.value
        taps = plan.taps
        reasons += self._tap_reasons(taps)
        return _Walk(states, closed, inj, reasons, taps)

    def _tap_reasons(self, taps: dict[int, float]) -> list[str]:
        """Why the plan's tap commands cannot be checked or executed: no feeder model, an
        unknown id, a tap beyond its winding's range, or too many tap commands to one
        regulator within the hour (none: [])."""
        if not taps:
            return []
        if self.phase is None:
            return [f"regulator tap commands {sorted(taps)} need a three-phase feeder model"]
        names, out = self.phase.regulators, []
        per_reg: dict[int, int] = {}
        for _t, r in self._tap_ops:
            per_reg[r] = per_reg.get(r, 0) + 1
        limit = self.limits.max_tap_ops_per_regulator_per_hour
        for r in sorted(taps):
            if not 0 <= r < len(names):
                out.append(f"regulator {r} does not exist (0-{len(names) - 1})")
                continue
            lo, hi = self.phase.physics.tap_range(names[r])
            if not lo <= taps[r] <= hi:
                out.append(f"regulator {names[r]}: tap {taps[r]:g} pu outside its {lo:g}-{hi:g}")
            if per_reg.get(r, 0) + 1 > limit:
                out.append(f"regulator {names[r]}: more than {limit} tap commands in one hour")
        return out

    def _faulted_in_sequence(
        self, states: list[np.ndarray], faulted: set[int], section: set[int]
    ) -> list[str]:
        """Reasons for the first switch state of the sequence that energises a faulted line or
        section bus (none: [])."""
        for st in states:
            bad = self.faulted_energised(st, faulted, section)
            if bad:
                return sorted(set(bad))
        return []

    def _not_radial(self, switch_closed: np.ndarray, closed: np.ndarray) -> list[str]:
        """A reason when the network with ``closed`` would have more loops or sources in
        parallel than with ``switch_closed`` (none: []): on a radial feeder, any; a network
        meshed by design (a low-voltage mesh) keeps its meshes and may not gain one."""
        now, after = meshes(self.grid, switch_closed), meshes(self.grid, closed)
        if after <= now:
            return []
        if now == 0:
            return ["the resulting network would not be radial (a loop or two sources in parallel)"]
        return [
            f"the plan would add a loop or parallel two sources ({now} -> {after} beyond radial)"
        ]

    def _interruptions(
        self, switch_closed: np.ndarray, closed: np.ndarray, section: set[int]
    ) -> list[str]:
        """A reason when buses energised with ``switch_closed`` lose supply with ``closed``,
        outside the declared faulted ``section`` (bus ids); none: []."""
        g = self.grid
        en0 = energised(g, switch_closed)
        en1 = energised(g, closed)
        lost = set(g.bus.ids[en0 & ~en1].tolist()) - section
        if not lost:
            return []
        shown = sorted(lost)[:8]
        return [f"would interrupt {len(lost)} bus(es) outside the faulted section: {shown}"]

    def check(
        self,
        plan: Plan,
        *,
        switch_closed: np.ndarray,
        injections: dict[str, np.ndarray],
        faulted_lines: set[int] | tuple[int, ...] = (),
        now_s: float = 0.0,
        injections_after: dict[str, np.ndarray] | None = None,
    ) -> Verdict:
        """Check ``plan`` from the present switch states and injections (MW, table order).

        ``injections_after`` are the injections once the plan's DR/EV actions act (default the
        present ones); battery set points of the plan are applied on top.

        Returns a :class:`Verdict`; nothing is changed (call :meth:`commit` once executed).
        """
        g, lim = self.grid, self.limits
        checks: list[str] = []
        self._prune(now_s)
        faulted = set(faulted_lines) | set(plan.faulted_lines)
        section = set(plan.data.get("section_buses", []))
        # 1. rate and count limits
        checks.append("rate limits")
        reasons = self._rate_limits(plan)
        # 2. device rules, walking the sequence
        checks.append("device rules")
        src = injections if injections_after is None else injections_after
        walk = self._walk(plan, switch_closed, src)
        reasons, closed, inj = reasons + walk.reasons, walk.closed, walk.injections
        if reasons:
            return Verdict(False, reasons, checks=checks)
        # 3. never energise a faulted section, at any step of the sequence
        checks.append("faulted section stays dead at every step")
        reasons += self._faulted_in_sequence(walk.states, faulted, section)
        # 4. no unplanned interruption
        checks.append("no unplanned interruption")
        reasons += self._interruptions(switch_closed, closed, section)
        if lim.require_radial:
            checks.append("radial")
            reasons += self._not_radial(switch_closed, closed)
        if reasons:
            return Verdict(False, reasons, checks=checks)
        # 5. simulate before and after in the twin, the held taps (and the plan's after it) set
        checks.append("simulated in the twin")
        inj_now: dict[str, Any] = dict(injections)  # by field: load_p_mw, gen_p_mw, ...
        held = dict(self.phase.held) if self.phase is not None else {}
        tw0, tw1 = self.tap_twin(held), self.tap_twin({**held, **walk.taps})
        before = tw0.powerflow(Injections.from_mapping(inj_now, switch_closed=switch_closed))
        after = tw1.powerflow(Injections.from_mapping(inj, switch_closed=closed))
        b, a = _sim_summary(g, before), _sim_summary(g, after)
        reasons += self._limit_reasons(before, after, b, a)
        if not reasons and self.phase is not None and (plan.switch_ops or walk.taps):
            checks.append("simulated per node-phase in the three-phase twin")
            reasons += self._phase_reasons(switch_closed, closed, inj_now, inj, a, walk.taps)
        return Verdict(not reasons, reasons, b, a, checks)

    def tap_twin(self, taps: dict[int, float]) -> Twin:
        """The balanced twin with the regulators ``taps`` (id -> pu) on the view's
        transformers (the guard's own twin when they change no ``tap_pos``; built once per
        tap state and kept, a few at most)."""
        if self.phase is None or not taps:
            return self.twin
        pos = self.phase.view_tap_pos(self.grid, taps)
        if np.array_equal(pos, self.grid.transformer["tap_pos"]):
            return self.twin
        key = pos.tobytes()
        tw = self._tap_twins.get(key)
        if tw is None:
            g = self.grid.copy()
            g.transformer["tap_pos"] = pos
            tw = Twin(g, validate=False, engine=getattr(self.twin, "mode", "auto"))
            while len(self._tap_twins) >= 4:
                self._tap_twins.pop(next(iter(self._tap_twins)))
            self._tap_twins[key] = tw
        return tw

    def release_taps(self) -> None:
        """The crew handed the feeder back: no regulator is held at a commanded tap any more."""
        if self.phase is not None:
            self.phase.held.clear()

    def _limit_reasons(
        self, before: PowerFlowResult, after: PowerFlowResult, b: dict[str, Any], a: dict[str, Any]
    ) -> list[str]:
        """Why the twin's power flow ``after`` the plan breaks the limits where ``before`` did
        not (``b``/``a``: their summaries); none: []."""
        lim = self.limits
        reasons: list[str] = []
        if not after.converged:
            reasons.append("the power flow after the plan does not converge")
        else:
            tol = lim.tolerance_pu
            on = after.energised
            new = on & ~(before.energised if before.converged else np.zeros_like(on))
            v = after.v_pu
            bvmin = b["vmin_pu"] if b["vmin_pu"] is not None else 9.0
            bvmax = b["vmax_pu"] if b["vmax_pu"] is not None else -9.0
            if np.any(v[new] < lim.v_min_pu - tol) or np.any(v[new] > lim.v_max_pu + tol):
                reasons.append(
                    f"re-energised buses would be outside {lim.v_min_pu}-{lim.v_max_pu} pu"
                )
            if a["vmin_pu"] < lim.v_min_pu - tol and a["vmin_pu"] < bvmin - tol:
                reasons.append(
                    f"lowest voltage {a['vmin_pu']} pu below {lim.v_min_pu} pu and worse than before ({bvmin})"
                )
            if a["vmax_pu"] > lim.v_max_pu + tol and a["vmax_pu"] > bvmax + tol:
                reasons.append(
                    f"highest voltage {a['vmax_pu']} pu above {lim.v_max_pu} pu and worse than before"
                )
            bl = b["max_loading_pct"] if b["max_loading_pct"] is not None else 0.0
            if (
                a["max_loading_pct"] is not None
                and a["max_loading_pct"] > lim.loading_max_pct
                and a["max_loading_pct"] > bl + 0.5
            ):
                reasons.append(
                    f"loading {a['max_loading_pct']} % ({a['max_loading_branch']}) above "
                    f"{lim.loading_max_pct} % and worse than before"
                )
        return reasons

    def _phase_reasons(
        self,
        switch_closed: np.ndarray,
        closed: np.ndarray,
        inj_before: dict[str, Any],
        inj_after: dict[str, Any],
        after: dict[str, Any],
        taps: dict[int, float] | None = None,
    ) -> list[str]:
        """The node-phase check (:class:`~gridpilot.agent.phaseguard.PhaseCheck`); its figures
        go into ``after["node_phase"]``. A failure of the check itself refuses the plan."""
        from gridpilot.errors import GridpilotError

        lim = self.limits
        try:
            reasons, info = self.phase.check(
                switch_closed, closed, inj_before, inj_after,
                (lim.v_min_pu, lim.v_max_pu), lim.tolerance_pu, taps=taps,
            )  # fmt: skip
        except (GridpilotError, KeyError, ValueError) as exc:
            return [f"the node-phase check failed: {exc}"]
        after["node_phase"] = info
        return list(reasons)

    def commit(self, plan: Plan, now_s: float = 0.0) -> None:
        """Record an executed plan for the rate and count limits, and its regulator tap
        commands as held (see the module notes)."""
        self._prune(now_s)
        self._plans.append(now_s)
        for a in plan.actions:
            if a.kind == "switch":
                self._ops.append((now_s, int(self.grid.switch.index_of(int(a.target or 0))[0])))
            elif a.kind == "tap":
                self._tap_ops.append((now_s, int(a.target or 0)))
                if self.phase is not None:  # held in the field: every later check sees it
                    self.phase.held[int(a.target or 0)] = float(a.value)
