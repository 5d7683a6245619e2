"""The field simulator: a grid's physical world in simulated time.

:class:`FieldSimulator` holds a :class:`~gridpilot.field.fleet.DeviceFleet` (numpy state),
the switch states and any faults. :meth:`~FieldSimulator.step` advances every device by
``dt_s`` seconds, sums device powers per grid load (``np.bincount``) and runs one AC power
flow with the twin: that is the true state. :meth:`~FieldSimulator.readings` returns what the
field would send now (columnar: meters, grid sensors, events), after tampering, false data,
outages, message loss and delay; :meth:`~FieldSimulator.apply` obeys commands.

Typical use::

    sim = FieldSimulator(load_grid("case33bw"), FleetConfig(n_devices=100_000))
    for _ in range(60):
        sim.step(60)                         # one simulated minute
        batch = sim.readings()               # FieldReadings: meters, sensors, events
    sim.inject_line_fault(7)                 # breaker trips, FPIs pick up, meters lose voltage
    sim.apply(Command("switch", target=7, value=False))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, UnknownComponentError, ValidationError
from gridpilot.field import devices
from gridpilot.field.conditions import (
    EVENT_KINDS,
    GRID_COMMANDS,
    grid_command,
    number,
    set_condition,
    unknown_event,
)
from gridpilot.field.fleet import DeviceFleet, FleetConfig, build_fleet
from gridpilot.field.grid_devices import (
    GridDeviceState,
    ev_charging_mw,
    flex_load_mw,
    generator_mw,
    storage_mw,
    storage_soc_after,
)
from gridpilot.field.protection import FaultIndications, fault_indications, reported_pickups
from gridpilot.field.weather import WeatherSeries, weather_forecast
from gridpilot.model import GenKind, Grid, default_profiles
from gridpilot.twin import PowerFlowResult, Twin, energised, profiles_for

COMMANDS = (
    "switch",
    "battery_setpoint",
    "battery_auto",
    "ev_limit",
    "pv_limit",
    "water_heater_pause",
    "water_heater_resume",
    "pause",
    "resume",
    *GRID_COMMANDS,
)


@dataclass
class Command:
    """A command to the field.

    ``name`` (see :data:`COMMANDS`): ``switch`` (``target`` switch id, ``value`` True closes),
    ``battery_setpoint`` (kW, + charging), ``battery_auto`` (back to self-consumption),
    ``ev_limit`` (kW charging limit, negative = V2G discharge where the charger allows),
    ``pv_limit`` (fraction 0..1 of kWp), ``water_heater_pause`` / ``water_heater_resume``,
    ``pause`` / ``resume`` (the whole simulation). Device ``target`` is a position or an array
    of positions within that kind (``None`` = all of them); ``value`` a scalar or one per target.
    Grid-level devices (the grid's tables): ``grid_storage_setpoint`` (``target`` storage id,
    ``value`` MW, + charging, clipped to the rating), ``ev_charging_factor`` (``value`` 0..1 on
    the EV charging stations), ``flex_load_level`` (``value`` 0..1 of the flexible loads
    curtailed), ``fpi_reset`` (every fault-passage indicator reset).
    """

    name: str
    target: Any = None
    value: Any = None
    cmd_id: str = ""


@dataclass
class FieldEvent:
    """Something the field reports as an event (protection, outages, acknowledgements)."""

    ts_ms: int
    name: str
    severity: str
    data: dict[str, Any]


@dataclass
class MeterReadings:
    """Smart-meter rows (one per meter message delivered now), columnar.

    ``ts_ms`` when measured; ``meter`` position in the fleet; ``bus_id`` its bus; ``p_kw`` mean
    net power over the reporting interval (+ import); ``q_kvar``; ``v_pu`` voltage at the end of
    the interval; ``e_import_kwh`` / ``e_export_kwh`` the registers. Values are what the meter
    *reports* (after tampering and false data), not the truth.
    """

    ts_ms: np.ndarray
    meter: np.ndarray
    bus_id: np.ndarray
    p_kw: np.ndarray
    q_kvar: np.ndarray
    v_pu: np.ndarray
    e_import_kwh: np.ndarray
    e_export_kwh: np.ndarray

    def __len__(self) -> int:
        return int(self.meter.size)

    @staticmethod
    def concat(parts: list[MeterReadings]) -> MeterReadings:
        """One batch from several (in order)."""
        names = _METER_COLUMNS
        if not parts:
            return MeterReadings(
                *(
                    np.zeros(0, np.int64 if n in ("ts_ms", "meter", "bus_id") else np.float64)
                    for n in names
                )
            )
        return MeterReadings(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def take(self, mask: np.ndarray) -> MeterReadings:
        """The rows where ``mask`` is True."""
        return MeterReadings(*(getattr(self, n)[mask] for n in _METER_COLUMNS))


_METER_COLUMNS = tuple(f.name for f in fields(MeterReadings))  # in constructor order


@dataclass
class FieldReadings:
    """What the field sends at one instant: meter rows, grid sensors, events.

    ``sensors``: ``source_p_mw``, ``source_q_mvar``, ``source_v_pu`` (per source), ``line_p_mw``,
    ``line_q_mvar`` and ``line_loading_pct`` (at the from end of ``sensor_line_ids``),
    ``bus_v_pu`` (at ``sensor_bus_ids``), ``switch_closed`` and ``fpi`` (per switch, 1.0 closed /
    picked up), the grid devices' own metering (``gen_p_mw``, ``storage_p_mw``, ``storage_soc``,
    ``ev_p_mw``, ``flex_p_mw``, table order, 0 where de-energised) and, with
    ``substation_meters``, ``load_p_mw`` / ``load_q_mvar`` per grid load (secondary-substation
    metering, every step); false data on sensors is already applied.
    """

    ts_ms: int
    meters: MeterReadings
    sensors: dict[str, np.ndarray]
    events: list[FieldEvent]


@dataclass
class StepStats:
    """Timing and the true state's summary of one :meth:`FieldSimulator.step`."""

    t_s: float
    devices_ms: float
    powerflow_ms: float
    converged: bool
    total_p_mw: float
    vmin_pu: float


