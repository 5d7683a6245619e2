"""Operator commands, all checked by the safety guard and audited: switching, EV set points,
batteries, alarm acknowledgement, proposal decisions and injected drill events. (Demand
response has its own router, :mod:`gridpilot.api.routers.dr`.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from gridpilot.agent.actions import Action, Plan
from gridpilot.api import schemas as S
from gridpilot.api.access import Who
from gridpilot.api.deps import Acks, Operator, Orch, acting, json_out
from gridpilot.api.schemas import errors
from gridpilot.errors import UnknownComponentError

router = APIRouter(prefix="/api", tags=["commands"])
E_CMD = errors(400, 401, 403, 404, 409, conflict=S.CommandResult)
E_DECIDE = errors(401, 403, 404, 409, conflict=S.Decided | S.Error)


def submit(orch: Any, plan: Plan, who: Who) -> JSONResponse:
    """Submit ``plan`` as ``who``: 200 when done, 409 with the guard's reasons otherwise."""
    with acting(who):
        out = orch.submit(plan, who[0])
    return json_out(out, 200 if out["status"] == "done" else 409)


@router.post("/commands/switch", response_model=S.CommandResult, responses=E_CMD)
def cmd_switch(body: S.SwitchCommand, who: Operator, orch: Orch) -> JSONResponse:
    """Operate a switch; the safety guard checks it first (409 with its reasons if refused)."""
    orch.grid.switch.index_of(body.switch_id)
    state = 1.0 if body.closed else 0.0
    return submit(
        orch, Plan([Action("switch", body.switch_id, state)], body.reason, "operator"), who
    )


@router.post("/commands/ev", response_model=S.CommandResult, responses=E_CMD)
def cmd_ev(body: S.EVCommand, who: Operator, orch: Orch) -> JSONResponse:
    """Set the EV chargers' set point: the share (0..1) of their wanted power they may draw."""
    return submit(orch, Plan([Action("ev", None, body.factor)], body.reason, "operator"), who)


@router.post("/commands/storage", response_model=S.CommandResult, responses=E_CMD)
def cmd_storage(body: S.StorageCommand, who: Operator, orch: Orch) -> JSONResponse:
    """Set a battery's power."""
    orch.grid.storage.index_of(body.storage_id)
    plan = Plan([Action("storage", body.storage_id, body.p_mw)], body.reason, "operator")
    return submit(orch, plan, who)


@router.post("/alarms/{alarm}/ack", response_model=S.AlarmOut, responses=errors(401, 403, 404))
def ack_alarm(
    alarm: Annotated[str, PathParam(max_length=40)], who: Operator, acks: Acks
) -> JSONResponse:
    """Acknowledge an active alarm (audited with the role); 404 if it is not active."""
    with acting(who):
        return json_out(acks.acknowledge(alarm, who[0]))


def _pending(orch: Any, plan_id: int) -> None:
    """404 for an unknown proposal, 409 for one already decided (call under ``orch.lock``)."""
    p = orch.proposals.get(plan_id)
    if p is None:
        raise UnknownComponentError("proposal", plan_id)
    if p.status != "pending":
        raise HTTPException(409, f"proposal {plan_id}: is {p.status}, not pending")


@router.post("/proposals/{plan_id}/approve", response_model=S.Decided, responses=E_DECIDE)
def approve(plan_id: int, who: Operator, orch: Orch) -> JSONResponse:
    """Approve a pending proposal (re-checked by the guard: 409 with its reasons if refused;
    409 too if the proposal is no longer pending)."""
    with orch.lock:
        _pending(orch, plan_id)
        with acting(who):
            out = orch.approve(plan_id, who[0])
    return json_out(out, 200 if out["status"] == "approved" else 409)


@router.post(
    "/proposals/{plan_id}/reject",
    response_model=S.Decided,
    responses=errors(400, 401, 403, 404, 409, conflict=S.Decided | S.Error),
)
def reject(plan_id: int, who: Operator, orch: Orch, body: S.Decision | None = None) -> JSONResponse:
    """Reject a pending proposal (409 if it is no longer pending)."""
    with orch.lock:
        _pending(orch, plan_id)
        with acting(who):
            return json_out(orch.reject(plan_id, who[0], body.reason if body else ""))


@router.post("/sim/events", response_model=S.InjectedEvent, responses=errors(400, 401, 403, 404))
def sim_event(body: S.SimEvent, who: Operator, orch: Orch) -> JSONResponse:
    """Inject a drill event into the simulated world (audited); its fields by kind."""
    params = {k: v for k, v in body.model_dump().items() if k != "kind" and v is not None}
    with acting(who):
        return json_out(orch.inject(body.kind, actor=f"operator:{who[0]}", **params))
