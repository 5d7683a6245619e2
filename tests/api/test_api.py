from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from gridpilot.api import KeyStore
from gridpilot.errors import AuthError, ValidationError

from .conftest import hdr

READS = [
    "/api/grids",
    "/api/grid",
    "/api/state",
    "/api/history",
    "/api/forecast",
    "/api/events",
    "/api/alarms",
    "/api/proposals",
    "/api/dr",
    "/api/market",
    "/api/ledger",
]


def test_health_is_public_and_reads_need_a_key(setup) -> None:
    _orch, keys, c = setup
    assert c.get("/api/health").json()["ok"] is True
    for path in READS:
        assert c.get(path).status_code == 401, path
        r = c.get(path, headers=hdr(keys, "viewer"))
        assert r.status_code == 200, (path, r.text)


def test_state_and_grid_content(setup) -> None:
    _orch, keys, c = setup
    st = c.get("/api/state", headers=hdr(keys, "viewer")).json()
    assert len(st["v_pu"]) == 33 and len(st["switch_closed"]) == 37 and st["headline"]["t"] == 1
    g = c.get("/api/grid", headers=hdr(keys, "viewer")).json()
    xs = [b["x"] for b in g["buses"]]
    assert min(xs) == 0.0 and max(xs) == 1.0 and len({(b["x"], b["y"]) for b in g["buses"]}) == 33
    f = c.get("/api/forecast?steps=10", headers=hdr(keys, "viewer")).json()
    assert len(f["load_mw"]) == 10 and all(v > 0 for v in f["load_mw"])


@pytest.mark.parametrize("role,status", [(None, 401), ("viewer", 403)])
def test_commands_refused_without_operator_and_audited(setup, role, status) -> None:
    orch, keys, c = setup
    before = orch.audit.count("auth")
    headers = hdr(keys, role) if role else {}
    r = c.post("/api/commands/switch", json={"switch_id": 7, "closed": False}, headers=headers)
    assert r.status_code == status
    r = c.post("/api/mode", json={"mode": "propose"}, headers=hdr(keys, "operator"))
    assert r.status_code == 403  # mode needs admin
    entries = orch.audit.entries(kind="auth")
    assert orch.audit.count("auth") == before + 2
    assert (
        entries[-1]["what"]["path"] == "/api/commands/switch" and entries[-1]["status"] == "refused"
    )
    assert orch.world.switch_closed[6]  # nothing happened to switch 7


def test_operator_commands_pass_the_guard_and_are_audited(setup) -> None:
    orch, keys, c = setup
    op = hdr(keys, "operator")
    r = c.post("/api/commands/switch", json={"switch_id": 33, "closed": True}, headers=op)
    assert r.status_code == 409 and any("radial" in x for x in r.json()["reasons"])
    r = c.post("/api/commands/dr", json={"level": 0.5, "reason": "drill"}, headers=op)
    assert r.status_code == 200 and orch.dr_level == 0.5
    r = c.post("/api/commands/storage", json={"storage_id": 1, "p_mw": -0.2}, headers=op)
    assert r.status_code == 200
    audit = c.get("/api/audit?limit=10", headers=op).json()
    assert {e["actor"] for e in audit} >= {"operator:operator"}
    assert c.get("/api/audit", headers=hdr(keys, "viewer")).status_code == 403
    v = c.get("/api/audit/verify", headers=hdr(keys, "admin")).json()
    assert v["ok"] is True and v["entries"] >= 3


def test_bad_input_gets_clear_4xx(setup) -> None:
    _orch, keys, c = setup
    op = hdr(keys, "operator")
    assert (
        c.post(
            "/api/commands/switch", json={"switch_id": 4242, "closed": True}, headers=op
        ).status_code
        == 404
    )
    assert c.post("/api/commands/dr", json={"level": 3}, headers=op).status_code == 422
    # what a kind needs is in its schema: missing, it is the schema's 422 naming the field
    r = c.post("/api/sim/events", json={"kind": "fault"}, headers=op)
    assert r.status_code == 422 and "line" in r.text
    r = c.post("/api/sim/events", json={"kind": "fpi_failure"}, headers=op)
    assert r.status_code == 422 and "switch" in r.text
    r = c.post("/api/sim/events", json={"kind": "fpi_failure", "switch": 4242}, headers=op)
    assert r.status_code == 404 and "4242" in r.text
    r = c.post("/api/sim/events", json={"kind": "fpi_false_pickup"}, headers=op)
    assert r.status_code == 422 and "fpi_false_pickup" in r.text and "switch" in r.text
    assert c.post("/api/proposals/777/approve", headers=op).status_code == 404


def test_fault_drill_through_the_api_and_proposals(setup) -> None:
    orch, keys, c = setup
    adm, op = hdr(keys, "admin"), hdr(keys, "operator")
    assert c.post("/api/mode", json={"mode": "propose"}, headers=adm).json()["mode"] == "propose"
    assert (
        c.post("/api/sim/events", json={"kind": "fault", "line": 7}, headers=op).status_code == 200
    )
    orch.step()
    props = c.get("/api/proposals?status=pending", headers=hdr(keys, "viewer")).json()
    assert len(props) == 1 and props[0]["source"] == "flisr"
    r = c.post(f"/api/proposals/{props[0]['id']}/approve", headers=op)
    assert r.status_code == 200, r.text
    orch.step()
    st = c.get("/api/state", headers=hdr(keys, "viewer")).json()
    assert st["headline"]["dead_buses"] == 1
    done = c.get("/api/audit?kind=approval", headers=hdr(keys, "admin")).json()
    assert done and done[0]["what"]["faulted_lines"] == [7, 33]  # control's located section
    ev = c.get("/api/events?limit=100", headers=hdr(keys, "viewer")).json()
    assert any(e["kind"] == "approval" for e in ev) and any(e["kind"] == "protection" for e in ev)


def test_websocket_streams_state(setup) -> None:
    _orch, keys, c = setup
    with c.websocket_connect(f"/api/ws?key={keys.issued['viewer']}") as ws:
        msg = ws.receive_json()
        assert "headline" in msg and len(msg["v_pu"]) == 33
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect("/api/ws?key=nope") as ws:
        ws.receive_json()
    assert e.value.code == 4401  # closed before accept


def test_dashboard_page_and_plotly_served(setup) -> None:
    _orch, _keys, c = setup
    page = c.get("/")
    assert page.status_code == 200 and '<svg id="diagram"' in page.text
    js = c.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_keystore_rules() -> None:
    ks = KeyStore()
    ks.add("viewer-key-123", "viewer")
    assert ks.require("viewer-key-123", "viewer") == ("viewer", "viewer")
    with pytest.raises(AuthError) as e:
        ks.require("viewer-key-123", "operator")
    assert e.value.status == 403  # type: ignore[attr-defined]
    with pytest.raises(AuthError, match="missing"):
        ks.require(None, "viewer")
    with pytest.raises(ValidationError, match="role"):
        ks.add("some-long-key", "root")
