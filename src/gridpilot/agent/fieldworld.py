"""The orchestrator's world as ``gridpilot.field``'s simulator (issue #9).

:class:`FieldWorld` exposes the interface the loop, the scenarios and the KPIs use on
:class:`~gridpilot.agent.world.SimWorld` (``observe``/``advance``/``inject``/``set_switch``/
``set_dr``/``set_storage``/``set_ev_factor``/``reset_fpi``/``demand``/``controlled``), but the
physics is a :class:`gridpilot.field.FieldSimulator`: households behind smart meters (base
demand, water heaters, batteries, EVs: the field's :class:`~gridpilot.field.DeviceFleet`), the
grid's own generators, storage, EV charging stations and flexible loads, the field's protection
(breaker trips, FPIs, failed indicators), crews and scenario conditions.

The :class:`~gridpilot.agent.world.Observation` is built only from what the field sends
(``sim.readings()``: grid sensors on every bus and line, secondary-substation metering of every
load, the grid devices' meters, switch and FPI states) and the field's events mapped to the
reports the orchestrator reads (``breaker_trip``, ``crew_report``, ``device_trip``,
``fault_uncleared``). Losses are the feeder's balance of those measurements.

Household devices are commanded with :meth:`FieldWorld.apply` (``gridpilot.field.Command``);
:attr:`FieldWorld.devices` is the fleet (the aggregator's enrolment registry).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridpilot.agent.world import AGENT_ENGINE, Observation, demand_response
from gridpilot.errors import Issue, ValidationError
from gridpilot.field import Command, DeviceFleet, FieldEvent, FieldSimulator, FleetConfig
from gridpilot.field.simulator import FieldReadings
from gridpilot.field.weather import WeatherSeries, unit_output, weather_forecast
from gridpilot.model import Grid
from gridpilot.twin import profiles_for

# Households matched to the grid's loads: the demo grid carries rooftop PV as generators and
# public EV charging as EV chargers, so households get no PV and few EVs; base demand 90 % of
# the household's share, 10 % of households with a water heater. Daily energy within 4 % of
# the load profiles on case33bw (summer and winter day); see docs/agent.md.
FIELD_WORLD_FLEET = FleetConfig(share_pv=0.0, share_ev=0.02, share_water_heater=0.1, base_share=0.9)
_EVENTS = {"breaker_trip", "crew_report", "device_trip", "fault_uncleared"}


class FieldWorld:
    """The orchestrator's world on ``gridpilot.field`` (see the module docstring).

    ``FieldWorld(grid, step_s=60, start_step=0, fleet=None, seed=0)``: one step is ``step_s``
    seconds from profile step ``start_step`` (15-minute profiles); ``fleet`` a
    :class:`~gridpilot.field.FleetConfig` (default :data:`FIELD_WORLD_FLEET`, one household
    per 0.8 kW of load) or a built :class:`~gridpilot.field.DeviceFleet`; ``weather`` a
    :class:`~gridpilot.field.weather.WeatherSeries` that the field's PV and wind follow, whose
    forecast the world then issues (a :class:`~gridpilot.agent.worldtypes.WeatherWorld`: the
    loop forecasts PV and wind from it). ``dr_share`` is 0: no
    blanket curtailment of loads; demand response acts on the grid's flexible loads
    (:meth:`set_dr`) and on household devices through :meth:`apply`.
    """

    def __init__(  # noqa: PLR0913
        self,
        grid: Grid,
        *,
        step_s: float = 60.0,
        start_step: int = 0,
        fleet: FleetConfig | DeviceFleet | None = None,
        seed: int = 0,
        horizon_steps: int = 96 * 8,
        engine: str = AGENT_ENGINE,
        weather: WeatherSeries | None = None,
    ) -> None:
        if not step_s > 0:
            raise ValidationError(
                issues=[Issue("world", "step_s", "must be positive", value=step_s)]
            )
        if int(start_step) != start_step or start_step < 0:
            raise ValidationError(
                issues=[
                    Issue("world", "start_step", "must be a whole number >= 0", value=start_step)
                ]
            )
        self.grid = grid.copy()
        self.step_s = float(step_s)
        self.start_step = int(start_step)
        self.engine = engine
        prof, _ = profiles_for(self.grid, self.start_step + horizon_steps)
        self._t0 = prof.index[self.start_step].astype("datetime64[s]")
        self.sim = FieldSimulator(
            self.grid,
            FIELD_WORLD_FLEET if fleet is None else fleet,
            start=str(self._t0 - np.timedelta64(round(self.step_s), "s")),
            sensor_bus_ids="all",
            sensor_line_ids="all",
            substation_meters=True,
            seed=seed,
            engine=engine,
            weather=weather,
        )
        self.weather = weather
        self.seed = int(seed)
        self.t = 0
        self.dr_share = 0.0
        self.dr_level = 0.0
        self.ev_cmd_factor = 1.0
        self.normal_closed = self.grid.switch["closed"].copy()
        self.switch_ops = 0
        self.last: Observation | None = None
        self.readings_last: Any = None  # the field's last FieldReadings (meters, sensors, events)
        self._demand: dict[int, dict[str, np.ndarray]] = {}
        self._meter_tel: Any = None  # the field's gateways (FieldTelemetry), once meters report
        self._meter_frames: list[bytes] = []

    # --- time -------------------------------------------------------------------------------------
    @property
    def time(self) -> np.datetime64:
        """Simulated wall-clock time of the present step."""
        return self._t0 + np.timedelta64(round(self.t * self.step_s), "s")

    def advance(self) -> None:
        """Move to the next step (the field is stepped by the next :meth:`observe`)."""
        self.t += 1

    # --- the weather (a WeatherWorld) -------------------------------------------------------------
    def weather_forecast(self, horizon_steps: int, history_steps: int = 0) -> pd.DataFrame | None:
        """The weather service's forecast issued now (None without a weather series): the
        ``history_steps`` analysed rows before now and the next ``horizon_steps`` rows of the
        weather's grid, the error growing with lead (:func:`gridpilot.field.weather.weather_forecast`;
        seeded by the world's seed and the issue time)."""
        if self.weather is None:
            return None
        return weather_forecast(
            self.weather,
            pd.Timestamp(self.time),
            int(horizon_steps),
            history_steps=int(history_steps),
            seed=self.seed,
        )

    def renewable_history(self, history_steps: int) -> pd.DataFrame | None:
        """What a unit of the field's PV (kW per kWp) and wind (per unit of rating) produced
        in each of the ``history_steps`` weather-grid steps before now (the plants' metered
        history, before any curtailment or trip: the counterfactual output), columns ``pv``
        and ``wind``; None without a weather series."""
        if self.weather is None:
            return None
        wx = self.weather_forecast(0, history_steps)
        assert wx is not None
        return unit_output(wx)

    # --- the field's state, as commanded (the world side; the controller sees Observation) --------
    @property
    def devices(self) -> DeviceFleet:
        """The field's household device fleet (the aggregator's enrolment registry)."""
        return self.sim.fleet

    @property
    def switch_closed(self) -> np.ndarray:
        """Switch states now (bool per switch, a copy)."""
        return self.sim.switch_closed.copy()

    @switch_closed.setter
    def switch_closed(self, closed: np.ndarray) -> None:
        before = self.sim.switch_closed.copy()
        self.sim.set_switch_states(closed)
        self.switch_ops += int((before != self.sim.switch_closed).sum())

    @property
    def fpi(self) -> np.ndarray:
        """Fault-passage indicators picked up (bool per switch, a copy)."""
        return self.sim.fpi.copy()

    @property
    def storage_soc(self) -> np.ndarray:
        """Grid storage state of charge, 0..1 (a copy)."""
        return self.sim.grid_devices.storage_soc.copy()

    @property
    def storage_cmd_mw(self) -> np.ndarray:
        """Grid storage set points, MW (+ charging; a copy)."""
        return self.sim.grid_devices.storage_cmd_mw.copy()

    # --- events and commands ----------------------------------------------------------------------
    def inject(self, kind: str, **params: Any) -> dict[str, Any]:
        """A scenario event in the field (kinds as ``SimWorld.inject``); returns it as recorded."""
        rec = self.sim.inject_event(kind, **params)
        rec["t"] = self.t
        return rec

    def apply(self, cmds: list[Command]) -> list[FieldEvent]:
        """Send field commands (household devices, grid devices, switches) in order; returns their
        acknowledgements. A bad command raises (naming field and value); earlier ones stand."""
        return [self.sim.apply(c) for c in cmds]

    def set_switch(self, switch_id: int, closed: bool) -> None:
        """Operate one switch (by id); the field's protection trips it again onto a fault."""
        k = int(self.grid.switch.index_of(int(switch_id))[0])
        if bool(self.sim.switch_closed[k]) != bool(closed):
            self.sim.apply(Command("switch", target=int(switch_id), value=bool(closed)))
            self.switch_ops += 1

    def reset_fpi(self) -> None:
        """Reset every fault-passage indicator (``fpi_reset``)."""
        self.sim.apply(Command("fpi_reset"))

    def set_dr(self, level: float) -> None:
        """Demand-response level 0..1 on the grid's flexible loads (``flex_load_level``)."""
        self.sim.apply(Command("flex_load_level", value=level))
        self.dr_level = float(level)

    def set_storage(self, storage_id: int, p_mw: float) -> None:
        """Grid battery set point, MW (+ charging), clipped to its rating."""
        self.sim.apply(Command("grid_storage_setpoint", target=storage_id, value=p_mw))

    def set_ev_factor(self, factor: float) -> None:
        """EV smart-charging factor 0..1 on the EV charging stations (``ev_charging_factor``)."""
        self.sim.apply(Command("ev_charging_factor", value=factor))
        self.ev_cmd_factor = float(factor)

    # --- the households' meters (signed by the field's gateways) ---------------------------------
    def meter_registry(self) -> Any:
        """Switch the households' 15-minute meter reports on and return the field's enrolment
        registry (:class:`~gridpilot.telemetry.DeviceRegistry`: gateways' public keys, meters by
        gateway and feeder ``load-<id>``) for the receiver to verify against."""
        if self._meter_tel is None:
            from gridpilot.field.publish import FieldTelemetry
            from gridpilot.telemetry import InProcessBus

            self._meter_tel = FieldTelemetry(self.sim, InProcessBus())
        return self._meter_tel.registry

    def meter_frames(self) -> list[bytes]:
        """The meter frames the field sent at the last :meth:`observe` (one per gateway, signed
        by it; empty between meter intervals or before :meth:`meter_registry`). Read once."""
        out, self._meter_frames = self._meter_frames, []
        return out

    # --- KPIs' truth ------------------------------------------------------------------------------
    def demand(self, t: int | None = None) -> dict[str, np.ndarray]:
        """Demand at observed step ``t`` (default: the last observed) as if every customer were
        energised, MW: ``load_p_mw`` (the field's truth, households' net power), ``ev_p_mw`` and
        ``flex_p_mw`` before smart charging and demand response, ``gen_p_mw`` as metered. Steps
        not observed (or older than 16 steps) get the nearest recorded one."""
        if not self._demand:
            self.observe()
        want = max(self._demand) if t is None else int(t)
        if want not in self._demand:
            want = min(self._demand, key=lambda k: abs(k - want))
        return {k: v.copy() for k, v in self._demand[want].items()}

    def controlled(
        self,
        dem: dict[str, np.ndarray],
        dr_level: float | None = None,
        ev_factor: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Injections after demand response: flexible loads x (1 - level), EV charging x factor;
        loads unchanged (``dr_share`` 0; household device commands are already in the demand)."""
        return demand_response(
            dem,
            self.dr_level if dr_level is None else dr_level,
            self.ev_cmd_factor if ev_factor is None else ev_factor,
            self.sim.grid_devices.storage_cmd_mw,
            dr_share=0.0,
            ev_dr_share=0.0,
        )

    # --- stepping ---------------------------------------------------------------------------------
    def observe(self) -> Observation:
        """Step the field to the present step (if not there yet) and report what it sends."""
        sim = self.sim
        target_s = (self.t + 1) * self.step_s
        while sim.t_s < target_s - 1e-6:
            if sim.step(self.step_s) is None:  # paused in the field: time stands still
                break
        tel = self._meter_tel
        r = sim.readings(meters=None if tel is not None else False)
        self.readings_last = r
        if tel is not None and len(r.meters):
            rows = FieldReadings(r.ts_ms, r.meters, r.sensors, [])  # the gateways' part only
            self._meter_frames += [fr for who, fr in tel.frames(rows) if who != "scada"]
        s = r.sensors
        v = np.asarray(s["bus_v_pu"], np.float64)
        en = v > 0.0
        load = s["load_p_mw"]
        gen, ev, flex, st = s["gen_p_mw"], s["ev_p_mw"], s["flex_p_mw"], s["storage_p_mw"]
        src = float(np.sum(s["source_p_mw"]))
        losses_kw = (src + gen.sum() - load.sum() - ev.sum() - flex.sum() - st.sum()) * 1e3
        converged = not any(e.name == "powerflow_failed" for e in r.events)
        obs = Observation(
            t=self.t,
            time=self.time,
            step_s=self.step_s,
            v_pu=v,
            energised=en,
            line_loading_pct=np.asarray(s["line_loading_pct"], np.float64),
            switch_closed=s["switch_closed"] > 0.5,
            fpi=s["fpi"] > 0.5,
            load_p_mw=np.asarray(load, np.float64),
            gen_p_mw=np.asarray(gen, np.float64),
            ev_p_mw=np.asarray(ev, np.float64),
            flex_p_mw=np.asarray(flex, np.float64),
            storage_p_mw=np.asarray(st, np.float64),
            storage_soc=np.asarray(s["storage_soc"], np.float64),
            source_p_mw=src,
            losses_kw=float(losses_kw) if converged else float("nan"),
            converged=converged,
            events=[self._event(e) for e in r.events if e.name in _EVENTS],
            line_p_mw=np.asarray(s["line_p_mw"], np.float64),
            line_q_mvar=np.asarray(s["line_q_mvar"], np.float64),
            load_q_mvar=np.asarray(s["load_q_mvar"], np.float64),
        )
        truth = sim.demand_if_energised()
        truth["gen_p_mw"] = obs.gen_p_mw.copy()
        truth["load_q_mvar"] = np.asarray(s["load_q_mvar"], np.float64)
        self._demand[self.t] = truth
        for k in [k for k in self._demand if k < self.t - 16]:
            del self._demand[k]
        self.last = obs
        return obs

    def _event(self, e: FieldEvent) -> dict[str, Any]:
        """A field event as the report the orchestrator reads."""
        d = e.data
        out: dict[str, Any] = {"kind": e.name, "t": self.t, "ts_ms": e.ts_ms}
        if e.name == "breaker_trip":
            out |= {
                "switch": int(d["switch_id"]),
                "fpi": [int(x) for x in d.get("fpi_switch_ids", [])],
                "lost_buses": list(d.get("lost_bus_ids", [])),
            }
        elif e.name == "crew_report":
            out |= {"event": d.get("event", "repaired"), "lines": list(d.get("lines", []))}
        elif e.name == "device_trip":
            out |= {"generator": int(d["generator"])}
        elif e.name == "fault_uncleared":
            out |= {"line": int(d["line_id"]), "reason": d.get("reason", "")}
        return out
