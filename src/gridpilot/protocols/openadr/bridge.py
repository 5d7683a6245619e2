"""The loop's DR decisions as OpenADR events, and the VENs' reports as delivered reduction.

:class:`DrPublisher` turns each DR event record of the loop (``FlexDR.events()``, the same
dicts the API serves at ``/api/dr``) into one 3.0.1 ``event`` of the program ``gridpilot-dr``:
an ``intervalPeriod`` from the record's start, one 15-minute interval per planned step with a
``SIMPLE`` payload (the DR level 0..1 as OpenADR's 0-3) and the planned reduction
(``x-GRIDPILOT_PLANNED_REDUCTION`` in kW, a private payload type), targets ``GROUP`` =
``bus:<id>`` for the buses it acts on, and a ``reportDescriptor`` asking each VEN for
``BASELINE`` and ``DEMAND`` in kW per interval. :meth:`DrPublisher.delivery` reads the reports
back: delivered = sum over resources of (baseline - demand) per interval, against the plan.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from gridpilot.protocols.openadr.auth import ROLE_SCOPES, Principal
from gridpilot.protocols.openadr.vtn import Query, VtnError, VtnStore

log = logging.getLogger(__name__)
PROGRAM_NAME = "gridpilot-dr"
"""The ``programName`` of the OpenADR program under which the loop's DR events are published."""
PLANNED = "x-GRIDPILOT_PLANNED_REDUCTION"
LOOP = Principal("gridpilot-loop", "bl", None, ROLE_SCOPES["bl"])


def simple_level(level: float) -> int:
    """A DR level 0..1 as OpenADR's ``SIMPLE`` 0 (normal) .. 3 (maximum shed)."""
    return int(min(max(round(float(level) * 3), 0), 3))


def event_body(program_id: str, rec: dict[str, Any]) -> dict[str, Any]:
    """The 3.0.1 ``event`` (request body) for one loop DR record (powers in MW -> kW)."""
    start = str(rec["start"])
    start = start if start.endswith("Z") or "+" in start[10:] else start + "Z"
    red = [float(x) for x in rec.get("expected_reduction_mw", [])] or [0.0]
    lvl = simple_level(rec.get("level", 0.0))
    return {
        "programID": program_id,
        "eventName": f"gridpilot-{rec['id']}"[:128],
        "priority": 1,
        "targets": [{"type": "GROUP", "values": [f"bus:{int(b)}" for b in rec.get("buses", [])]}]
        if rec.get("buses")
        else None,
        "payloadDescriptors": [{"payloadType": "SIMPLE"}, {"payloadType": PLANNED, "units": "KW"}],
        "reportDescriptors": [
            {"payloadType": "BASELINE", "units": "KW"},
            {"payloadType": "DEMAND", "units": "KW"},
        ],
        "intervalPeriod": {"start": start, "duration": "PT15M"},
        "intervals": [
            {
                "id": k,
                "payloads": [
                    {"type": "SIMPLE", "values": [lvl]},
                    {"type": PLANNED, "values": [round(mw * 1e3, 3)]},
                ],
            }
            for k, mw in enumerate(red)
        ],
    }


class DrPublisher:
    """Publishes the loop's DR records as events (idempotent) and reads delivery from reports.

    ``DrPublisher(store, records)``: ``records()`` returns the loop's DR records (newest
    first or in any order; each has ``id``, ``start``, ``level``, ``buses``,
    ``expected_reduction_mw``). :meth:`sync` is cheap when nothing is new.
    """

    def __init__(
        self,
        store: VtnStore,
        records: Callable[[], list[dict[str, Any]]],
        delivered: Callable[[str, float], None] | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.published: dict[str, str] = {}  # loop record id -> OpenADR event id
        self._program: str | None = None
        self.delivered = delivered  # (loop record id, mean reported reduction MW) on each report
        if delivered is not None:
            store.listen(self._on_change)

    def _on_change(self, kind: str, op: str, obj: dict[str, Any]) -> None:
        """A VEN's report changed: hand the event's reported mean reduction back to the loop."""
        if kind != "report" or self.delivered is None:
            return
        rid = next((r for r, e in self.published.items() if e and e == obj.get("eventID")), None)
        if rid is None:
            return
        d = self.delivery(obj["eventID"])
        got = [x for x, seen in zip(d["delivered_kw"], d["reported"], strict=True) if seen]
        self.delivered(rid, sum(got) / len(got) / 1e3 if got else 0.0)

    def program_id(self) -> str:
        """The ``gridpilot-dr`` program's id (created once)."""
        if self._program is None:
            found = self.store.list(LOOP, "program", Query(limit=10**9))
            have = [p for p in found if p["programName"] == PROGRAM_NAME]
            self._program = (
                have[0]
                if have
                else self.store.create(
                    LOOP,
                    "program",
                    {
                        "programName": PROGRAM_NAME,
                        "programType": "DEMAND_RESPONSE",
                        "bindingEvents": False,
                    },
                )
            )["id"]
        return self._program

    def sync(self) -> int:
        """Publish the records not yet published; returns how many events were created."""
        n = 0
        for rec in self.records():
            rid = str(rec.get("id", ""))
            if not rid or rid in self.published:
                continue
            try:
                ev = self.store.create(LOOP, "event", event_body(self.program_id(), rec))
            except (VtnError, ValueError) as exc:
                log.warning("DR record %s not published: %s", rid[:40], exc)
                self.published[rid] = ""
                continue
            self.published[rid] = ev["id"]
            n += 1
        return n

    def delivery(self, event_id: str) -> dict[str, Any]:
        """Planned vs reported reduction of one event, kW per interval (``reported``: intervals
        some VEN reported), and the VENs reporting."""
        ev = self.store.objects["event"].get(event_id)
        if ev is None:
            raise VtnError(404, f"no event {event_id[:128]!r}")
        planned = [
            next(
                (
                    _num(p["values"][0]) or 0.0
                    for p in iv["payloads"]
                    if p["type"] == PLANNED and p["values"]
                ),
                0.0,
            )
            for iv in ev["intervals"]
        ]
        got = [0.0] * len(planned)
        seen = [False] * len(planned)
        vens: set[str] = set()
        for rep in self.store.list(LOOP, "report", Query(event_id=event_id, limit=10**9)):
            vens.add(rep["clientName"])
            for res in rep["resources"]:
                for iv in res["intervals"]:
                    k = int(iv["id"])
                    vals = {
                        p["type"]: _num(p["values"][0]) for p in iv["payloads"] if p.get("values")
                    }
                    base, dem = vals.get("BASELINE"), vals.get("DEMAND")
                    if 0 <= k < len(got) and base is not None and dem is not None:
                        got[k] += base - dem
                        seen[k] = True
        return {
            "event": event_id,
            "planned_kw": planned,
            "delivered_kw": got,
            "reported": seen,
            "vens": sorted(vens),
        }


def _num(v: Any) -> float | None:
    """A finite number from a report value (a VEN's data: anything else is ignored)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)
