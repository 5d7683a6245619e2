"""Schemathesis over the OpenAPI spec: every answer is one the spec declares, in its schema.

With an admin key every operation is called and checked for conformance (status code declared,
content type, response body against the declared model) and for no server error; without a
key, and with a wrong one, every secured operation must answer 401 and the same checks hold.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from gridpilot.agent import FieldWorld, Orchestrator, demo_grid  # noqa: E402
from gridpilot.api import KeyStore, create_app  # noqa: E402

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

_orch = Orchestrator(FieldWorld(demo_grid("case33bw"), start_step=200 * 96 + 17 * 4))
_orch.run(2)
_keys = KeyStore.generate()
app = create_app(_orch, _keys)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.slow
def test_answers_conform_to_the_spec(case) -> None:
    # negative cases include other methods (TRACE, ...): those are 405 whoever asks
    secured = bool(case.operation.definition.raw.get("security")) and (
        case.method.upper() == case.operation.method.upper()
    )
    case.call_and_validate(
        headers={"X-API-Key": _keys.issued["admin"]},
        checks=[*CONFORMANCE, ignored_auth],
    )
    for headers in ({}, {"X-API-Key": "gp_admin_" + "x" * 24}):
        response = case.call_and_validate(headers=headers, checks=CONFORMANCE)
        if secured:
            assert response.status_code == 401, (case.method, case.path, response.text[:300])
