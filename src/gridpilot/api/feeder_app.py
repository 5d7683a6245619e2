"""The feeder view without the loop: ``gridpilot serve --grid ieee8500`` where the loop cannot
run a three-phase grid yet. It serves the feeder page (``/`` and ``/feeder``), the feeder
routes (:mod:`gridpilot.api.routers.feeder`) over one unbalanced power flow of the grid, and
the key, limits and health routes the page needs; the same API keys and roles as
:func:`gridpilot.api.app.create_app`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gridpilot.agent.audit import AuditLog, RefusalLog
from gridpilot.agent.auth import KeyStore
from gridpilot.api import schemas as S
from gridpilot.api.app import include_router
from gridpilot.api.deps import Viewer, json_out
from gridpilot.api.feeder3p import FeederSource
from gridpilot.api.live import limits_dict
from gridpilot.api.routers import feeder, pages
from gridpilot.errors import GridpilotError, UnknownComponentError
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid

E_VIEW = S.errors(401)


def _router() -> APIRouter:
    r = APIRouter(tags=["feeder"])

    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        """The feeder page."""
        return feeder.feeder_page()

    @r.get("/api/whoami", response_model=S.WhoAmI, responses=E_VIEW)
    def whoami(who: Viewer) -> JSONResponse:
        """The key's name and role."""
        return json_out({"name": who[0], "role": who[1]})

    @r.get("/api/limits", response_model=S.Limits, responses=E_VIEW)
    def limits(_w: Viewer, request: Request) -> JSONResponse:
        """The operating limits the feeder view draws (default: ANSI C84.1 Range A)."""
        return json_out(limits_dict(request.app.state.limits))

    @r.get("/api/health", response_model=S.Health)
    def health() -> JSONResponse:
        """Liveness (no loop runs: zero steps)."""
        return json_out({"ok": True, "steps": 0, "time": None})

    return r


def create_feeder_app(
    grid: ThreePhaseGrid,
    keys: KeyStore,
    *,
    limits: OperatingLimits | None = None,
    hosting_dir: Path | None = None,
) -> FastAPI:
    """The feeder view of ``grid`` (no loop) with ``keys``; ``hosting_dir`` is where
    ``gridpilot hosting-capacity --out`` wrote its tables (else they are computed on request)."""
    app = FastAPI(
        title="gridpilot feeder view",
        version="0.1.0",
        description="Geometry, per-phase state, voltage profile and hosting capacity of a three-phase feeder.",
    )
    audit = AuditLog(":memory:")
    app.state.keys, app.state.refusals = keys, RefusalLog(audit)
    app.state.feeder = FeederSource(grid)
    app.state.limits = limits or OperatingLimits()
    app.state.hosting_dir = hosting_dir

    @app.exception_handler(GridpilotError)
    async def _gp_error(_req: Request, exc: GridpilotError) -> JSONResponse:
        code = 404 if isinstance(exc, UnknownComponentError) else 400
        return json_out({"detail": str(exc)}, code)

    include_router(app, _router())
    include_router(app, feeder.router)
    for route in pages.router.routes:  # the scripts and plotly, not the loop's page or health
        if getattr(route, "path", "") in ("/static/js/{name}", "/static/plotly.min.js"):
            app.router.routes.append(route)
    return app
