"""Demand response: its status (events, enrolled share, batteries) and the operator's DR call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gridpilot.agent.actions import Action, Plan
from gridpilot.api import schemas as S
from gridpilot.api.deps import Operator, Orch, Viewer, json_out
from gridpilot.api.routers.commands import E_CMD, submit
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["dr"])


@router.get("/dr", response_model=S.DRStatus, responses=errors(401))
def dr(_w: Viewer, orch: Orch) -> JSONResponse:
    """Demand response and battery status."""
    with orch.lock:
        o, g = orch.last, orch.grid
        soc = o.storage_soc if o is not None else g.storage["soc"]
        return json_out(
            {
                "level": orch.dr_level,
                "requests": orch.dr_requests,
                "enrolled_share": orch.dr_share,
                "batteries": [
                    {"id": int(i), "p_mw": float(p), "soc": float(s)}
                    for i, p, s in zip(g.storage.ids, orch.storage_cmd_mw, soc, strict=True)
                ],
                "method": "gridpilot.flex events on the field's household devices"
                if orch.flexdr is not None
                else "built-in DR (enrolled share of loads, water heaters, EV smart charging)",
                "events": orch.flexdr.events() if orch.flexdr is not None else [],
            }
        )


@router.post("/commands/dr", response_model=S.CommandResult, responses=E_CMD)
def cmd_dr(body: S.DRCommand, who: Operator, orch: Orch) -> JSONResponse:
    """Call (or end, with level 0) a demand-response event, at every enrolled load or only at
    the loads of ``buses`` (ids; 404 for an unknown one)."""
    data: dict[str, Any] = {}
    if body.buses:
        orch.grid.bus.index_of(body.buses)
        data["dr_buses"] = sorted(set(body.buses))
    plan = Plan([Action("dr", None, body.level)], body.reason, "operator", data=data)
    return submit(orch, plan, who)
