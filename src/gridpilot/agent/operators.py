"""Operators' side of the loop: their own commands, approvals and rejections of proposals, the
mode (a part of :class:`~gridpilot.agent.orchestrator.Orchestrator`; see
:mod:`gridpilot.agent.loopstate`)."""

from __future__ import annotations

from typing import Any

from gridpilot.agent.actions import Plan
from gridpilot.agent.loopstate import MODES, Proposal
from gridpilot.agent.planexec import PlanExecution
from gridpilot.errors import UnknownComponentError, ValidationError


class OperatorDesk(PlanExecution):
    """Operators' commands and decisions on proposals, each guarded and audited."""

    def submit(self, plan: Plan, actor: str) -> dict[str, Any]:
        """An operator's command: guard, execute if accepted, audit either way. Returns the outcome."""
        with self.lock:
            if self.last is None:
                self.last = self.world.observe()
            status = self._handle(plan, actor=f"operator:{actor}")
            return {
                "plan": plan.id,
                "status": status,
                "reasons": [] if status == "done" else self._last_refusal(plan.id),
            }

    def _last_refusal(self, plan_id: int) -> list[str]:
        for e in self.audit.entries(limit=20, kind="refused"):
            if e["what"] and e["what"].get("id") == plan_id:
                return list(e["verdict"].get("reasons", []))
        return []

    def _pending(self, plan_id: int) -> Proposal:
        """The pending proposal ``plan_id``; unknown or already decided ones are refused."""
        p = self.proposals.get(plan_id)
        if p is None:
            raise UnknownComponentError("proposal", plan_id)
        if p.status != "pending":
            raise ValidationError(f"proposal {plan_id}: is {p.status}, not pending")
        return p

    def approve(self, plan_id: int, actor: str) -> dict[str, Any]:
        """Approve a pending proposal: re-checked by the guard on the present state, then executed."""
        with self.lock:
            p = self._pending(plan_id)
            verdict = self._verdict(p.plan)
            sim_time = str(self.last.time) if self.last else ""
            if not verdict.ok:
                p.status, p.decided_by, p.verdict = "refused", actor, verdict
                self.audit.record(
                    actor=f"operator:{actor}",
                    kind="approval",
                    what=p.plan.to_dict(),
                    why="approved, but the guard refuses it on the present state",
                    verdict=verdict.to_dict(),
                    status="refused",
                    sim_time=sim_time,
                )
                return {"plan": plan_id, "status": "refused", "reasons": verdict.reasons}
            result = self._execute(p.plan)  # a DR event stays under the proposing policy
            p.status, p.decided_by = "approved", actor
            self.audit.record(
                actor=f"operator:{actor}",
                kind="approval",
                what=p.plan.to_dict(),
                why=p.plan.reason,
                verdict=verdict.to_dict(),
                result=result,
                status="approved",
                sim_time=sim_time,
            )
            self._event("approval", f"{actor} approved #{plan_id}", "info", plan=plan_id)
            return {"plan": plan_id, "status": "approved", "result": result}

    def reject(self, plan_id: int, actor: str, why: str = "") -> dict[str, Any]:
        """Reject a pending proposal (audited)."""
        with self.lock:
            p = self._pending(plan_id)
            p.status, p.decided_by = "rejected", actor
            self.audit.record(
                actor=f"operator:{actor}",
                kind="approval",
                what=p.plan.to_dict(),
                why=why or "rejected",
                status="rejected",
                sim_time=str(self.last.time) if self.last else "",
            )
            self._event("approval", f"{actor} rejected #{plan_id}", "info", plan=plan_id)
            return {"plan": plan_id, "status": "rejected"}

    def set_mode(self, mode: str, actor: str) -> None:
        """Switch between ``autonomous`` and ``propose`` (audited)."""
        if mode not in MODES:
            raise ValidationError(f"mode: unknown {mode!r}; known: {', '.join(MODES)}")
        with self.lock:
            old, self.mode = self.mode, mode
            self.audit.record(
                actor=f"operator:{actor}",
                kind="command",
                what={"mode": mode},
                why=f"mode {old} -> {mode}",
            )
            self._event("mode", f"mode {old} -> {mode} by {actor}")
