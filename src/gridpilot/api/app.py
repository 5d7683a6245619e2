"""The FastAPI app factory: grids, live state, forecasts, events, alarms, commands, DR, flex,
market, audit and the WebSocket, one router per area (:mod:`gridpilot.api.routers`) mounted with
``include_router``; their shared dependencies are in :mod:`gridpilot.api.deps`.

Every endpoint except ``/api/health``, ``/`` and the static files needs an API key in the
``X-API-Key`` header (only the WebSocket takes ``?key=``; the dashboard page reads its key from
its own URL and sends the header). Roles: viewer reads, operator commands (switching, DR,
batteries, injected events, approvals), admin changes the mode and verifies the audit chain.
Every command is written to the orchestrator's audit log, and so are refused attempts at one
(aggregated per client and route, :class:`~gridpilot.agent.audit.RefusalLog`). The routes'
request and response models and their error answers are in :mod:`gridpilot.api.schemas`.
"""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridpilot.agent.acting import AlarmAcks
from gridpilot.agent.audit import RefusalLog
from gridpilot.agent.auth import KeyStore
from gridpilot.agent.orchestrator import Orchestrator
from gridpilot.api.access import refusal_before_validation
from gridpilot.api.deps import acting, json_out
from gridpilot.api.routers import ROUTERS
from gridpilot.api.runner import LoopRunner
from gridpilot.api.tokens import WsTokens
from gridpilot.errors import AuthError, GridpilotError, UnknownComponentError

__all__ = ["LoopRunner", "acting", "create_app"]

_json = json_out


def include_router(app: FastAPI, router: APIRouter) -> None:
    """Mount ``router``'s routes (their paths carry the router's prefix) on ``app``, flat.

    This is what ``app.include_router(router)`` did up to FastAPI 0.1xx; FastAPI 0.165 keeps an
    included router as one lazy entry in ``app.routes`` instead, which hides the routes from
    :func:`gridpilot.api.access.key_check` (the key-before-body rule reads the matched route's
    dependencies) and from the role-matrix test. The routers carry no include-time options
    (prefix, tags and dependencies are declared on them), so the flat copy is the same route.
    """
    app.router.routes.extend(router.routes)
    mark = getattr(app.router, "_mark_routes_changed", None)
    if callable(mark):
        mark()


def create_app(
    orch: Orchestrator,
    keys: KeyStore,
    *,
    runner: LoopRunner | None = None,
    on_client: Callable[[], None] | None = None,
) -> FastAPI:
    """The API over ``orch`` with ``keys``; ``runner`` (if given) is started and stopped with the
    app; ``on_client`` is called when a dashboard client opens the WebSocket (e.g. to start the
    demo's storyline)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            runner.stop()
        refusals.flush(everything=True)

    app = FastAPI(
        title="gridpilot",
        version="0.1.0",
        lifespan=lifespan,
        description="Live state, forecasts, events, alarms, commands, DR, market and audit of a gridpilot-run grid.",
    )
    refusals = RefusalLog(orch.audit)
    app.state.orch, app.state.keys, app.state.refusals = orch, keys, refusals
    acks, ws_tokens = AlarmAcks(orch), WsTokens()
    app.state.acks, app.state.ws_tokens = acks, ws_tokens
    app.state.on_client = on_client

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        refused = refusal_before_validation(request)  # the key first, then the body
        if refused is not None:
            return _json({"detail": refused.detail}, refused.status_code)
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code not in (401, 403):  # e.g. a body that does not parse: the key first
            refused = refusal_before_validation(request)
            if refused is not None:
                return _json({"detail": refused.detail}, refused.status_code)
        return await http_exception_handler(request, exc)

    @app.exception_handler(GridpilotError)
    async def _gp_error(_req: Request, exc: GridpilotError) -> JSONResponse:
        code = 404 if isinstance(exc, UnknownComponentError) else 400
        if isinstance(exc, AuthError):
            code = getattr(exc, "status", 401)
        return _json({"detail": str(exc)}, code)

    for router in ROUTERS:
        include_router(app, router)

    from gridpilot.protocols.openadr import openadr_for  # the OpenADR 3.0.1 VTN, docs/protocols.md

    app.mount("/openadr3", openadr_for(orch))  # OAuth2 of its own, not the API's keys
    return app
