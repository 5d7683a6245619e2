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

from typing import Any

import numpy as np

from gridpilot.flex.fleet import DRAW_SHAPE, Batteries, EVSessions, Fleet, PVInverters, WaterHeaters
from gridpilot.model import Grid


def fleet_from_field(
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
    bus_ids = grid.bus.ids
    mb = devices.meter_bus
    ms = np.asarray(devices.meter_scale, np.float64)

    def sc(meter: np.ndarray) -> np.ndarray:
        return ms[meter] if grid_scale else np.ones(meter.size)

    # batteries
    on = np.flatnonzero(devices.bat_online)
    soc = np.asarray(devices.bat_soc[on], np.float64)
    k = sc(devices.bat_meter[on])
    bat = Batteries(
        on,
        bus_ids[mb[devices.bat_meter[on]]],
        devices.bat_kwh[on] / 1e3 * k,
        devices.bat_kw[on] / 1e3 * k,
        soc,
        np.full(on.size, 0.95),
        np.minimum(0.1, soc),
        np.maximum(0.95, soc),
        # on its own a field battery covers its household's demand (self-consumption): the
        # baseline is a discharge at the household's base demand (its PV surplus, which it
        # would charge from, is not estimated)
        -np.minimum(base_factor * devices.meter_base_kw[devices.bat_meter[on]], devices.bat_kw[on])
        / 1e3
        * k,
    )
    # EVs: one session per day
    on = np.flatnonzero(devices.ev_online)
    spd = round(24 / step_h)
    day0 = start_step - start_step % spd
    k = sc(devices.ev_meter[on])
    cap = devices.ev_kwh[on] / 1e3 * k
    pmax = devices.ev_charger_kw[on] / 1e3 * k
    arr_h = np.asarray(devices.ev_arrive_h[on], np.float64)
    dep_h = np.asarray(devices.ev_depart_h[on], np.float64)
    dep_h = np.where(dep_h <= arr_h, dep_h + 24.0, dep_h)
    rows = []
    for d in range(-1, days):  # day -1: the overnight session of a car plugged in now
        a = day0 + d * spd + np.round(arr_h / step_h).astype(np.int64)
        b = np.maximum(day0 + d * spd + np.round(dep_h / step_h).astype(np.int64), a + 1)
        keep = np.ones(on.size, bool) if d >= 0 else b > start_step
        e_arr = np.asarray(devices.ev_soc[on], np.float64) * cap
        need = np.clip(devices.ev_target_soc[on] * cap - e_arr, 0, None)
        dwell = np.maximum(b - np.maximum(a, start_step), 1)  # steps left to charge in
        need = np.minimum(need, 0.8 * dwell * step_h * pmax)
        rows.append(
            tuple(x[keep] for x in (a, b, need, np.minimum(e_arr, cap - need), np.arange(on.size)))
        )
    cat = [np.concatenate([r[i] for r in rows]) for i in range(5)]
    j = cat[4].astype(np.int64)  # position among the online cars
    n = j.size
    ev = EVSessions(
        np.arange(n),
        on[j],
        bus_ids[mb[devices.ev_meter[on]]][j],
        cat[0],
        cat[1],
        cat[2],
        cat[3],
        cap[j],
        pmax[j],
        devices.ev_v2g[on][j],
        np.full(n, 0.4),
    )
    # water heaters: comfort band from the field's override temperature to the thermostat's top
    on = np.flatnonzero(devices.wh_online)
    k = sc(devices.wh_meter[on])
    c = devices.wh_cap_kwh_per_k[on] / 1e3 * k
    lo = np.asarray(devices.wh_comfort_min_c[on], np.float64)
    hi = np.asarray(devices.wh_high_c[on], np.float64)
    t = np.clip(np.asarray(devices.wh_temp_c[on], np.float64), lo, hi)
    loss = devices.wh_ua_kw_per_k[on] / 1e3 * k * np.clip(0.5 * (lo + hi) - ambient_c, 0, None)
    scale = np.full(on.size, wh_daily_kwh / 1e3 / 24.0 / float(DRAW_SHAPE.mean())) * k
    wh = WaterHeaters(
        on,
        bus_ids[mb[devices.wh_meter[on]]],
        devices.wh_kw[on] / 1e3 * k,
        c,
        loss,
        lo,
        hi,
        t,
        scale,
        (on % 13) - 6,
        np.asarray(devices.wh_heating[on], bool),
        np.asarray(devices.wh_low_c[on], np.float64),  # the field's thermostat
        hi,
    )
    pv = PVInverters(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    )
    return Fleet(bat, ev, wh, pv, step_h, {"source": "field", "days": days})
