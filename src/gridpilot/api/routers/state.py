"""Reading the running grid: who am I, the grids, the drawing, the limits, the live state, its
history, the forecast, events, alarms and proposals, and the WebSocket stream of live state."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from gridpilot.agent.audit import _jsonable
from gridpilot.api import schemas as S
from gridpilot.api.access import KEY_HEADER
from gridpilot.api.deps import Acks, Orch, Tokens, Viewer, json_out
from gridpilot.api.layout import diagram_xy, distance_km, has_coordinates
from gridpilot.api.live import limits_dict, live_message, valued_state
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["state"])
E_VIEW = errors(401)


@router.get("/whoami", response_model=S.WhoAmI, responses=E_VIEW)
def whoami(who: Viewer) -> JSONResponse:
    """The key's name and role (the dashboard shows commands only to operators)."""
    return json_out({"name": who[0], "role": who[1]})


@router.get("/grids", response_model=S.Grids, responses=E_VIEW)
def grids(_w: Viewer, orch: Orch) -> JSONResponse:
    """Built-in grids and the one running now."""
    from gridpilot.model import list_grids

    return json_out(
        {
            "running": orch.grid.name,
            "builtin": [
                {"name": g.name, "buses": g.buses, "description": g.description}
                for g in list_grids()
            ],
        }
    )


def _columns(t: Any, *names: str) -> Any:
    return zip(t.ids, *(t[n] for n in names), strict=True)


def grid_drawing(orch: Any) -> dict[str, Any]:
    """The running grid for drawing (see :class:`~gridpilot.api.schemas.GridDrawing`)."""
    g = orch.grid
    x, y = diagram_xy(g)
    dist = distance_km(g)
    sw = g.switch
    line_of = {int(i): k for k, i in enumerate(g.line.ids)}
    return {
        "name": g.name,
        "layout": "coordinates" if has_coordinates(g) else "tree",
        "limits": limits_dict(orch.limits),
        "buses": [
            {
                "id": int(i),
                "x": float(a),
                "y": float(b),
                "v_nom_kv": float(v),
                "distance_km": None if not np.isfinite(d) else round(float(d), 4),
            }
            for i, a, b, v, d in zip(g.bus.ids, x, y, g.bus["v_nom_kv"], dist, strict=True)
        ],
        "lines": [
            {"id": int(i), "from": int(f), "to": int(t), "length_km": float(km)}
            for i, f, t, km in _columns(g.line, "from_bus", "to_bus", "length_km")
        ],
        "transformers": [
            {"id": int(i), "from": int(f), "to": int(t)}
            for i, f, t in _columns(g.transformer, "hv_bus", "lv_bus")
        ],
        "switches": [
            {
                "id": int(sw.ids[k]),
                "bus": int(sw["bus"][k]),
                "element": int(sw["element"][k]),
                "et": int(sw["et"][k]),
                "kind": int(sw["kind"][k]),
                "normally_open": bool(sw["normally_open"][k]),
                "line_index": line_of.get(int(sw["element"][k])) if sw["et"][k] == 0 else None,
            }
            for k in range(len(sw))
        ],
        "generators": [
            {"id": int(i), "bus": int(b), "kind": int(k), "p_mw": float(p)}
            for i, b, k, p in _columns(g.generator, "bus", "kind", "p_mw")
        ],
        "sources": [{"id": int(i), "bus": int(b)} for i, b in _columns(g.source, "bus")],
        "storage": [{"id": int(i), "bus": int(b)} for i, b in _columns(g.storage, "bus")],
    }


@router.get("/grid", response_model=S.GridDrawing, responses=E_VIEW)
def grid(_w: Viewer, orch: Orch) -> JSONResponse:
    """The running grid for drawing: buses with diagram coordinates, lines, switches, devices."""
    return json_out(grid_drawing(orch))


@router.get("/limits", response_model=S.Limits, responses=E_VIEW)
def limits(_w: Viewer, orch: Orch) -> JSONResponse:
    """The one set of operating limits (the orchestrator's: its guard's and FLISR's; pu, %)
    and the dashboard's warning bands."""
    return json_out(limits_dict(orch.limits))


@router.post("/ws-token", response_model=S.WsToken, responses=E_VIEW)
def ws_token(who: Viewer, tokens: Tokens) -> JSONResponse:
    """A single-use token for ``/api/ws?token=``, valid for 60 s (keeps the key out of URLs)."""
    return json_out({"token": tokens.issue(who), "expires_in_s": tokens.ttl_s})


