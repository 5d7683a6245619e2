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

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.field import devices
from gridpilot.field.fleet import DeviceFleet, FleetConfig, build_fleet
from gridpilot.field.grid_devices import (
    GridDeviceState,
    ev_charging_mw,
    flex_load_mw,
    generator_mw,
    storage_mw,
    storage_soc_after,
)
from gridpilot.field.records import (
    COMMANDS,
    Command,
    FaultState,
    FieldEvent,
    FieldReadings,
    MeterReadings,
    StepStats,
)
from gridpilot.field.sim_events import SimEvents
from gridpilot.field.weather import WeatherSeries, weather_forecast
from gridpilot.model import GenKind, Grid, default_profiles
from gridpilot.twin import Injections, PowerFlowResult, Twin, energised, profiles_for


@dataclass(frozen=True)
class SimulatorOptions:
    """How a :class:`FieldSimulator` runs (one parameter object, checked when made).

    ``start``: simulated start time (ISO; default the profiles' first step);
    ``meter_interval_s``: meters report every this many seconds (900 = 15-minute AMI);
    ``sensor_line_ids`` / ``sensor_bus_ids``: flow and voltage sensors on the grid (default: the
    first line leaving each source, no bus sensors; ``"all"`` for every line / bus);
    ``substation_meters``: report every grid load's P and Q each step; ``meter_p_noise``
    (relative) and ``meter_v_noise_pu``: meter noise; ``keep_history_days``: days of reported
    meter values kept for replay attacks (0 disables them); ``seed`` for everything random;
    ``engine`` the twin's power-flow engine (``auto``, ``pgm`` or ``radial``); ``weather``: a
    :class:`~gridpilot.field.weather.WeatherSeries` that PV and wind follow (default: the
    default daily shapes).
    """

    start: str | None = None
    meter_interval_s: int = 900
    sensor_line_ids: np.ndarray | list[int] | str | None = None
    sensor_bus_ids: np.ndarray | list[int] | str | None = None
    substation_meters: bool = False
    meter_p_noise: float = 0.01
    meter_v_noise_pu: float = 0.002
    keep_history_days: int = 0
    seed: int = 0
    engine: str = "auto"
    weather: WeatherSeries | None = None

    def __post_init__(self) -> None:
        if self.meter_interval_s <= 0:
            raise ValidationError(
                issues=[
                    Issue(
                        "field",
                        "meter_interval_s",
                        "must be positive",
                        value=self.meter_interval_s,
                    )
                ]
            )


class SimulatorOptionsArgs(TypedDict, total=False):
    """:class:`SimulatorOptions`' fields as keyword arguments of the simulator."""

    start: str | None
    meter_interval_s: int
    sensor_line_ids: np.ndarray | list[int] | str | None
    sensor_bus_ids: np.ndarray | list[int] | str | None
    substation_meters: bool
    meter_p_noise: float
    meter_v_noise_pu: float
    keep_history_days: int
    seed: int
    engine: str
    weather: WeatherSeries | None


log = logging.getLogger(__name__)


