"""A :class:`~gridpilot.flex.fleet.Fleet` from the field simulator's device state.

The field keeps one array per device attribute (:class:`gridpilot.field.DeviceFleet`); this
maps its batteries, EVs and water heaters onto the flex dataclasses (bus ids, MW, MWh). EV
sessions repeat the car's daily plug-in (arrival/departure hours) for ``days`` days with the
present state of charge for the first and the same arrival state afterwards; the energy asked
for is what reaches the target state of charge (capped at 80 % of what the charger can give in
the dwell). A car plugged in at ``start_step`` since the evening before gets that session too.
Rooftop PV is not mapped (the scheduler curtails the grid's generators).

``grid_scale=True`` multiplies every device's power and energy by its meter's ``meter_scale``
(the field's power-flow multiplier when the fleet stands for a grid larger than its
households): the fleet is then in the grid's MW, as the feeder sees it, and a set point for a
device is its household power times that scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.flex.fleet import DRAW_SHAPE, Batteries, EVSessions, Fleet, PVInverters, WaterHeaters
from gridpilot.model import Grid


@dataclass
class _FieldMap:
    """The field's device arrays with the grid's bus ids; ``grid_scale``: times ``meter_scale``."""

    devices: Any
    bus_ids: np.ndarray
    grid_scale: bool

    def scale(self, meter: np.ndarray) -> np.ndarray:
        """Each device's multiplier from its meter (1 without ``grid_scale``)."""
        if not self.grid_scale:
            return np.ones(meter.size)
        return np.asarray(self.devices.meter_scale, np.float64)[meter]

    def bus(self, meter: np.ndarray) -> np.ndarray:
        """The grid bus id of each meter."""
        return self.bus_ids[self.devices.meter_bus[meter]]


def _field_batteries(m: _FieldMap, base_factor: float) -> Batteries:
    """The online batteries; the baseline is a discharge at the household's base demand."""
    dv = m.devices
    on = np.flatnonzero(dv.bat_online)
    soc = np.asarray(dv.bat_soc[on], np.float64)
    k = m.scale(dv.bat_meter[on])
    return Batteries(
        on,
        m.bus(dv.bat_meter[on]),
        dv.bat_kwh[on] / 1e3 * k,
        dv.bat_kw[on] / 1e3 * k,
        soc,
        np.full(on.size, 0.95),
        np.minimum(0.1, soc),
        np.maximum(0.95, soc),
        # on its own a field battery covers its household's demand (self-consumption): the
        # baseline is a discharge at the household's base demand (its PV surplus, which it
        # would charge from, is not estimated)
        -np.minimum(base_factor * dv.meter_base_kw[dv.bat_meter[on]], dv.bat_kw[on]) / 1e3 * k,
    )


def _field_evs(m: _FieldMap, start_step: int, days: int, step_h: float) -> EVSessions:
    """One session per online car and day (day -1: the overnight session of a car plugged in now)."""
    dv = m.devices
    on = np.flatnonzero(dv.ev_online)
    spd = round(24 / step_h)
    day0 = start_step - start_step % spd
    k = m.scale(dv.ev_meter[on])
    cap = dv.ev_kwh[on] / 1e3 * k
    pmax = dv.ev_charger_kw[on] / 1e3 * k
    arr_h = np.asarray(dv.ev_arrive_h[on], np.float64)
    dep_h = np.asarray(dv.ev_depart_h[on], np.float64)
    dep_h = np.where(dep_h <= arr_h, dep_h + 24.0, dep_h)
    rows = []
    for d in range(-1, days):
        a = day0 + d * spd + np.round(arr_h / step_h).astype(np.int64)
        b = np.maximum(day0 + d * spd + np.round(dep_h / step_h).astype(np.int64), a + 1)
        keep = np.ones(on.size, bool) if d >= 0 else b > start_step
        e_arr = np.asarray(dv.ev_soc[on], np.float64) * cap
        need = np.clip(dv.ev_target_soc[on] * cap - e_arr, 0, None)
        dwell = np.maximum(b - np.maximum(a, start_step), 1)  # steps left to charge in
        need = np.minimum(need, 0.8 * dwell * step_h * pmax)
        rows.append(
            tuple(x[keep] for x in (a, b, need, np.minimum(e_arr, cap - need), np.arange(on.size)))
        )
    cat = [np.concatenate([r[i] for r in rows]) for i in range(5)]
    j = cat[4].astype(np.int64)  # position among the online cars
    n = j.size
    return EVSessions(
        np.arange(n),
        on[j],
        m.bus(dv.ev_meter[on])[j],
        cat[0],
        cat[1],
        cat[2],
        cat[3],
        cap[j],
        pmax[j],
        dv.ev_v2g[on][j],
        np.full(n, 0.4),
    )


def _field_water_heaters(m: _FieldMap, ambient_c: float, wh_daily_kwh: float) -> WaterHeaters:
    """The online water heaters: comfort band from the field's override temperature to the thermostat's top."""
    dv = m.devices
    on = np.flatnonzero(dv.wh_online)
    k = m.scale(dv.wh_meter[on])
    c = dv.wh_cap_kwh_per_k[on] / 1e3 * k
    lo = np.asarray(dv.wh_comfort_min_c[on], np.float64)
    hi = np.asarray(dv.wh_high_c[on], np.float64)
    t = np.clip(np.asarray(dv.wh_temp_c[on], np.float64), lo, hi)
    loss = dv.wh_ua_kw_per_k[on] / 1e3 * k * np.clip(0.5 * (lo + hi) - ambient_c, 0, None)
    scale = np.full(on.size, wh_daily_kwh / 1e3 / 24.0 / float(DRAW_SHAPE.mean())) * k
    return WaterHeaters(
        on,
        m.bus(dv.wh_meter[on]),
        dv.wh_kw[on] / 1e3 * k,
        c,
        loss,
        lo,
        hi,
        t,
        scale,
        (on % 13) - 6,
        np.asarray(dv.wh_heating[on], bool),
        np.asarray(dv.wh_low_c[on], np.float64),  # the field's thermostat
        hi,
    )


def fleet_from_field(  # noqa: PLR0913
    grid: Grid,
    devices: Any,
    start_step: int = 0,
    days: int = 1,
    step_h: float = 0.25,
    ambient_c: float = 20.0,
    wh_daily_kwh: float = 6.5,
    grid_scale: bool = False,
    base_factor: float = 1.0,
) -> Fleet:
    """Map a field ``DeviceFleet`` (``devices``) of ``grid`` to a flex :class:`Fleet` from ``start_step``.

    Returns a Fleet of the field's online batteries, EVs and water heaters (units converted from
    kW/kWh to MW/MWh, times each meter's ``meter_scale`` with ``grid_scale``); the field's ids
    are the device positions in its arrays. A battery's baseline (``p_base_mw``) is its
    self-consumption discharge: the household's mean base demand times ``base_factor`` (the
    load profile's multiplier now, where known), at most the battery's rating.
    """
    m = _FieldMap(devices, grid.bus.ids, grid_scale)
    bat = _field_batteries(m, base_factor)
    ev = _field_evs(m, start_step, days, step_h)
    wh = _field_water_heaters(m, ambient_c, wh_daily_kwh)
    pv = PVInverters(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    )
    return Fleet(bat, ev, wh, pv, step_h, {"source": "field", "days": days})
