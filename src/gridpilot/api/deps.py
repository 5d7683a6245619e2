"""The routers' shared dependencies: the key's role (:data:`Viewer`, :data:`Operator`,
:data:`Admin`), the running orchestrator and the app's helpers, all read from ``app.state``
(set once by :func:`gridpilot.api.app.create_app`), so that a router needs no closure.

The key check itself is :func:`gridpilot.api.access.check_key`; each role dependency carries
``min_role`` (read by :func:`gridpilot.api.access.key_check` for the refusal-before-validation
rule and by the role-matrix test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse

from gridpilot.agent.acting import AlarmAcks, acting_role
from gridpilot.agent.audit import RefusalLog, _jsonable
from gridpilot.agent.orchestrator import Orchestrator
from gridpilot.api.access import Who, api_key, check_key
from gridpilot.api.tokens import WsTokens


def role(min_role: str) -> Callable[..., Who]:
    """A dependency: (name, role) of the request's key if it has at least ``min_role``, else
    HTTP 401/403 (refusals of changing methods audited in aggregate)."""

    def dep(request: Request, key: Annotated[str | None, Security(api_key)] = None) -> Who:
        st = request.app.state
        return check_key(st.keys, st.refusals, min_role, request, key)

    dep.min_role = min_role  # type: ignore[attr-defined]  # read by access.key_check
    return dep


Viewer = Annotated[Who, Depends(role("viewer"))]
Operator = Annotated[Who, Depends(role("operator"))]
Admin = Annotated[Who, Depends(role("admin"))]


def get_orch(request: Request) -> Orchestrator:
    """The orchestrator the app serves."""
    return request.app.state.orch  # type: ignore[no-any-return]


def get_acks(request: Request) -> AlarmAcks:
    """The alarm acknowledgements."""
    return request.app.state.acks  # type: ignore[no-any-return]


def get_refusals(request: Request) -> RefusalLog:
    """The aggregated refusal log (flushed before the audit is read)."""
    return request.app.state.refusals  # type: ignore[no-any-return]


def get_ws_tokens(request: Request) -> WsTokens:
    """The single-use WebSocket tokens."""
    return request.app.state.ws_tokens  # type: ignore[no-any-return]


Orch = Annotated[Orchestrator, Depends(get_orch)]
Acks = Annotated[AlarmAcks, Depends(get_acks)]
Refusals = Annotated[RefusalLog, Depends(get_refusals)]
Tokens = Annotated[WsTokens, Depends(get_ws_tokens)]


def json_out(x: Any, status: int = 200) -> JSONResponse:
    """``x`` as a JSON response (numpy values and non-finite floats made JSON-able)."""
    return JSONResponse(_jsonable(x), status_code=status)


@contextmanager
def acting(who: Who) -> Iterator[None]:
    """Audit rows written inside carry ``who``'s role (:data:`~gridpilot.agent.acting.acting_role`)."""
    tok = acting_role.set(who[1])
    try:
        yield
    finally:
        acting_role.reset(tok)
