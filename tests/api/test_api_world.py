"""The API over the field world: the drill events are the field's, each reaches the field."""

from __future__ import annotations

import pytest

from gridpilot.field.conditions import EVENT_KINDS

from .conftest import hdr

PARAMS = {
    "fault": {"line": 7},
    "repair": {},
    "wind_drop": {"factor": 0.1},
    "wind_restore": {},
    "gen_trip": {"generator": 1},
    "heatwave": {"load_factor": 1.2},
    "ev_surge": {"factor": 2.0},
    "fpi_failure": {"switch": 7},
    "fpi_false_pickup": {"switch": 10},
}


def test_drill_event_kinds_are_the_fields(setup) -> None:
    _orch, keys, c = setup
    spec = c.get("/openapi.json").json()
    body = spec["paths"]["/api/sim/events"]["post"]["requestBody"]["content"]["application/json"]
    assert sorted(body["schema"]["discriminator"]["mapping"]) == sorted(EVENT_KINDS)
    assert set(PARAMS) == set(EVENT_KINDS)  # every kind is exercised below
    r = c.post("/api/sim/events", json={"kind": "meteor"}, headers=hdr(keys, "operator"))
    assert r.status_code == 422 and "kind" in r.text


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_drill_event_reaches_the_world_and_the_loop_goes_on(setup, kind: str) -> None:
    orch, keys, c = setup
    r = c.post(
        "/api/sim/events", json={"kind": kind, **PARAMS[kind]}, headers=hdr(keys, "operator")
    )
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == kind
    orch.run(2)
    ev = c.get("/api/events?limit=50", headers=hdr(keys, "viewer")).json()
    assert any(e["kind"] == "injected" and e["event"]["kind"] == kind for e in ev)
    assert c.get("/api/state", headers=hdr(keys, "viewer")).json()["headline"]["t"] >= 3
