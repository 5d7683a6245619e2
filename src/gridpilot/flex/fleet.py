"""The flexible device fleet: vectorised dataclasses of arrays, one row per device.

Devices sit behind buses of a grid (``bus`` holds bus ids). Powers use the load convention
(``+`` consumes). Time is counted in steps of ``step_h`` hours from the start of the grid's
profiles. :func:`generate_fleet` builds a documented, seeded, realistic fleet for a grid;
every dataclass validates its limits on construction (a :class:`ValidationError` naming the
device and field).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model import GenKind, Grid


@dataclass
class _Checks:
    """Limit checks of one device table: each failing check adds an Issue naming the devices."""

    component: str
    ids: np.ndarray
    issues: list[Issue] = field(default_factory=list)

    def check(self, name: str, bad: np.ndarray, msg: str, values: np.ndarray) -> None:
        """Add an issue for field ``name`` where ``bad`` (up to 5 ids, the first bad value)."""
        if np.any(bad):
            k = np.flatnonzero(bad)
            ids = tuple(int(i) for i in self.ids[k[:5]])
            self.issues.append(Issue(self.component, name, msg, ids, float(values[k[0]])))

    def raise_any(self) -> None:
        """Raise a :class:`ValidationError` listing the issues found, if any."""
        if self.issues:
            raise ValidationError(issues=self.issues)


def _same_len(component: str, arrays: dict[str, np.ndarray]) -> None:
    n = {k: np.shape(v)[0] for k, v in arrays.items()}
    if len(set(n.values())) > 1:
        raise ValidationError(f"{component}: columns have different lengths {n}")


@dataclass
class Batteries:
    """Home/community batteries. ``e_mwh`` capacity, ``soc`` present state (0..1), one-way ``eta``.

    ``p_base_mw`` is what a battery does on its own (its baseline, MW, + charging; default 0:
    idle), e.g. a self-consumption controller covering the household's demand.
    """

    id: np.ndarray
    bus: np.ndarray
    e_mwh: np.ndarray
    p_max_mw: np.ndarray
    soc: np.ndarray
    eta: np.ndarray
    soc_min: np.ndarray
    soc_max: np.ndarray
    p_base_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if np.size(self.p_base_mw) != np.size(self.id):
            self.p_base_mw = np.zeros(np.size(self.id))
        for k in ("e_mwh", "p_max_mw", "soc", "eta", "soc_min", "soc_max", "p_base_mw"):
            setattr(self, k, np.asarray(getattr(self, k), np.float64))
        self.id = np.asarray(self.id, np.int64)
        self.bus = np.asarray(self.bus, np.int64)
        _same_len("battery", vars(self))
        chk = _Checks("battery", self.id)
        chk.check("e_mwh", ~(self.e_mwh > 0), "must be > 0", self.e_mwh)
        chk.check("p_max_mw", ~(self.p_max_mw > 0), "must be > 0", self.p_max_mw)
        chk.check(
            "eta",
            ~((self.eta > 0) & (self.eta <= 1)),
            "must be in (0, 1]",
            self.eta,
        )
        chk.check(
            "soc_min",
            ~((self.soc_min >= 0) & (self.soc_min < self.soc_max) & (self.soc_max <= 1)),
            "need 0 <= soc_min < soc_max <= 1",
            self.soc_min,
        )
        chk.check(
            "soc",
            ~((self.soc >= self.soc_min - 1e-9) & (self.soc <= self.soc_max + 1e-9)),
            "outside [soc_min, soc_max]",
            self.soc,
        )
        chk.raise_any()

    def __len__(self) -> int:
        return int(self.id.size)

    @property
    def energy_mwh(self) -> np.ndarray:
        """Stored energy, MWh."""
        return self.soc * self.e_mwh


@dataclass
class EVSessions:
    """EV charging sessions: one row per plug-in. ``ev`` is the car's id (a car has many sessions).

    ``arrival``/``departure`` are absolute steps (plugged during ``arrival <= t < departure``);
    ``e_need_mwh`` is the energy the owner asks for by departure; ``e_arr_mwh`` the energy in the
    battery at arrival, ``e_cap_mwh`` its capacity; ``v2g`` whether the owner allows discharge
    (never below ``soc_floor`` of the capacity). ``delivered_mwh`` is the energy delivered so far.
    """

    id: np.ndarray
    ev: np.ndarray
    bus: np.ndarray
    arrival: np.ndarray
    departure: np.ndarray
    e_need_mwh: np.ndarray
    e_arr_mwh: np.ndarray
    e_cap_mwh: np.ndarray
    p_max_mw: np.ndarray
    v2g: np.ndarray
    soc_floor: np.ndarray
    delivered_mwh: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        for k in ("id", "ev", "bus", "arrival", "departure"):
            setattr(self, k, np.asarray(getattr(self, k), np.int64))
        for k in ("e_need_mwh", "e_arr_mwh", "e_cap_mwh", "p_max_mw", "soc_floor"):
            setattr(self, k, np.asarray(getattr(self, k), np.float64))
        self.v2g = np.asarray(self.v2g, bool)
        if np.size(self.delivered_mwh) == 0 and self.id.size:
            self.delivered_mwh = np.zeros(self.id.size)
        self.delivered_mwh = np.asarray(self.delivered_mwh, np.float64)
        _same_len("ev session", vars(self))
        chk = _Checks("ev session", self.id)
        chk.check(
            "departure",
            ~(self.departure > self.arrival),
            "must be after arrival",
            self.departure,
        )
        chk.check("p_max_mw", ~(self.p_max_mw > 0), "must be > 0", self.p_max_mw)
        chk.check("e_need_mwh", ~(self.e_need_mwh >= 0), "must be >= 0", self.e_need_mwh)
        chk.check(
            "e_need_mwh",
            self.e_arr_mwh + self.e_need_mwh > self.e_cap_mwh + 1e-9,
            "arrival energy plus need exceeds the battery capacity",
            self.e_need_mwh,
        )
        chk.check(
            "soc_floor",
            ~((self.soc_floor >= 0) & (self.soc_floor < 1)),
            "must be in [0, 1)",
            self.soc_floor,
        )
        chk.raise_any()

    def __len__(self) -> int:
        return int(self.id.size)

    def shortfall_mwh(self, step_h: float) -> np.ndarray:
        """Energy a session cannot get even charging at full power from now, MWh (0 if feasible)."""
        dwell = (self.departure - self.arrival) * step_h
        return np.maximum(self.e_need_mwh - self.p_max_mw * dwell, 0.0)


@dataclass
class WaterHeaters:
    """Electric water heaters as thermal stores.

    ``c_mwh_per_k`` tank heat capacity, ``loss_mw`` standby loss (linearised at the middle of
    the comfort band), ``t_min_c``/``t_max_c`` the comfort band, ``t_c`` present temperature;
    hot-water draws (MW thermal) are ``draw_scale_mw * DRAW_SHAPE[(t + draw_shift) % 96]``;
    ``heating`` is the thermostat's present state (used when the heater runs on its own);
    the thermostat switches on below ``t_on_c`` and off above ``t_off_c`` (default 20 % and
    80 % up the comfort band).
    """

    id: np.ndarray
    bus: np.ndarray
    p_rated_mw: np.ndarray
    c_mwh_per_k: np.ndarray
    loss_mw: np.ndarray
    t_min_c: np.ndarray
    t_max_c: np.ndarray
    t_c: np.ndarray
    draw_scale_mw: np.ndarray
    draw_shift: np.ndarray
    heating: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    t_on_c: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t_off_c: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.id = np.asarray(self.id, np.int64)
        lo, hi = np.asarray(self.t_min_c, np.float64), np.asarray(self.t_max_c, np.float64)
        if np.size(self.t_on_c) != np.size(self.id):
            self.t_on_c = lo + 0.2 * (hi - lo)
        if np.size(self.t_off_c) != np.size(self.id):
            self.t_off_c = lo + 0.8 * (hi - lo)
        if np.size(self.heating) != np.size(self.id):
            self.heating = np.asarray(self.t_c, np.float64) < 0.5 * (
                np.asarray(self.t_min_c) + np.asarray(self.t_max_c)
            )
        self.heating = np.asarray(self.heating, bool)
        self.bus = np.asarray(self.bus, np.int64)
        self.draw_shift = np.asarray(self.draw_shift, np.int64)
        for k in (
            "p_rated_mw",
            "c_mwh_per_k",
            "loss_mw",
            "t_min_c",
            "t_max_c",
            "t_c",
            "draw_scale_mw",
            "t_on_c",
            "t_off_c",
        ):
            setattr(self, k, np.asarray(getattr(self, k), np.float64))
        _same_len("water heater", vars(self))
        chk = _Checks("water heater", self.id)
        chk.check("p_rated_mw", ~(self.p_rated_mw > 0), "must be > 0", self.p_rated_mw)
        chk.check("c_mwh_per_k", ~(self.c_mwh_per_k > 0), "must be > 0", self.c_mwh_per_k)
        chk.check(
            "t_max_c",
            ~(self.t_max_c > self.t_min_c),
            "must exceed t_min_c",
            self.t_max_c,
        )
        chk.check(
            "t_c",
            (self.t_c < self.t_min_c - 1e-6) | (self.t_c > self.t_max_c + 1e-6),
            "outside the comfort band",
            self.t_c,
        )
        chk.raise_any()

    def __len__(self) -> int:
        return int(self.id.size)

    @property
    def e_max_mwh(self) -> np.ndarray:
        """Usable thermal energy of the comfort band, MWh."""
        return self.c_mwh_per_k * (self.t_max_c - self.t_min_c)

    @property
    def energy_mwh(self) -> np.ndarray:
        """Thermal energy above the band's bottom, MWh."""
        return self.c_mwh_per_k * (self.t_c - self.t_min_c)

    def draw_mw(self, steps: np.ndarray) -> np.ndarray:
        """(len(steps), n) thermal demand (draws + standby loss), MW."""
        k = (np.asarray(steps)[:, None] + self.draw_shift[None, :]) % DRAW_SHAPE.size
        return self.draw_scale_mw[None, :] * DRAW_SHAPE[k] + self.loss_mw[None, :]


