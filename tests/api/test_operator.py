"""Operator actions over the API (#19 item 1), live messages and limits (#15 item 7)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gridpilot.agent import GuardLimits, Orchestrator, SimWorld, demo_grid
from gridpilot.api import KeyStore, create_app

from .conftest import EVENING, hdr


def test_ws_token_is_single_use_and_keeps_the_key_out_of_the_url(setup) -> None:
    _orch, keys, c = setup
    assert c.post("/api/ws-token").status_code == 401
    r = c.post("/api/ws-token", headers=hdr(keys, "viewer"))
    assert r.status_code == 200 and r.json()["expires_in_s"] == 60
    tok = r.json()["token"]
    assert keys.issued["viewer"] not in tok
    with c.websocket_connect(f"/api/ws?token={tok}") as ws:
        assert "headline" in ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect(f"/api/ws?token={tok}") as ws:
        ws.receive_json()  # used up
    assert e.value.code == 4401


def test_ws_token_expires(setup) -> None:
    _orch, keys, c = setup
    c.app.state.ws_tokens.ttl_s = 0.05
    tok = c.post("/api/ws-token", headers=hdr(keys, "viewer")).json()["token"]
    time.sleep(0.1)
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect(f"/api/ws?token={tok}") as ws:
        ws.receive_json()
    assert e.value.code == 4401


def test_ws_messages_leave_the_static_ids_to_api_grid(setup) -> None:
    orch, keys, c = setup
    g = c.get("/api/grid", headers=hdr(keys, "viewer")).json()
    tok = c.post("/api/ws-token", headers=hdr(keys, "viewer")).json()["token"]
    with c.websocket_connect(f"/api/ws?token={tok}") as ws:
        msg = ws.receive_json()
    assert not {"bus_id", "line_id", "switch_id"} & msg.keys()
    assert len(msg["v_pu"]) == len(g["buses"]) and len(msg["bus_load_mw"]) == len(g["buses"])
    assert len(msg["line_loading_pct"]) == len(msg["line_p_mw"]) == len(g["lines"])
    assert len(msg["switch_closed"]) == len(g["switches"])
    # per-bus injections add up to the observation's totals
    o = orch.last
    want = o.load_p_mw.sum() + o.ev_p_mw.sum() + o.flex_p_mw.sum()
    assert sum(msg["bus_load_mw"]) == pytest.approx(want, abs=1e-3)


def test_limits_come_from_the_guard() -> None:
    lim = GuardLimits(v_min_pu=0.92, v_max_pu=1.08, loading_max_pct=90.0)
    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING), limits=lim)
    orch.run(1)
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    got = c.get("/api/limits", headers=hdr(keys, "viewer")).json()
    assert got["v_min_pu"] == 0.92 and got["v_max_pu"] == 1.08 and got["loading_max_pct"] == 90
    assert got["v_warn_low_pu"] == pytest.approx(0.97) and got["v_warn_high_pu"] == pytest.approx(
        1.03
    )
    assert c.get("/api/grid", headers=hdr(keys, "viewer")).json()["limits"] == got


def test_grid_has_distances_from_the_substation(setup) -> None:
    _orch, keys, c = setup
    g = c.get("/api/grid", headers=hdr(keys, "viewer")).json()
    d = {b["id"]: b["distance_km"] for b in g["buses"]}
    length = {(ln["from"], ln["to"]): ln["length_km"] for ln in g["lines"]}
    assert d[1] == 0.0
    # case33bw's main feeder 1-2-...-18: each bus one line further
    for k in range(1, 18):
        assert d[k + 1] == pytest.approx(d[k] + length[(k, k + 1)], abs=1e-3)
    assert g["layout"] == "tree" and [s["bus"] for s in g["sources"]] == [1]


def test_alarm_acknowledged_with_role_and_raised_again_unacknowledged(setup) -> None:
    orch, keys, c = setup
    op, view = hdr(keys, "operator"), hdr(keys, "viewer")
    assert c.post("/api/alarms/outage/ack", headers=op).status_code == 404  # not active
    c.post("/api/sim/events", json={"kind": "fault", "line": 7}, headers=op)
    orch.run(1)
    alarms = {a["alarm"]: a for a in c.get("/api/alarms", headers=view).json()}
    assert "fault" in alarms and alarms["fault"]["acked_by"] is None
    assert c.post("/api/alarms/fault/ack", headers=view).status_code == 403
    r = c.post("/api/alarms/fault/ack", headers=op)
    assert r.status_code == 200 and r.json()["acked_by"] == "operator"
    alarms = {a["alarm"]: a for a in c.get("/api/alarms", headers=view).json()}
    assert alarms["fault"]["acked_by"] == "operator"
    row = next(e for e in orch.audit.entries(kind="command") if "acknowledge" in (e["what"] or {}))
    assert row["what"]["acknowledge"] == "fault" and row["data"]["role"] == "operator"
    assert any(e["kind"] == "ack" for e in orch.events)
    # cleared, then raised again: a new occurrence needs a new acknowledgement
    orch.alarms.pop("fault")
    c.get("/api/alarms", headers=view)
    orch.alarms["fault"] = {"severity": "critical", "text": "again", "since": "later"}
    alarms = {a["alarm"]: a for a in c.get("/api/alarms", headers=view).json()}
    assert alarms["fault"]["acked_by"] is None


def test_every_command_is_audited_with_the_callers_role(setup) -> None:
    orch, keys, c = setup
    op, adm = hdr(keys, "operator"), hdr(keys, "admin")
    assert c.post(
        "/api/commands/storage", json={"storage_id": 1, "p_mw": 0.1}, headers=op
    ).is_success
    assert c.post("/api/mode", json={"mode": "propose"}, headers=adm).is_success
    assert c.post("/api/sim/events", json={"kind": "wind_restore"}, headers=op).is_success
    rows = orch.audit.entries(limit=10)
    roles = {(e["kind"], (e["data"] or {}).get("role")) for e in rows}
    assert (
        ("action", "operator") in roles
        and ("command", "admin") in roles
        and ("event", "operator") in roles
    )
    # rows the loop writes on its own carry no role
    orch.run(1)
    assert all(
        "role" not in (e["data"] or {})
        for e in orch.audit.entries(limit=50)
        if e["actor"].startswith("policy:")
    )


def test_dr_at_a_set_of_buses_and_stopped(setup) -> None:
    orch, keys, c = setup
    op = hdr(keys, "operator")
    r = c.post("/api/commands/dr", json={"level": 0.4, "buses": [18, 17, 18]}, headers=op)
    assert r.status_code == 200, r.text
    assert orch.dr_requests["operator"] == 0.4
    row = orch.audit.entries(kind="action", limit=1)[0]
    assert row["data"]["dr_buses"] == [17, 18] and row["data"]["role"] == "operator"
    assert (
        c.post("/api/commands/dr", json={"level": 0.4, "buses": [999]}, headers=op).status_code
        == 404
    )
    assert c.post("/api/commands/dr", json={"level": 0.0}, headers=op).status_code == 200
    assert "operator" not in orch.dr_requests


def test_ev_set_point(setup) -> None:
    orch, keys, c = setup
    r = c.post("/api/commands/ev", json={"factor": 0.5}, headers=hdr(keys, "operator"))
    assert r.status_code == 200, r.text
    assert orch.ev_factor == 0.5
    bad = c.post("/api/commands/ev", json={"factor": 1.5}, headers=hdr(keys, "operator"))
    assert bad.status_code == 422 and "factor" in bad.text


def test_a_switch_command_the_guard_refuses_says_why(setup) -> None:
    _orch, keys, c = setup
    r = c.post(
        "/api/commands/switch",
        json={"switch_id": 33, "closed": True},
        headers=hdr(keys, "operator"),
    )
    assert r.status_code == 409 and r.json()["reasons"]  # closing a tie makes a loop


def test_event_texts_are_worded_for_people(setup) -> None:
    orch, keys, c = setup
    c.post("/api/sim/events", json={"kind": "fault", "line": 7}, headers=hdr(keys, "operator"))
    texts = [e["text"] for e in orch.events if e["kind"] == "injected"]
    assert texts[-1] == "operator injected a fault on line 7"
    assert "operator:operator" not in texts[-1]


def test_market_interval_without_trades_says_so() -> None:
    import numpy as np

    from gridpilot.agent.marketlink import MarketLink

    m = MarketLink.create(demo_grid("case33bw"))
    assert m is not None

    class Obs:
        t = 0
        load_p_mw = np.zeros(3)
        gen_p_mw = np.zeros(2)

    text = m.clear(Obs(), 0.0)  # type: ignore[arg-type]
    assert "None" not in text and "no trades" in text


def test_the_first_dashboard_client_starts_the_storyline() -> None:
    """``create_app(on_client=...)`` is called when a client opens the stream (the demo's
    storyline waits for it), not for a refused one."""
    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING))
    orch.run(1)
    keys = KeyStore.generate()
    calls: list[int] = []
    c = TestClient(create_app(orch, keys, on_client=lambda: calls.append(1)))
    with pytest.raises(WebSocketDisconnect), c.websocket_connect("/api/ws?token=nope") as ws:
        ws.receive_json()
    assert calls == []
    tok = c.post("/api/ws-token", headers=hdr(keys, "viewer")).json()["token"]
    with c.websocket_connect(f"/api/ws?token={tok}") as ws:
        ws.receive_json()
    assert calls == [1]
