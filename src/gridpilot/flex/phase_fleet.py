"""A phase-aware DER fleet on an unbalanced grid (:class:`ThreePhaseGrid`).

Single-phase rooftop PV, home batteries, EV chargers (V1G or V2G) and water heaters sit on a
named bus and phase. A :class:`PhaseFleet` wraps the ordinary :class:`~gridpilot.flex.Fleet`
(whose integer ``bus`` is a position in ``bus_names``) and adds, per device, the phase it is
connected to; an EV charger that can switch phase (``ev_phases``) may draw on any of its
bus's phases. The same object feeds the phase-aware schedule (:mod:`.phase_plan`), the
frequency response and the market (:mod:`.phase_adapters`).

:func:`place_fleet` places a seeded, documented fleet behind the loads of any
``ThreePhaseGrid`` (``ieee13``, ``ieee123``, ``ieee8500``, an OpenDSS import): each device
takes the phase of the load it sits behind (a three-phase load spreads its households over
its phases). :meth:`PhaseFleet.validate` checks every device against the grid: a missing bus
or phase is a :class:`ValidationError` naming the device, the field and the value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.flex.fleet import Batteries, EVSessions, Fleet, PVInverters, WaterHeaters
from gridpilot.flex.phase_network import feeder_phases
from gridpilot.model.threephase import ThreePhaseGrid

log = logging.getLogger(__name__)

KINDS = ("battery", "ev", "water_heater", "pv")


@dataclass(frozen=True)
class PlaceConfig:
    """How :func:`place_fleet` draws the fleet (shares are of the households behind each load).

    ``kw_per_household`` sets the households per load (load kW / it); ``phase_flexible_share``
    of the EVs at buses with three phases get a phase-switching charger; ``pv_kw`` the range
    of rooftop PV sizes (kW peak); ``arrive_h``/``depart_h`` the mean arrival and departure
    hour of the one evening session per EV and day (departure on the next morning).
    """

    seed: int = 0
    days: int = 1
    start_step: int = 0
    step_h: float = 0.25
    kw_per_household: float = 2.5
    ev_share: float = 0.3
    v2g_share: float = 0.2
    wh_share: float = 0.25
    battery_share: float = 0.1
    pv_share: float = 0.2
    pv_kw: tuple[float, float] = (3.0, 8.0)
    phase_flexible_share: float = 0.5
    arrive_h: float = 18.0
    depart_h: float = 7.0

    def __post_init__(self) -> None:
        issues = []
        for name in (
            "ev_share",
            "v2g_share",
            "wh_share",
            "battery_share",
            "pv_share",
            "phase_flexible_share",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                issues.append(Issue("place config", name, "must be in [0, 1]", value=v))
        for name in ("days", "step_h", "kw_per_household"):
            v = getattr(self, name)
            if not v > 0:
                issues.append(Issue("place config", name, "must be > 0", value=v))
        if not 0 < self.pv_kw[0] <= self.pv_kw[1]:
            issues.append(Issue("place config", "pv_kw", "need 0 < low <= high", value=self.pv_kw))
        if issues:
            raise ValidationError(issues=issues)


@dataclass
class PhaseFleet:
    """A :class:`Fleet` whose devices sit on named buses and phases of a three-phase grid.

    ``bus_names[fleet.X.bus[i]]`` is device i's bus; ``phase[kind]`` (kind in :data:`KINDS`)
    its phase (1, 2 or 3, the node number on that bus); ``ev_phases`` (sessions x 3, bool)
    the phases each EV session's charger may draw on (its own phase only, or every phase of
    its bus for a phase-switching charger); ``pv_peak_mw`` each PV system's peak output;
    ``feeder_phase[kind]`` the primary phase behind the device (differs from ``phase`` on a
    split-phase secondary, see :func:`~gridpilot.flex.phase_network.feeder_phases`; default
    ``phase``).
    """

    fleet: Fleet
    bus_names: tuple[str, ...]
    phase: dict[str, np.ndarray]
    ev_phases: np.ndarray
    pv_peak_mw: np.ndarray
    grid_name: str = ""
    meta: dict[str, float | int | str] = field(default_factory=dict)
    feeder_phase: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in KINDS:
            self.phase[kind] = np.asarray(self.phase.get(kind, np.zeros(0)), np.int64)
            fp = self.feeder_phase.get(kind)
            self.feeder_phase[kind] = self.phase[kind] if fp is None else np.asarray(fp, np.int64)
        self.ev_phases = np.asarray(self.ev_phases, bool).reshape(-1, 3)
        self.pv_peak_mw = np.asarray(self.pv_peak_mw, np.float64)
        issues: list[Issue] = []
        for kind, table in self._tables().items():
            if self.phase[kind].size != len(table):
                issues.append(
                    Issue(
                        kind,
                        "phase",
                        f"needs one phase per device ({len(table)})",
                        value=int(self.phase[kind].size),
                    )
                )
            off = np.flatnonzero((table.bus < 0) | (table.bus >= len(self.bus_names)))
            if off.size:
                k = off
                issues.append(
                    Issue(
                        kind,
                        "bus",
                        f"is not a position in bus_names (0..{len(self.bus_names) - 1})",
                        tuple(int(i) for i in table.id[k[:5]]),
                        int(table.bus[k[0]]),
                    )
                )
        if self.ev_phases.shape[0] != len(self.fleet.ev):
            issues.append(
                Issue(
                    "ev",
                    "ev_phases",
                    "needs one row per session",
                    value=int(self.ev_phases.shape[0]),
                )
            )
        if self.pv_peak_mw.size != len(self.fleet.pv) or np.any(self.pv_peak_mw < 0):
            issues.append(
                Issue(
                    "pv",
                    "pv_peak_mw",
                    "needs one value >= 0 per PV system",
                    value=self.pv_peak_mw.tolist()[:5],
                )
            )
        if issues:
            raise ValidationError(issues=issues)
        own = self.phase["ev"]
        rows = np.arange(own.size)
        ok = (own >= 1) & (own <= 3)
        self.ev_phases[rows[ok], own[ok] - 1] = True

    def _tables(self) -> dict[str, Batteries | EVSessions | WaterHeaters | PVInverters]:
        f = self.fleet
        return {"battery": f.batteries, "ev": f.ev, "water_heater": f.water_heaters, "pv": f.pv}

    def device_bus(self, kind: str) -> list[str]:
        """The bus name of every device of ``kind``."""
        return [self.bus_names[int(b)] for b in self._tables()[kind].bus]

    def validate(self, grid: ThreePhaseGrid) -> None:
        """Check that every device's bus exists in ``grid`` and has the device's phase(s).

        Raises :class:`ValidationError` with one issue per kind and field, naming the devices
        (ids), the bus and phase found (e.g. ``ev id 7: field 'phase' = 3: bus '12' has
        phases [2]``)."""
        have: dict[str, set[int]] = {}
        for b, n in grid.nodes():
            have.setdefault(b.lower(), set()).add(n)
        issues: list[Issue] = []
        for kind, table in self._tables().items():
            for i, (b, p) in enumerate(zip(self.device_bus(kind), self.phase[kind], strict=True)):
                ph = have.get(b.lower())
                if ph is None:
                    issues.append(
                        Issue(
                            kind,
                            "bus",
                            f"no bus {b!r} in grid {grid.name!r}",
                            (int(table.id[i]),),
                            b,
                        )
                    )
                elif int(p) not in ph:
                    issues.append(
                        Issue(
                            kind,
                            "phase",
                            f"bus {b!r} has phases {sorted(ph)}",
                            (int(table.id[i]),),
                            int(p),
                        )
                    )
        for i, b in enumerate(self.device_bus("ev")):
            for p in np.flatnonzero(self.ev_phases[i]) + 1:
                if have.get(b.lower()) is not None and int(p) not in have[b.lower()]:
                    issues.append(
                        Issue(
                            "ev",
                            "ev_phases",
                            f"bus {b!r} has phases {sorted(have[b.lower()])}",
                            (int(self.fleet.ev.id[i]),),
                            int(p),
                        )
                    )
        if issues:
            raise ValidationError(issues=issues[:50])

    def points(self) -> list[tuple[str, int]]:
        """Every (bus, phase) a device of the fleet can draw on, sorted."""
        pts: set[tuple[str, int]] = set()
        for kind in ("battery", "water_heater", "pv"):
            pts.update(zip(self.device_bus(kind), (int(p) for p in self.phase[kind]), strict=True))
        for b, row in zip(self.device_bus("ev"), self.ev_phases, strict=True):
            pts.update((b, int(p) + 1) for p in np.flatnonzero(row))
        return sorted(pts)

    def phase_totals(self) -> dict[str, dict[str, float]]:
        """Ratings per phase (MW; battery MWh): ``{"1": {"battery_mw": …, "ev_mw": …}, …}``.

        Phases are feeder (primary) phases; a phase-switching EV charger counts on the phase
        it is connected to by default."""
        f = self.fleet
        _, first = np.unique(f.ev.ev, return_index=True)
        out: dict[str, dict[str, float]] = {}
        for p in (1, 2, 3):
            fp = self.feeder_phase
            bt, wt, pv = (fp[k] == p for k in ("battery", "water_heater", "pv"))
            ev = fp["ev"][first] == p
            out[str(p)] = {
                "battery_mw": float(f.batteries.p_max_mw[bt].sum()),
                "battery_mwh": float(f.batteries.e_mwh[bt].sum()),
                "ev_mw": float(f.ev.p_max_mw[first][ev].sum()),
                "ev_flexible": int(self.ev_phases[first][ev].sum(axis=1).__gt__(1).sum()),
                "water_heater_mw": float(f.water_heaters.p_rated_mw[wt].sum()),
                "pv_mw": float(self.pv_peak_mw[pv].sum()),
            }
        return out

    def summary(self) -> dict[str, object]:
        """The fleet's summary plus the per-phase totals and the grid it was placed on."""
        s: dict[str, object] = dict(self.fleet.summary())
        s["pv_mw"] = float(self.pv_peak_mw.sum())
        s["ev_phase_flexible"] = int((self.ev_phases.sum(axis=1) > 1).sum())
        s["per_phase"] = self.phase_totals()
        s["grid"] = self.grid_name
        return s


