"""Every route x every role: the minimum role of each route is declared once, in ``POLICY``.

The routes are read from ``app.routes``, so a route added to the app without an entry here
fails :func:`test_every_route_is_in_the_policy`. For each HTTP route: no key -> 401, a wrong key
-> 401, the right key in ``?key=`` instead of the header -> 401, each role below the minimum ->
403, the minimum and above -> neither 401 nor 403. The WebSocket refuses with close code 4401.
"""

from __future__ import annotations

import pytest
from fastapi.routing import APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from gridpilot.agent import Orchestrator, SimWorld, demo_grid
from gridpilot.agent.auth import ROLES
from gridpilot.api import KeyStore, create_app
from gridpilot.api.access import key_check

from .conftest import EVENING

# (method, path template) -> minimum role; None: public. WS: the WebSocket.
POLICY: dict[tuple[str, str], str | None] = {
    ("GET", "/"): None,
    ("GET", "/static/plotly.min.js"): None,
    ("GET", "/api/health"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/static/js/{name}"): None,
    ("GET", "/feeder"): None,
    ("GET", "/api/feeder"): "viewer",
    ("GET", "/api/feeder/geometry"): "viewer",
    ("GET", "/api/feeder/snapshot"): "viewer",
    ("GET", "/api/feeder/profile"): "viewer",
    ("GET", "/api/feeder/hosting"): "viewer",
    ("GET", "/api/whoami"): "viewer",
    ("GET", "/api/limits"): "viewer",
    ("POST", "/api/ws-token"): "viewer",
    ("GET", "/api/grids"): "viewer",
    ("GET", "/api/grid"): "viewer",
    ("GET", "/api/state"): "viewer",
    ("GET", "/api/history"): "viewer",
    ("GET", "/api/forecast"): "viewer",
    ("GET", "/api/events"): "viewer",
    ("GET", "/api/alarms"): "viewer",
    ("GET", "/api/proposals"): "viewer",
    ("GET", "/api/dr"): "viewer",
    ("GET", "/api/flex"): "viewer",
    ("GET", "/api/market"): "viewer",
    ("GET", "/api/ledger"): "viewer",
    ("GET", "/api/audit"): "operator",
    ("GET", "/api/audit/verify"): "admin",
    ("POST", "/api/commands/switch"): "operator",
    ("POST", "/api/commands/dr"): "operator",
    ("POST", "/api/commands/storage"): "operator",
    ("POST", "/api/commands/ev"): "operator",
    ("POST", "/api/alarms/{alarm}/ack"): "operator",
    ("POST", "/api/proposals/{plan_id}/approve"): "operator",
    ("POST", "/api/proposals/{plan_id}/reject"): "operator",
    ("POST", "/api/sim/events"): "operator",
    ("POST", "/api/mode"): "admin",
    ("WS", "/api/ws"): "viewer",
}

# mounted sub-applications with their own authentication (not the API keys): the OpenADR 3 VTN
# takes OAuth2 client-credential tokens (tests/protocols/test_openadr.py tests its roles)
OWN_AUTH: dict[tuple[str, str], str] = {("MOUNT", "/openadr3"): "/openadr3/programs"}

# valid requests that change nothing lasting (a tie closed: refused by the guard, DR 0, ...)
BODIES: dict[tuple[str, str], dict] = {
    ("POST", "/api/commands/switch"): {"switch_id": 33, "closed": True},
    ("POST", "/api/commands/dr"): {"level": 0.0},
    ("POST", "/api/commands/storage"): {"storage_id": 1, "p_mw": 0.0},
    ("POST", "/api/commands/ev"): {"factor": 1.0},
    ("POST", "/api/proposals/{plan_id}/reject"): {"reason": "matrix"},
    ("POST", "/api/sim/events"): {"kind": "wind_restore"},
    ("POST", "/api/mode"): {"mode": "autonomous"},
}
WRONG_KEY = "gp_admin_" + "x" * 24


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD left out; WebSockets as ``WS``)."""
    out: set[tuple[str, str]] = set()
    for r in app.routes:
        if isinstance(r, WebSocketRoute | APIWebSocketRoute):
            out.add(("WS", r.path))
        elif isinstance(r, Route):
            out |= {(m, r.path) for m in (r.methods or ()) if m != "HEAD"}
        elif isinstance(r, Mount):
            out.add(("MOUNT", r.path))
        else:  # pragma: no cover - a route kind this test does not know is a failure
            out.add(("UNKNOWN", repr(r)))
    return out


@pytest.fixture(scope="module")
def world():
    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING))
    orch.run(2)
    keys = KeyStore.generate()
    app = create_app(orch, keys)
    return orch, keys, app, TestClient(app)


def test_every_route_is_in_the_policy(world) -> None:
    _orch, _keys, app, _c = world
    served = app_routes(app)
    assert served - POLICY.keys() - OWN_AUTH.keys() == set(), "routes without a declared role"
    assert POLICY.keys() - served == set(), "declared routes the app does not serve"
    for r in app.routes:  # the role each route's key check declares is the one in the table
        check = key_check(r)
        for method in getattr(r, "methods", None) or {"WS"}:
            if method != "HEAD" and method != "WS":
                assert POLICY[(method, r.path)] == getattr(check, "min_role", None), r.path


@pytest.mark.parametrize("method,path", sorted(k for k, v in POLICY.items() if k[0] == "POST"))
def test_the_key_is_checked_before_the_body(world, method: str, path: str) -> None:
    _orch, keys, _app, c = world
    url = path.replace("{plan_id}", "1").replace("{alarm}", "outage")
    cases = [({}, 401)]
    if POLICY[(method, path)] != "viewer":  # POST /api/ws-token is a viewer's
        cases.append(({"X-API-Key": keys.issued["viewer"]}, 403))
    for headers, status in cases:
        for junk in ({"content": b"{not json"}, {"json": {"unknown": True}}):
            r = c.request(method, url, headers=headers, **junk)
            assert r.status_code == status, (headers, junk, r.status_code, r.text)
            assert "detail" in r.json() and "loc" not in r.text  # nothing about the body


def _call(c: TestClient, method: str, path: str, headers: dict, params: dict | None = None):
    url = path.replace("{plan_id}", "999999").replace("{alarm}", "nosuch")
    url = url.replace("{name}", "main.js")
    body = BODIES.get((method, path))
    return c.request(method, url, headers=headers, params=params, json=body)


HTTP = sorted(k for k, role in POLICY.items() if k[0] != "WS" and role is not None)


@pytest.mark.parametrize("method,path", HTTP)
def test_role_matrix(world, method: str, path: str) -> None:
    _orch, keys, _app, c = world
    need = POLICY[(method, path)]
    assert need is not None
    r = _call(c, method, path, {})
    assert r.status_code == 401, ("no key", r.status_code, r.text)
    r = _call(c, method, path, {"X-API-Key": WRONG_KEY})
    assert r.status_code == 401 and "unknown" in r.text, ("wrong key", r.status_code, r.text)
    r = _call(c, method, path, {}, params={"key": keys.issued["admin"]})
    assert r.status_code == 401, ("?key= is for the WebSocket only", r.status_code, r.text)
    for role in ROLES:
        r = _call(c, method, path, {"X-API-Key": keys.issued[role]})
        if ROLES.index(role) < ROLES.index(need):
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert need in r.json()["detail"]
        else:
            assert r.status_code not in (401, 403) and r.status_code < 500, (role, r.text)


@pytest.mark.parametrize("method,path", sorted(k for k, v in POLICY.items() if v is None))
def test_public_routes_need_no_key(world, method: str, path: str) -> None:
    _orch, _keys, _app, c = world
    r = _call(c, method, path, {})
    assert r.status_code < 400 or path == "/static/plotly.min.js", (path, r.status_code)


@pytest.mark.parametrize("query", ["", "?key=", "?key=nope-nope-nope", f"?key={WRONG_KEY}"])
def test_websocket_refuses_without_a_known_key(world, query: str) -> None:
    _orch, _keys, _app, c = world
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect("/api/ws" + query) as ws:
        ws.receive_json()
    assert e.value.code == 4401


@pytest.mark.parametrize("role", ROLES)
def test_websocket_accepts_every_role(world, role: str) -> None:
    _orch, keys, _app, c = world
    with c.websocket_connect(f"/api/ws?key={keys.issued[role]}") as ws:
        assert "headline" in ws.receive_json()


def test_approving_or_rejecting_a_decided_proposal_is_409() -> None:
    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING), mode="propose")
    orch.run(2)
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    op = {"X-API-Key": keys.issued["operator"]}
    assert c.post("/api/sim/events", json={"kind": "fault", "line": 7}, headers=op).is_success
    orch.step()
    pending = c.get("/api/proposals?status=pending", headers=op).json()
    assert len(pending) == 1
    pid = pending[0]["id"]
    assert c.post(f"/api/proposals/{pid}/approve", headers=op).status_code == 200
    for what in ("approve", "reject"):
        r = c.post(f"/api/proposals/{pid}/{what}", headers=op)
        assert r.status_code == 409, (what, r.text)
        assert "approved" in r.json()["detail"] and "pending" in r.json()["detail"]
    assert [p["status"] for p in c.get("/api/proposals", headers=op).json()] == ["approved"]


@pytest.mark.parametrize("mount", sorted(OWN_AUTH))
def test_mounts_with_their_own_auth_refuse_without_a_token(world, mount) -> None:
    """An API key is no credential there: no token and an API key both get 401."""
    _orch, keys, app, c = world
    if mount not in app_routes(app):
        pytest.skip(f"{mount} not mounted in this app")
    probe = OWN_AUTH[mount]
    assert c.get(probe).status_code == 401
    assert c.get(probe, headers={"X-API-Key": keys.issued["admin"]}).status_code == 401
