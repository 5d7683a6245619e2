"""The API as routers with response models (#15 item 6): one router per area, shared
dependencies in deps.py, a response model on every JSON route, a typed live state."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi.routing import APIRoute

from gridpilot.api import schemas as S
from gridpilot.api.routers import ROUTERS

from .conftest import hdr

APP_PY = Path(__file__).resolve().parents[2] / "src" / "gridpilot" / "api" / "app.py"


def test_app_py_is_the_factory_and_the_routes_live_in_the_routers(setup) -> None:
    tree = ast.parse(APP_PY.read_text())
    decorated = [
        f.name
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr in {"get", "post", "put", "delete", "websocket"}
            for d in f.decorator_list
        )
    ]
    assert decorated == []
    _orch, _keys, c = setup
    from_routers = {id(r) for router in ROUTERS for r in router.routes}
    mine = [r for r in c.app.routes if getattr(r, "path", "").startswith(("/api", "/static"))]
    mine.append(next(r for r in c.app.routes if getattr(r, "path", None) == "/"))
    assert all(id(r) in from_routers for r in mine)
    tags = {t for router in ROUTERS for t in router.tags}
    assert {"state", "commands", "dr", "flex", "market", "audit", "admin"} <= tags


def test_every_json_route_declares_its_response_model(setup) -> None:
    _orch, _keys, c = setup
    routes = [r for r in c.app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    assert routes and [r.path for r in routes if r.response_model is None] == []


def test_state_and_live_message_are_typed(setup) -> None:
    _orch, keys, c = setup
    st = c.get("/api/state", headers=hdr(keys, "viewer")).json()
    model = S.StateModel.model_validate(st)
    assert model.v_pu is not None and len(model.v_pu) == len(model.bus_id or [])
    assert all(isinstance(x, bool) for x in model.switch_closed or [])
    schema = c.get("/openapi.json").json()["paths"]["/api/state"]["get"]
    ref = schema["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/StateModel")
    tok = c.post("/api/ws-token", headers=hdr(keys, "viewer")).json()["token"]
    with c.websocket_connect(f"/api/ws?token={tok}") as ws:
        msg = ws.receive_json()
    live = S.LiveMessage.model_validate(msg)
    assert live.bus_load_mw is not None and len(live.bus_load_mw) == len(model.v_pu)
    assert live.line_p_mw is not None and live.history_tail is not None


def test_state_carries_the_values_the_page_shows_before_its_first_message(setup) -> None:
    """The page renders ``/api/state`` before the stream's first message: it must hold each
    bus's load and generation and the metered flows, the same as the message (same step)."""
    _orch, keys, c = setup  # no runner: the loop stands still between the two reads
    st = c.get("/api/state", headers=hdr(keys, "viewer")).json()
    tok = c.post("/api/ws-token", headers=hdr(keys, "viewer")).json()["token"]
    with c.websocket_connect(f"/api/ws?token={tok}") as ws:
        msg = ws.receive_json()
    assert len(st["bus_load_mw"]) == len(st["bus_id"]) and len(st["line_p_mw"]) == len(
        st["line_id"]
    )
    assert sum(st["bus_load_mw"]) > 0
    for k in ("bus_load_mw", "bus_gen_mw", "line_p_mw", "v_pu"):
        assert st[k] == msg[k], k
