"""A :class:`PhaseFleet` from device records (JSON objects), validated against the grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.flex.fleet import Batteries, EVSessions, Fleet, PVInverters, WaterHeaters
from gridpilot.flex.phase_fleet import LEG_TO_LEG, PhaseFleet, device_feeder_phases
from gridpilot.model.threephase import ThreePhaseGrid

RECORD_KEYS = {
    "pv": ("kw",),
    "battery": ("kw", "kwh"),
    "ev": ("kw", "kwh", "arrival", "departure"),
    "water_heater": ("kw",),
}
"""The fields each kind of record needs (kW, kWh, steps)."""


def _record_issues(i: int, r: dict[str, object]) -> list[Issue]:
    kind = r.get("kind")
    if kind not in RECORD_KEYS:
        return [Issue("der", "kind", f"must be one of {sorted(RECORD_KEYS)}", (i,), kind)]
    out = []
    for key in ("bus", "phase", *RECORD_KEYS[str(kind)]):
        if key not in r:
            out.append(Issue(str(kind), key, "is required", (i,)))
    for key in RECORD_KEYS[str(kind)]:
        v = r.get(key)
        if key in r and not (isinstance(v, int | float) and v > 0):
            out.append(Issue(str(kind), key, "must be a number > 0", (i,), v))
    ph = r.get("phase")
    if "phase" in r and ph not in (1, 2, 3, LEG_TO_LEG):
        out.append(Issue(str(kind), "phase", "must be 1, 2, 3 or 12 (across both legs)", (i,), ph))
    phases = r.get("phases", [ph] if ph in (1, 2, 3) else [])
    if not isinstance(phases, list) or any(p not in (1, 2, 3) for p in phases):
        out.append(Issue(str(kind), "phases", "must be a list of 1, 2 or 3", (i,), phases))
    return out


@dataclass
class _Records:
    """Checked records grouped by kind (with their positions), and the bus positions."""

    by: dict[str, list[tuple[int, dict[str, object]]]]
    names: dict[str, int]

    def col(self, kind: str, key: str, default: float = 0.0) -> np.ndarray:
        return np.array([float(r.get(key, default)) for _, r in self.by[kind]])  # type: ignore[arg-type]

    def ids(self, kind: str) -> np.ndarray:
        return np.array([i for i, _ in self.by[kind]], np.int64)

    def bus(self, kind: str) -> np.ndarray:
        return np.array([self.names[str(r["bus"])] for _, r in self.by[kind]], np.int64)

    def phase(self, kind: str) -> np.ndarray:
        return np.array([int(r["phase"]) for _, r in self.by[kind]], np.int64)  # type: ignore[call-overload]

    def n(self, kind: str) -> int:
        return len(self.by[kind])


def _tables(rc: _Records) -> tuple[Batteries, EVSessions, WaterHeaters, PVInverters]:
    """Device tables: batteries start half full; EVs arrive empty enough for their need (0.4
    V2G floor); heaters are 200 l at 55 °C with 6 kWh of draws a day; PV inverters 1.1 x kWp."""
    nb, ne, nw, npv = (rc.n(k) for k in ("battery", "ev", "water_heater", "pv"))
    bkw = rc.col("battery", "kw") * 1e-3
    bat = Batteries(
        rc.ids("battery"),
        rc.bus("battery"),
        rc.col("battery", "kwh") * 1e-3,
        bkw,
        np.full(nb, 0.5),
        np.full(nb, 0.95),
        np.full(nb, 0.1),
        np.full(nb, 0.95),
    )
    need = rc.col("ev", "kwh") * 1e-3
    v2g = np.array([bool(r.get("v2g", False)) for _, r in rc.by["ev"]], bool)
    ev = EVSessions(
        rc.ids("ev"),
        rc.ids("ev"),
        rc.bus("ev"),
        rc.col("ev", "arrival").astype(np.int64),
        rc.col("ev", "departure").astype(np.int64),
        need,
        np.zeros(ne),
        np.maximum(need / 0.8, 0.04),
        rc.col("ev", "kw") * 1e-3,
        v2g,
        np.full(ne, 0.4),
    )
    wh = WaterHeaters(
        rc.ids("water_heater"),
        rc.bus("water_heater"),
        rc.col("water_heater", "kw") * 1e-3,
        np.full(nw, 200.0 * 4.186e-3 / 3600.0),
        np.full(nw, 0.00008),
        np.full(nw, 50.0),
        np.full(nw, 60.0),
        np.full(nw, 55.0),
        np.full(nw, 6e-3 / 24),
        np.zeros(nw, np.int64),
    )
    pv = PVInverters(
        rc.ids("pv"),
        rc.bus("pv"),
        np.full(npv, -1),
        1.1e-3 * rc.col("pv", "kw"),
        np.zeros(npv, bool),
    )
    return bat, ev, wh, pv


def fleet_from_records(
    grid: ThreePhaseGrid, records: list[dict[str, object]], step_h: float = 0.25
) -> PhaseFleet:
    """A fleet from device records, e.g. ``{"kind": "ev", "bus": "12", "phase": 2, "kw": 7.4,
    "kwh": 20, "arrival": 72, "departure": 124, "v2g": false, "phases": [1, 2, 3]}``.

    Kinds and their fields (kW, kWh; steps of ``step_h`` h): ``pv`` (kw peak), ``battery``
    (kw, kwh), ``ev`` (kw, kwh needed, arrival, departure; optional ``v2g`` and ``phases``
    for a phase-switching charger), ``water_heater`` (kw); ``phase`` 12 connects a device
    across both legs of a split-phase service (240 V). The record's position is the
    device id. Raises :class:`ValidationError` naming the record, field and value, also for
    a bus or phase the grid does not have."""
    issues = [x for i, r in enumerate(records) for x in _record_issues(i, r)]
    if issues:
        raise ValidationError(issues=issues[:50])
    rc = _Records({k: [] for k in RECORD_KEYS}, {})
    for i, r in enumerate(records):
        rc.names.setdefault(str(r["bus"]), len(rc.names))
        rc.by[str(r["kind"])].append((i, r))
    bat, ev, wh, pv = _tables(rc)
    allowed = np.zeros((len(ev), 3), bool)
    for j, (_, r) in enumerate(rc.by["ev"]):
        for p in r.get("phases", []):  # type: ignore[attr-defined]  # own phase: PhaseFleet's
            allowed[j, int(p) - 1] = True
    fleet = Fleet(bat, ev, wh, pv, step_h, {"records": len(records)})
    phases = {k: rc.phase(k) for k in RECORD_KEYS}
    names = tuple(rc.names)
    pf = PhaseFleet(
        fleet,
        names,
        phases,
        allowed,
        1e-3 * rc.col("pv", "kw"),
        grid.name,
        {},
        device_feeder_phases(grid, names, fleet, phases),
    )
    pf.validate(grid)
    return pf
