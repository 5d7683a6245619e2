"""Grid-level devices in the field: the grid's generator, storage, EV-charger and flex-load tables.

These are utility-scale or aggregated devices connected at grid buses (not behind household
meters): wind and PV generators follow their profile times an availability factor per kind;
grid batteries follow a commanded set point (MW, + charging) limited by their rating and
state of charge; EV charging stations follow an evening charging shape times a surge factor
times a commanded smart-charging factor; flexible loads (water heaters, pumps) draw half their
rating times the load factor, less the commanded demand-response level. The functions are
pure (numpy arrays in table order, MW); :class:`GridDeviceState` holds the commanded and
integrated state. Both ``gridpilot.field.FieldSimulator`` and ``gridpilot.agent.SimWorld``
use them, so the two worlds' devices behave alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridpilot.model import GenKind, Grid

SOC_EMPTY = 0.02  # a battery below this state of charge does not discharge
SOC_FULL = 0.98  # nor charge above this one


@dataclass
class GridConditions:
    """Exogenous conditions set by scenario events (multipliers on the profiles).

    ``load_factor`` on every demand; ``heat_peak_factor`` the extra afternoon load (air
    conditioning) share at ``heat_peak_hour`` (Gaussian, 3.5 h wide); ``wind_factor`` /
    ``pv_factor`` the available share of wind and PV; ``ev_factor`` EV charging's surge factor.
    """

    load_factor: float = 1.0
    heat_peak_factor: float = 0.0
    heat_peak_hour: float = 17.0
    wind_factor: float = 1.0
    pv_factor: float = 1.0
    ev_factor: float = 1.0

    def demand_factor(self, hour: float) -> float:
        """Multiplier on demand at ``hour`` (0..24): load factor x (1 + heat peak share)."""
        heat = 1.0 + self.heat_peak_factor * float(
            np.exp(-0.5 * ((hour - self.heat_peak_hour) / 3.5) ** 2)
        )
        return self.load_factor * heat


@dataclass
class GridDeviceState:
    """Commanded and integrated state of the grid's devices (arrays in table order).

    ``gen_tripped`` per generator; ``storage_cmd_mw`` set points (+ charging);
    ``storage_soc`` 0..1; ``ev_cmd_factor`` smart-charging factor 0..1; ``flex_level``
    the commanded demand-response level 0..1 on flexible loads.
    """

    gen_tripped: np.ndarray
    storage_cmd_mw: np.ndarray
    storage_soc: np.ndarray
    ev_cmd_factor: float = 1.0
    flex_level: float = 0.0
    cond: GridConditions = field(default_factory=GridConditions)

    @staticmethod
    def of(grid: Grid) -> GridDeviceState:
        """Initial state from the grid's tables (storage set points and SoC as in the table)."""
        return GridDeviceState(
            gen_tripped=np.zeros(len(grid.generator), bool),
            storage_cmd_mw=np.asarray(grid.storage["p_mw"], np.float64).copy(),
            storage_soc=np.asarray(grid.storage["soc"], np.float64).copy(),
        )


def generator_mw(
    grid: Grid, profiled_mw: np.ndarray, cond: GridConditions, tripped: np.ndarray
) -> np.ndarray:
    """Generators' output, MW: the profiled output x availability per kind (wind, PV); tripped
    units 0."""
    gen = np.asarray(profiled_mw, np.float64).copy()
    kind = grid.generator["kind"]
    gen[kind == GenKind.WIND] *= cond.wind_factor
    gen[kind == GenKind.PV] *= cond.pv_factor
    gen[np.asarray(tripped, bool)] = 0.0
    return gen


def ev_charging_mw(grid: Grid, hour: float, surge: float) -> np.ndarray:
    """EV charging stations' uncontrolled power, MW: rating x (0.15 + 0.6 x evening shape around
    19:00) x ``surge``, at most the rating x max(surge, 1)."""
    pmax = grid.ev_charger["p_max_mw"]
    evening = float(np.exp(-0.5 * ((hour - 19.0) / 2.0) ** 2))
    ev = pmax * np.clip(0.15 + 0.6 * evening, 0, 1) * surge
    return np.minimum(ev, pmax * max(surge, 1.0))


def flex_load_mw(grid: Grid, demand_factor: float) -> np.ndarray:
    """Flexible loads' uncontrolled power, MW: half their rating x the demand factor."""
    return grid.flex_load["p_mw"] * 0.5 * demand_factor


def storage_mw(soc: np.ndarray, cmd_mw: np.ndarray) -> np.ndarray:
    """Storage power this step, MW (+ charging): the set point, 0 where the battery is empty
    (discharging) or full (charging)."""
    sp = np.asarray(cmd_mw, np.float64).copy()
    sp[((soc <= SOC_EMPTY) & (sp < 0)) | ((soc >= SOC_FULL) & (sp > 0))] = 0.0
    return sp


def storage_soc_after(
    soc: np.ndarray, p_mw: np.ndarray, e_mwh: np.ndarray, step_s: float
) -> np.ndarray:
    """State of charge (0..1) after ``step_s`` seconds at ``p_mw`` (+ charging), lossless."""
    return np.clip(soc + p_mw * step_s / 3600.0 / np.maximum(e_mwh, 1e-9), 0.0, 1.0)


def clip_storage_setpoint(grid: Grid, pos: int, p_mw: float) -> float:
    """A set point for the storage at table position ``pos``, clipped to its rating (MW)."""
    pm = float(grid.storage["p_max_mw"][pos])
    return float(np.clip(p_mw, -pm, pm))
