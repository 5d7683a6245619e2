"""Administration: the orchestrator's mode (autonomous or propose-and-wait)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gridpilot.api import schemas as S
from gridpilot.api.deps import Admin, Orch, acting, json_out
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["admin"])


@router.post("/mode", response_model=S.ModeOut, responses=errors(400, 401, 403))
def mode(body: S.ModeCommand, who: Admin, orch: Orch) -> JSONResponse:
    """Switch between autonomous and propose-and-wait."""
    with acting(who):
        orch.set_mode(body.mode, who[0])
    return json_out({"mode": orch.mode})
