"""The FastAPI app: grids, live state, forecasts, events, alarms, commands, DR, market, ledger, WebSocket.

Every endpoint except ``/api/health``, ``/`` and the static files needs an API key (header
``X-API-Key``; the WebSocket and the dashboard page take ``?key=``). Roles: viewer reads,
operator commands (switching, DR, batteries, injected events, approvals), admin changes the
mode and verifies the audit chain. Every command, and every refused attempt at one, is
written to the orchestrator's audit log.
"""

import asyncio
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import (
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.audit import _jsonable
from gridpilot.agent.auth import KeyStore
from gridpilot.agent.orchestrator import Orchestrator, run_realtime
from gridpilot.api.layout import diagram_xy
from gridpilot.errors import AuthError, GridpilotError, UnknownComponentError, ValidationError
from gridpilot.field.conditions import EVENT_KINDS

Role = Literal["viewer", "operator", "admin"]


class SwitchCommand(BaseModel):
    """Open or close one switch."""

    switch_id: int = Field(ge=-(2**62), le=2**62)
    closed: bool
    reason: str = Field(default="operator command", max_length=500)


class DRCommand(BaseModel):
    """Set the operator's demand-response request (0..1)."""

    level: float = Field(ge=0.0, le=1.0)
    reason: str = Field(default="operator DR event", max_length=500)


class StorageCommand(BaseModel):
    """Battery set point, MW (+ charging)."""

    storage_id: int = Field(ge=-(2**62), le=2**62)
    p_mw: float = Field(ge=-1000.0, le=1000.0)
    reason: str = Field(default="operator set point", max_length=500)


class ModeCommand(BaseModel):
    """Orchestrator mode."""

    mode: Literal["autonomous", "propose"]


class SimEvent(BaseModel):
    """An event injected into the simulated world (a drill): fault, repair, wind_drop, ..."""

    kind: Literal[EVENT_KINDS]  # type: ignore[valid-type]  # the field's scenario events
    line: int | None = Field(default=None, ge=-(2**62), le=2**62)
    switch: int | None = Field(default=None, ge=-(2**62), le=2**62)
    generator: int | None = Field(default=None, ge=-(2**62), le=2**62)
    factor: float | None = Field(default=None, ge=0.0, le=10.0)


class Decision(BaseModel):
    """An operator's reason for approving or rejecting."""

    reason: str = Field(default="", max_length=500)


def _json(x: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_jsonable(x), status_code=status)


class LoopRunner:
    """Runs the orchestrator in a background thread at ``speed`` simulated seconds per wall second."""

    def __init__(
        self,
        orch: Orchestrator,
        speed: float = 60.0,
        events: dict[int, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.orch, self.speed, self.events = orch, speed, events
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop thread (idempotent)."""
        if self.thread is None or not self.thread.is_alive():
            self.stop_event.clear()
            self.thread = threading.Thread(
                target=run_realtime,
                args=(self.orch,),
                daemon=True,
                name="gridpilot-loop",
                kwargs={"speed": self.speed, "stop": self.stop_event, "events": self.events},
            )
            self.thread.start()

    def stop(self) -> None:
        """Stop the loop thread and wait for it."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def create_app(orch: Orchestrator, keys: KeyStore, *, runner: LoopRunner | None = None) -> FastAPI:
    """The API over ``orch`` with ``keys``; ``runner`` (if given) is started and stopped with the app."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            runner.stop()

    app = FastAPI(
        title="gridpilot",
        version="0.1.0",
        lifespan=lifespan,
        description="Live state, forecasts, events, alarms, commands, DR, market and audit of a gridpilot-run grid.",
    )
    app.state.orch = orch
    app.state.keys = keys

    @app.exception_handler(GridpilotError)
    async def _gp_error(_req: Request, exc: GridpilotError) -> JSONResponse:
        code = 404 if isinstance(exc, UnknownComponentError) else 400
        if isinstance(exc, AuthError):
            code = getattr(exc, "status", 401)
        return _json({"detail": str(exc)}, code)

    def auth(role: Role, command: bool = False) -> Any:
        def dep(
            request: Request,
            x_api_key: Annotated[str | None, Header()] = None,
            key: Annotated[str | None, Query(include_in_schema=False)] = None,
        ) -> tuple[str, str]:
            supplied = x_api_key or (key if not command else None)
            try:
                return keys.require(supplied, role)
            except AuthError as exc:
                if command:
                    who = keys.identify(supplied)
                    orch.audit.record(
                        actor=f"operator:{who[0]}" if who else "unknown",
                        kind="auth",
                        what={"method": request.method, "path": request.url.path},
                        why=str(exc),
                        status="refused",
                    )
                raise HTTPException(getattr(exc, "status", 401), str(exc)) from None

        return dep

    Viewer = Annotated[tuple[str, str], Depends(auth("viewer"))]
    Operator = Annotated[tuple[str, str], Depends(auth("operator", command=True))]
    Admin = Annotated[tuple[str, str], Depends(auth("admin", command=True))]
    OperatorRead = Annotated[tuple[str, str], Depends(auth("operator"))]

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

    @app.get("/api/health")
    def health() -> JSONResponse:
        """Liveness: the loop's step counter and simulated time."""
        h = orch.headline()
        return _json({"ok": True, "steps": orch.counters["steps"], "time": h.get("time")})

    # --- reading ---------------------------------------------------------------------------------
    @app.get("/api/grids")
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

    @app.get("/api/grid")
    def grid(_w: Viewer) -> JSONResponse:
        """The running grid for drawing: buses with diagram coordinates, lines, switches, devices."""
        g = orch.grid
        x, y = diagram_xy(g)
        sw = g.switch
        line_of = {int(i): k for k, i in enumerate(g.line.ids)}
        return _json(
            {
                "name": g.name,
                "buses": [
                    {"id": int(i), "x": float(a), "y": float(b), "v_nom_kv": float(v)}
                    for i, a, b, v in zip(g.bus.ids, x, y, g.bus["v_nom_kv"], strict=True)
                ],
                "lines": [
                    {"id": int(i), "from": int(f), "to": int(t)}
                    for i, f, t in zip(
                        g.line.ids, g.line["from_bus"], g.line["to_bus"], strict=True
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
                "storage": [
                    {"id": int(i), "bus": int(b)}
                    for i, b in zip(g.storage.ids, g.storage["bus"], strict=True)
                ],
            }
        )

    @app.get("/api/state")
    def state(_w: Viewer) -> JSONResponse:
        """Live state: voltages, loadings, switch states, FPIs, alarms, latest events, pending proposals."""
        return _json(orch.state())

    @app.get("/api/history")
    def history(_w: Viewer, limit: Annotated[int, Query(ge=1, le=5000)] = 240) -> JSONResponse:
        """Per-step history: load, forecast made 15 steps earlier, import, renewables, DR, prices."""
        with orch.lock:
            return _json(list(orch.history)[-limit:])

    @app.get("/api/forecast")
    def forecast(_w: Viewer, steps: Annotated[int, Query(ge=1, le=240)] = 60) -> JSONResponse:
        """Load forecast for the next ``steps`` steps (MW, total of the feeder)."""
        with orch.lock:
            if orch.last is None:
                return _json({"steps": [], "load_mw": []})
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

    @app.get("/api/events")
    def events(_w: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSONResponse:
        """Latest events (alarms, protection, actions, refusals, proposals, injected drills), newest last."""
        with orch.lock:
            return _json(list(orch.events)[-limit:])

    @app.get("/api/alarms")
    def alarms(_w: Viewer) -> JSONResponse:
        """Active alarms."""
        with orch.lock:
            return _json([{"alarm": k, **v} for k, v in orch.alarms.items()])

    @app.get("/api/proposals")
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

    @app.get("/api/dr")
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

    @app.get("/api/flex")
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

    @app.get("/api/market")
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

    @app.get("/api/ledger")
    def ledger(_w: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSONResponse:
        """The audit ledger's head: entries and whether its hash chain verifies."""
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

    @app.get("/api/audit")
    def audit(
        _o: OperatorRead,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, Query(max_length=20)] = None,
    ) -> JSONResponse:
        """Audit entries, newest first: what, why, on which data, the guard's verdict, the result."""
        return _json(orch.audit.entries(limit=limit, kind=kind))

    # --- commands --------------------------------------------------------------------------------
    def _submit(plan: Plan, who: tuple[str, str]) -> JSONResponse:
        out = orch.submit(plan, who[0])
        return _json(out, 200 if out["status"] == "done" else 409)

    @app.post("/api/commands/switch")
    def cmd_switch(body: SwitchCommand, who: Operator) -> JSONResponse:
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

    @app.post("/api/commands/dr")
    def cmd_dr(body: DRCommand, who: Operator) -> JSONResponse:
        """Call (or end, with level 0) a demand-response event."""
        return _submit(Plan([Action("dr", None, body.level)], body.reason, "operator"), who)

    @app.post("/api/commands/storage")
    def cmd_storage(body: StorageCommand, who: Operator) -> JSONResponse:
        """Set a battery's power."""
        orch.grid.storage.index_of(body.storage_id)
        return _submit(
            Plan([Action("storage", body.storage_id, body.p_mw)], body.reason, "operator"), who
        )

    @app.post("/api/proposals/{plan_id}/approve")
    def approve(plan_id: int, who: Operator) -> JSONResponse:
        """Approve a pending proposal (re-checked by the guard)."""
        out = orch.approve(plan_id, who[0])
        return _json(out, 200 if out["status"] == "approved" else 409)

    @app.post("/api/proposals/{plan_id}/reject")
    def reject(plan_id: int, who: Operator, body: Decision | None = None) -> JSONResponse:
        """Reject a pending proposal."""
        return _json(orch.reject(plan_id, who[0], body.reason if body else ""))

    @app.post("/api/mode")
    def mode(body: ModeCommand, who: Admin) -> JSONResponse:
        """Switch between autonomous and propose-and-wait."""
        orch.set_mode(body.mode, who[0])
        return _json({"mode": orch.mode})

    @app.post("/api/sim/events")
    def sim_event(body: SimEvent, who: Operator) -> JSONResponse:
        """Inject a drill event into the simulated world (audited)."""
        params = {k: v for k, v in body.model_dump().items() if k != "kind" and v is not None}
        if body.kind == "fault" and "line" not in params:
            raise ValidationError("fault: needs 'line'")
        if body.kind == "gen_trip" and "generator" not in params:
            raise ValidationError("gen_trip: needs 'generator'")
        if body.kind in ("fpi_failure", "fpi_false_pickup") and "switch" not in params:
            raise ValidationError(f"{body.kind}: needs 'switch'")
        return _json(orch.inject(body.kind, actor=f"operator:{who[0]}", **params))

    @app.get("/api/audit/verify")
    def audit_verify(_a: Annotated[tuple[str, str], Depends(auth("admin"))]) -> JSONResponse:
        """Verify the audit log's hash chain."""
        ok, bad = orch.audit.verify()
        return _json({"ok": ok, "first_bad_id": bad, "entries": orch.audit.count()})

    # --- live stream -----------------------------------------------------------------------------
    @app.websocket("/api/ws")
    async def ws(websocket: WebSocket, key: str | None = None) -> None:
        """State updates: one JSON message per orchestrator step (needs a viewer key as ``?key=``)."""
        if keys.identify(key) is None:
            await websocket.close(code=4401)
            return
        await websocket.accept()
        last = -1
        try:
            while True:
                n = orch.counters["steps"]
                if n != last:
                    last = n
                    st = await asyncio.to_thread(orch.state)
                    with orch.lock:
                        st["history_tail"] = list(orch.history)[-1:]
                    await websocket.send_json(_jsonable(st))
                await asyncio.sleep(0.1)
        except (WebSocketDisconnect, RuntimeError):
            return

    from gridpilot.protocols.openadr import openadr_for  # the OpenADR 3.0.1 VTN, docs/protocols.md

    app.mount("/openadr3", openadr_for(orch))  # OAuth2 of its own, not the API's keys
    return app
