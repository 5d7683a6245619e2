"""Plans through the guard: act or propose, and execute in the world (a part of
:class:`~gridpilot.agent.orchestrator.Orchestrator`; see :mod:`gridpilot.agent.loopstate`)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from gridpilot.agent.actions import Plan
from gridpilot.agent.guard import Verdict
from gridpilot.agent.loopstate import LoopState, Proposal
from gridpilot.agent.worldtypes import TapWorld
from gridpilot.errors import ValidationError
from gridpilot.telemetry import wire_text

log = logging.getLogger(__name__)


class PlanExecution(LoopState):
    """The guard's verdict on a plan, then executed, proposed or refused; audited either way."""

    def _injections_now(
        self, dr_level: float | None = None, ev_factor: float | None = None
    ) -> dict[str, np.ndarray]:
        return self.context().injections(dr_level=dr_level, ev_factor=ev_factor)

    def _verdict(self, plan: Plan) -> Verdict:
        assert self.last is not None
        lvl = self.dr_level
        evf = self.ev_factor
        for a in plan.actions:
            if a.kind == "dr":
                req = dict(self.dr_requests)
                req[plan.source] = float(a.value)
                lvl = max(req.values())
            elif a.kind == "ev":
                evf = float(a.value)
        now = self._injections_now()
        after = self._injections_now(dr_level=lvl, ev_factor=evf)
        buses = plan.data.get("dr_buses")
        if buses and any(a.kind == "dr" for a in plan.actions):
            ctx = self.context()  # DR at given buses sheds only there (FlexDR, per-load share)
            sh = np.asarray(ctx.dr_share, np.float64)
            if sh.ndim:
                at = np.isin(self.grid.load["bus"], np.asarray(buses, np.int64))
                after = ctx.injections(dr_level=lvl, ev_factor=evf, load_cut=lvl * sh * at)
        delta = plan.data.get("_load_delta_mw")  # a schedule's household set points (flexplan)
        if delta is not None:
            after["load_p_mw"] = np.maximum(after["load_p_mw"] + np.asarray(delta), 0.0)
        return self.guard.check(
            plan,
            switch_closed=self.last.switch_closed.copy(),
            injections=now,
            faulted_lines=self.known_faults,
            now_s=self.last.t * self.world.step_s,
            injections_after=after,
        )

    def _handle(self, plan: Plan, actor: str) -> str:
        # a plan identical to a pending proposal is not proposed again
        if self.mode == "propose" and not actor.startswith("operator"):
            for p in self.proposals.values():
                if (
                    p.status == "pending"
                    and p.plan.source == plan.source
                    and p.plan.actions == plan.actions
                ):
                    return "pending"
        verdict = self._verdict(plan)
        sim_time = str(self.last.time) if self.last is not None else ""
        data = {k: v for k, v in plan.data.items() if k != "inj" and not k.startswith("_")}

        def record(kind: str, status: str, result: dict[str, Any] | None = None) -> None:
            self.audit.record(
                actor=actor,
                kind=kind,
                what=plan.to_dict(),
                why=plan.reason,
                data=data,
                verdict=verdict.to_dict(),
                result=result,
                status=status,
                sim_time=sim_time,
            )

        if not verdict.ok:
            self.counters["refused"] += 1
            record("refused", "refused")
            log.info(
                "guard refused plan #%d of %s: %s",
                plan.id,
                wire_text(plan.source, 80),
                wire_text("; ".join(verdict.reasons), 300),
                extra={
                    "plan": plan.id,
                    "source": wire_text(plan.source, 80),
                    "actor": wire_text(actor, 80),
                    "reasons": [wire_text(r, 200) for r in verdict.reasons],
                },
            )
            self._event(
                "refused",
                f"guard refused {plan.source} plan #{plan.id}: {'; '.join(verdict.reasons)[:200]}",
                "major",
                plan=plan.id,
            )
            return "refused"
        if self.mode == "propose" and not actor.startswith("operator"):
            for p in (
                self.proposals.values()
            ):  # a fresher plan from the same policy supersedes older ones
                if p.status == "pending" and p.plan.source == plan.source:
                    p.status = "expired"
            self.proposals[plan.id] = Proposal(plan, verdict, self.last.t if self.last else 0)
            self.counters["proposed"] += 1
            record("proposal", "pending")
            self._event(
                "proposal",
                f"{plan.source} proposes #{plan.id}: {plan.reason[:160]}",
                "warning",
                plan=plan.id,
            )
            return "pending"
        record("action", "done", self._execute(plan, actor))
        what = [a.describe() for a in plan.actions]
        if plan.data.get("_commands"):
            what.append(f"{len(plan.data['_commands'])} device command(s)")
        self._event(
            "action",
            f"{plan.source} #{plan.id}: " + "; ".join(what)[:200],
            "info",
            plan=plan.id,
            reason=plan.reason[:300],
        )
        return "done"

    def _tap(self, regulator: int, tap_pu: float) -> None:
        """A regulator tap command to the world (held there; a three-phase feeder's)."""
        w = self.world
        if not isinstance(w, TapWorld):
            raise ValidationError(f"tap: the world has no regulator {regulator} to command")
        w.set_tap(regulator, tap_pu)
        self.counters["tap_ops"] = self.counters.get("tap_ops", 0) + 1

    def _execute(self, plan: Plan, actor: str | None = None) -> dict[str, Any]:  # noqa: C901, PLR0912
        w = self.world
        done = []
        for a in plan.actions:
            if a.kind == "switch":
                w.set_switch(int(a.target or 0), bool(a.value))
                self.counters["switch_ops"] += 1
                if (
                    self.last is not None
                ):  # the commanded state until the next telemetry confirms it
                    k = int(self.grid.switch.index_of(int(a.target or 0))[0])
                    self.last.switch_closed[k] = bool(a.value)
            elif a.kind == "dr":
                if a.value > 0:
                    self.dr_requests[plan.source] = float(a.value)
                else:
                    self.dr_requests.pop(plan.source, None)
                w.set_dr(self.dr_level)
                if self.flexdr is not None and self.last is not None:
                    set_level = functools.partial(
                        self.flexdr.set_level,
                        self.dr_level,
                        self.last.time,
                        source=actor or f"policy:{plan.source}",
                        reason=plan.reason,
                        buses=plan.data.get("dr_buses"),
                    )
                    self._flex_run(set_level, plan.reason)
            elif a.kind == "storage":
                w.set_storage(int(a.target or 0), float(a.value))
                k = int(self.grid.storage.index_of(int(a.target or 0))[0])
                self.storage_cmd_mw[k] = float(a.value)
                # who holds the batteries (the flexibility schedule leaves them to others)
                if np.any(self.storage_cmd_mw != 0):
                    if a.value != 0:
                        self.shared["storage_by"] = plan.source
                else:
                    self.shared.pop("storage_by", None)
            elif a.kind == "ev":
                self.ev_factor = float(a.value)
                w.set_ev_factor(self.ev_factor)
            elif a.kind == "reset_fpi":
                w.reset_fpi()
            elif a.kind == "tap":
                self._tap(int(a.target or 0), float(a.value))
            done.append(a.describe())
        cmds = plan.data.get("_commands")  # field commands of a schedule (flexplan)
        if cmds and self.device_world is not None:
            self.device_world.apply(cmds)
            done.append(f"{len(cmds)} device command(s)")
        if plan.faulted_lines:
            self.known_faults |= set(plan.faulted_lines)
            self.section_buses |= set(plan.data.get("section_buses", []))
            self.shared["boundary_switches"] = list(plan.data.get("boundary_switches", []))
            self.locked_open = sorted(set(self.locked_open) | set(self.shared["boundary_switches"]))
            self.tripped.clear()  # protection's operation is handled
        if self.last is not None and not self.tripped and plan.switch_ops:
            # the commanded state is where a next trip (e.g. a re-trip when the fault was
            # located wrongly behind a failed indicator) starts from
            self.pre_fault_closed = self.last.switch_closed.copy()
        self.guard.commit(plan, (self.last.t if self.last else 0) * w.step_s)
        self.counters["executed"] += 1
        self.plans_done.append({"t": self.last.t if self.last else 0, **plan.to_dict()})
        return {
            "applied": done,
            "switch_closed_after": self.grid.switch.ids[self.last.switch_closed].tolist()
            if self.last
            else [],
            "dr_level": self.dr_level,
        }