@dataclass
class _Seats:
    """Households per (load, phase) seat: the bus position, the phase and the household count."""

    bus: np.ndarray
    phase: np.ndarray
    hh: np.ndarray
    bus_phases: dict[str, list[int]]

    def draw(self, rng: np.random.Generator, share: float) -> np.ndarray:
        """Seat index of every device owned by ``share`` of the households (binomial per seat)."""
        counts = rng.binomial(np.round(self.hh).astype(np.int64), share)
        return np.repeat(np.arange(self.hh.size), counts)


def _seats(grid: ThreePhaseGrid, cfg: PlaceConfig) -> tuple[_Seats, tuple[str, ...]]:
    """One seat per enabled load phase; households = load kW / ``kw_per_household`` split evenly."""
    bus_phases: dict[str, list[int]] = {}
    for b, n in grid.nodes():
        bus_phases.setdefault(b, []).append(n)
    names: dict[str, int] = {}
    bus, phase, hh = [], [], []
    for ld in grid.loads:
        if not ld.enabled or ld.kind != "load" or ld.kw <= 0:
            continue
        ph = sorted({n for n in ld.terminal.nodes if n > 0})[
            : max(ld.phases, 1) + (ld.conn == "delta")
        ]
        ph = [p for p in ph if p in bus_phases.get(ld.terminal.bus, [])]
        if not ph:
            log.warning(
                "load %s at bus %s has no live phase; no devices placed", ld.name, ld.terminal.bus
            )
            continue
        pos = names.setdefault(ld.terminal.bus, len(names))
        for p in ph:
            bus.append(pos)
            phase.append(p)
            hh.append(max(ld.kw / cfg.kw_per_household / len(ph), 1.0))
    return (
        _Seats(np.array(bus, np.int64), np.array(phase, np.int64), np.array(hh), bus_phases),
        tuple(names),
    )