@dataclass
class PVInverters:
    """Inverters of the grid's PV/wind/other generators (``gen_pos`` their table positions).

    ``s_rated_mva`` the inverter rating (the apparent-power limit of P and Q); ``curtailable``
    whether the scheduler may curtail the active power (default all); every inverter may give
    reactive power within its rating.
    """

    id: np.ndarray
    bus: np.ndarray
    gen_pos: np.ndarray
    s_rated_mva: np.ndarray
    curtailable: np.ndarray | None = None

    @property
    def can_curtail(self) -> np.ndarray:
        """``curtailable`` as a bool array (set by ``__post_init__``; all True when not given)."""
        assert self.curtailable is not None
        return self.curtailable

    def __post_init__(self) -> None:
        self.id = np.asarray(self.id, np.int64)
        self.bus = np.asarray(self.bus, np.int64)
        self.gen_pos = np.asarray(self.gen_pos, np.int64)
        self.s_rated_mva = np.asarray(self.s_rated_mva, np.float64)
        self.curtailable = (
            np.ones(self.id.size, bool)
            if self.curtailable is None
            else np.asarray(self.curtailable, bool)
        )
        _same_len("pv inverter", vars(self))
        chk = _Checks("pv inverter", self.id)
        chk.check(
            "s_rated_mva",
            ~(self.s_rated_mva >= 0),
            "must be >= 0",
            self.s_rated_mva,
        )
        chk.raise_any()

    def __len__(self) -> int:
        return int(self.id.size)


