"""The dashboard page, its scripts and the public health check."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from gridpilot.api import schemas as S
from gridpilot.api.deps import Orch, json_out

router = APIRouter()
JS_NAME = re.compile(r"^[a-z]+\.js$")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    """The control-room dashboard (one static page)."""
    return HTMLResponse(resources.files("gridpilot.api").joinpath("static/index.html").read_text())


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_js() -> Response:
    """plotly.js from the installed plotly package (404 with a comment if it is missing)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        return Response(
            "/* plotly.min.js not found in the plotly package */",
            media_type="text/javascript",
            status_code=404,
        )
    return FileResponse(path, media_type="text/javascript")


@router.get("/static/js/{name}", include_in_schema=False)
def js_module(name: str) -> Response:
    """The dashboard's ES modules (static/js/*.js)."""
    f = resources.files("gridpilot.api").joinpath("static/js").joinpath(name)
    if not JS_NAME.match(name) or not f.is_file():
        raise HTTPException(404, f"no such script: {name[:40]!r}")
    return Response(f.read_text(), media_type="text/javascript")


@router.get("/api/health", response_model=S.Health)
def health(orch: Orch) -> JSONResponse:
    """Liveness: the loop's step counter and simulated time."""
    h = orch.headline()
    return json_out({"ok": True, "steps": orch.counters["steps"], "time": h.get("time")})
