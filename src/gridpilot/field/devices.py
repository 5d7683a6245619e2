"""Vectorised device models: one function per kind, advancing every device by ``dt_s``.

Each function updates the fleet's state arrays in place and returns the devices' power in kW
(load convention: + consumes, except PV which returns its generation, + = feeding). ``live``
is a bool per device: online and its meter's bus energised; dead devices draw nothing.
"""

from __future__ import annotations

import numpy as np

from gridpilot.field.fleet import DeviceFleet


def pv_kw(f: DeviceFleet, shape: float, live: np.ndarray) -> np.ndarray:
    """PV inverters' output, kW (>= 0): kWp x irradiance shape x curtailment setpoint."""
    return f.pv_kwp * np.float32(shape) * f.pv_limit_frac * live


def battery_kw(f: DeviceFleet, surplus_kw: np.ndarray, dt_s: float, live: np.ndarray) -> np.ndarray:
    """Home batteries' power, kW (+ charging), and their state of charge updated.

    Automatic batteries follow self-consumption (charge the PV surplus, cover the deficit,
    ``surplus_kw`` per battery = PV - base demand); the others follow ``bat_setpoint_kw``.
    Power is limited by ``bat_kw`` and by the energy left (one-way efficiency 0.95).
    """
    eta = np.float32(0.95)
    h = np.float32(dt_s / 3600.0)
    want = np.where(f.bat_auto, surplus_kw, f.bat_setpoint_kw).astype(np.float32)
    p = np.clip(want, -f.bat_kw, f.bat_kw)
    room = (1.0 - f.bat_soc) * f.bat_kwh / (eta * h)
    avail = f.bat_soc * f.bat_kwh * eta / h
    p = np.clip(p, -avail, room) * live
    f.bat_soc += np.where(p > 0, p * eta, p / eta) * h / f.bat_kwh
    np.clip(f.bat_soc, 0.0, 1.0, out=f.bat_soc)
    return p


def ev_kw(
    f: DeviceFleet, hour: float, dt_s: float, live: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """EVs' charging power, kW (+ charging, - V2G discharging), plug-in state and SoC updated.

    An EV is plugged in from ``ev_arrive_h`` until ``ev_depart_h`` next morning; at arrival its
    SoC is drawn (uniform 0.2..0.6). It charges at ``min(charger, limit)`` until its target SoC;
    a negative limit on a V2G charger discharges down to 20 % SoC.
    """
    plugged = (hour >= f.ev_arrive_h) | (hour < f.ev_depart_h)
    arrived = plugged & ~f.ev_plugged
    if arrived.any():
        f.ev_soc[arrived] = rng.uniform(0.2, 0.6, int(arrived.sum())).astype(np.float32)
    f.ev_plugged[:] = plugged
    h = np.float32(dt_s / 3600.0)
    lim = np.where(f.ev_v2g, f.ev_limit_kw, np.maximum(f.ev_limit_kw, 0.0))
    p = np.clip(lim, -f.ev_charger_kw, f.ev_charger_kw)
    p = np.where(
        p > 0,
        np.minimum(p, (f.ev_target_soc - f.ev_soc) * f.ev_kwh / (0.92 * h)),
        np.maximum(p, -(f.ev_soc - 0.2) * f.ev_kwh / h),
    )
    p = np.maximum(p, np.where(f.ev_v2g, -f.ev_charger_kw, 0.0))
    p = (p * (plugged & live)).astype(np.float32)
    f.ev_soc += np.where(p > 0, p * 0.92, p) * h / f.ev_kwh
    np.clip(f.ev_soc, 0.0, 1.0, out=f.ev_soc)
    return p


def water_heater_kw(
    f: DeviceFleet, draw_kw: np.ndarray, dt_s: float, live: np.ndarray, ambient_c: float = 20.0
) -> np.ndarray:
    """Electric water heaters' power, kW, and tank temperatures updated (first-order thermal model).

    ``C dT/dt = P_heat - UA (T - T_ambient) - P_draw`` with C = litres x 4.186 kJ/K. A
    thermostat heats below ``wh_low_c`` until ``wh_high_c``. A paused heater does not heat
    unless its tank falls below ``wh_comfort_min_c`` (the comfort limit overrides the pause).
    """
    t = f.wh_temp_c
    f.wh_heating[:] = (f.wh_heating | (t < f.wh_low_c)) & (t < f.wh_high_c)
    allowed = ~f.wh_paused | (t < f.wh_comfort_min_c)
    on = f.wh_heating & allowed & live
    p = (f.wh_kw * on).astype(np.float32)
    h = np.float32(dt_s / 3600.0)
    loss = f.wh_ua_kw_per_k * (t - np.float32(ambient_c))
    t += (p - loss - draw_kw) * h / f.wh_cap_kwh_per_k
    np.maximum(t, np.float32(10.0), out=t)
    return p
