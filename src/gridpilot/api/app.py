"""The FastAPI app: grids, live state, forecasts, events, alarms, commands, DR, market, ledger, WebSocket.

Every endpoint except ``/api/health``, ``/`` and the static files needs an API key in the
``X-API-Key`` header (only the WebSocket takes ``?key=``; the dashboard page reads its key from
its own URL and sends the header). Roles: viewer reads, operator commands (switching, DR,
batteries, injected events, approvals), admin changes the mode and verifies the audit chain.
Every command is written to the orchestrator's audit log, and so are refused attempts at one
(aggregated per client and route, :class:`~gridpilot.agent.audit.RefusalLog`). The routes'
request and response models and their error answers are in :mod:`gridpilot.api.schemas`.
"""

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi import Path as PathParam
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridpilot.agent.acting import AlarmAcks, acting_role
from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.audit import RefusalLog, _jsonable
from gridpilot.agent.auth import KeyStore
from gridpilot.agent.orchestrator import Orchestrator
from gridpilot.api import schemas as S
from gridpilot.api.access import KEY_HEADER, Who, refusal_before_validation, require
from gridpilot.api.layout import diagram_xy, distance_km, has_coordinates
from gridpilot.api.live import limits_dict, live_message
from gridpilot.api.runner import LoopRunner
from gridpilot.api.schemas import errors
from gridpilot.api.tokens import WsTokens
from gridpilot.errors import AuthError, GridpilotError, UnknownComponentError


def _json(x: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_jsonable(x), status_code=status)


JS_NAME = re.compile(r"^[a-z]+\.js$")


