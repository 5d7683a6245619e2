"""Schemathesis over the feeder view's own app (``serve`` of a three-phase grid without the
loop): every answer is one its spec declares, in its schema (the 200 bodies against the
feeder models, which forbid extra fields); without a key or with a wrong one, 401."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("dss")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from gridpilot.api import KeyStore  # noqa: E402
from gridpilot.api.feeder_app import create_feeder_app  # noqa: E402
from gridpilot.model import load_grid  # noqa: E402

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

_keys = KeyStore.generate()
app = create_feeder_app(load_grid("ieee13"), _keys)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.slow
def test_feeder_answers_conform_to_the_spec(case) -> None:
    secured = bool(case.operation.definition.raw.get("security")) and (
        case.method.upper() == case.operation.method.upper()
    )
    case.call_and_validate(
        headers={"X-API-Key": _keys.issued["viewer"]},
        checks=[*CONFORMANCE, ignored_auth],
    )
    for headers in ({}, {"X-API-Key": "gp_viewer_" + "x" * 24}):
        response = case.call_and_validate(headers=headers, checks=CONFORMANCE)
        if secured:
            assert response.status_code == 401, (case.method, case.path, response.text[:300])