def _sessions(rng: np.random.Generator, ne: int, cfg: PlaceConfig) -> dict[str, np.ndarray]:
    """One evening session per EV and day: arrival/departure steps, need and arrival energy (MWh)."""
    pmax = rng.choice([0.0074, 0.011], ne, p=[0.7, 0.3])
    cap = rng.uniform(0.040, 0.075, ne)
    spd = round(24 / cfg.step_h)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("arr", "dep", "need", "e0")}
    for day in range(cfg.days):
        base = cfg.start_step + day * spd
        arr_h = np.clip(rng.normal(cfg.arrive_h, 1.5, ne), 12.0, 23.5)
        dep_h = np.clip(rng.normal(cfg.depart_h, 0.8, ne), 4.0, 11.0) + 24.0
        arr = base + np.round(arr_h / cfg.step_h).astype(np.int64)
        dep = np.maximum(base + np.round(dep_h / cfg.step_h).astype(np.int64), arr + 1)
        need = np.minimum(rng.uniform(8, 60, ne) * 0.18e-3, 0.8 * (dep - arr) * cfg.step_h * pmax)
        cols["arr"].append(arr)
        cols["dep"].append(dep)
        cols["need"].append(need)
        cols["e0"].append(np.minimum(rng.uniform(0.25, 0.6, ne) * cap, cap - need))
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out["pmax"], out["cap"] = np.tile(pmax, cfg.days), np.tile(cap, cfg.days)
    return out


