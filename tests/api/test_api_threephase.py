"""The API and the demo over the three-phase world (``gridpilot demo --grid ieee123``)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gridpilot.agent.cli import build_demo
from gridpilot.agent.worldtypes import PhaseAwareWorld
from gridpilot.api import KeyStore, create_app

from .conftest import hdr


def test_state_answers_while_the_loop_steps_on_ieee123() -> None:
    orch = build_demo("ieee123")
    assert isinstance(orch.world, PhaseAwareWorld)
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    seen = []
    for _ in range(3):  # 15 simulated minutes, the state read between steps
        orch.run(5)
        r = c.get("/api/state", headers=hdr(keys, "viewer"))
        assert r.status_code == 200, r.text
        seen.append(r.json()["headline"]["t"])
    assert seen == [4, 9, 14]  # the last observed step
    ev = c.get("/api/events?limit=200", headers=hdr(keys, "viewer")).json()
    assert not [e for e in ev if e["kind"] == "policy_error"]
    res = orch.world.phase_result()
    # the feeder's node-phases: 278 less the 4 of the dangling *_OPEN buses (ties normalised)
    assert res is not None and len(res.nodes) == 274


def test_fault_drill_through_the_api_on_ieee123() -> None:
    orch = build_demo("ieee123")
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    orch.run(1)
    line = orch.world.view.branch_line()["l60"]
    r = c.post(
        "/api/sim/events", json={"kind": "fault", "line": line}, headers=hdr(keys, "operator")
    )
    assert r.status_code == 200, r.text
    orch.run(3)
    st = c.get("/api/state", headers=hdr(keys, "viewer")).json()
    assert st["headline"]["t"] == 3


def test_demo_cli_runs_ieee123_without_serving() -> None:
    from gridpilot.cli import _register, app

    if not any(c.name == "demo" for c in app.registered_commands):
        _register()
    r = CliRunner().invoke(app, ["demo", "--grid", "ieee123", "--no-serve", "--steps", "15"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["headline"]["t"] == 14 and out["audit_chain_ok"]
    bad = CliRunner().invoke(app, ["demo", "--grid", "ieee123", "--no-serve", "--flex-plan"])
    assert bad.exit_code == 2 and "three-phase" in bad.output


def test_feeder_view_reads_the_loops_three_phase_world() -> None:
    orch = build_demo("ieee123")
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    orch.run(2)
    sid = next(k for k, b in orch.world.view.switch_branch.items() if b == "sw3")
    orch.world.set_switch(sid, False)
    orch.run(1)
    r = c.get("/api/feeder/snapshot", headers=hdr(keys, "viewer"))
    assert r.status_code == 200, r.text
    snap = r.json()
    assert snap["source"] == "loop"  # the world's own per-phase result, not a twin re-run
    assert "sw3" in orch.world.open_branches()
    assert orch.world.open_branches() == {"sw3", "sw7", "sw8"}  # and the normally-open ties
    assert sum(not c for c in snap["closed"]) == 3  # sw3 and the two ties drawn open
    assert any(v == 0 for v in snap["v_pu"][0])  # its lateral dead per phase
