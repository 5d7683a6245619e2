"""The flexibility schedule in force."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gridpilot.api import schemas as S
from gridpilot.api.deps import Orch, Viewer, json_out
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["flex"])


@router.get("/flex", response_model=S.Flex, responses=errors(401))
def flex(_w: Viewer, orch: Orch) -> JSONResponse:
    """The flexibility schedule in force (FlexPlanPolicy): planned feeder import and fleet
    power per 15-minute step over the horizon, against the devices on their own (MW)."""
    with orch.lock:
        on = any(getattr(p, "name", "") == "flexplan" for p in orch.policies)
        return json_out(
            {
                "policy": on,
                "plan": orch.shared.get("flex_plan"),
                "storage_by": orch.shared.get("storage_by"),
            }
        )
