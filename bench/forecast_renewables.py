"""PV and wind from weather forecasts (``--only renewables``): a series generated from pvlib.

No public PV or wind power series with weather forecasts is available here, so the series
are generated from a public weather year: pvlib's bundled TMY3 file for Greensboro, NC
(723170TYA.CSV: hourly GHI/DNI/DHI, air temperature, 10 m wind speed; NSRDB, public
domain). The noise model, seeded (``SEED``):

- *actual PV* (10 MW DC, 25° tilt, south): pvlib with the file's own DNI/DHI, Perez
  transposition, SAPM cell temperature with the wind speed, PVWatts DC (−0.37 %/K), 3 %
  soiling, inverter clipping at 8.5 MW AC, times a multiplicative measurement noise
  N(1, 0.02);
- *actual wind* (10 MW): 10 m speed to 90 m by the log law (z0 = 0.1 m), a smooth
  (logistic) power curve with 11 m/s rated, availability 97 % on average (daily
  N(0.97, 0.03) clipped to [0.85, 1]), measurement noise N(0, 0.1 MW);
- *weather forecast* (what the models get): GHI × exp(e₁), e₁ an hourly AR(1) with
  ρ = 0.9 and σ = 0.3 (cloud timing and thickness errors of a day-ahead forecast);
  temperature + AR(1) σ 1.5 °C; wind speed × exp(e₂), AR(1) ρ = 0.9, σ = 0.2.

The models see only the forecast weather and the past output. Day-ahead (issued 00:00 UTC,
24 h), train January–August, validation September, test October–December,
retraining every 30 days. Rows: seasonal-naive, LightGBM with the weather forecast as covariates, the
physics alone (fitted capacity × pvlib / power curve of the forecast), physics plus the
learned correction (``pv-weather`` / ``wind-weather``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from gridpilot.forecast import GBMForecaster, backtest
from gridpilot.forecast.pvphys import PVSite
from gridpilot.forecast.renewables import pv_weather_model, wind_weather_model

SEED = 20
LAT, LON = 36.1, -79.95


def _ar1(rng: np.random.Generator, n: int, rho: float, sigma: float) -> np.ndarray:
    e = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        out[i] = rho * out[i - 1] + e[i]
    return out


def make_series(seed: int = SEED) -> pd.DataFrame:
    """Hourly UTC frame: ``pv_mw``, ``wind_mw`` (actual) and the forecast weather
    ``ghi``, ``temp_air``, ``wind_speed`` (see the module docstring)."""
    import pvlib

    path = os.path.join(os.path.dirname(pvlib.__file__), "data", "723170TYA.CSV")
    w, _ = pvlib.iotools.read_tmy3(path, map_variables=True, coerce_year=2021)
    w = w.tz_convert("UTC").sort_index()
    idx = w.index
    rng = np.random.default_rng(seed)
    sp = pvlib.solarposition.get_solarposition(idx - pd.Timedelta(minutes=30), LAT, LON)
    poa = pvlib.irradiance.get_total_irradiance(
        25,
        180,
        sp["apparent_zenith"].to_numpy(),
        sp["azimuth"].to_numpy(),
        w["dni"].to_numpy(),
        w["ghi"].to_numpy(),
        w["dhi"].to_numpy(),
        dni_extra=np.asarray(pvlib.irradiance.get_extra_radiation(idx)),
        airmass=np.asarray(pvlib.atmosphere.get_relative_airmass(sp["apparent_zenith"].to_numpy())),
        model="perez",
    )["poa_global"]
    poa = np.nan_to_num(np.asarray(poa, dtype=float))
    par = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    tc = pvlib.temperature.sapm_cell(
        poa, w["temp_air"].to_numpy(), w["wind_speed"].to_numpy(), **par
    )
    dc = pvlib.pvsystem.pvwatts_dc(poa * 0.97, tc, 10.0, -0.0037)
    pv = np.minimum(np.asarray(dc, float) * 0.96, 8.5) * rng.normal(1.0, 0.02, len(idx))
    v90 = w["wind_speed"].to_numpy() * np.log(90 / 0.1) / np.log(10 / 0.1)
    curve = 1.0 / (1.0 + np.exp(-(v90 - 7.5) / 1.1))
    curve = np.where(v90 < 3.0, 0.0, np.where(v90 > 25, 0.0, curve))
    avail = np.repeat(np.clip(rng.normal(0.97, 0.03, len(idx) // 24 + 1), 0.85, 1.0), 24)
    wind = np.maximum(10.0 * curve * avail[: len(idx)] + rng.normal(0, 0.1, len(idx)), 0.0)
    n = len(idx)
    out = pd.DataFrame(
        {
            "pv_mw": np.maximum(pv, 0.0),
            "wind_mw": wind,
            "ghi": w["ghi"].to_numpy() * np.exp(_ar1(rng, n, 0.9, 0.3)),
            "temp_air": w["temp_air"].to_numpy() + _ar1(rng, n, 0.9, 1.5),
            "wind_speed": w["wind_speed"].to_numpy() * np.exp(_ar1(rng, n, 0.9, 0.2)),
        },
        index=idx.tz_localize(None),
    )
    return out.asfreq("h").interpolate()


def _row(name: str, res: Any, physics: np.ndarray | None = None) -> dict[str, Any]:
    at0 = np.asarray(res.origins.hour == 0)
    y = res.actual[at0]
    p = res.point[at0] if physics is None else physics[at0]
    b = res.baseline_point[at0]
    mae = float(np.mean(np.abs(p - y)))
    row = {
        "method": name,
        "mae_mw": round(mae, 4),
        "rmse_mw": round(float(np.sqrt(np.mean((p - y) ** 2))), 4),
        "gain_vs_naive_pct": round(100 * (1 - mae / float(np.mean(np.abs(b - y)))), 2),
        "n_points": int(y.size),
    }
    if physics is None:
        lo, hi = res.quantiles[0.1][at0], res.quantiles[0.9][at0]
        row["coverage_p10_p90"] = round(float(np.mean((y >= lo) & (y <= hi))), 4)
        row["train_s"] = round(res.train_s, 1)
    return row


def run(err: Console) -> dict[str, Any]:
    """Rows for PV and wind: seasonal-naive, gbm + weather, physics, physics + correction."""
    df = make_series()
    out: dict[str, Any] = {"data": "pvlib TMY3 723170 (Greensboro NC) + noise model", "rows": []}
    for target, cols, make in (
        (
            "pv_mw",
            ["ghi", "temp_air"],
            lambda: pv_weather_model(24, PVSite(LAT, LON, 25.0, time_offset_min=-30)),
        ),
        ("wind_mw", ["wind_speed"], lambda: wind_weather_model(24, hub_m=90.0)),
    ):
        kw = {"val_start": "2021-09-01", "test_start": "2021-10-01", "stride": 1}
        for name, model in (
            ("gbm + weather", GBMForecaster(24, objective="l1", profile_features=False)),
            ("physics + correction", make()),
        ):
            t0 = time.perf_counter()
            res = backtest(model, df[[target]], covariates=df[cols], refit_every=24 * 30, **kw)
            err.log(f"renewables {target} {name}: {time.perf_counter() - t0:.0f} s")
            if name.startswith("physics"):
                out["rows"].append(
                    {"series": target, **_row("seasonal-naive", res, res.baseline_point)}
                )
                cov = df[cols].to_numpy()
                phys = model.generation(df.index, cov, np.searchsorted(df.index, res.origins))
                out["rows"].append({"series": target, **_row("physics only", res, phys)})
                out["rows"][-1]["capacity_mw"] = round(float(model.capacity_[0, 0]), 3)
            out["rows"].append({"series": target, **_row(name, res)})
    return out
