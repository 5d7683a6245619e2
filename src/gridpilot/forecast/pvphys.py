"""PV physics from weather (pvlib): AC output per kWp from irradiance and temperature.

:func:`pv_per_kwp` turns a global horizontal irradiance (GHI) series and the air temperature
into the AC output of 1 kWp of PV at a site: solar position (pvlib), Erbs decomposition of
GHI into direct and diffuse parts, transposition onto the module plane (isotropic sky), the
SAPM cell-temperature model and the PVWatts DC model (−0.4 %/K) with a flat inverter
efficiency. Returns kW per kWp (0 … about 1), zero when the sun is down. Used by
:class:`~gridpilot.forecast.netload.NetLoadForecaster` (load net of local PV) and
:class:`~gridpilot.forecast.renewables.PVWeatherForecaster`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PVSite:
    """Where and how the PV is mounted: degrees; ``azimuth_deg`` 180 = facing south.

    ``ghi_scale`` converts the irradiance column to W/m² (1 for W/m²; 1/3600 for an hourly
    accumulation in J/m², as in OpenSTEF's ``radiation``). ``time_offset_min`` moves the
    sun's position from the timestamp to the middle of the period a value stands for (−30
    for hourly values labelled at the period's end, as in TMY files).
    """

    latitude: float
    longitude: float
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0
    ghi_scale: float = 1.0
    inverter_eff: float = 0.96
    gamma_per_k: float = -0.004
    time_offset_min: float = 0.0


def pv_per_kwp(
    index: pd.DatetimeIndex, ghi: np.ndarray, temp_c: np.ndarray | None, site: PVSite
) -> np.ndarray:
    """AC output in kW per kWp (T,) at ``index`` (tz-naive = UTC) from GHI (``ghi`` in the
    column's units, scaled by ``site.ghi_scale`` to W/m²) and air temperature in °C
    (``None``: 15 °C). Non-finite or negative irradiance counts as zero."""
    import pvlib

    times = index if index.tz is not None else index.tz_localize("UTC")
    g = np.nan_to_num(np.asarray(ghi, dtype=float) * site.ghi_scale, nan=0.0)
    g = np.clip(g, 0.0, 1400.0)
    ta = np.full(len(g), 15.0) if temp_c is None else np.nan_to_num(np.asarray(temp_c, float))
    sun_t = times + pd.Timedelta(minutes=site.time_offset_min)
    sp = pvlib.solarposition.get_solarposition(sun_t, site.latitude, site.longitude)
    zen = sp["apparent_zenith"].to_numpy(dtype=float)
    azi = sp["azimuth"].to_numpy(dtype=float)
    doy = sun_t.dayofyear.to_numpy()
    erbs = pvlib.irradiance.erbs(g, zen, doy)
    dni = np.nan_to_num(np.asarray(erbs["dni"], dtype=float))
    dhi = np.nan_to_num(np.asarray(erbs["dhi"], dtype=float))
    poa = pvlib.irradiance.get_total_irradiance(
        site.tilt_deg, site.azimuth_deg, zen, azi, dni, g, dhi, model="isotropic"
    )
    poa_g = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float))
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
    t_cell = pvlib.temperature.sapm_cell(poa_g, ta, np.full(len(g), 1.0), **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa_g, t_cell, 1.0, site.gamma_per_k)
    out = np.clip(np.nan_to_num(np.asarray(dc, dtype=float)) * site.inverter_eff, 0.0, 1.2)
    out[zen >= 90.0] = 0.0
    return out