@router.get(
    "/state", response_model=S.StateModel, response_model_exclude_unset=True, responses=E_VIEW
)
def state(_w: Viewer, orch: Orch) -> S.StateModel:
    """Live state: voltages, loadings, switch states, FPIs, each bus's load and generation, metered
    line flows, alarms, latest events, pending proposals (the WebSocket's message, with ids)."""
    return S.StateModel.model_validate(_jsonable(valued_state(orch)))


@router.get("/history", response_model=list[dict[str, Any]], responses=E_VIEW)
def history(
    _w: Viewer, orch: Orch, limit: Annotated[int, Query(ge=1, le=5000)] = 240
) -> JSONResponse:
    """Per-step history: load, forecast made 15 steps earlier, import, renewables, DR, prices."""
    with orch.lock:
        return json_out(list(orch.history)[-limit:])


@router.get("/forecast", response_model=S.Forecast, responses=E_VIEW)
def forecast(
    _w: Viewer, orch: Orch, steps: Annotated[int, Query(ge=1, le=240)] = 60
) -> JSONResponse:
    """Load forecast for the next ``steps`` steps (MW, total of the feeder)."""
    method = "profile shape x present estimate"
    with orch.lock:
        if orch.last is None:
            return json_out({"method": method, "time": [], "load_mw": []})
        ahead = np.arange(1, steps + 1)
        f = (orch.forecast_ratio(ahead) * orch.load_est_mw).sum(axis=1)
        t0 = orch.last.time
        times = [str(t0 + np.timedelta64(int(a * orch.world.step_s), "s")) for a in ahead]
        return json_out({"method": method, "time": times, "load_mw": np.round(f, 4).tolist()})


@router.get("/events", response_model=list[dict[str, Any]], responses=E_VIEW)
def events(_w: Viewer, orch: Orch, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSONResponse:
    """Latest events (alarms, protection, actions, refusals, proposals, injected drills), newest last."""
    with orch.lock:
        return json_out(list(orch.events)[-limit:])


@router.get("/alarms", response_model=list[dict[str, Any]], responses=E_VIEW)
def alarms(_w: Viewer, orch: Orch, acks: Acks) -> JSONResponse:
    """Active alarms."""
    with orch.lock:
        return json_out(acks.annotate([{"alarm": k, **v} for k, v in orch.alarms.items()]))


@router.get("/proposals", response_model=list[S.Proposal], responses=E_VIEW)
def proposals(
    _w: Viewer, orch: Orch, status: Annotated[str | None, Query(max_length=20)] = None
) -> JSONResponse:
    """Proposals (propose mode), optionally filtered by status."""
    with orch.lock:
        return json_out(
            [p.to_dict() for p in orch.proposals.values() if status is None or p.status == status]
        )


@router.websocket("/ws")
async def ws(websocket: WebSocket, token: str | None = None, key: str | None = None) -> None:
    """State updates: one :class:`~gridpilot.api.schemas.LiveMessage` per orchestrator step, its
    arrays in the order of ``/api/grid`` (the id arrays are not repeated). Needs ``?token=`` from
    ``POST /api/ws-token`` (single use, 60 s); ``?key=`` or an ``X-API-Key`` header still work
    for clients that cannot fetch a token first. Closes with code 4401 before accepting otherwise."""
    st = websocket.app.state
    who = st.ws_tokens.redeem(token) or st.keys.identify(websocket.headers.get(KEY_HEADER) or key)
    if who is None:
        await websocket.close(code=4401)
        return
    await websocket.accept()
    if st.on_client is not None:
        st.on_client()
    orch, last = st.orch, -1
    try:
        while True:
            n = orch.counters["steps"]
            if n != last:
                last = n
                msg = await asyncio.to_thread(_message, orch, st.acks)
                await websocket.send_json(msg)
            await asyncio.sleep(0.1)
    except (WebSocketDisconnect, RuntimeError):
        return


def _message(orch: Any, acks: Any) -> dict[str, Any]:
    """One WebSocket message, checked against :class:`~gridpilot.api.schemas.LiveMessage`."""
    msg = S.LiveMessage.model_validate(_jsonable(live_message(orch, acks)))
    return msg.model_dump(mode="json", exclude_unset=True)
