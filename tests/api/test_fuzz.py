"""Schemathesis fuzz over the OpenAPI spec: no request, however odd, gets a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from gridpilot.agent import FieldWorld, Orchestrator, demo_grid  # noqa: E402
from gridpilot.api import KeyStore, create_app  # noqa: E402

_orch = Orchestrator(FieldWorld(demo_grid("case33bw"), start_step=200 * 96 + 17 * 4))
_orch.run(2)
_keys = KeyStore.generate()
app = create_app(_orch, _keys)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.slow
def test_no_server_errors(case) -> None:
    for key in (_keys.issued["admin"], None):
        headers = {"X-API-Key": key} if key else {}
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            case.method,
            case.path,
            response.status_code,
            response.text[:300],
        )
