"""The simulated physical world the orchestrator acts on (used while no field simulator is wired in).

:class:`SimWorld` steps a grid through time in the twin: loads and renewables follow the
grid's profiles (or gridpilot's default shapes), events change the physics (a permanent line
fault tripped by the nearest upstream breaker with fault-passage indicators set along the
fault-current path (the field simulator's protection model, ``gridpilot.field.fault_indications``), a wind drop, a generator trip, a heatwave, an EV surge, crew repair), and
commands change switch states, the demand-response level and storage set points.

The controller never reads this object's internals: it sees only :class:`Observation`
(measurements, switch states, FPI flags, device outputs, crew reports), which is what the field
sends as telemetry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.field import fault_indications, reported_pickups
from gridpilot.field.conditions import set_condition, unknown_event
from gridpilot.field.grid_devices import (
    GridConditions,
    clip_storage_setpoint,
    ev_charging_mw,
    flex_load_mw,
    generator_mw,
    storage_mw,
    storage_soc_after,
)
from gridpilot.model import Grid
from gridpilot.twin import Injections, Twin, energised, profiles_for

V_NOMINAL_BAND = (0.90, 1.10)  # EN 50160 supply-voltage band (±10 %), pu
AGENT_ENGINE = os.environ.get(
    "GRIDPILOT_AGENT_ENGINE", "pgm"
)  # power-grid-model: no JIT warm-up per process
EV_DR_SHARE = 0.6  # share of EV charging that smart charging defers at full demand response


@dataclass
class Observation:
    """What the field reports at one step (telemetry), arrays in table order.

    Units: ``v_pu`` per bus (0 where de-energised), ``line_loading_pct`` per line, powers in MW.
    ``fpi`` is True per switch whose fault-passage indicator picked up; ``line_p_mw`` /
    ``line_q_mvar`` the flows at each line's from end (0 where de-energised; the controller
    receives them only for its flow sensors); ``events`` are field reports of this step (``{"kind": ..., ...}``: breaker trips, crew reports, device trips).
    """

    t: int
    time: np.datetime64
    step_s: float
    v_pu: np.ndarray
    energised: np.ndarray
    line_loading_pct: np.ndarray
    switch_closed: np.ndarray
    fpi: np.ndarray
    load_p_mw: np.ndarray
    gen_p_mw: np.ndarray
    ev_p_mw: np.ndarray
    flex_p_mw: np.ndarray
    storage_p_mw: np.ndarray
    storage_soc: np.ndarray
    source_p_mw: float
    losses_kw: float
    converged: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    line_p_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # from end, MW
    line_q_mvar: np.ndarray = field(default_factory=lambda: np.zeros(0))  # from end, Mvar
    # metered Q per load, Mvar (0 where de-energised; empty: not metered, assume the model pf)
    load_q_mvar: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def vmin_pu(self) -> float:
        """Lowest voltage among energised buses, pu (NaN if none)."""
        on = self.energised & np.isfinite(self.v_pu)
        return float(self.v_pu[on].min()) if on.any() else float("nan")

    @property
    def vmax_pu(self) -> float:
        """Highest voltage among energised buses, pu (NaN if none)."""
        on = self.energised & np.isfinite(self.v_pu)
        return float(self.v_pu[on].max()) if on.any() else float("nan")

    @property
    def max_loading_pct(self) -> float:
        """Highest line loading, percent (0 without lines)."""
        ll = self.line_loading_pct[np.isfinite(self.line_loading_pct)]
        return float(ll.max()) if ll.size else 0.0


Conditions = GridConditions  # exogenous conditions set by scenario events (the field's)


def demand_response(
    dem: dict[str, np.ndarray],
    dr_level: float,
    ev_factor: float,
    storage_cmd_mw: np.ndarray,
    *,
    dr_share: float,
    ev_dr_share: float,
) -> dict[str, np.ndarray]:
    """Injections (MW, table order) after demand response at ``dr_level`` 0..1: loads cut by
    ``dr_level x dr_share``, flexible loads by ``dr_level``, EV charging x ``ev_factor`` x
    (1 - ``ev_dr_share`` x ``dr_level``); storage at its set points."""
    out = dict(dem)
    cut = 1.0 - dr_level * dr_share
    if "load_p_mw" in dem:
        out["load_p_mw"] = dem["load_p_mw"] * cut
    if "load_q_mvar" in dem:
        out["load_q_mvar"] = dem["load_q_mvar"] * cut
    out["flex_p_mw"] = dem["flex_p_mw"] * (1.0 - dr_level)
    out["ev_p_mw"] = dem["ev_p_mw"] * ev_factor * (1.0 - ev_dr_share * dr_level)
    out["storage_p_mw"] = np.asarray(storage_cmd_mw, np.float64).copy()
    return out


class SimWorld:
    """A grid evolving in simulated time, in the twin.

    ``SimWorld(grid, step_s=60, start_step=0)``: one step is ``step_s`` seconds; profile step
    ``start_step`` (15-minute profiles) is the start. ``dr_share`` is the share of each ordinary
    load enrolled in demand response (the fallback DR model while ``gridpilot.flex`` is absent).
    """

    def __init__(
        self,
        grid: Grid,
        *,
        step_s: float = 60.0,
        start_step: int = 0,
        dr_share: float = 0.15,
        horizon_steps: int = 96 * 8,
        engine: str = AGENT_ENGINE,
    ) -> None:
        if step_s <= 0:
            raise ValidationError(f"step_s: must be positive, got {step_s}")
        if not 0.0 <= dr_share <= 1.0:
            raise ValidationError(f"dr_share: must be within [0, 1], got {dr_share}")
        self.grid = grid.copy()
        self.twin = Twin(self.grid, engine=engine)
        self.engine = engine
        self.step_s = float(step_s)
        self.dr_share = float(dr_share)
        self.t = 0
        self.start_step = int(start_step)
        prof, cols = profiles_for(self.grid, self.start_step + horizon_steps)
        self._prof, self._cols = prof, cols
        self._prof_step_s = (
            float((prof.index[1] - prof.index[0]) / np.timedelta64(1, "s"))
            if prof.steps > 1
            else 900.0
        )
        g = self.grid
        self.normal_closed = g.switch["closed"].copy()
        self.switch_closed = g.switch["closed"].copy()
        self.fpi = np.zeros(len(g.switch), bool)
        self.fpi_failed = np.zeros(len(g.switch), bool)  # indicators that never pick up
        self.fpi_false = np.zeros(len(g.switch), bool)  # indicators that pick up at every trip
        self.faulted_lines: set[int] = set()
        self._uncleared: set[int] = set()
        self.gen_tripped = np.zeros(len(g.generator), bool)
        self.dr_level = 0.0
        self.storage_cmd_mw = g.storage["p_mw"].copy()
        self.storage_soc = g.storage["soc"].copy()
        self.ev_cmd_factor = 1.0
        self.cond = GridConditions()
        self._pending: list[dict[str, Any]] = []
        self.switch_ops = 0
        self._build_maps()
        self.last: Observation | None = None

    # --- topology helpers -----------------------------------------------------------------------
    def _build_maps(self) -> None:
        g = self.grid
        self._line_from_pos = g.bus.position_map(g.line["from_bus"])
        self._line_to_pos = g.bus.position_map(g.line["to_bus"])

    # --- time and injections --------------------------------------------------------------------
    @property
    def time(self) -> np.datetime64:
        """Simulated wall-clock time of the present step."""
        return self._prof.index[self.start_step] + np.timedelta64(int(self.t * self.step_s), "s")

    def _prof_row(self, t: int) -> np.ndarray:
        """Profile multipliers at step ``t`` (linear interpolation between profile points)."""
        x = self.start_step + t * self.step_s / self._prof_step_s
        i = int(np.floor(x))
        i = min(max(i, 0), self._prof.steps - 2)
        w = min(max(x - i, 0.0), 1.0)
        return (1 - w) * self._prof.values[i] + w * self._prof.values[i + 1]

    def _scale(self, base: np.ndarray, cols: np.ndarray, row: np.ndarray) -> np.ndarray:
        out = np.asarray(base, np.float64).copy()
        m = cols >= 0
        out[m] *= row[cols[m]]
        return out

    def demand(self, t: int | None = None) -> dict[str, np.ndarray]:
        """Uncontrolled demand and renewable availability at step ``t`` (MW, table order)."""
        t = self.t if t is None else t
        g = self.grid
        row = self._prof_row(t)
        hours = (
            float((self.time - self.time.astype("datetime64[D]")) / np.timedelta64(1, "s")) / 3600.0
        )
        hours = (hours + (t - self.t) * self.step_s / 3600.0) % 24.0
        lf = self.cond.demand_factor(hours)
        load_p = self._scale(g.load["p_mw"], self._cols["load_p"], row) * lf
        load_q = self._scale(g.load["q_mvar"], self._cols["load_q"], row) * lf
        gen = generator_mw(
            g,
            self._scale(g.generator["p_mw"], self._cols["gen_p"], row),
            self.cond,
            self.gen_tripped,
        )
        ev = ev_charging_mw(g, hours, self.cond.ev_factor)
        flex = flex_load_mw(g, lf)
        return {
            "load_p_mw": load_p,
            "load_q_mvar": load_q,
            "gen_p_mw": gen,
            "ev_p_mw": ev,
            "flex_p_mw": flex,
        }

    def controlled(
        self,
        dem: dict[str, np.ndarray],
        dr_level: float | None = None,
        ev_factor: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Injections after demand response (``dr_level`` 0..1) and EV smart charging."""
        return demand_response(
            dem,
            self.dr_level if dr_level is None else dr_level,
            self.ev_cmd_factor if ev_factor is None else ev_factor,
            self.storage_cmd_mw,
            dr_share=self.dr_share,
            ev_dr_share=EV_DR_SHARE,
        )

    # --- physics --------------------------------------------------------------------------------
    def line_energised(
        self, closed: np.ndarray, energ: np.ndarray, line_pos: np.ndarray
    ) -> np.ndarray:
        """Bool per given line position: connected at a closed end to an energised bus."""
        from gridpilot.model import branch_status

        st = branch_status(self.grid, closed)
        f, t = self._line_from_pos[line_pos], self._line_to_pos[line_pos]
        return (st["line_from"][line_pos] & energ[f]) | (st["line_to"][line_pos] & energ[t])

    def _protection(self) -> list[dict[str, Any]]:
        """Protection for every energised fault, by the field simulator's protection model
        (:func:`gridpilot.field.fault_indications`): the nearest upstream breaker trips, the
        FPIs on the fault-current path pick up (except failed ones)."""
        events: list[dict[str, Any]] = []
        for _ in range(len(self.faulted_lines) + 1):
            line_id = self._live_fault()
            if line_id is None or not self._trip_nearest(line_id, events):
                break
        return events

    def _live_fault(self) -> int | None:
        """The first faulted line still energised (id), or None."""
        if not self.faulted_lines:
            return None
        g = self.grid
        en = energised(g, self.switch_closed)
        lpos = g.line.index_of(sorted(self.faulted_lines))
        live = self.line_energised(self.switch_closed, en, lpos)
        return int(g.line.ids[lpos[np.flatnonzero(live)[0]]]) if live.any() else None

    def _trip_nearest(self, line_id: int, events: list[dict[str, Any]]) -> bool:
        """The nearest switch upstream of the fault on ``line_id`` trips (FPIs on the path
        pick up); appends the events; False when no switch is on the path (uncleared)."""
        g = self.grid
        ind = fault_indications(g, line_id, self.switch_closed)
        if ind.trip_switch < 0:
            # no switching device between the source and the fault: modelled as uncleared
            if line_id not in self._uncleared:
                self._uncleared.add(line_id)
                events.append(
                    {
                        "kind": "fault_uncleared",
                        "line": line_id,
                        "reason": "no switch on the fault-current path",
                    }
                )
            return False
        fpi_ids = reported_pickups(g, ind.fpi_switches, self.fpi_failed, self.fpi_false)
        self.fpi[g.switch.index_of(fpi_ids)] = True
        trip = int(g.switch.index_of(ind.trip_switch)[0])
        self.switch_closed[trip] = False
        self.switch_ops += 1
        events.append(
            {"kind": "breaker_trip", "switch": int(ind.trip_switch), "fpi": fpi_ids.tolist()}
        )
        return True

    # --- events ---------------------------------------------------------------------------------
    def inject(self, kind: str, **params: Any) -> dict[str, Any]:
        """Inject an event into the physics. Returns the event as recorded.

        Kinds: ``fault`` (``line``: id), ``repair`` (``line`` id or all), ``wind_drop``
        (``factor`` of available wind, default 0.1), ``wind_restore``, ``gen_trip``
        (``generator`` id), ``heatwave`` (``load_factor``, ``peak_factor``), ``ev_surge``
        (``factor``), ``fpi_failure`` (``switch`` id: its fault-passage indicator never picks up),
        ``fpi_false_pickup`` (``switch`` id: its indicator picks up at every fault that trips).
        """
        g = self.grid
        ev: dict[str, Any] = {"kind": kind, **params}
        if kind == "fault":
            line = int(params.get("line", -1))
            g.line.index_of(line)  # unknown id -> UnknownComponentError
            self.faulted_lines.add(line)
        elif kind == "repair":
            lines = [int(params["line"])] if "line" in params else sorted(self.faulted_lines)
            for ln in lines:
                self.faulted_lines.discard(ln)
            if not self.faulted_lines:
                self.fpi[:] = False
                # the crew hands the feeder back in its normal configuration
                self.switch_closed = self.normal_closed.copy()
            ev["lines"] = lines
        elif set_condition(self.cond, kind, params):  # wind, heatwave, EV surge (the field's)
            pass
        elif kind == "gen_trip":
            gid = int(params.get("generator", -1))
            self.gen_tripped[g.generator.index_of(gid)] = True
        elif kind in ("fpi_failure", "fpi_false_pickup"):
            bad = self.fpi_failed if kind == "fpi_failure" else self.fpi_false
            bad[g.switch.index_of(int(params.get("switch", -1)))] = True
        else:
            raise unknown_event(kind)
        ev["t"] = self.t
        if (
            kind == "repair"
        ):  # the crew reports back; other events are seen only through measurements
            self._pending.append({**ev, "kind": "crew_report", "event": "repaired"})
        elif kind == "gen_trip":  # the unit's protection relay reports its trip
            self._pending.append({**ev, "kind": "device_trip"})
        return ev

    # --- commands -------------------------------------------------------------------------------
    def set_switch(self, switch_id: int, closed: bool) -> None:
        """Operate one switch (by id); protection reacts if it energises a fault."""
        k = int(self.grid.switch.index_of(switch_id)[0])
        if bool(self.switch_closed[k]) != bool(closed):
            self.switch_closed[k] = bool(closed)
            self.switch_ops += 1

    def reset_fpi(self) -> None:
        """Reset every fault-passage indicator."""
        self.fpi[:] = False

    def set_dr(self, level: float) -> None:
        """Demand-response level 0..1 (share of the enrolled flexible demand curtailed)."""
        if not 0.0 <= level <= 1.0:
            raise ValidationError(f"dr level: must be within [0, 1], got {level}")
        self.dr_level = float(level)

    def set_storage(self, storage_id: int, p_mw: float) -> None:
        """Battery set point, MW (+ charging, - discharging), clipped to its rating."""
        k = int(self.grid.storage.index_of(storage_id)[0])
        self.storage_cmd_mw[k] = clip_storage_setpoint(self.grid, k, p_mw)

    def set_ev_factor(self, factor: float) -> None:
        """EV smart-charging factor 0..1 on the uncontrolled charging power."""
        if not 0.0 <= factor <= 1.0:
            raise ValidationError(f"ev factor: must be within [0, 1], got {factor}")
        self.ev_cmd_factor = float(factor)

    # --- stepping -------------------------------------------------------------------------------
    def observe(self) -> Observation:
        """Run the physics of the present step (protection, power flow) and report it."""
        events = self._pending
        self._pending = []
        events += self._protection()
        g = self.grid
        inj: dict[str, Any] = self.controlled(self.demand())  # injections by field name
        # storage state of charge limits the set point
        sp = inj["storage_p_mw"] = storage_mw(self.storage_soc, inj["storage_p_mw"])
        res = self.twin.powerflow(Injections.from_mapping(inj, switch_closed=self.switch_closed))
        if len(g.storage):
            self.storage_soc = storage_soc_after(
                self.storage_soc, sp, g.storage["e_mwh"], self.step_s
            )
        en = res.energised if res.converged else np.zeros(len(g.bus), bool)
        load_bus = g.bus.position_map(g.load["bus"])
        served = inj["load_p_mw"] * en[load_bus]
        gen_bus = (
            g.bus.position_map(g.generator["bus"]) if len(g.generator) else np.zeros(0, np.int64)
        )
        gen = inj["gen_p_mw"] * en[gen_bus] if len(g.generator) else np.zeros(0)
        obs = Observation(
            t=self.t,
            time=self.time,
            step_s=self.step_s,
            v_pu=np.nan_to_num(res.v_pu),
            energised=en,
            line_loading_pct=np.nan_to_num(res.line_loading_pct),
            switch_closed=self.switch_closed.copy(),
            fpi=self.fpi.copy(),
            load_p_mw=served,
            gen_p_mw=gen,
            ev_p_mw=inj["ev_p_mw"] * en[g.bus.position_map(g.ev_charger["bus"])]
            if len(g.ev_charger)
            else np.zeros(0),
            flex_p_mw=inj["flex_p_mw"] * en[g.bus.position_map(g.flex_load["bus"])]
            if len(g.flex_load)
            else np.zeros(0),
            storage_p_mw=sp.copy(),
            storage_soc=self.storage_soc.copy(),
            source_p_mw=float(np.nansum(res.source_p_mw)),
            losses_kw=float(res.losses_kw) if res.converged else float("nan"),
            converged=res.converged,
            events=events,
            line_p_mw=np.nan_to_num(res.line_p_from_mw),
            line_q_mvar=np.nan_to_num(res.line_q_from_mvar),
            load_q_mvar=inj["load_q_mvar"] * en[load_bus],
        )
        self.last = obs
        return obs

    def advance(self) -> None:
        """Move to the next step."""
        self.t += 1
