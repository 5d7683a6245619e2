"""The VTN's objects and who may see and write them (no HTTP here; see ``routes``).

Objects are kept in memory per kind (``program``, ``event``, ``report``, ``subscription``,
``ven``, ``resource``) as their 3.0.1 JSON. Visibility for a VEN: a program or event with no
targets, or targeting its VEN name (``VEN_NAME``), one of its resources (``RESOURCE_NAME``) or
a value it carries in its own ``targets`` (e.g. ``GROUP``); reports and subscriptions whose
``clientName`` is its VEN name; its own ``ven`` object and resources. Nothing else: another
VEN's objects are neither listed nor readable (403 by id). Business logic sees everything.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gridpilot.protocols.openadr.auth import Principal
from gridpilot.protocols.openadr.models import KINDS, PROVISIONED

OBJECT_TYPES = {
    "program": "PROGRAM",
    "event": "EVENT",
    "report": "REPORT",
    "subscription": "SUBSCRIPTION",
    "ven": "VEN",
    "resource": "RESOURCE",
}
UNIQUE = {"program": "programName", "ven": "venName"}
Listener = Callable[[str, str, dict[str, Any]], None]


class VtnError(Exception):
    """A request the VTN refuses: ``status`` (400, 403, 404, 409) and a detail in words."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Query:
    """List filters of the 3.0.1 query parameters (``skip``, ``limit``, ``targetType`` ...)."""

    skip: int = 0
    limit: int = 50
    program_id: str | None = None
    event_id: str | None = None
    client_name: str | None = None
    ven_name: str | None = None
    resource_name: str | None = None
    ven_id: str | None = None
    target_type: str | None = None
    target_values: tuple[str, ...] = ()


def _targets_hit(targets: list[dict[str, Any]] | None, ttype: str, values: set[str]) -> bool:
    return any(
        t.get("type") == ttype and values & set(map(str, t.get("values", [])))
        for t in targets or []
    )