def _ev_table(
    rng: np.random.Generator, seats: _Seats, cfg: PlaceConfig, bus_names: tuple[str, ...]
) -> tuple[EVSessions, np.ndarray, np.ndarray]:
    """EV sessions, their own phase and their allowed phases (phase-switching at 3-phase buses)."""
    at = seats.draw(rng, cfg.ev_share)
    ne = at.size
    s = _sessions(rng, ne, cfg)
    v2g = rng.random(ne) < cfg.v2g_share
    ev_ids = np.tile(np.arange(ne), cfg.days)
    table = EVSessions(
        np.arange(ev_ids.size),
        ev_ids,
        np.tile(seats.bus[at], cfg.days),
        s["arr"],
        s["dep"],
        s["need"],
        s["e0"],
        s["cap"],
        s["pmax"],
        np.tile(v2g, cfg.days),
        np.full(ev_ids.size, 0.4),
    )
    own = seats.phase[at]
    allowed = np.zeros((ne, 3), bool)
    allowed[np.arange(ne), own - 1] = True
    flex = rng.random(ne) < cfg.phase_flexible_share
    for i in np.flatnonzero(flex):
        ph = seats.bus_phases[bus_names[int(seats.bus[at[i]])]]
        if len([p for p in ph if p in (1, 2, 3)]) == 3:
            allowed[i, :] = True
    return table, np.tile(own, cfg.days), np.tile(allowed, (cfg.days, 1))