def _hot_water_shape() -> np.ndarray:
    """Mean household hot-water draw shape over a day (96 quarter hours), mean 1."""
    h = np.arange(96) / 4.0
    s = (
        0.15
        + 1.6 * np.exp(-0.5 * ((h - 7.0) / 1.0) ** 2)
        + 1.0 * np.exp(-0.5 * ((h - 19.5) / 1.5) ** 2)
        + 0.4 * np.exp(-0.5 * ((h - 12.5) / 1.0) ** 2)
    )
    return s / s.mean()


DRAW_SHAPE = _hot_water_shape()


@dataclass
class Fleet:
    """All flexible devices of an area, with the time step they are described in."""

    batteries: Batteries
    ev: EVSessions
    water_heaters: WaterHeaters
    pv: PVInverters
    step_h: float = 0.25
    meta: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def n_devices(self) -> int:
        """Devices: batteries + distinct EVs + water heaters + PV inverters."""
        return (
            len(self.batteries)
            + int(np.unique(self.ev.ev).size)
            + len(self.water_heaters)
            + len(self.pv)
        )

    def buses(self) -> np.ndarray:
        """Sorted ids of the buses that have at least one device."""
        return np.unique(
            np.concatenate([self.batteries.bus, self.ev.bus, self.water_heaters.bus, self.pv.bus])
        )

    def summary(self) -> dict[str, float | int]:
        """Device counts and ratings (MW, MWh)."""
        return {
            "batteries": len(self.batteries),
            "battery_mw": float(self.batteries.p_max_mw.sum()),
            "battery_mwh": float(self.batteries.e_mwh.sum()),
            "evs": int(np.unique(self.ev.ev).size),
            "ev_sessions": len(self.ev),
            "ev_charger_mw": float(_per_ev_pmax(self.ev).sum()),
            "v2g_evs": int(np.unique(self.ev.ev[self.ev.v2g]).size),
            "water_heaters": len(self.water_heaters),
            "water_heater_mw": float(self.water_heaters.p_rated_mw.sum()),
            "pv_inverters": len(self.pv),
            "pv_mva": float(self.pv.s_rated_mva.sum()),
            "pv_curtailable": int(np.count_nonzero(self.pv.can_curtail)),
            "devices": self.n_devices,
            "buses": int(self.buses().size),
        }


