"""The three-phase feeder: its geometry, per-phase snapshot, voltage profile against distance
and hosting-capacity map (:mod:`gridpilot.api.feeder3p`), and the feeder page ``/feeder``.

The feeder is ``app.state.feeder`` (a :class:`~gridpilot.api.feeder3p.FeederSource`, set by
:func:`gridpilot.api.feeder_app.create_feeder_app`), else the running loop's world where it is
a :class:`~gridpilot.api.feeder3p.PhaseAwareWorld`; otherwise the routes answer 404 naming
the running grid. Answers are compact JSON, gzip-compressed where the client accepts it.
"""

from __future__ import annotations

import gzip
import json
import threading
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from gridpilot.api import schemas_feeder as F
from gridpilot.api.deps import Viewer
from gridpilot.api.feeder3p import FeederSource, PhaseAwareWorld, profile_payload
from gridpilot.api.hosting3p import HostingCache, hosting_payload
from gridpilot.api.schemas import errors

router = APIRouter(tags=["feeder"])
E_FEEDER = errors(401, 404)
E_VIEW = errors(401)
_setup = threading.Lock()
GZIP_MIN_BYTES = 2048


def feeder_of(request: Request) -> FeederSource:
    """The feeder the app serves (see the module doc), or HTTP 404."""
    st = request.app.state
    with _setup:
        src = getattr(st, "feeder", None)
        if src is None:
            orch = getattr(st, "orch", None)
            world = getattr(orch, "world", None)
            if not isinstance(world, PhaseAwareWorld):
                name = getattr(getattr(orch, "grid", None), "name", "?")
                raise HTTPException(
                    404,
                    f"the running grid {name!r} is not a three-phase feeder (no per-phase view)",
                )
            src = st.feeder = FeederSource.of_world(world)
        return src


def _hosting(request: Request, src: FeederSource) -> HostingCache:
    st = request.app.state
    with _setup:
        cache = getattr(st, "hosting", None)
        if cache is None:
            cache = st.hosting = HostingCache(src.grid, getattr(st, "hosting_dir", None))
        return cache


def compact(request: Request, payload: dict[str, Any]) -> Response:
    """``payload`` as compact JSON (gzip where accepted and worth it)."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    headers = {"Cache-Control": "no-store"}
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


@router.get("/feeder", response_class=HTMLResponse, include_in_schema=False)
def feeder_page() -> HTMLResponse:
    """The feeder view (canvas drawing, per-phase profile, hosting map)."""
    return HTMLResponse(resources.files("gridpilot.api").joinpath("static/feeder.html").read_text())


@router.get("/api/feeder", response_model=F.FeederInfo, responses=E_VIEW)
def info(_w: Viewer, request: Request) -> Response:
    """Whether the app has a per-phase feeder view (the dashboard links to it), and its size."""
    try:
        src = feeder_of(request)
    except HTTPException as exc:
        return compact(request, {"available": False, "detail": str(exc.detail)})
    g = src.geometry()
    source = "loop" if src.world is not None and src.world.phase_result() is not None else "twin"
    return compact(
        request,
        {
            "available": True,
            "name": src.grid.name,
            "buses": len(g.buses),
            "branches": len(g.br_name),
            "layout": g.layout,
            "source": source,
        },
    )


@router.get("/api/feeder/geometry", response_model=F.FeederGeometry, responses=E_FEEDER)
def geometry(_w: Viewer, request: Request) -> Response:
    """Buses (x, y, phases, kV, distance from the substation), branches (endpoints, phases,
    length) and devices (regulators, capacitors, switches), as column arrays."""
    src = feeder_of(request)
    return compact(request, src.geometry_payload())


@router.get("/api/feeder/snapshot", response_model=F.FeederSnapshot, responses=E_FEEDER)
def snapshot(_w: Viewer, request: Request) -> Response:
    """Per-phase voltages (pu, angle) of every bus and flows (A, kW, kvar, loading) of every
    branch, now: the loop's last result, else one power flow of the feeder."""
    return compact(request, feeder_of(request).snapshot())


@router.get("/api/feeder/profile", response_model=F.FeederProfile, responses=E_FEEDER)
def profile(_w: Viewer, request: Request) -> Response:
    """The per-phase voltage profile against distance from the substation (the classic
    OpenDSS plot): points per phase and the branches that join them."""
    src = feeder_of(request)
    return compact(request, profile_payload(src.geometry(), src.snapshot()))


@router.get("/api/feeder/hosting", response_model=F.FeederHosting, responses=E_FEEDER)
def hosting(
    _w: Viewer,
    request: Request,
    der: Annotated[str, Query(pattern="^(pv|ev)$", description="pv or ev")] = "pv",
) -> Response:
    """Hosting capacity per bus and phase (kW): from the table ``gridpilot hosting-capacity``
    wrote into the served folder, else computed in the background on the first request
    (``status: computing`` until done; poll)."""
    src = feeder_of(request)
    status, got, err = _hosting(request, src).state(der)
    out: dict[str, Any] = {"name": src.grid.name, "der": der, "status": status}
    if err:
        out["error"] = err
    if got is not None:
        table, origin, secs = got
        out |= {"origin": origin, "elapsed_s": round(secs, 3)}
        out |= hosting_payload(src.geometry(), table)
    return compact(request, out)
