"""Who may call what: the API key (header ``X-API-Key`` only) checked against a minimum role.

A refusal is an HTTP 401 (missing or unknown key) or 403 (too low a role). Refusals at
endpoints that change something (every method but GET/HEAD) go to the audit through a
:class:`~gridpilot.agent.audit.RefusalLog`, which aggregates floods. ``?key=`` is never read
here: only the WebSocket takes its key from the query (browsers cannot set its headers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from gridpilot.agent.audit import RefusalLog
from gridpilot.agent.auth import KeyStore
from gridpilot.errors import AuthError

log = logging.getLogger(__name__)

KEY_HEADER = "X-API-Key"
api_key = APIKeyHeader(
    name=KEY_HEADER,
    auto_error=False,
    description="An API key; its role (viewer < operator < admin) decides what it may do.",
)
Who = tuple[str, str]  # (key name, role)


def check_key(
    keys: KeyStore, refusals: RefusalLog, role: str, request: Request, key: str | None
) -> Who:
    """(name, role) of ``key`` if it has at least ``role``, else HTTP 401/403 (audited in
    aggregate when the request's method changes something)."""
    try:
        return keys.require(key, role)
    except AuthError as exc:
        status = int(getattr(exc, "status", 401))
        why = str(exc)
        if not key and "key" in request.query_params:
            why = f"missing API key: send it in the {KEY_HEADER} header (?key= is only for /api/ws)"
        if request.method not in ("GET", "HEAD"):
            _refused(request, keys.identify(key), refusals, why)
        raise HTTPException(status, why) from None


def require(keys: KeyStore, refusals: RefusalLog, role: str) -> Callable[..., Who]:
    """A FastAPI dependency bound to ``keys``: (name, role) of the request's key if it has at
    least ``role``, else HTTP 401/403 (the routers use :mod:`gridpilot.api.deps`, which reads
    the keys from ``app.state``)."""

    def dep(request: Request, key: Annotated[str | None, Security(api_key)] = None) -> Who:
        return check_key(keys, refusals, role, request, key)

    dep.min_role = role  # type: ignore[attr-defined]  # read by key_check
    return dep


def key_check(route: Any) -> Callable[..., Who] | None:
    """The key dependency of ``route`` (its ``min_role`` attribute is the role), None if public."""
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        d = stack.pop()
        if getattr(d.call, "min_role", None):
            return d.call
        stack.extend(d.dependencies)
    return None


def refusal_before_validation(request: Request) -> HTTPException | None:
    """The 401/403 a request with an invalid body or parameters would have had from its key.

    FastAPI reads and validates the body before it runs the key dependency; a request that
    fails validation is checked here first, so that no caller learns more than 401/403 about a
    route it may not use."""
    check = key_check(request.scope.get("route"))
    if check is None:
        return None
    try:
        check(request, request.headers.get(KEY_HEADER))
    except HTTPException as exc:
        return exc
    return None


def _refused(request: Request, who: Who | None, refusals: RefusalLog, why: str) -> None:
    route = request.scope.get("route")
    log.debug("refused %s %s: %s", request.method, request.url.path[:200], why)
    refusals.refuse(
        client=request.client.host if request.client else "unknown",
        actor=f"operator:{who[0]}" if who else "unknown",
        method=request.method,
        route=getattr(route, "path", request.url.path),
        path=request.url.path,
        why=why,
    )
