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
its phases). On a split-phase 120/240 V service (``ieee8500``'s secondaries, see
:func:`~gridpilot.flex.phase_network.feeder_phases`) a device is connected across both legs
(phase ``LEG_TO_LEG`` = 12, 240 V: a Level 2 EV charger, a water heater, a PV or battery
inverter), except the EVs drawn as Level 1 (``PlaceConfig.level1_share``: 1.92 kW, 120 V on
one leg). :meth:`PhaseFleet.validate` checks every device against the grid: a missing bus
or phase is a :class:`ValidationError` naming the device, the field and the value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.flex.fleet import Batteries, EVSessions, Fleet, PVInverters, WaterHeaters
from gridpilot.flex.phase_network import LEG_TO_LEG, feeder_phases
from gridpilot.model.threephase import ThreePhaseGrid

log = logging.getLogger(__name__)

KINDS = ("battery", "ev", "water_heater", "pv")

LEVEL1_MW = 0.00192
"""A Level 1 EV charger: 16 A at 120 V, on one leg of a split-phase service."""


@dataclass(frozen=True)
class PlaceConfig:
    """How :func:`place_fleet` draws the fleet (shares are of the households behind each load).

    ``kw_per_household`` sets the households per load (load kW / it); ``phase_flexible_share``
    of the EVs at buses with three phases get a phase-switching charger; ``pv_kw`` the range
    of rooftop PV sizes (kW peak); ``arrive_h``/``depart_h`` the mean arrival and departure
    hour of the one evening session per EV and day (departure on the next morning);
    ``level1_share`` of the EVs on split-phase services charge at Level 1 (120 V on one leg,
    :data:`LEVEL1_MW`), the others and every other device there across both legs (240 V).
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
    level1_share: float = 0.0

    def __post_init__(self) -> None:
        issues = []
        for name in (
            "ev_share",
            "v2g_share",
            "wh_share",
            "battery_share",
            "pv_share",
            "phase_flexible_share",
            "level1_share",
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
    its phase (1, 2 or 3, the node number on that bus; ``LEG_TO_LEG`` (12) across nodes 1 and
    2 of a split-phase service); ``ev_phases`` (sessions x 3, bool)
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
        legs = any(np.any(self.phase[k] == LEG_TO_LEG) for k in KINDS)
        split = {b.lower() for b in feeder_phases(grid)} if legs else set()
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
                elif not _has(ph, int(p), b.lower() in split):
                    what = "is not a split-phase service" if p == LEG_TO_LEG else "has phases"
                    issues.append(
                        Issue(
                            kind,
                            "phase",
                            f"bus {b!r} {what} {sorted(ph)}",
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
        for b, row, own in zip(
            self.device_bus("ev"), self.ev_phases, self.phase["ev"], strict=True
        ):
            pts.add((b, int(own)))
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


def _has(nodes: set[int], phase: int, split: bool) -> bool:
    """Whether a bus with ``nodes`` has ``phase`` (for ``LEG_TO_LEG``: both legs of a
    ``split``-phase service)."""
    return split and {1, 2} <= nodes if phase == LEG_TO_LEG else phase in nodes


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
    _split_phase(grid, names, fleet, (phases, ev_allowed), rng, cfg)
    pf = PhaseFleet(
        fleet,
        names,
        phases,
        ev_allowed,
        peak,
        grid.name,
        dict(meta),
        device_feeder_phases(grid, names, fleet, phases),
    )
    pf.validate(grid)
    return pf


def _split_phase(
    grid: ThreePhaseGrid,
    names: tuple[str, ...],
    fleet: Fleet,
    phase_tables: tuple[dict[str, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    cfg: PlaceConfig,
) -> None:
    """Devices on split-phase services go across both legs (``LEG_TO_LEG``, 240 V), but
    ``cfg.level1_share`` of the EVs there stay on their leg as Level 1 chargers (in place:
    ``phase_tables`` = (phases, ev_allowed))."""
    phases, ev_allowed = phase_tables
    fp = feeder_phases(grid)
    nodes = grid.bus_nodes()
    split = np.array([b in fp and {1, 2} <= nodes.get(b, set()) for b in names], bool)
    tables: dict[str, Batteries | EVSessions | WaterHeaters | PVInverters] = {
        "battery": fleet.batteries,
        "ev": fleet.ev,
        "water_heater": fleet.water_heaters,
        "pv": fleet.pv,
    }
    level1 = np.zeros(len(fleet.ev), bool)
    if cfg.level1_share > 0:
        n_ev = int(fleet.ev.ev.max()) + 1 if len(fleet.ev) else 0
        level1 = (rng.random(n_ev) < cfg.level1_share)[fleet.ev.ev] & split[fleet.ev.bus]
    for kind, table in tables.items():
        on = split[table.bus] & ~level1 if kind == "ev" else split[table.bus]
        phases[kind] = np.where(on, LEG_TO_LEG, phases[kind])
        if kind == "ev":
            ev_allowed[on] = False  # no phase of its own: it draws across both legs
    ev, h = fleet.ev, fleet.step_h
    if level1.any():
        ev.p_max_mw[level1] = LEVEL1_MW
        dwell = (ev.departure[level1] - ev.arrival[level1]) * h
        ev.e_need_mwh[level1] = np.minimum(ev.e_need_mwh[level1], 0.8 * dwell * LEVEL1_MW)
    log.info(
        "place_fleet: %d devices across both legs of split-phase services, %d Level 1 EVs",
        sum(int((phases[k] == LEG_TO_LEG).sum()) for k in tables),
        int(level1.sum()),
    )


def device_feeder_phases(
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