class VtnStore:
    """All VTN objects, thread-safe; :meth:`listen` registers a callback on every change."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.owners: dict[str, Principal] = {}  # subscription id -> who created it

    def listen(self, fn: Listener) -> None:
        """Call ``fn(kind, operation, object)`` after each POST, PUT, DELETE."""
        self._listeners.append(fn)

    # --- who sees what -----------------------------------------------------------------------
    def _ven_of(self, p: Principal) -> tuple[set[str], list[dict[str, Any]]]:
        """The VEN's resource names and its own targets."""
        me = next((v for v in self.objects["ven"].values() if v["venName"] == p.ven_name), None)
        if me is None:
            return set(), []
        res = {
            r["resourceName"]
            for r in self.objects["resource"].values()
            if r.get("venID") == me["id"]
        }
        return res, list(me.get("targets") or [])

    def visible(self, p: Principal, kind: str, obj: dict[str, Any]) -> bool:
        """True when principal ``p`` may read ``obj``."""
        if p.role == "bl":
            return True
        name = p.ven_name or ""
        if kind in ("report", "subscription"):
            return obj.get("clientName") == name
        if kind == "ven":
            return obj.get("venName") == name
        if kind == "resource":
            ven = self.objects["ven"].get(obj.get("venID", ""))
            return ven is not None and ven["venName"] == name
        tg = obj.get("targets") or []
        if not tg or _targets_hit(tg, "VEN_NAME", {name}):
            return True
        res, mine = self._ven_of(p)
        if _targets_hit(tg, "RESOURCE_NAME", res):
            return True
        return any(
            _targets_hit(tg, t.get("type", ""), set(map(str, t.get("values", [])))) for t in mine
        )

    def _may_write(self, p: Principal, kind: str, obj: dict[str, Any]) -> None:
        if p.role == "bl":
            if kind == "report":
                raise VtnError(403, "reports are written by VENs")
            return
        if kind in ("program", "event"):
            raise VtnError(403, f"a VEN may not write {kind}s")
        if not self.visible(p, kind, obj):
            raise VtnError(403, f"a VEN writes only its own {kind}s")

    # --- CRUD ----------------------------------------------------------------------------------
    def _conflict(self, kind: str, obj: dict[str, Any], own_id: str | None) -> None:
        key = UNIQUE.get(kind)
        if kind == "resource":
            same = [
                r
                for r in self.objects[kind].values()
                if r.get("venID") == obj.get("venID")
                and r["resourceName"] == obj["resourceName"]
                and r["id"] != own_id
            ]
        elif key:
            same = [
                o for o in self.objects[kind].values() if o[key] == obj[key] and o["id"] != own_id
            ]
        else:
            same = []
        if same:
            raise VtnError(409, f"{kind} {key or 'resourceName'} already exists")

    def _check_refs(self, kind: str, obj: dict[str, Any]) -> None:
        if (
            kind in ("event", "report", "subscription")
            and obj["programID"] not in self.objects["program"]
        ):
            raise VtnError(400, f"programID: no program {obj['programID']!r}")
        if kind == "report" and obj["eventID"] not in self.objects["event"]:
            raise VtnError(400, f"eventID: no event {obj['eventID']!r}")

    def create(self, p: Principal, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, check rights and references, store; returns the object as stored (201)."""
        obj = {
            k: v for k, v in KINDS[kind].model_validate(body).wire().items() if k not in PROVISIONED
        }
        with self._lock:
            self._may_write(p, kind, obj)
            self._check_refs(kind, obj)
            self._conflict(kind, obj, None)
            now = _now()
            obj = {
                "id": uuid.uuid4().hex,
                "createdDateTime": now,
                "modificationDateTime": now,
                "objectType": OBJECT_TYPES[kind],
                **obj,
            }
            self.objects[kind][obj["id"]] = obj
            if kind == "subscription":
                self.owners[obj["id"]] = p
        self._notify(kind, "POST", obj)
        return obj

    def get(self, p: Principal, kind: str, oid: str) -> dict[str, Any]:
        """One object by id (404 unknown, 403 not this principal's)."""
        obj = self.objects[kind].get(oid)
        if obj is None:
            raise VtnError(404, f"no {kind} {oid[:128]!r}")
        if not self.visible(p, kind, obj):
            raise VtnError(403, f"{kind} {oid[:128]!r} is not yours")
        return obj

    def update(self, p: Principal, kind: str, oid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace an object's writable fields (PUT); returns it."""
        new = {
            k: v for k, v in KINDS[kind].model_validate(body).wire().items() if k not in PROVISIONED
        }
        with self._lock:
            old = self.get(p, kind, oid)
            self._may_write(p, kind, old)
            if kind == "resource":
                new["venID"] = old.get("venID")
            self._may_write(p, kind, new)
            self._check_refs(kind, new)
            self._conflict(kind, new, oid)
            obj = {k: old[k] for k in PROVISIONED} | new | {"modificationDateTime": _now()}
            self.objects[kind][oid] = obj
        self._notify(kind, "PUT", obj)
        return obj

    def delete(self, p: Principal, kind: str, oid: str) -> dict[str, Any]:
        """Remove an object; returns it."""
        with self._lock:
            obj = self.get(p, kind, oid)
            self._may_write(p, kind, obj)
            del self.objects[kind][oid]
        self._notify(kind, "DELETE", obj)
        return obj

    def list(self, p: Principal, kind: str, q: Query) -> list[dict[str, Any]]:
        """The objects ``p`` may see that match ``q`` (in creation order, ``skip``/``limit``)."""
        want = {
            "programID": q.program_id,
            "eventID": q.event_id,
            "clientName": q.client_name,
            "venName": q.ven_name,
            "resourceName": q.resource_name,
            "venID": q.ven_id,
        }
        want = {k: v for k, v in want.items() if v is not None}
        tv = set(q.target_values)
        out: list[dict[str, Any]] = []
        with self._lock:
            items = list(self.objects[kind].values())
        for o in items:
            if any(o.get(k) != v for k, v in want.items()):
                continue
            if q.target_type and not _targets_hit(o.get("targets"), q.target_type, tv):
                continue
            if self.visible(p, kind, o):
                out.append(o)
        return out[q.skip : q.skip + q.limit]

    def _notify(self, kind: str, op: str, obj: dict[str, Any]) -> None:
        for fn in self._listeners:
            fn(kind, op, obj)
