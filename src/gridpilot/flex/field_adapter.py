"""A :class:`~gridpilot.flex.fleet.Fleet` from the field simulator's device state.

The field keeps one array per device attribute (:class:`gridpilot.field.DeviceFleet`); this
maps its batteries, EVs and water heaters onto the flex dataclasses (bus ids, MW, MWh). EV
sessions repeat the car's daily plug-in (arrival/departure hours) for ``days`` days with the
present state of charge for the first and the same arrival state afterwards; the energy asked
for is what reaches the target state of charge (capped at 80 % of what the charger can give in
the dwell). Rooftop PV is not mapped (the scheduler curtails the grid's generators).
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
) -> Fleet:
    """Map a field ``DeviceFleet`` (``devices``) of ``grid`` to a flex :class:`Fleet` from ``start_step``.

    Returns a Fleet of the field's online batteries, EVs and water heaters (units converted from
    kW/kWh to MW/MWh); the field's ids are the device positions in its arrays.
    """
    bus_ids = grid.bus.ids
    mb = devices.meter_bus
    # batteries
    on = np.flatnonzero(devices.bat_online)
    soc = np.asarray(devices.bat_soc[on], np.float64)
    bat = Batteries(
        on,
        bus_ids[mb[devices.bat_meter[on]]],
        devices.bat_kwh[on] / 1e3,
        devices.bat_kw[on] / 1e3,
        soc,
        np.full(on.size, 0.95),
        np.minimum(0.1, soc),
        np.maximum(0.95, soc),
    )
    # EVs: one session per day
    on = np.flatnonzero(devices.ev_online)
    spd = round(24 / step_h)
    day0 = start_step - start_step % spd
    cap = devices.ev_kwh[on] / 1e3
    pmax = devices.ev_charger_kw[on] / 1e3
    arr_h = np.asarray(devices.ev_arrive_h[on], np.float64)
    dep_h = np.asarray(devices.ev_depart_h[on], np.float64)
    dep_h = np.where(dep_h <= arr_h, dep_h + 24.0, dep_h)
    rows = []
    for d in range(days):
        a = day0 + d * spd + np.round(arr_h / step_h).astype(np.int64)
        b = np.maximum(day0 + d * spd + np.round(dep_h / step_h).astype(np.int64), a + 1)
        e_arr = np.asarray(devices.ev_soc[on], np.float64) * cap
        need = np.clip(devices.ev_target_soc[on] * cap - e_arr, 0, None)
        need = np.minimum(need, 0.8 * (b - a) * step_h * pmax)
        rows.append((a, b, need, np.minimum(e_arr, cap - need)))
    cat = [np.concatenate([r[i] for r in rows]) if rows else np.zeros(0) for i in range(4)]
    n = on.size * days
    ev = EVSessions(
        np.arange(n),
        np.tile(on, days),
        np.tile(bus_ids[mb[devices.ev_meter[on]]], days),
        cat[0],
        cat[1],
        cat[2],
        cat[3],
        np.tile(cap, days),
        np.tile(pmax, days),
        np.tile(devices.ev_v2g[on], days),
        np.full(n, 0.4),
    )
    # water heaters: comfort band from the field's override temperature to the thermostat's top
    on = np.flatnonzero(devices.wh_online)
    c = devices.wh_cap_kwh_per_k[on] / 1e3
    lo = np.asarray(devices.wh_comfort_min_c[on], np.float64)
    hi = np.asarray(devices.wh_high_c[on], np.float64)
    t = np.clip(np.asarray(devices.wh_temp_c[on], np.float64), lo, hi)
    loss = devices.wh_ua_kw_per_k[on] / 1e3 * np.clip(0.5 * (lo + hi) - ambient_c, 0, None)
    scale = np.full(on.size, wh_daily_kwh / 1e3 / 24.0 / float(DRAW_SHAPE.mean()))
    wh = WaterHeaters(
        on,
        bus_ids[mb[devices.wh_meter[on]]],
        devices.wh_kw[on] / 1e3,
        c,
        loss,
        lo,
        hi,
        t,
        scale,
        (on % 13) - 6,
        np.asarray(devices.wh_heating[on], bool),
    )
    pv = PVInverters(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    )
    return Fleet(bat, ev, wh, pv, step_h, {"source": "field", "days": days})
