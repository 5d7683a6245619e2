"""The OpenAPI contract: strict request types, every error a route can answer declared."""

from __future__ import annotations

import pytest

from gridpilot.field.conditions import EVENT_KINDS

from .conftest import hdr

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/api/commands/dr", {"level": False}, "level"),
        ("/api/commands/dr", {"level": "0.5"}, "level"),
        ("/api/commands/dr", {"level": 0.5, "urgent": True}, "urgent"),
        ("/api/commands/switch", {"switch_id": 7, "closed": 0}, "closed"),
        ("/api/commands/switch", {"switch_id": 7.0, "closed": False}, "switch_id"),
        ("/api/commands/switch", {"switch_id": "7", "closed": False}, "switch_id"),
        ("/api/commands/storage", {"storage_id": 1, "p_mw": True}, "p_mw"),
        ("/api/mode", {"mode": "propose", "extra": 1}, "extra"),
        ("/api/sim/events", {"kind": "fault"}, "line"),
        ("/api/sim/events", {"kind": "gen_trip"}, "generator"),
        ("/api/sim/events", {"kind": "fpi_failure"}, "switch"),
        ("/api/sim/events", {"kind": "fault", "line": True}, "line"),
        ("/api/sim/events", {"kind": "wind_drop", "factor": 5.0}, "factor"),
        ("/api/sim/events", {"kind": "wind_restore", "line": 7}, "line"),
    ],
)
def test_wrongly_typed_or_incomplete_bodies_get_422_naming_the_field(
    setup, path: str, body: dict, field: str
) -> None:
    orch, keys, c = setup
    before = (orch.audit.count(), orch.dr_level, orch.world.switch_closed.copy())
    r = c.post(path, json=body, headers=hdr(keys, "admin"))
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert field in r.text
    assert orch.audit.count() == before[0] and orch.dr_level == before[1]
    assert (orch.world.switch_closed == before[2]).all()  # nothing ran


def test_ints_are_numbers(setup) -> None:
    orch, keys, c = setup
    r = c.post("/api/commands/dr", json={"level": 1}, headers=hdr(keys, "operator"))
    assert r.status_code == 200 and orch.dr_level == 1.0


def test_every_advertised_event_kind_is_accepted_with_its_required_fields(setup) -> None:
    _orch, _keys, c = setup
    spec = c.get("/openapi.json").json()
    body = spec["paths"]["/api/sim/events"]["post"]["requestBody"]["content"]["application/json"]
    mapping = body["schema"]["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(EVENT_KINDS)
    schemas = spec["components"]["schemas"]
    needs = {k: schemas[ref.rsplit("/", 1)[1]].get("required", []) for k, ref in mapping.items()}
    assert needs["fault"] == ["kind", "line"] and needs["gen_trip"] == ["kind", "generator"]
    assert needs["fpi_failure"] == ["kind", "switch"] and needs["repair"] == ["kind"]


def _responses(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (m.upper(), p): op["responses"]
        for p, item in spec["paths"].items()
        for m, op in item.items()
        if m in METHODS
    }


def test_every_route_declares_its_responses(setup) -> None:
    from .test_access_matrix import POLICY

    _orch, _keys, c = setup
    spec = c.get("/openapi.json").json()
    for (method, path), codes in _responses(spec).items():
        need = POLICY[(method, path)]
        ok = codes["200"]["content"]["application/json"]["schema"]
        assert ok, (method, path)  # a response model, not an empty schema
        if need is None:
            continue
        assert "401" in codes, (method, path)
        assert ("403" in codes) == (need != "viewer"), (method, path)
        for code in ("401", "403"):
            if code in codes:
                ref = codes[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/Error"), (method, path, code)
    assert "409" in _responses(spec)[("POST", "/api/proposals/{plan_id}/approve")]
    assert "404" in _responses(spec)[("POST", "/api/commands/switch")]
    assert "409" in _responses(spec)[("POST", "/api/commands/switch")]
    assert "404" in _responses(spec)[("POST", "/api/sim/events")]
    scheme = spec["components"]["securitySchemes"]
    assert [s["name"] for s in scheme.values()] == ["X-API-Key"]
    assert all(s["in"] == "header" for s in scheme.values())