@dataclass
class _Pending:
    release_s: float
    rows: MeterReadings


@dataclass
class FaultState:
    """A present line fault and the protection's response."""

    line_id: int
    indications: FaultIndications
    since_s: float


class FieldSimulator:
    """Simulated grid and devices (see the module docstring).

    ``meter_interval_s``: meters report every this many seconds (900 = 15-minute AMI);
    ``sensor_line_ids`` / ``sensor_bus_ids``: flow and voltage sensors on the grid (default: the
    first line leaving each source, no bus sensors; ``"all"`` for every line / bus);
    ``substation_meters``: report every grid load's P and Q each step; ``keep_history_days``:
    days of reported meter values kept for replay attacks (0 disables them); ``seed`` for
    everything random; ``engine`` the twin's power-flow engine (``auto``, ``pgm`` or ``radial``).

    Besides the household devices the simulator steps the grid's own device tables
    (:mod:`gridpilot.field.grid_devices`) and accepts scenario events (:meth:`inject_event`).
    """

    def __init__(
        self,
        grid: Grid,
        fleet: FleetConfig | DeviceFleet | None = None,
        *,
        start: str | None = None,
        meter_interval_s: int = 900,
        sensor_line_ids: np.ndarray | list[int] | str | None = None,
        sensor_bus_ids: np.ndarray | list[int] | str | None = None,
        substation_meters: bool = False,
        meter_p_noise: float = 0.01,
        meter_v_noise_pu: float = 0.002,
        keep_history_days: int = 0,
        seed: int = 0,
        engine: str = "auto",
        weather: WeatherSeries | None = None,
    ) -> None:
        if meter_interval_s <= 0:
            raise ValidationError(
                issues=[
                    Issue("field", "meter_interval_s", "must be positive", value=meter_interval_s)
                ]
            )
        self.grid = grid
        self.twin = Twin(grid, engine=engine)
        self.fleet = fleet if isinstance(fleet, DeviceFleet) else build_fleet(grid, fleet)
        self.rng = np.random.default_rng(seed)
        f = self.fleet
        nm = f.meter_load.size
        # profiles: the grid's (or gridpilot's default shapes), wrapped around
        prof_steps = grid.profiles.steps if grid.profiles is not None else 96 * 366
        self._prof, self._cols = profiles_for(grid, prof_steps)
        self._step_s = (
            float((self._prof.index[1] - self._prof.index[0]) / np.timedelta64(1, "s"))
            if self._prof.steps > 1
            else 900.0
        )
        dflt = default_profiles(96 * 366)
        self._pv_shape = dflt.values[:, dflt.column("pv")]
        self._dflt_step_s = 900.0
        self.weather = weather  # PV and wind follow it when given (gridpilot.field.weather)
        t0 = np.datetime64(start, "s") if start is not None else self._prof.index[0]
        self.start_ms = int(t0.astype("datetime64[ms]").astype(np.int64))
        self._start_offset_s = float((t0 - self._prof.index[0]) / np.timedelta64(1, "s"))
        self.t_s = 0.0
        self.paused = False
        self.switch_closed = grid.switch["closed"].copy()
        self.bus_live = energised(grid, self.switch_closed)
        self.faults: dict[int, FaultState] = {}
        self.events: list[FieldEvent] = []
        self.meter_interval_s = int(meter_interval_s)
        self.meter_p_noise = meter_p_noise
        self.meter_v_noise_pu = meter_v_noise_pu
        self.meter_v_offset_pu = self.rng.normal(0.0, 0.003, nm).astype(
            np.float32
        )  # service-drop, per meter
        self.loss_prob = 0.0
        self.delay_prob = 0.0
        self.delay_s = 0.0
        self._pending: list[_Pending] = []
        self._last_report_s = 0.0
        self._rep_import = np.zeros(nm)  # reported registers (after tampering)
        self._rep_export = np.zeros(nm)
        self._rep_import_prev = np.zeros(nm)
        self._rep_export_prev = np.zeros(nm)
        self._q_kvarh = np.zeros(nm)
        self._q_prev = np.zeros(nm)
        self._tanphi = np.divide(
            grid.load["q_mvar"],
            grid.load["p_mw"],
            out=np.zeros(len(grid.load)),
            where=grid.load["p_mw"] != 0,
        )
        self.sensor_line_ids = (
            self._default_sensor_lines()
            if sensor_line_ids is None
            else self._sensor_ids("sensor_line_ids", sensor_line_ids, grid.line.ids)
        )
        self.sensor_bus_ids = (
            np.zeros(0, np.int64)
            if sensor_bus_ids is None
            else self._sensor_ids("sensor_bus_ids", sensor_bus_ids, grid.bus.ids)
        )
        self.substation_meters = bool(substation_meters)
        grid.line.index_of(self.sensor_line_ids)  # raises on unknown ids
        grid.bus.index_of(self.sensor_bus_ids)
        self.sensor_bias: dict[str, np.ndarray] = {}
        self.keep_history_days = int(keep_history_days)
        slots = self.keep_history_days * 86400 // self.meter_interval_s
        self._hist_p = np.zeros((slots, nm), np.float32) if slots else None
        self._hist_v = np.zeros((slots, nm), np.float32) if slots else None
        self._hist_n = 0
        self.replay_noise = 0.01  # relative noise a replaying attacker adds to disguise the copy
        self.meter_p_kw = np.zeros(nm, np.float32)  # true net power now
        self.load_p_mw = grid.load["p_mw"].copy()
        self.load_q_mvar = grid.load["q_mvar"].copy()
        self.load_p_if_energised_mw = self.load_p_mw.copy()
        # grid-level devices, protection indicators, the normal configuration (crews restore it)
        self.grid_devices = GridDeviceState.of(grid)
        self.grid_p_mw: dict[str, np.ndarray] = {}  # injections of the grid devices now
        self.grid_demand_mw: dict[str, np.ndarray] = {}  # their uncommanded demand now
        self.normal_closed = grid.switch["closed"].copy()
        self.fpi = np.zeros(len(grid.switch), bool)  # latched until fpi_reset or repair
        self.fpi_failed = np.zeros(len(grid.switch), bool)  # indicators that never pick up
        self.fpi_false = np.zeros(len(grid.switch), bool)  # indicators that pick up at every trip
        self._uncleared: set[int] = set()
        self._pos = {
            name: grid.bus.position_map(tbl["bus"]) if len(tbl) else np.zeros(0, np.int64)
            for name, tbl in (
                ("load", grid.load),
                ("gen", grid.generator),
                ("storage", grid.storage),
                ("ev", grid.ev_charger),
                ("flex", grid.flex_load),
            )
        }
        self.pf: PowerFlowResult = self.twin.powerflow(switch_closed=self.switch_closed)
        self.last_stats: StepStats | None = None
        f = self.fleet  # EVs already home at the start are plugged in (no mass arrival at t=0)
        h0 = (self._start_offset_s / 3600.0) % 24.0
        f.ev_plugged[:] = (h0 >= f.ev_arrive_h) | (h0 < f.ev_depart_h)

    @staticmethod
    def _sensor_ids(name: str, ids: Any, all_ids: np.ndarray) -> np.ndarray:
        if isinstance(ids, str):
            if ids != "all":
                raise ValidationError(issues=[Issue("field", name, "ids, or 'all'", value=ids)])
            return np.asarray(all_ids, np.int64).copy()
        return np.asarray(ids, np.int64)

    def _default_sensor_lines(self) -> np.ndarray:
        g = self.grid
        src = g.source["bus"]
        m = np.isin(g.line["from_bus"], src) | np.isin(g.line["to_bus"], src)
        return g.line.ids[m]

    # --- time -----------------------------------------------------------------------------------
    @property
    def now(self) -> pd.Timestamp:
        """Simulated time as a tz-naive UTC timestamp."""
        return pd.Timestamp(self.now_ms, unit="ms")

    def weather_forecast(
        self, horizon_steps: int, history_steps: int = 0, seed: int = 0
    ) -> pd.DataFrame | None:
        """The weather service's forecast issued now (None without a weather series): the
        next ``horizon_steps`` steps of the weather's grid with an error growing with lead,
        after ``history_steps`` analysed rows (:func:`gridpilot.field.weather.weather_forecast`)."""
        if self.weather is None:
            return None
        return weather_forecast(
            self.weather, self.now, horizon_steps, history_steps=history_steps, seed=seed
        )

    @property
    def now_ms(self) -> int:
        """Simulated time, ms since the Unix epoch (UTC)."""
        return self.start_ms + round(self.t_s * 1000)

    def _shape_at(self, values: np.ndarray, step_s: float) -> np.ndarray:
        x = (self._start_offset_s + self.t_s) / step_s
        n = values.shape[0]
        k = int(np.floor(x))
        w = x - k
        return (1 - w) * values[k % n] + w * values[(k + 1) % n]

    # --- stepping -------------------------------------------------------------------------------
    def _meter_live(self) -> np.ndarray:
        f = self.fleet
        return self.bus_live[f.meter_bus] & f.meter_online

    def step(self, dt_s: float = 60.0) -> StepStats | None:
        """Advance the world by ``dt_s`` seconds and recompute the true state (one power flow).

        Returns the step's :class:`StepStats` (None while paused: time does not advance).
        """
        if not dt_s > 0:
            raise ValidationError(issues=[Issue("field", "dt_s", "must be positive", value=dt_s)])
        if self.paused:
            return None
        t0 = time.perf_counter()
        f, rng = self.fleet, self.rng
        self.t_s += dt_s
        hour = ((self._start_offset_s + self.t_s) / 3600.0) % 24.0
        live_m = self._meter_live()
        # household base demand: load profile x size x (1 + AR(1) noise), tau 30 min, sigma 0.4
        shapes = self._shape_at(self._prof.values, self._step_s)
        lcol = self._cols["load_p"]
        load_shape = np.where(lcol >= 0, shapes[np.maximum(lcol, 0)], 1.0).astype(np.float32)
        rho = np.float32(np.exp(-dt_s / 1800.0))
        f.meter_ar *= rho
        f.meter_ar += np.float32(0.4 * np.sqrt(1.0 - rho * rho)) * rng.standard_normal(
            f.meter_ar.size, np.float32
        )
        dfac = self.grid_devices.cond.demand_factor(hour)  # heatwave: load factor and peak
        base = (
            f.meter_base_kw
            * load_shape[f.meter_load]
            * np.maximum(np.float32(0.05), 1 + f.meter_ar)
            * np.float32(dfac)
        )
        base_if_on = base * f.meter_online
        base *= live_m
        nm = base.size
        # devices
        pv_shape = (
            float(self._shape_at(self._pv_shape, self._dflt_step_s))
            if self.weather is None
            else self.weather.pv_per_kwp(self.now)
        )
        pv = devices.pv_kw(f, pv_shape, live_m[f.pv_meter] & f.pv_online)
        pv_m = np.bincount(f.pv_meter, weights=pv, minlength=nm)
        surplus = (pv_m - base)[f.bat_meter].astype(np.float32)
        bat = devices.battery_kw(f, surplus, dt_s, live_m[f.bat_meter] & f.bat_online)
        ev = devices.ev_kw(f, hour, dt_s, live_m[f.ev_meter] & f.ev_online, rng)
        # hot-water draws: morning and evening peaks, about 5 kWh a day per tank on average
        draw_shape = (
            0.25
            + 2.2 * np.exp(-0.5 * ((hour - 7.5) / 1.0) ** 2)
            + 1.6 * np.exp(-0.5 * ((hour - 20.0) / 1.5) ** 2)
        )
        draw = (5.0 / 24.0 / 1.45 * draw_shape * rng.exponential(1.0, f.wh_meter.size)).astype(
            np.float32
        )
        wh = devices.water_heater_kw(f, draw, dt_s, live_m[f.wh_meter] & f.wh_online)
        net = (
            base
            + np.bincount(f.bat_meter, weights=bat, minlength=nm)
            + np.bincount(f.ev_meter, weights=ev, minlength=nm)
            + np.bincount(f.wh_meter, weights=wh, minlength=nm)
            - pv_m
        )
        self.meter_p_kw = net.astype(np.float32)
        h = dt_s / 3600.0
        imp = np.maximum(net, 0.0) * h
        exp_ = np.maximum(-net, 0.0) * h
        f.e_import_kwh += imp
        f.e_export_kwh += exp_
        self._rep_import += imp * f.tamper_factor
        self._rep_export += exp_
        q = base * self._tanphi[f.meter_load]
        self._q_kvarh += q * h
        # aggregate per grid load and run the power flow (the truth)
        nl = len(self.grid.load)
        w = f.meter_scale / 1000.0
        self.load_p_mw = np.bincount(f.meter_load, weights=net * w, minlength=nl)
        self.load_q_mvar = np.bincount(f.meter_load, weights=q * w, minlength=nl)
        # what the loads would draw if energised (dead households: their base demand)
        on_bus = self.bus_live[f.meter_bus]
        self.load_p_if_energised_mw = np.bincount(
            f.meter_load, weights=np.where(on_bus, net, base_if_on) * w, minlength=nl
        )
        self._step_grid_devices(shapes, hour, dfac, dt_s)
        t1 = time.perf_counter()
        self.pf = self._powerflow()
        t2 = time.perf_counter()
        if not self.pf.converged:
            self._event("powerflow_failed", "warning", {"t_s": self.t_s})
        self.last_stats = StepStats(
            self.t_s,
            (t1 - t0) * 1e3,
            (t2 - t1) * 1e3,
            self.pf.converged,
            float(self.load_p_mw.sum()),
            float(self.pf.summary().get("vmin_pu", np.nan)),
        )
        return self.last_stats

    def _step_grid_devices(self, shapes: np.ndarray, hour: float, dfac: float, dt_s: float) -> None:
        """The grid's own devices this step (see :mod:`gridpilot.field.grid_devices`)."""
        g, gd = self.grid, self.grid_devices
        live = self.bus_live
        gcol = self._cols["gen_p"]
        gshape = np.where(gcol >= 0, shapes[np.maximum(gcol, 0)], 1.0) if gcol.size else gcol
        if self.weather is not None and gcol.size:
            kind = g.generator["kind"]
            gshape = np.where(kind == GenKind.WIND, self.weather.wind_per_unit(self.now), gshape)
            gshape = np.where(kind == GenKind.PV, self.weather.pv_per_kwp(self.now), gshape)
        gen = generator_mw(g, g.generator["p_mw"] * gshape, gd.cond, gd.gen_tripped)
        ev = ev_charging_mw(g, hour, gd.cond.ev_factor)
        flex = flex_load_mw(g, dfac)
        sp = storage_mw(gd.storage_soc, gd.storage_cmd_mw) * live[self._pos["storage"]]
        gd.storage_soc = storage_soc_after(gd.storage_soc, sp, g.storage["e_mwh"], dt_s)
        self.grid_demand_mw = {"ev_p_mw": ev, "flex_p_mw": flex}
        self.grid_p_mw = {
            "gen_p_mw": gen,
            "ev_p_mw": ev * gd.ev_cmd_factor,
            "flex_p_mw": flex * (1.0 - gd.flex_level),
            "storage_p_mw": sp,
        }

    def _powerflow(self) -> PowerFlowResult:
        """The power flow of the present loads, grid devices and switch states (the truth)."""
        inj = {k: v for k, v in self.grid_p_mw.items() if v.size}
        return self.twin.powerflow(
            load_p_mw=self.load_p_mw,
            load_q_mvar=self.load_q_mvar,
            switch_closed=self.switch_closed,
            **inj,
        )

    def run(
        self, duration_s: float, dt_s: float = 60.0, speed: float | None = None, on_step: Any = None
    ) -> list[StepStats]:
        """Step for ``duration_s`` simulated seconds; ``speed`` x real time (None: as fast as possible).

        ``on_step(sim, stats)`` is called after every step. Returns the steps' stats.
        """
        out: list[StepStats] = []
        wall0 = time.monotonic()
        t_end = self.t_s + duration_s
        while self.t_s < t_end - 1e-9:
            st = self.step(dt_s)
            if st is None:  # paused: wait for a resume from on_step or another thread
                time.sleep(0.05)
                if on_step is not None:
                    on_step(self, None)
                continue
            out.append(st)
            if on_step is not None:
                on_step(self, st)
            if speed:
                lag = (self.t_s - (t_end - duration_s)) / speed - (time.monotonic() - wall0)
                if lag > 0:
                    time.sleep(lag)
        return out

    # --- events ---------------------------------------------------------------------------------
    def _event(self, name: str, severity: str, data: dict[str, Any]) -> FieldEvent:
        ev = FieldEvent(self.now_ms, name, severity, data)
        self.events.append(ev)
        return ev

    # --- readings -------------------------------------------------------------------------------
    def meter_values(self) -> MeterReadings:
        """Every meter's report for the interval ending now (no loss or delay applied).

        Mean power from the reported registers (so tampering shows as lower import), voltage
        with meter noise and a fixed per-meter service-drop offset, plus any false data.
        De-energised meters report 0 V and no power.
        """
        f = self.fleet
        nm = f.meter_load.size
        hours = max((self.t_s - self._last_report_s) / 3600.0, 1e-9)
        p = (
            (self._rep_import - self._rep_import_prev) - (self._rep_export - self._rep_export_prev)
        ) / hours
        qv = (self._q_kvarh - self._q_prev) / hours
        p = p * (1.0 + self.meter_p_noise * self.rng.standard_normal(nm))
        bus_v = np.nan_to_num(self.pf.v_pu, nan=0.0)
        v = (
            bus_v[f.meter_bus]
            + self.meter_v_offset_pu
            + self.meter_v_noise_pu * self.rng.standard_normal(nm)
        )
        v = np.where(self.bus_live[f.meter_bus], v, 0.0)
        p = p * f.fdi_p_factor
        v = v + f.fdi_v_bias_pu * (v > 0)
        if self._hist_p is not None:
            slots = self._hist_p.shape[0]
            k = self._hist_n % slots
            if self._hist_n >= slots and f.fdi_replay.any():
                r = f.fdi_replay
                jit = 1.0 + self.replay_noise * self.rng.standard_normal(nm)  # attacker's disguise
                p = np.where(r, self._hist_p[k] * jit, p)
                v = np.where(r, self._hist_v[k] * (1.0 + 0.1 * (jit - 1.0)), v)
            self._hist_p[k] = p
            self._hist_v[k] = v
            self._hist_n += 1
        self._rep_import_prev[:] = self._rep_import
        self._rep_export_prev[:] = self._rep_export
        self._q_prev[:] = self._q_kvarh
        self._last_report_s = self.t_s
        ts = np.full(nm, self.now_ms, np.int64)
        return MeterReadings(
            ts,
            np.arange(nm, dtype=np.int64),
            self.grid.bus.ids[f.meter_bus],
            p,
            qv,
            np.clip(v, 0.0, 2.0),
            self._rep_import.copy(),
            self._rep_export.copy(),
        )

    def sensor_values(self) -> dict[str, np.ndarray]:
        """Grid sensors now (feeder head, line flows, bus voltages, switch positions), false data applied."""
        pf, g = self.pf, self.grid
        lp = g.line.index_of(self.sensor_line_ids)
        bp = g.bus.index_of(self.sensor_bus_ids)
        src_bus = g.bus.position_map(g.source["bus"])
        out = {
            "source_p_mw": np.nan_to_num(pf.source_p_mw).copy(),
            "source_q_mvar": np.nan_to_num(pf.source_q_mvar).copy(),
            "source_v_pu": np.nan_to_num(pf.v_pu[src_bus]).copy(),
            "line_p_mw": np.nan_to_num(pf.line_p_from_mw[lp]).copy(),
            "line_q_mvar": np.nan_to_num(pf.line_q_from_mvar[lp]).copy(),
            "line_loading_pct": np.nan_to_num(pf.line_loading_pct[lp]).copy(),
            "bus_v_pu": np.nan_to_num(pf.v_pu[bp]).copy(),
            "switch_closed": self.switch_closed.astype(np.float64),
            "fpi": self.fpi.astype(np.float64),
        }
        out |= self._device_metering()
        for k, b in self.sensor_bias.items():
            out[k] = out[k] + b
        return out

    def _device_metering(self) -> dict[str, np.ndarray]:
        """The grid devices' own meters (and, with ``substation_meters``, every load's), MW."""
        g, live, pos = self.grid, self.bus_live, self._pos
        z = lambda n: np.zeros(n)  # noqa: E731  before the first step: nothing measured yet
        gp = self.grid_p_mw
        out = {
            "gen_p_mw": gp.get("gen_p_mw", z(len(g.generator))) * live[pos["gen"]],
            "storage_p_mw": gp.get("storage_p_mw", z(len(g.storage))) * live[pos["storage"]],
            "storage_soc": self.grid_devices.storage_soc.copy(),
            "ev_p_mw": gp.get("ev_p_mw", z(len(g.ev_charger))) * live[pos["ev"]],
            "flex_p_mw": gp.get("flex_p_mw", z(len(g.flex_load))) * live[pos["flex"]],
        }
        if self.substation_meters:
            on = live[pos["load"]]
            out["load_p_mw"] = self.load_p_mw * on
            out["load_q_mvar"] = self.load_q_mvar * on
        return out

    def readings(self, *, meters: bool | None = None) -> FieldReadings:
        """What the field sends now: meter rows (when a reporting interval has ended, or if
        ``meters`` is True), the grid sensors and the events since the last call.

        Message loss drops meter rows with probability ``loss_prob``; delay holds rows back
        ``delay_s`` with probability ``delay_prob`` (they arrive in a later call, with their
        original timestamps). Events are never lost.
        """
        due = (
            meters
            if meters is not None
            else (self.t_s - self._last_report_s) >= self.meter_interval_s - 1e-9
        )
        parts: list[MeterReadings] = []
        if due:
            rows = self.meter_values()
            rows = rows.take(self.fleet.meter_online)  # offline meters send nothing
            n = len(rows)
            if self.loss_prob > 0:
                rows = rows.take(self.rng.random(n) >= self.loss_prob)
                n = len(rows)
            if self.delay_prob > 0 and self.delay_s > 0:
                late = self.rng.random(n) < self.delay_prob
                self._pending.append(_Pending(self.t_s + self.delay_s, rows.take(late)))
                rows = rows.take(~late)
            parts.append(rows)
        keep: list[_Pending] = []
        for pend in self._pending:
            (parts.append(pend.rows) if pend.release_s <= self.t_s + 1e-9 else keep.append(pend))
        self._pending = keep
        evs, self.events = self.events, []
        return FieldReadings(self.now_ms, MeterReadings.concat(parts), self.sensor_values(), evs)

    # --- commands -------------------------------------------------------------------------------
    def _positions(self, kind: str, target: Any) -> np.ndarray:
        n = self.fleet.counts[kind]
        if target is None:
            return np.arange(n)
        pos = np.atleast_1d(np.asarray(target, np.int64))
        bad = pos[(pos < 0) | (pos >= n)]
        if bad.size:
            raise UnknownComponentError(kind, int(bad[0]), f"{kind} positions are 0..{n - 1}")
        return pos

    def apply(self, cmd: Command) -> FieldEvent:
        """Obey ``cmd`` (see :class:`Command`); returns the acknowledgement event (also queued).

        Unknown commands, targets or values raise :class:`~gridpilot.errors.ValidationError`
        naming them; nothing is changed then.
        """
        f = self.fleet
        name = cmd.name
        if name not in COMMANDS:
            raise ValidationError(
                issues=[
                    Issue("command", "name", f"unknown; choose from {list(COMMANDS)}", value=name)
                ]
            )
        detail: dict[str, Any] = {"cmd_id": cmd.cmd_id, "command": name}
        if name == "switch":
            if cmd.target is None or cmd.value is None:
                raise ValidationError(
                    issues=[
                        Issue("command", "target/value", "switch needs a switch id and True/False")
                    ]
                )
            pos = int(self.grid.switch.index_of(int(cmd.target))[0])
            self.switch_closed[pos] = bool(cmd.value)
            detail |= {"switch": int(cmd.target), "closed": bool(cmd.value)}
            self._topology_changed()
        elif name in ("pause", "resume"):
            self.paused = name == "pause"
        elif name == "fpi_reset":
            detail["fpi_reset"] = int(self.fpi.sum())
            self.fpi[:] = False
        elif name in GRID_COMMANDS:
            detail |= grid_command(self.grid, self.grid_devices, name, cmd.target, cmd.value)
        else:
            kind = {
                "battery_setpoint": "battery",
                "battery_auto": "battery",
                "ev_limit": "ev",
                "pv_limit": "pv",
                "water_heater_pause": "water_heater",
                "water_heater_resume": "water_heater",
            }[name]
            pos = self._positions(kind, cmd.target)
            if name in ("battery_setpoint", "ev_limit", "pv_limit"):
                if cmd.value is None:
                    raise ValidationError(
                        issues=[Issue("command", "value", f"{name} needs a value")]
                    )
                val = np.broadcast_to(np.asarray(cmd.value, np.float32), pos.shape)
                if not np.all(np.isfinite(val)):
                    raise ValidationError(
                        issues=[Issue("command", "value", "must be finite", value=cmd.value)]
                    )
                if name == "pv_limit" and (val.min() < 0 or val.max() > 1):
                    raise ValidationError(
                        issues=[
                            Issue(
                                "command", "value", "pv_limit is a fraction 0..1", value=cmd.value
                            )
                        ]
                    )
            if name == "battery_setpoint":
                f.bat_setpoint_kw[pos] = val
                f.bat_auto[pos] = False
            elif name == "battery_auto":
                f.bat_auto[pos] = True
            elif name == "ev_limit":
                f.ev_limit_kw[pos] = val
            elif name == "pv_limit":
                f.pv_limit_frac[pos] = val
            else:
                f.wh_paused[pos] = name == "water_heater_pause"
            detail["devices"] = int(pos.size)
        return self._event("ack", "info", detail)

    def set_switch_states(self, closed: np.ndarray) -> None:
        """Set every switch at once (bool per switch, table order), e.g. a crew restoring a
        configuration; protection then acts as for any switching."""
        c = np.asarray(closed, bool)
        if c.shape != self.switch_closed.shape:
            raise ValidationError(
                issues=[
                    Issue(
                        "field",
                        "switch_closed",
                        f"needs one value per switch ({self.switch_closed.size})",
                        value=c.shape,
                    )
                ]
            )
        self.switch_closed[:] = c
        self._topology_changed()

    def _topology_changed(self) -> None:
        """After a switch change: protection (closing onto a fault trips again), then energisation."""
        for _ in range(
            len(self.grid.source) + len(self.faults) + 1
        ):  # a fault fed from two sides trips twice
            fed = [
                ind
                for ind in (
                    fault_indications(self.grid, fs.line_id, self.switch_closed)
                    for fs in self.faults.values()
                )
                if ind.fed and ind.trip_switch >= 0
            ]
            if not fed:
                break
            for ind in fed:
                if self.switch_closed[int(self.grid.switch.index_of(ind.trip_switch)[0])]:
                    self._trip(ind)
        before = self.bus_live
        self.bus_live = energised(self.grid, self.switch_closed)
        self._voltage_events(before, self.bus_live)
        self.pf = self._powerflow()

    def _voltage_events(self, before: np.ndarray, after: np.ndarray) -> None:
        f = self.fleet
        for name, mask in (
            ("voltage_lost", before & ~after),
            ("voltage_restored", ~before & after),
        ):
            if mask.any():
                meters = np.flatnonzero(mask[f.meter_bus])
                self._event(
                    name,
                    "warning" if name == "voltage_lost" else "info",
                    {"bus_ids": self.grid.bus.ids[mask].tolist(), "meters": int(meters.size)},
                )

    def _trip(self, ind: FaultIndications) -> None:
        sw = self.grid.switch
        # failed indicators never pick up; mis-set ones pick up on any fault's transient
        false = self.fpi_false if ind.fed else np.zeros_like(self.fpi_false)
        fpi = reported_pickups(self.grid, ind.fpi_switches, self.fpi_failed, false)
        if fpi.size:
            self.fpi[sw.index_of(fpi)] = True
            self._event(
                "fpi_pickup",
                "warning",
                {"line_fault_suspected": True, "switch_ids": fpi.tolist()},
            )
        if ind.trip_switch >= 0:
            self.switch_closed[int(sw.index_of(ind.trip_switch)[0])] = False
            self._event(
                "breaker_trip",
                "alarm",
                {
                    "switch_id": ind.trip_switch,
                    "lost_bus_ids": ind.lost_buses.tolist(),
                    "fpi_switch_ids": fpi.tolist(),
                },
            )
        elif ind.fed and ind.line_id not in self._uncleared:
            self._uncleared.add(ind.line_id)
            self._event(
                "fault_uncleared",
                "alarm",
                {"line_id": ind.line_id, "reason": "no switch on the fault-current path"},
            )

    # --- fault and attack injection ---------------------------------------------------------------
    def inject_line_fault(self, line_id: int) -> FaultIndications:
        """A permanent fault on line ``line_id``: protection acts at once (trip, FPIs, lost voltage).

        The fault stays until :meth:`repair_line`; closing a switch that feeds it again trips again.
        Returns the protection's :class:`~gridpilot.field.protection.FaultIndications`.
        """
        ind = fault_indications(self.grid, int(line_id), self.switch_closed)
        self.faults[int(line_id)] = FaultState(int(line_id), ind, self.t_s)
        self._event("line_fault", "alarm", {"line_id": int(line_id), "fed": ind.fed, "truth": True})
        if ind.fed:
            self._trip(ind)
        self._topology_changed()
        return ind

    def repair_line(self, line_id: int) -> None:
        """Clear the fault on ``line_id`` (crews repaired it)."""
        if self.faults.pop(int(line_id), None) is None:
            raise UnknownComponentError("fault", line_id, f"faulted lines: {sorted(self.faults)}")
        self._uncleared.discard(int(line_id))
        self._event("line_repaired", "info", {"line_id": int(line_id)})

    def inject_event(self, kind: str, **params: Any) -> dict[str, Any]:
        """A scenario event (same kinds and parameters as ``gridpilot.agent.SimWorld.inject``).

        ``fault`` (``line`` id: :meth:`inject_line_fault`); ``repair`` (``line`` id, default
        every faulted line: :meth:`repair_line`; when no fault is left the crew resets the FPIs,
        hands the feeder back in its normal switch configuration and reports: a ``crew_report``
        event with ``lines``); ``wind_drop`` (``factor`` of available wind, default 0.1) /
        ``wind_restore``; ``gen_trip`` (``generator`` id: output 0 from now on, the unit's relay
        reports a ``device_trip`` event); ``heatwave`` (``load_factor`` 1.25, ``peak_factor``
        0.3, ``peak_hour`` 17: on household base demand and flexible loads); ``ev_surge``
        (``factor`` 2.5 on the EV charging stations); ``fpi_failure`` (``switch`` id: its
        fault-passage indicator never picks up); ``fpi_false_pickup`` (``switch`` id: its
        indicator is mis-set and picks up at every fault that trips a device, wherever the
        fault lies). Returns the event as recorded (``t_s`` added).
        Unknown kinds raise :class:`~gridpilot.errors.UnknownComponentError` listing the known.
        """
        g = self.grid
        rec: dict[str, Any] = {"kind": kind, **params, "t_s": self.t_s}
        if kind not in EVENT_KINDS:
            raise unknown_event(kind)
        if set_condition(self.grid_devices.cond, kind, params):
            self._event("condition", "info", {"kind": kind, **params})
        elif kind == "fault":
            line = int(number(kind, "line", params.get("line")))
            self.inject_line_fault(line)
        elif kind == "repair":
            if "line" in params:
                lines = [int(number(kind, "line", params["line"]))]
            else:
                lines = sorted(self.faults)
            for ln in lines:
                self.repair_line(ln)
            rec["lines"] = lines
            if not self.faults:  # the crew hands the feeder back in its normal configuration
                self.fpi[:] = False
                self.switch_closed[:] = self.normal_closed
                self._topology_changed()
            self._event("crew_report", "info", {"lines": lines, "event": "repaired"})
        elif kind == "gen_trip":
            gid = int(number(kind, "generator", params.get("generator")))
            self.grid_devices.gen_tripped[g.generator.index_of(gid)] = True
            self._event("device_trip", "alarm", {"generator": gid})
        else:  # fpi_failure, fpi_false_pickup
            sid = int(number(kind, "switch", params.get("switch")))
            bad = self.fpi_failed if kind == "fpi_failure" else self.fpi_false
            bad[g.switch.index_of(sid)] = True
        return rec

    def inject_theft(
        self, meters: np.ndarray | list[int], factor: float | np.ndarray = 0.5
    ) -> None:
        """Meter tampering: the meters report ``factor`` (0..1) of their true import from now on."""
        pos = self._positions("meter", meters)
        fac = np.broadcast_to(np.asarray(factor, np.float32), pos.shape)
        if fac.min() < 0 or fac.max() > 1:
            raise ValidationError(
                issues=[Issue("theft", "factor", "must be in [0, 1]", value=factor)]
            )
        self.fleet.tamper_factor[pos] = fac

    def inject_false_data(
        self,
        meters: np.ndarray | list[int],
        *,
        v_bias_pu: float | np.ndarray = 0.0,
        p_factor: float | np.ndarray = 1.0,
        replay: bool = False,
    ) -> None:
        """False data on meters: a voltage bias, a power multiplier, or a replay of the readings of
        ``keep_history_days`` earlier (needs ``keep_history_days`` > 0). Zero/one/False clears."""
        pos = self._positions("meter", meters)
        if replay and self._hist_p is None:
            raise ValidationError(
                issues=[Issue("false data", "replay", "needs keep_history_days > 0")]
            )
        f = self.fleet
        f.fdi_v_bias_pu[pos] = np.broadcast_to(np.asarray(v_bias_pu, np.float32), pos.shape)
        f.fdi_p_factor[pos] = np.broadcast_to(np.asarray(p_factor, np.float32), pos.shape)
        f.fdi_replay[pos] = replay

    def inject_sensor_bias(self, sensor: str, bias: float | np.ndarray) -> None:
        """False data on a grid sensor quantity (a key of :meth:`sensor_values`), added to its values."""
        vals = self.sensor_values()
        if sensor not in vals:
            raise UnknownComponentError("sensor", sensor, f"choose from {sorted(vals)}")
        self.sensor_bias[sensor] = np.broadcast_to(
            np.asarray(bias, np.float64), vals[sensor].shape
        ).copy()

    def inject_device_outage(
        self, kind: str, positions: np.ndarray | list[int], online: bool = False
    ) -> None:
        """Take devices of ``kind`` offline (or back online with ``online=True``)."""
        attr = {
            "meter": "meter_online",
            "pv": "pv_online",
            "battery": "bat_online",
            "ev": "ev_online",
            "water_heater": "wh_online",
        }
        if kind not in attr:
            raise ValidationError(
                issues=[Issue("outage", "kind", f"choose from {list(attr)}", value=kind)]
            )
        pos = self._positions(kind, positions)
        getattr(self.fleet, attr[kind])[pos] = online
        self._event(
            "device_online" if online else "device_offline",
            "info" if online else "warning",
            {"kind": kind, "count": int(pos.size)},
        )

    def set_message_faults(
        self, loss_prob: float = 0.0, delay_prob: float = 0.0, delay_s: float = 0.0
    ) -> None:
        """Message loss and delay for meter messages (probabilities per message; delay in seconds)."""
        for name, v in (("loss_prob", loss_prob), ("delay_prob", delay_prob)):
            if not 0.0 <= v <= 1.0:
                raise ValidationError(
                    issues=[Issue("message faults", name, "must be in [0, 1]", value=v)]
                )
        if delay_s < 0:
            raise ValidationError(
                issues=[Issue("message faults", "delay_s", "must be >= 0", value=delay_s)]
            )
        self.loss_prob, self.delay_prob, self.delay_s = loss_prob, delay_prob, delay_s

    # --- truth (for tests and benchmarks; the control side never reads these) ----------------------
    def truth(self) -> dict[str, Any]:
        """The true state now: bus voltages, load powers, meters' true power (kW), faults."""
        return {
            "v_pu": self.pf.v_pu.copy(),
            "bus_id": self.grid.bus.ids,
            "load_p_mw": self.load_p_mw.copy(),
            "load_q_mvar": self.load_q_mvar.copy(),
            "meter_p_kw": self.meter_p_kw.copy(),
            "faults": sorted(self.faults),
            "switch_closed": self.switch_closed.copy(),
            "load_p_if_energised_mw": self.load_p_if_energised_mw.copy(),
            "grid_demand_mw": {k: v.copy() for k, v in self.grid_demand_mw.items()},
        }

    def demand_if_energised(self) -> dict[str, np.ndarray]:
        """Truth for KPIs: what each grid load, EV charging station and flexible load would draw
        now if energised, MW (loads: live households' net power, de-energised households' base
        demand; EV/flex: before the smart-charging factor and demand-response level)."""
        g = self.grid
        return {
            "load_p_mw": self.load_p_if_energised_mw.copy(),
            "ev_p_mw": self.grid_demand_mw.get("ev_p_mw", np.zeros(len(g.ev_charger))).copy(),
            "flex_p_mw": self.grid_demand_mw.get("flex_p_mw", np.zeros(len(g.flex_load))).copy(),
        }
