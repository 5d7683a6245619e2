"""The local market: the latest interval and the recent series."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gridpilot.api import schemas as S
from gridpilot.api.deps import Orch, Viewer, json_out
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["market"])


@router.get("/market", response_model=S.Market, responses=errors(401))
def market(_w: Viewer, orch: Orch) -> JSONResponse:
    """Latest local-market interval (price EUR/MWh, volume MWh) and the recent series."""
    with orch.lock:
        m = orch.market
        hist = [
            {"time": h["time"], "price_eur_mwh": h["price_eur_mwh"], "volume_mwh": h["volume_mwh"]}
            for h in list(orch.history)[-240:]
        ]
        if m is None:
            return json_out(
                {"available": False, "reason": "gridpilot.market not importable", "history": []}
            )
        return json_out(
            {
                "available": True,
                "price_eur_mwh": m.last_price,
                "volume_mwh": m.last_volume,
                "intervals": m.intervals,
                "history": hist,
            }
        )