def place_fleet(grid: ThreePhaseGrid, cfg: PlaceConfig | None = None) -> PhaseFleet:
    """A seeded DER fleet behind the loads of ``grid`` (any :class:`ThreePhaseGrid`).

    Households per load phase are the load's kW / ``cfg.kw_per_household`` (a load on several
    phases splits them evenly); of them ``ev_share`` own an EV (7.4 or 11 kW charger, 40-75 kWh,
    one evening session a day of 8-60 km at 0.18 kWh/km; ``v2g_share`` allow V2G down to 40 %;
    ``phase_flexible_share`` of those at three-phase buses have a phase-switching charger),
    ``wh_share`` a water heater (2-3 kW, 150-300 l, 50-60 °C), ``battery_share`` a home battery
    (5-13.5 kWh, 0.5 C) and ``pv_share`` rooftop PV (``pv_kw`` kW peak, inverter rated 1.1 x).
    Every device sits on the bus and phase of its load. The same ``cfg`` gives the same fleet.
    """
    cfg = cfg or PlaceConfig()
    if not isinstance(grid, ThreePhaseGrid):
        raise ValidationError(f"place_fleet needs a ThreePhaseGrid, got {type(grid).__name__}")
    rng = np.random.default_rng(cfg.seed)
    seats, names = _seats(grid, cfg)
    bt = seats.draw(rng, cfg.battery_share)
    e = rng.choice([0.005, 0.0075, 0.010, 0.0135], bt.size)
    nb = bt.size
    bat = Batteries(
        np.arange(nb),
        seats.bus[bt],
        e,
        0.5 * e,
        rng.uniform(0.3, 0.7, nb),
        np.full(nb, 0.95),
        np.full(nb, 0.1),
        np.full(nb, 0.95),
    )
    ev, ev_phase, ev_allowed = _ev_table(rng, seats, cfg, names)
    wt = seats.draw(rng, cfg.wh_share)
    nw = wt.size
    litres = rng.choice([150.0, 200.0, 300.0], nw)
    wh = WaterHeaters(
        np.arange(nw),
        seats.bus[wt],
        rng.choice([0.002, 0.003], nw),
        litres * 4.186e-3 / 3600.0,
        np.full(nw, 0.00008),
        np.full(nw, 50.0),
        np.full(nw, 60.0),
        rng.uniform(52.0, 58.0, nw),
        rng.uniform(4.0, 9.0, nw) * 1e-3 / 24.0,
        rng.integers(-6, 7, nw),
    )
    pt = seats.draw(rng, cfg.pv_share)
    peak = rng.uniform(cfg.pv_kw[0], cfg.pv_kw[1], pt.size) * 1e-3
    pv = PVInverters(
        np.arange(pt.size), seats.bus[pt], np.full(pt.size, -1), 1.1 * peak, np.zeros(pt.size, bool)
    )
    meta: dict[str, float | int | str] = {
        "seed": cfg.seed,
        "days": cfg.days,
        "households": int(np.round(seats.hh).sum()),
    }
    fleet = Fleet(bat, ev, wh, pv, cfg.step_h, meta)
    phases = {
        "battery": seats.phase[bt],
        "ev": ev_phase,
        "water_heater": seats.phase[wt],
        "pv": seats.phase[pt],
    }
    pf = PhaseFleet(
        fleet,
        names,
        phases,
        ev_allowed,
        peak,
        grid.name,
        dict(meta),
        _feeder(grid, names, fleet, phases),
    )
    pf.validate(grid)
    return pf


