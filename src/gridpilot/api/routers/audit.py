"""The audit log: the ledger's head (viewers), its entries (operators), its chain check (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from gridpilot.api import schemas as S
from gridpilot.api.deps import Admin, Operator, Orch, Refusals, Viewer, json_out
from gridpilot.api.schemas import errors

router = APIRouter(prefix="/api", tags=["audit"])
E_ROLE = errors(401, 403)


@router.get("/ledger", response_model=S.Ledger, responses=errors(401))
def ledger(
    _w: Viewer,
    orch: Orch,
    refusals: Refusals,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    """The audit ledger's head: entries and whether its hash chain verifies."""
    refusals.flush()
    ok, bad = orch.audit.verify()
    last = orch.audit.entries(limit=1)
    return json_out(
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


@router.get("/audit", response_model=list[S.AuditEntry], responses=E_ROLE)
def audit(
    _o: Operator,
    orch: Orch,
    refusals: Refusals,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[str | None, Query(max_length=20)] = None,
) -> JSONResponse:
    """Audit entries, newest first: what, why, on which data, the guard's verdict, the result."""
    refusals.flush()
    return json_out(orch.audit.entries(limit=limit, kind=kind))


@router.get("/audit/verify", response_model=S.AuditCheck, responses=E_ROLE)
def audit_verify(_a: Admin, orch: Orch, refusals: Refusals) -> JSONResponse:
    """Verify the audit log's hash chain."""
    refusals.flush()
    ok, bad = orch.audit.verify()
    return json_out({"ok": ok, "first_bad_id": bad, "entries": orch.audit.count()})