def _per_ev_pmax(ev: EVSessions) -> np.ndarray:
    if not len(ev):
        return np.zeros(0)
    _, first = np.unique(ev.ev, return_index=True)
    return ev.p_max_mw[first]


def households_per_load(grid: Grid, kw_per_household: float = 2.5) -> np.ndarray:
    """Households behind each load: ``customers`` where above 1, else p_mw / ``kw_per_household``."""
    cust = grid.load["customers"].astype(np.float64)
    est = np.round(np.maximum(grid.load["p_mw"], 0) * 1000.0 / kw_per_household)
    return np.where(cust > 1, cust, np.maximum(est, 1)).astype(np.int64)


@dataclass
class _Draw:
    """Seeded draws of devices behind the grid's loads (``hh`` households per load)."""

    rng: np.random.Generator
    hh: np.ndarray
    bus_of_load: np.ndarray

    def buses(self, share: float) -> np.ndarray:
        """The bus of each device owned by ``share`` of the households (a binomial draw per load)."""
        counts = self.rng.binomial(
            np.maximum(np.round(self.hh), 0).astype(np.int64), min(max(share, 0.0), 1.0)
        )
        return np.repeat(self.bus_of_load, counts)


def _draw_batteries(d: _Draw, share: float) -> Batteries:
    """Home batteries: 5-13.5 kWh, 0.5 C, 30-70 % charged."""
    bb = d.buses(share)
    nb = bb.size
    e = d.rng.choice([0.005, 0.0075, 0.010, 0.0135], nb)
    return Batteries(
        np.arange(nb),
        bb,
        e,
        0.5 * e,
        d.rng.uniform(0.3, 0.7, nb),
        np.full(nb, 0.95),
        np.full(nb, 0.1),
        np.full(nb, 0.95),
    )