def _feeder(
    grid: ThreePhaseGrid, names: tuple[str, ...], fleet: Fleet, phases: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The feeder (primary) phase of every device (its own phase on a primary bus)."""
    fp = feeder_phases(grid)
    tables: dict[str, Batteries | EVSessions | WaterHeaters | PVInverters] = {
        "battery": fleet.batteries,
        "ev": fleet.ev,
        "water_heater": fleet.water_heaters,
        "pv": fleet.pv,
    }
    return {
        k: np.array(
            [fp.get(names[int(b)], int(p)) for b, p in zip(t.bus, phases[k], strict=True)], np.int64
        )
        for k, t in tables.items()
    }


_RECORD_KEYS = {
    "pv": ("kw",),
    "battery": ("kw", "kwh"),
    "ev": ("kw", "kwh", "arrival", "departure"),
    "water_heater": ("kw",),
}


def _record_issues(i: int, r: dict[str, object]) -> list[Issue]:
    kind = r.get("kind")
    if kind not in _RECORD_KEYS:
        return [Issue("der", "kind", f"must be one of {sorted(_RECORD_KEYS)}", (i,), kind)]
    out = []
    for key in ("bus", "phase", *_RECORD_KEYS[str(kind)]):
        if key not in r:
            out.append(Issue(str(kind), key, "is required", (i,)))
    for key in _RECORD_KEYS[str(kind)]:
        v = r.get(key)
        if key in r and not (isinstance(v, int | float) and v > 0):
            out.append(Issue(str(kind), key, "must be a number > 0", (i,), v))
    ph = r.get("phase")
    if "phase" in r and ph not in (1, 2, 3):
        out.append(Issue(str(kind), "phase", "must be 1, 2 or 3", (i,), ph))
    return out


def fleet_from_records(
    grid: ThreePhaseGrid, records: list[dict[str, object]], step_h: float = 0.25
) -> PhaseFleet:
    """A fleet from device records, e.g. ``{"kind": "ev", "bus": "12", "phase": 2, "kw": 7.4,
    "kwh": 20, "arrival": 72, "departure": 124, "v2g": false, "phases": [1, 2, 3]}``.

    Kinds and their fields (kW, kWh; steps of ``step_h`` h): ``pv`` (kw peak), ``battery``
    (kw, kwh), ``ev`` (kw, kwh needed, arrival, departure; optional ``v2g`` and ``phases``
    for a phase-switching charger), ``water_heater`` (kw). The record's position is the
    device id. Raises :class:`ValidationError` naming the record, field and value, also for
    a bus or phase the grid does not have."""
    issues = [x for i, r in enumerate(records) for x in _record_issues(i, r)]
    if issues:
        raise ValidationError(issues=issues[:50])
    names: dict[str, int] = {}
    by: dict[str, list[tuple[int, dict[str, object]]]] = {k: [] for k in _RECORD_KEYS}
    for i, r in enumerate(records):
        names.setdefault(str(r["bus"]), len(names))
        by[str(r["kind"])].append((i, r))

    def col(kind: str, key: str, default: float = 0.0) -> np.ndarray:
        return np.array([float(r.get(key, default)) for _, r in by[kind]])  # type: ignore[arg-type]

    def ids(kind: str) -> np.ndarray:
        return np.array([i for i, _ in by[kind]], np.int64)

    def bus(kind: str) -> np.ndarray:
        return np.array([names[str(r["bus"])] for _, r in by[kind]], np.int64)

    def phase(kind: str) -> np.ndarray:
        return np.array([int(r["phase"]) for _, r in by[kind]], np.int64)  # type: ignore[call-overload]

    n = {k: len(v) for k, v in by.items()}
    kw = {k: col(k, "kw") * 1e-3 for k in by}
    bat = Batteries(
        ids("battery"),
        bus("battery"),
        col("battery", "kwh") * 1e-3,
        kw["battery"],
        np.full(n["battery"], 0.5),
        np.full(n["battery"], 0.95),
        np.full(n["battery"], 0.1),
        np.full(n["battery"], 0.95),
    )
    need = col("ev", "kwh") * 1e-3
    cap = np.maximum(need / 0.8, 0.04)
    ev = EVSessions(
        ids("ev"),
        ids("ev"),
        bus("ev"),
        col("ev", "arrival").astype(np.int64),
        col("ev", "departure").astype(np.int64),
        need,
        np.zeros(n["ev"]),
        cap,
        kw["ev"],
        np.array([bool(r.get("v2g", False)) for _, r in by["ev"]], bool),
        np.full(n["ev"], 0.4),
    )
    nw = n["water_heater"]
    c = np.full(nw, 200.0 * 4.186e-3 / 3600.0)
    wh = WaterHeaters(
        ids("water_heater"),
        bus("water_heater"),
        kw["water_heater"],
        c,
        np.full(nw, 0.00008),
        np.full(nw, 50.0),
        np.full(nw, 60.0),
        np.full(nw, 55.0),
        np.full(nw, 6e-3 / 24),
        np.zeros(nw, np.int64),
    )
    pv = PVInverters(
        ids("pv"), bus("pv"), np.full(n["pv"], -1), 1.1 * kw["pv"], np.zeros(n["pv"], bool)
    )
    allowed = np.zeros((n["ev"], 3), bool)
    for j, (_, r) in enumerate(by["ev"]):
        for p in r.get("phases", [r["phase"]]):  # type: ignore[attr-defined]
            if p not in (1, 2, 3):
                raise ValidationError(
                    issues=[Issue("ev", "phases", "must be 1, 2 or 3", (by["ev"][j][0],), p)]
                )
            allowed[j, int(p) - 1] = True
    fleet = Fleet(bat, ev, wh, pv, step_h, {"records": len(records)})
    phases = {k: phase(k) for k in by}
    pf = PhaseFleet(
        fleet,
        tuple(names),
        phases,
        allowed,
        kw["pv"],
        grid.name,
        {},
        _feeder(grid, tuple(names), fleet, phases),
    )
    pf.validate(grid)
    return pf