@contextmanager
def acting(who: Who) -> Iterator[None]:
    """Audit rows written inside carry ``who``'s role (:data:`~gridpilot.agent.acting.acting_role`)."""
    tok = acting_role.set(who[1])
    try:
        yield
    finally:
        acting_role.reset(tok)


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

    Viewer = Annotated[Who, Depends(require(keys, refusals, "viewer"))]
    Operator = Annotated[Who, Depends(require(keys, refusals, "operator"))]
    Admin = Annotated[Who, Depends(require(keys, refusals, "admin"))]
    E_VIEW = errors(401)
    E_ROLE = errors(401, 403)

    # --- pages -----------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(
            resources.files("gridpilot.api").joinpath("static/index.html").read_text()
        )

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        import plotly

        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        if not path.exists():
            return Response(
                "/* plotly.min.js not found in the plotly package */",
                media_type="text/javascript",
                status_code=404,
            )
        return FileResponse(path, media_type="text/javascript")

    @app.get("/static/js/{name}", include_in_schema=False)
    def js_module(name: str) -> Response:
        """The dashboard's ES modules (static/js/*.js)."""
        f = resources.files("gridpilot.api").joinpath("static/js").joinpath(name)
        if not JS_NAME.match(name) or not f.is_file():
            raise HTTPException(404, f"no such script: {name[:40]!r}")
        return Response(f.read_text(), media_type="text/javascript")

    @app.get("/api/health", response_model=S.Health)
    def health() -> JSONResponse:
        """Liveness: the loop's step counter and simulated time."""
        h = orch.headline()
        return _json({"ok": True, "steps": orch.counters["steps"], "time": h.get("time")})

    # --- reading ---------------------------------------------------------------------------------
    @app.get("/api/whoami", response_model=S.WhoAmI, responses=E_VIEW)
    def whoami(who: Viewer) -> JSONResponse:
        """The key's name and role (the dashboard shows commands only to operators)."""
        return _json({"name": who[0], "role": who[1]})

    @app.get("/api/grids", response_model=S.Grids, responses=E_VIEW)
    def grids(_w: Viewer) -> JSONResponse:
        """Built-in grids and the one running now."""
        from gridpilot.model import list_grids

        return _json(
            {
                "running": orch.grid.name,
                "builtin": [
                    {"name": g.name, "buses": g.buses, "description": g.description}
                    for g in list_grids()
                ],
            }
        )

    @app.get("/api/grid", response_model=S.GridDrawing, responses=E_VIEW)
    def grid(_w: Viewer) -> JSONResponse:
        """The running grid for drawing: buses with diagram coordinates, lines, switches, devices."""
        g = orch.grid
        x, y = diagram_xy(g)
        dist = distance_km(g)
        sw = g.switch
        line_of = {int(i): k for k, i in enumerate(g.line.ids)}
        return _json(
            {
                "name": g.name,
                "layout": "coordinates" if has_coordinates(g) else "tree",
                "limits": limits_dict(orch.limits),
                "buses": [
                    {
                        "id": int(i),
                        "x": float(a),
                        "y": float(b),
                        "v_nom_kv": float(v),
                        "distance_km": None if not np.isfinite(d) else round(float(d), 4),
                    }
                    for i, a, b, v, d in zip(g.bus.ids, x, y, g.bus["v_nom_kv"], dist, strict=True)
                ],
                "lines": [
                    {"id": int(i), "from": int(f), "to": int(t), "length_km": float(km)}
                    for i, f, t, km in zip(
                        g.line.ids,
                        g.line["from_bus"],
                        g.line["to_bus"],
                        g.line["length_km"],
                        strict=True,
                    )
                ],
                "transformers": [
                    {"id": int(i), "from": int(f), "to": int(t)}
                    for i, f, t in zip(
                        g.transformer.ids,
                        g.transformer["hv_bus"],
                        g.transformer["lv_bus"],
                        strict=True,
                    )
                ],
                "switches": [
                    {
                        "id": int(sw.ids[k]),
                        "bus": int(sw["bus"][k]),
                        "element": int(sw["element"][k]),
                        "et": int(sw["et"][k]),
                        "kind": int(sw["kind"][k]),
                        "normally_open": bool(sw["normally_open"][k]),
                        "line_index": line_of.get(int(sw["element"][k]))
                        if sw["et"][k] == 0
                        else None,
                    }
                    for k in range(len(sw))
                ],
                "generators": [
                    {"id": int(i), "bus": int(b), "kind": int(k), "p_mw": float(p)}
                    for i, b, k, p in zip(
                        g.generator.ids,
                        g.generator["bus"],
                        g.generator["kind"],
                        g.generator["p_mw"],
                        strict=True,
                    )
                ],
                "sources": [
                    {"id": int(i), "bus": int(b)}
                    for i, b in zip(g.source.ids, g.source["bus"], strict=True)
                ],
                "storage": [
                    {"id": int(i), "bus": int(b)}
                    for i, b in zip(g.storage.ids, g.storage["bus"], strict=True)
                ],
            }
        )

    @app.get("/api/limits", response_model=S.Limits, responses=E_VIEW)
    def limits(_w: Viewer) -> JSONResponse:
        """The safety guard's operating limits (pu, %) and the dashboard's warning bands."""
        return _json(limits_dict(orch.limits))

    @app.post("/api/ws-token", response_model=S.WsToken, responses=E_VIEW)
    def ws_token(who: Viewer) -> JSONResponse:
        """A single-use token for ``/api/ws?token=``, valid for 60 s (keeps the key out of URLs)."""
        return _json({"token": ws_tokens.issue(who), "expires_in_s": ws_tokens.ttl_s})

    @app.get("/api/state", response_model=S.State, responses=E_VIEW)
    def state(_w: Viewer) -> JSONResponse:
        """Live state: voltages, loadings, switch states, FPIs, alarms, latest events, pending proposals."""
        return _json(orch.state())

    @app.get("/api/history", response_model=list[dict[str, Any]], responses=E_VIEW)
    def history(_w: Viewer, limit: Annotated[int, Query(ge=1, le=5000)] = 240) -> JSONResponse:
        """Per-step history: load, forecast made 15 steps earlier, import, renewables, DR, prices."""
        with orch.lock:
            return _json(list(orch.history)[-limit:])

    @app.get("/api/forecast", response_model=S.Forecast, responses=E_VIEW)
    def forecast(_w: Viewer, steps: Annotated[int, Query(ge=1, le=240)] = 60) -> JSONResponse:
        """Load forecast for the next ``steps`` steps (MW, total of the feeder)."""
        with orch.lock:
            if orch.last is None:
                return _json(
                    {"method": "profile shape x present estimate", "time": [], "load_mw": []}
                )
            ahead = np.arange(1, steps + 1)
            f = (orch.forecast_ratio(ahead) * orch.load_est_mw).sum(axis=1)
            t0 = orch.last.time
            times = [str(t0 + np.timedelta64(int(a * orch.world.step_s), "s")) for a in ahead]
            return _json(
                {
                    "method": "profile shape x present estimate",
                    "time": times,
                    "load_mw": np.round(f, 4).tolist(),
                }
            )

    @app.get("/api/events", response_model=list[dict[str, Any]], responses=E_VIEW)
    def events(_w: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSONResponse:
        """Latest events (alarms, protection, actions, refusals, proposals, injected drills), newest last."""
        with orch.lock:
            return _json(list(orch.events)[-limit:])

    @app.get("/api/alarms", response_model=list[dict[str, Any]], responses=E_VIEW)
    def alarms(_w: Viewer) -> JSONResponse:
        """Active alarms."""
        with orch.lock:
            return _json(acks.annotate([{"alarm": k, **v} for k, v in orch.alarms.items()]))

    @app.post("/api/alarms/{alarm}/ack", response_model=S.AlarmOut, responses=errors(401, 403, 404))
    def ack_alarm(alarm: Annotated[str, PathParam(max_length=40)], who: Operator) -> JSONResponse:
        """Acknowledge an active alarm (audited with the role); 404 if it is not active."""
        with acting(who):
            return _json(acks.acknowledge(alarm, who[0]))

    @app.get("/api/proposals", response_model=list[S.Proposal], responses=E_VIEW)
    def proposals(
        _w: Viewer, status: Annotated[str | None, Query(max_length=20)] = None
    ) -> JSONResponse:
        """Proposals (propose mode), optionally filtered by status."""
        with orch.lock:
            return _json(
                [
                    p.to_dict()
                    for p in orch.proposals.values()
                    if status is None or p.status == status
                ]
            )

    @app.get("/api/dr", response_model=S.DRStatus, responses=E_VIEW)
    def dr(_w: Viewer) -> JSONResponse:
        """Demand response and battery status."""
        with orch.lock:
            o = orch.last
            g = orch.grid
            return _json(
                {
                    "level": orch.dr_level,
                    "requests": orch.dr_requests,
                    "enrolled_share": orch.dr_share,
                    "batteries": [
                        {"id": int(i), "p_mw": float(p), "soc": float(s)}
                        for i, p, s in zip(
                            g.storage.ids,
                            orch.storage_cmd_mw,
                            o.storage_soc if o is not None else g.storage["soc"],
                            strict=True,
                        )
                    ],
                    "method": "gridpilot.flex events on the field's household devices"
                    if orch.flexdr is not None
                    else "built-in DR (enrolled share of loads, water heaters, EV smart charging)",
                    "events": orch.flexdr.events() if orch.flexdr is not None else [],
                }
            )

    @app.get("/api/flex", response_model=S.Flex, responses=E_VIEW)
    def flex(_w: Viewer) -> JSONResponse:
        """The flexibility schedule in force (FlexPlanPolicy): planned feeder import and fleet
        power per 15-minute step over the horizon, against the devices on their own (MW)."""
        with orch.lock:
            on = any(getattr(p, "name", "") == "flexplan" for p in orch.policies)
            return _json(
                {
                    "policy": on,
                    "plan": orch.shared.get("flex_plan"),
                    "storage_by": orch.shared.get("storage_by"),
                }
            )

    @app.get("/api/market", response_model=S.Market, responses=E_VIEW)
    def market(_w: Viewer) -> JSONResponse:
        """Latest local-market interval (price EUR/MWh, volume MWh) and the recent series."""
        with orch.lock:
            m = orch.market
            hist = [
                {
                    "time": h["time"],
                    "price_eur_mwh": h["price_eur_mwh"],
                    "volume_mwh": h["volume_mwh"],
                }
                for h in list(orch.history)[-240:]
            ]
            if m is None:
                return _json(
                    {"available": False, "reason": "gridpilot.market not importable", "history": []}
                )
            return _json(
                {
                    "available": True,
                    "price_eur_mwh": m.last_price,
                    "volume_mwh": m.last_volume,
                    "intervals": m.intervals,
                    "history": hist,
                }
            )

    @app.get("/api/ledger", response_model=S.Ledger, responses=E_VIEW)
    def ledger(_w: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSONResponse:
        """The audit ledger's head: entries and whether its hash chain verifies."""
        refusals.flush()
        ok, bad = orch.audit.verify()
        last = orch.audit.entries(limit=1)
        return _json(
            {
                "chain_ok": ok,
                "first_bad_id": bad,
                "entries": orch.audit.count(),
                "head_hash": last[0]["hash"] if last else None,
                "recent": [
                    {k: e[k] for k in ("id", "sim_time", "actor", "kind", "status", "hash")}
                    for e in orch.audit.entries(limit=limit)
                ],
            }
        )

    @app.get("/api/audit", response_model=list[S.AuditEntry], responses=E_ROLE)
    def audit(
        _o: Operator,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, Query(max_length=20)] = None,
    ) -> JSONResponse:
        """Audit entries, newest first: what, why, on which data, the guard's verdict, the result."""
        refusals.flush()
        return _json(orch.audit.entries(limit=limit, kind=kind))

    # --- commands --------------------------------------------------------------------------------
    def _submit(plan: Plan, who: Who) -> JSONResponse:
        with acting(who):
            out = orch.submit(plan, who[0])
        return _json(out, 200 if out["status"] == "done" else 409)

    E_CMD = errors(400, 401, 403, 404, 409, conflict=S.CommandResult)

    @app.post("/api/commands/switch", response_model=S.CommandResult, responses=E_CMD)
    def cmd_switch(body: S.SwitchCommand, who: Operator) -> JSONResponse:
        """Operate a switch; the safety guard checks it first (409 with its reasons if refused)."""
        orch.grid.switch.index_of(body.switch_id)
        return _submit(
            Plan(
                [Action("switch", body.switch_id, 1.0 if body.closed else 0.0)],
                body.reason,
                "operator",
            ),
            who,
        )

    @app.post("/api/commands/dr", response_model=S.CommandResult, responses=E_CMD)
    def cmd_dr(body: S.DRCommand, who: Operator) -> JSONResponse:
        """Call (or end, with level 0) a demand-response event, at every enrolled load or only at
        the loads of ``buses`` (ids; 404 for an unknown one)."""
        data: dict[str, Any] = {}
        if body.buses:
            orch.grid.bus.index_of(body.buses)
            data["dr_buses"] = sorted(set(body.buses))
        return _submit(
            Plan([Action("dr", None, body.level)], body.reason, "operator", data=data), who
        )

    @app.post("/api/commands/ev", response_model=S.CommandResult, responses=E_CMD)
    def cmd_ev(body: S.EVCommand, who: Operator) -> JSONResponse:
        """Set the EV chargers' set point: the share (0..1) of their wanted power they may draw."""
        return _submit(Plan([Action("ev", None, body.factor)], body.reason, "operator"), who)

    @app.post("/api/commands/storage", response_model=S.CommandResult, responses=E_CMD)
    def cmd_storage(body: S.StorageCommand, who: Operator) -> JSONResponse:
        """Set a battery's power."""
        orch.grid.storage.index_of(body.storage_id)
        return _submit(
            Plan([Action("storage", body.storage_id, body.p_mw)], body.reason, "operator"), who
        )

    def _pending(plan_id: int) -> None:
        """404 for an unknown proposal, 409 for one already decided (call under ``orch.lock``)."""
        p = orch.proposals.get(plan_id)
        if p is None:
            raise UnknownComponentError("proposal", plan_id)
        if p.status != "pending":
            raise HTTPException(409, f"proposal {plan_id}: is {p.status}, not pending")

    E_DECIDE = errors(401, 403, 404, 409, conflict=S.Decided | S.Error)

    @app.post("/api/proposals/{plan_id}/approve", response_model=S.Decided, responses=E_DECIDE)
    def approve(plan_id: int, who: Operator) -> JSONResponse:
        """Approve a pending proposal (re-checked by the guard: 409 with its reasons if refused;
        409 too if the proposal is no longer pending)."""
        with orch.lock:
            _pending(plan_id)
            with acting(who):
                out = orch.approve(plan_id, who[0])
        return _json(out, 200 if out["status"] == "approved" else 409)

    @app.post(
        "/api/proposals/{plan_id}/reject",
        response_model=S.Decided,
        responses=errors(400, 401, 403, 404, 409, conflict=S.Decided | S.Error),
    )
    def reject(plan_id: int, who: Operator, body: S.Decision | None = None) -> JSONResponse:
        """Reject a pending proposal (409 if it is no longer pending)."""
        with orch.lock:
            _pending(plan_id)
            with acting(who):
                return _json(orch.reject(plan_id, who[0], body.reason if body else ""))

    @app.post("/api/mode", response_model=S.ModeOut, responses=errors(400, 401, 403))
    def mode(body: S.ModeCommand, who: Admin) -> JSONResponse:
        """Switch between autonomous and propose-and-wait."""
        with acting(who):
            orch.set_mode(body.mode, who[0])
        return _json({"mode": orch.mode})

    @app.post(
        "/api/sim/events", response_model=S.InjectedEvent, responses=errors(400, 401, 403, 404)
    )
    def sim_event(body: S.SimEvent, who: Operator) -> JSONResponse:
        """Inject a drill event into the simulated world (audited); its fields by kind."""
        params = {k: v for k, v in body.model_dump().items() if k != "kind" and v is not None}
        with acting(who):
            return _json(orch.inject(body.kind, actor=f"operator:{who[0]}", **params))

    @app.get("/api/audit/verify", response_model=S.AuditCheck, responses=E_ROLE)
    def audit_verify(_a: Admin) -> JSONResponse:
        """Verify the audit log's hash chain."""
        refusals.flush()
        ok, bad = orch.audit.verify()
        return _json({"ok": ok, "first_bad_id": bad, "entries": orch.audit.count()})

    # --- live stream -----------------------------------------------------------------------------
    @app.websocket("/api/ws")
    async def ws(websocket: WebSocket, token: str | None = None, key: str | None = None) -> None:
        """State updates: one JSON message per orchestrator step, its arrays in the order of
        ``/api/grid`` (the id arrays are not repeated). Needs ``?token=`` from ``POST
        /api/ws-token`` (single use, 60 s); ``?key=`` or an ``X-API-Key`` header still work for
        clients that cannot fetch a token first. Closes with code 4401 before accepting otherwise."""
        who = ws_tokens.redeem(token) or keys.identify(websocket.headers.get(KEY_HEADER) or key)
        if who is None:
            await websocket.close(code=4401)
            return
        await websocket.accept()
        if on_client is not None:
            on_client()
        last = -1
        try:
            while True:
                n = orch.counters["steps"]
                if n != last:
                    last = n
                    msg = await asyncio.to_thread(live_message, orch, acks)
                    await websocket.send_json(_jsonable(msg))
                await asyncio.sleep(0.1)
        except (WebSocketDisconnect, RuntimeError):
            return

    from gridpilot.protocols.openadr import openadr_for  # the OpenADR 3.0.1 VTN, docs/protocols.md

    app.mount("/openadr3", openadr_for(orch))  # OAuth2 of its own, not the API's keys
    return app
