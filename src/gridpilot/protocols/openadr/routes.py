"""The VTN over HTTP: an ``APIRouter`` with the OpenADR 3.0.1 paths, objects and status codes.

``openadr_router(vtn)`` serves ``/auth/token`` (form-encoded client credentials; credentials
may also come as HTTP basic auth) and, with a bearer token, ``/programs``, ``/events``,
``/reports``, ``/subscriptions``, ``/vens`` and ``/vens/{venID}/resources`` (GET list and
POST; GET, PUT and DELETE by id). Status codes: 200, 201 (created), 400 (a body or parameter
that fails the definition; the problem names the field), 401 (no or an unknown token: RFC 6750),
403 (a missing scope, or another VEN's object), 404, 409 (a duplicate ``programName`` /
``venName`` / resource name). Errors are ``problem`` objects.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticError

from gridpilot.protocols.openadr.auth import OAuthServer, Principal, TokenError
from gridpilot.protocols.openadr.vtn import Query, VtnError, VtnStore

MAX_BODY_BYTES = 1 << 20
SCOPE = {
    "program": "write_programs",
    "event": "write_events",
    "report": "write_reports",
    "subscription": "write_subscriptions",
    "ven": "write_vens",
    "resource": "write_vens",
}
PATHS = {
    "program": ("/programs", "programID"),
    "event": ("/events", "eventID"),
    "report": ("/reports", "reportID"),
    "subscription": ("/subscriptions", "subscriptionID"),
    "ven": ("/vens", "venID"),
}
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
}


@dataclass
class Vtn:
    """The VTN's state: objects, OAuth2 clients, and hooks run before each read (``syncs``)."""

    store: VtnStore = field(default_factory=VtnStore)
    oauth: OAuthServer = field(default_factory=OAuthServer)
    syncs: list[Any] = field(default_factory=list)
    notifier: Any = None

    def __post_init__(self) -> None:
        if self.notifier is None:
            from gridpilot.protocols.openadr.notify import Notifier

            self.notifier = Notifier(self.store)


def problem(status: int, detail: str) -> JSONResponse:
    """A 3.0.1 ``problem`` response."""
    headers = {"WWW-Authenticate": 'Bearer realm="openadr3"'} if status == 401 else None
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail[:500],
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _query(req: Request) -> Query:
    qp = req.query_params
    try:
        skip, limit = int(qp.get("skip", 0)), int(qp.get("limit", 50))
    except ValueError as exc:
        raise VtnError(400, "skip/limit: must be integers") from exc
    if skip < 0 or not 1 <= limit <= 50:
        raise VtnError(400, f"skip must be >= 0 and limit within 1..50, got {skip}, {limit}")
    return Query(
        skip,
        limit,
        qp.get("programID"),
        qp.get("eventID"),
        qp.get("clientName"),
        qp.get("venName"),
        qp.get("resourceName"),
        None,
        qp.get("targetType"),
        tuple(qp.getlist("targetValues"))[:100],
    )


async def _body(req: Request) -> dict[str, Any]:
    raw = await req.body()
    if len(raw) > MAX_BODY_BYTES:
        raise VtnError(413, f"body: larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VtnError(400, "body: not JSON") from exc
    if not isinstance(body, dict):
        raise VtnError(400, "body: must be a JSON object")
    return body


def _bad(exc: PydanticError) -> VtnError:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e.get("loc", ()))
    return VtnError(400, f"{where}: {e.get('msg', 'invalid')}"[:300])


def _token(vtn: Vtn, body: bytes, authorization: str | None) -> JSONResponse:
    if len(body) > 16384:
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if authorization and authorization.startswith("Basic "):
        try:
            cid, _, sec = base64.b64decode(authorization[6:]).decode().partition(":")
            form.setdefault("client_id", cid)
            form.setdefault("client_secret", sec)
        except (ValueError, UnicodeDecodeError):
            pass
    if not all(form.get(k) for k in ("grant_type", "client_id", "client_secret")):
        return JSONResponse(
            {
                "error": "invalid_request",
                "error_description": "grant_type, client_id and client_secret are required",
            },
            status_code=400,
        )
    try:
        return JSONResponse(
            vtn.oauth.issue(
                form["grant_type"], form["client_id"], form["client_secret"], form.get("scope")
            )
        )
    except TokenError as exc:
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description}, status_code=exc.status
        )


async def handle(
    vtn: Vtn, request: Request, kind: str, oid: str | None, ven_id: str | None
) -> JSONResponse:
    """One VTN request: token and scope, rights, then the store; errors as ``problem``s."""
    method = request.method
    try:
        p: Principal = vtn.oauth.check(
            request.headers.get("Authorization"), "read_all" if method == "GET" else SCOPE[kind]
        )
        if ven_id is not None:
            vtn.store.get(p, "ven", ven_id)
        if method == "GET":
            for sync in vtn.syncs:
                sync()
        if method == "GET" and oid is None:
            q = _query(request)
            q.ven_id = ven_id
            return JSONResponse(vtn.store.list(p, kind, q))
        if method == "GET":
            return JSONResponse(_owned(vtn.store.get(p, kind, oid or ""), ven_id))
        if method == "DELETE":
            _owned(vtn.store.get(p, kind, oid or ""), ven_id)
            return JSONResponse(vtn.store.delete(p, kind, oid or ""))
        body = await _body(request)
        if kind == "resource":
            body["venID"] = ven_id
        if method == "POST":
            return JSONResponse(vtn.store.create(p, kind, body), status_code=201)
        _owned(vtn.store.get(p, kind, oid or ""), ven_id)
        return JSONResponse(vtn.store.update(p, kind, oid or "", body))
    except TokenError as exc:
        return problem(exc.status, exc.description)
    except VtnError as exc:
        return problem(exc.status, exc.detail)
    except PydanticError as exc:
        return problem(400, _bad(exc).detail)


def _owned(obj: dict[str, Any], ven_id: str | None) -> dict[str, Any]:
    if ven_id is not None and obj.get("venID") != ven_id:
        raise VtnError(404, f"no such resource under ven {ven_id}")
    return obj


def openadr_router(vtn: Vtn | None = None, prefix: str = "/openadr3") -> APIRouter:
    """The VTN's routes under ``prefix`` (the VTN base URL a VEN is given ends with it)."""
    vtn = vtn or Vtn()
    r = APIRouter(prefix=prefix, tags=["openadr3"])

    @r.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        return _token(vtn, await request.body(), request.headers.get("Authorization"))

    def add(path: str, kind: str, by_id: bool, under_ven: bool) -> None:
        async def route(request: Request) -> JSONResponse:
            pp = request.path_params
            oid = (
                pp.get("resourceID")
                if kind == "resource"
                else pp.get(PATHS[kind][1])
                if by_id
                else None
            )
            return await handle(vtn, request, kind, oid, pp.get("venID") if under_ven else None)

        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"{(\w+)}", path)
        ]
        body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        for method in ["GET", "PUT", "DELETE"] if by_id else ["GET", "POST"]:
            extra: dict[str, Any] = {"parameters": params} if params else {}
            if method in ("PUT", "POST"):
                extra["requestBody"] = body
            name = f"{method.lower()}_{kind}{'_by_id' if by_id else 's'}"
            r.add_api_route(
                path, route, methods=[method], name=name, operation_id=name, openapi_extra=extra
            )

    for kind, (path, pid) in PATHS.items():
        add(path, kind, False, False)
        add(f"{path}/{{{pid}}}", kind, True, False)
    add("/vens/{venID}/resources", "resource", False, True)
    add("/vens/{venID}/resources/{resourceID}", "resource", True, True)
    return r