class FieldSimulator(SimEvents):
    """Simulated grid and devices (see the module docstring).

    ``FieldSimulator(grid, fleet=None, options=None, **kw)``: the settings are one
    :class:`SimulatorOptions` (``kw``, any of its fields, override it; e.g.
    ``FieldSimulator(grid, fleet, seed=3)``).

    Besides the household devices the simulator steps the grid's own device tables
    (:mod:`gridpilot.field.grid_devices`) and accepts scenario events (:meth:`inject_event`).
    """

    def __init__(
        self,
        grid: Grid,
        fleet: FleetConfig | DeviceFleet | None = None,
        options: SimulatorOptions | None = None,
        **kw: Unpack[SimulatorOptionsArgs],
    ) -> None:
        opts = dataclasses.replace(options or SimulatorOptions(), **kw)  # checked there
        engine, seed = opts.engine, opts.seed
        self.grid = grid
        self.twin = Twin(grid, engine=engine)
        self.fleet = fleet if isinstance(fleet, DeviceFleet) else build_fleet(grid, fleet)
        self.rng = np.random.default_rng(seed)
        self.weather = opts.weather  # PV and wind follow it when given (gridpilot.field.weather)
        self._init_time(opts.start)
        self.switch_closed = grid.switch["closed"].copy()
        self.bus_live = energised(grid, self.switch_closed)
        self.faults = {}
        self.events = []
        self._init_meters(int(opts.meter_interval_s), opts.meter_p_noise, opts.meter_v_noise_pu)
        self._init_sensors(
            opts.sensor_line_ids, opts.sensor_bus_ids, substation_meters=opts.substation_meters
        )
        self._init_history(int(opts.keep_history_days))
        self._init_truth()
        f = self.fleet  # EVs already home at the start are plugged in (no mass arrival at t=0)
        h0 = (self._start_offset_s / 3600.0) % 24.0
        f.ev_plugged[:] = (h0 >= f.ev_arrive_h) | (h0 < f.ev_depart_h)

    def _init_time(self, start: str | None) -> None:
        """Profiles (the grid's, or gridpilot's default shapes, wrapped around) and the start."""
        grid = self.grid
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
        t0 = np.datetime64(start, "s") if start is not None else self._prof.index[0]
        self.start_ms = int(t0.astype("datetime64[ms]").astype(np.int64))
        self._start_offset_s = float((t0 - self._prof.index[0]) / np.timedelta64(1, "s"))
        self.t_s = 0.0
        self.paused = False

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

    def _init_meters(
        self, meter_interval_s: int, meter_p_noise: float, meter_v_noise_pu: float
    ) -> None:
        """The meters' reporting: interval, noise, service-drop offsets, registers, message
        faults (none yet)."""
        nm = self.fleet.meter_load.size
        grid = self.grid
        self.meter_interval_s = meter_interval_s
        self.meter_p_noise = meter_p_noise
        self.meter_v_noise_pu = meter_v_noise_pu
        self.meter_v_offset_pu = self.rng.normal(0.0, 0.003, nm).astype(
            np.float32
        )  # service-drop, per meter
        self.loss_prob = 0.0
        self.delay_prob = 0.0
        self.delay_s = 0.0
        self._pending = []
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

    def _init_sensors(
        self,
        sensor_line_ids: np.ndarray | list[int] | str | None,
        sensor_bus_ids: np.ndarray | list[int] | str | None,
        *,
        substation_meters: bool,
    ) -> None:
        """The grid sensors (ids checked against the grid) and the substation meters."""
        grid = self.grid
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
        self.sensor_bias = {}

    def _init_history(self, keep_history_days: int) -> None:
        """Reported meter values kept ``keep_history_days`` for replay attacks (0: none)."""
        nm = self.fleet.meter_load.size
        self.keep_history_days = keep_history_days
        slots = self.keep_history_days * 86400 // self.meter_interval_s
        self._hist_p = np.zeros((slots, nm), np.float32) if slots else None
        self._hist_v = np.zeros((slots, nm), np.float32) if slots else None
        self._hist_n = 0
        self.replay_noise = 0.01  # relative noise a replaying attacker adds to disguise the copy

    def _init_truth(self) -> None:
        """The true state at the start: loads at the grid's values, grid devices, protection
        indicators, the normal configuration (crews restore it) and the first power flow."""
        grid = self.grid
        self.meter_p_kw = np.zeros(self.fleet.meter_load.size, np.float32)  # true net power now
        self.load_p_mw = grid.load["p_mw"].copy()
        self.load_q_mvar = grid.load["q_mvar"].copy()
        self.load_p_if_energised_mw = self.load_p_mw.copy()
        self.grid_devices = GridDeviceState.of(grid)
        self.grid_p_mw = {}  # injections of the grid devices now
        self.grid_demand_mw = {}  # their uncommanded demand now
        self.normal_closed = grid.switch["closed"].copy()
        self.fpi = np.zeros(len(grid.switch), bool)  # latched until fpi_reset or repair
        self.fpi_failed = np.zeros(len(grid.switch), bool)  # indicators that never pick up
        self.fpi_false = np.zeros(len(grid.switch), bool)  # indicators that pick up at every trip
        self._uncleared = set()
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
        self.pf = self.twin.powerflow(Injections(switch_closed=self.switch_closed))
        self.last_stats = None

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
        self.t_s += dt_s
        hour = ((self._start_offset_s + self.t_s) / 3600.0) % 24.0
        live_m = self._meter_live()
        shapes = self._shape_at(self._prof.values, self._step_s)
        dfac = self.grid_devices.cond.demand_factor(hour)  # heatwave: load factor and peak
        base, base_if_on = self._base_demand(shapes, dfac, dt_s, live_m)
        net = self._net_kw(base, hour, dt_s, live_m)
        q = self._meter_registers(net, base, dt_s)
        self._aggregate(net, q, base_if_on)
        self._step_grid_devices(shapes, hour, dfac, dt_s)
        t1 = time.perf_counter()
        self.pf = self._powerflow()
        t2 = time.perf_counter()
        if not self.pf.converged:
            log.warning(
                "field power flow did not converge at t=%.0f s", self.t_s, extra={"t_s": self.t_s}
            )
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

    def _base_demand(
        self, shapes: np.ndarray, dfac: float, dt_s: float, live_m: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Household base demand per meter now, kW: load profile x size x (1 + AR(1) noise, tau
        30 min, sigma 0.4) x the conditions' demand factor; where live, and where online (what
        it would be if energised)."""
        f, rng = self.fleet, self.rng
        lcol = self._cols["load_p"]
        load_shape = np.where(lcol >= 0, shapes[np.maximum(lcol, 0)], 1.0).astype(np.float32)
        rho = np.float32(np.exp(-dt_s / 1800.0))
        f.meter_ar *= rho
        f.meter_ar += np.float32(0.4 * np.sqrt(1.0 - rho * rho)) * rng.standard_normal(
            f.meter_ar.size, np.float32
        )
        base = (
            f.meter_base_kw
            * load_shape[f.meter_load]
            * np.maximum(np.float32(0.05), 1 + f.meter_ar)
            * np.float32(dfac)
        )
        base_if_on = base * f.meter_online
        base *= live_m
        return base, base_if_on

    def _net_kw(self, base: np.ndarray, hour: float, dt_s: float, live_m: np.ndarray) -> np.ndarray:
        """Net power per meter, kW (+ import): base demand, batteries, EVs and water heaters
        stepped, less PV."""
        f, rng = self.fleet, self.rng
        nm = base.size
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
        net: np.ndarray = (
            base
            + np.bincount(f.bat_meter, weights=bat, minlength=nm)
            + np.bincount(f.ev_meter, weights=ev, minlength=nm)
            + np.bincount(f.wh_meter, weights=wh, minlength=nm)
            - pv_m
        )
        return net

    def _meter_registers(self, net: np.ndarray, base: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance the meters' registers (true and reported, tampering applied) by ``dt_s``;
        returns the reactive power per meter (kvar)."""
        f = self.fleet
        self.meter_p_kw = net.astype(np.float32)
        h = dt_s / 3600.0
        imp = np.maximum(net, 0.0) * h
        exp_ = np.maximum(-net, 0.0) * h
        f.e_import_kwh += imp
        f.e_export_kwh += exp_
        self._rep_import += imp * f.tamper_factor
        self._rep_export += exp_
        q: np.ndarray = base * self._tanphi[f.meter_load]
        self._q_kvarh += q * h
        return q

    def _aggregate(self, net: np.ndarray, q: np.ndarray, base_if_on: np.ndarray) -> None:
        """Meters' power summed per grid load (MW, Mvar), and what the loads would draw if
        energised (dead households: their base demand)."""
        f = self.fleet
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
            Injections.from_mapping(
                inj,
                load_p_mw=self.load_p_mw,
                load_q_mvar=self.load_q_mvar,
                switch_closed=self.switch_closed,
            )
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


__all__ = [
    "COMMANDS",
    "Command",
    "FaultState",
    "FieldEvent",
    "FieldReadings",
    "FieldSimulator",
    "MeterReadings",
    "SimulatorOptions",
    "StepStats",
]