def _draw_sessions(
    d: _Draw, ne: int, days: int, start_step: int, step_h: float, ev: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One evening session per EV and day: arrival, departure (steps), need, energy on arrival (MWh).

    ``ev``: the cars' charger ratings (MW) and battery capacities (MWh).
    """
    pmax, cap = ev
    spd = round(24 / step_h)
    rows = []
    for day in range(days):
        arr_h = np.clip(d.rng.normal(18.0, 1.5, ne), 14.0, 23.0)
        dep_h = np.clip(d.rng.normal(7.0, 0.8, ne), 5.0, 9.5) + 24.0
        arrival = start_step + day * spd + np.round(arr_h / step_h).astype(np.int64)
        departure = start_step + day * spd + np.round(dep_h / step_h).astype(np.int64)
        km = d.rng.uniform(8, 60, ne)
        need = np.minimum(km * 0.18e-3, 0.8 * (departure - arrival) * step_h * pmax)
        e_arr = np.minimum(d.rng.uniform(0.25, 0.6, ne) * cap, cap - need)
        rows.append((arrival, departure, need, e_arr))
    a, b, c, e = (np.concatenate([r[i] for r in rows]) if rows else np.zeros(0) for i in range(4))
    return a, b, c, e


def _draw_evs(
    d: _Draw, share: float, v2g_share: float, days: int, start_step: int, step_h: float
) -> EVSessions:
    """EVs (7.4 or 11 kW, 40-75 kWh, ``v2g_share`` allow V2G down to 40 %), a session a day each."""
    eb = d.buses(share)
    ne = eb.size
    pmax = d.rng.choice([0.0074, 0.011], ne, p=[0.7, 0.3])
    cap = d.rng.uniform(0.040, 0.075, ne)
    v2g = d.rng.random(ne) < v2g_share
    arrival, departure, need, e_arr = _draw_sessions(d, ne, days, start_step, step_h, (pmax, cap))
    ev_ids = np.tile(np.arange(ne), days)
    return EVSessions(
        np.arange(ev_ids.size),
        ev_ids,
        np.tile(eb, days),
        arrival,
        departure,
        need,
        e_arr,
        np.tile(cap, days),
        np.tile(pmax, days),
        np.tile(v2g, days),
        np.full(ev_ids.size, 0.4),
    )


def _draw_water_heaters(d: _Draw, share: float) -> WaterHeaters:
    """Water heaters: 2-3 kW, 150-300 l, comfort band 50-60 °C, daily draws of 4-9 kWh."""
    wb = d.buses(share)
    nw = wb.size
    litres = d.rng.choice([150.0, 200.0, 300.0], nw)
    c = litres * 4.186e-3 / 3600.0  # MWh/K
    daily_kwh = d.rng.uniform(4.0, 9.0, nw)
    return WaterHeaters(
        np.arange(nw),
        wb,
        d.rng.choice([0.002, 0.003], nw),
        c,
        np.full(nw, 0.00008),
        np.full(nw, 50.0),
        np.full(nw, 60.0),
        d.rng.uniform(52.0, 58.0, nw),
        daily_kwh * 1e-3 / 24.0,
        d.rng.integers(-6, 7, nw),
    )


def _grid_inverters(
    grid: Grid, curtail_kinds: tuple[int, ...], q_kinds: tuple[int, ...]
) -> PVInverters:
    """The grid's PV-like generators as inverters rated 1.1 x p_mw (``curtail_kinds`` curtailable)."""
    gk = grid.generator["kind"]
    pos = np.flatnonzero(np.isin(gk, np.asarray(curtail_kinds + q_kinds, np.int64)))
    return PVInverters(
        grid.generator.ids[pos],
        grid.generator["bus"][pos],
        pos,
        1.1 * grid.generator["p_mw"][pos],
        np.isin(gk[pos], np.asarray(curtail_kinds, np.int64)),
    )


def generate_fleet(  # noqa: PLR0913
    grid: Grid,
    days: int = 1,
    *,
    seed: int = 0,
    start_step: int = 0,
    step_h: float = 0.25,
    ev_share: float = 0.25,
    v2g_share: float = 0.3,
    wh_share: float = 0.25,
    battery_share: float = 0.08,
    scale: float = 1.0,
    n_devices: int | None = None,
    curtail_kinds: tuple[int, ...] = (int(GenKind.PV), int(GenKind.OTHER)),
    q_kinds: tuple[int, ...] = (int(GenKind.PV), int(GenKind.WIND), int(GenKind.OTHER)),
) -> Fleet:
    """A seeded, realistic fleet behind the grid's loads for ``days`` days from ``start_step``.

    Households per load come from :func:`households_per_load` (times ``scale``); shares of them
    own an EV (7.4 or 11 kW charger, 40-75 kWh battery, one session per evening, 8-60 km a day at
    0.18 kWh/km, ``v2g_share`` of owners allow V2G down to 40 %), a water heater (2-3 kW,
    150-300 l tank, comfort band 50-60 °C with daily draws of 4-9 kWh) or a home battery (5-13.5
    kWh, 0.5 C). PV inverters are the grid's PV (and 'other', SimBench's LV aggregates)
    generators, rated 1.1 x their p_mw (``curtail_kinds`` picks the generator kinds whose
    output the scheduler may curtail; add ``GenKind.WIND`` to include wind farms; the kinds in
    ``q_kinds`` are also in the fleet, not curtailable, for their reactive power only).
    ``n_devices`` rescales the households so that the battery/EV/water-heater count is about
    that number.
    """
    rng = np.random.default_rng(seed)
    hh = households_per_load(grid).astype(np.float64) * scale
    share_sum = ev_share + wh_share + battery_share
    if n_devices is not None:
        hh = hh * (n_devices / max(hh.sum() * share_sum, 1e-9))
    d = _Draw(rng, hh, grid.load["bus"])
    bat = _draw_batteries(d, battery_share)
    ev = _draw_evs(d, ev_share, v2g_share, days, start_step, step_h)
    wh = _draw_water_heaters(d, wh_share)
    pv = _grid_inverters(grid, curtail_kinds, q_kinds)
    meta: dict[str, float | int | str] = {
        "seed": seed,
        "scale": float(hh.sum() / max(households_per_load(grid).sum(), 1)),
        "households": int(np.round(hh).sum()),
        "days": days,
    }
    return Fleet(bat, ev, wh, pv, step_h, meta)
