"""The simulated world's weather, and the weather forecast a weather service would issue.

:func:`make_weather` generates a seeded weather series at the site: global horizontal
irradiance (pvlib's Haurwitz clear-sky GHI times a clear-sky index that persists over
hours and days), air temperature (seasonal and daily cycle plus persistent anomalies) and
the 100 m wind speed (a log-normal AR(1) with a 12-hour correlation time). The field
simulator's PV follows its irradiance and temperature and its wind generators follow a
power curve of its wind speed (:meth:`WeatherSeries.pv_per_kwp`,
:meth:`WeatherSeries.wind_per_unit`).

:func:`weather_forecast` is what the control side may know: the same variables for the
next hours issued at a time, with an error that grows with the lead time (standard
deviation ``sigma0 + sigma_per_day · lead / 24 h``, correlated along the lead: an AR(1) with
a 6-hour correlation time), multiplicative for irradiance and wind, additive for
temperature. Rows before the issue time are the analysed (true) weather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError

COLUMNS = ("ghi_wm2", "temp_c", "wind_ms")


@dataclass(frozen=True)
class WeatherConfig:
    """Site and climate of the generated weather: degrees, m/s, °C."""

    latitude: float = 52.0
    longitude: float = 5.0
    mean_wind_ms: float = 7.0
    mean_temp_c: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class ForecastNoise:
    """Weather forecast error: standard deviations at lead 0 and their growth per day
    (log-scale for irradiance and wind, °C for temperature)."""

    ghi_sigma0: float = 0.05
    ghi_sigma_per_day: float = 0.35
    temp_sigma0: float = 0.3
    temp_sigma_per_day: float = 1.5
    wind_sigma0: float = 0.03
    wind_sigma_per_day: float = 0.2
    corr_time_h: float = 6.0


@dataclass(frozen=True)
class WeatherSeries:
    """Weather on a regular UTC grid (tz-naive): GHI W/m², temperature °C, 100 m wind m/s."""

    frame: pd.DataFrame

    def at(self, when: pd.Timestamp) -> pd.Series:
        """Values at ``when`` (linear between grid points; wraps around the series' end)."""
        idx = self.frame.index
        step = idx[1] - idx[0]
        x = (pd.Timestamp(when) - idx[0]) / step
        k = int(np.floor(x))
        w = float(x - k)
        n = len(idx)
        a, b = self.frame.iloc[k % n], self.frame.iloc[(k + 1) % n]
        return (1 - w) * a + w * b

    def values_at(self, times: pd.DatetimeIndex) -> pd.DataFrame:
        """Values at every time of ``times``, as :meth:`at` (vectorised)."""
        idx = self.frame.index
        x = np.asarray((times - idx[0]) / (idx[1] - idx[0]), float)
        k = np.floor(x).astype(np.int64)
        w = (x - k)[:, None]
        v = self.frame.to_numpy(float)
        n = len(idx)
        out = (1 - w) * v[k % n] + w * v[(k + 1) % n]
        return pd.DataFrame(out, index=times, columns=self.frame.columns)

    def pv_per_kwp(self, when: pd.Timestamp) -> float:
        """PV output in kW per kWp at ``when``: GHI / 1000 W/m² with a −0.4 %/K cell
        temperature derate (cell = air + 0.03 K per W/m²)."""
        v = self.at(when)
        t_cell = v["temp_c"] + 0.03 * v["ghi_wm2"]
        return float(max(0.0, v["ghi_wm2"] / 1000.0 * (1 - 0.004 * (t_cell - 25.0))))

    def wind_per_unit(self, when: pd.Timestamp) -> float:
        """Wind turbine output per unit of rated power at ``when`` (cut-in 3, rated 12,
        cut-out 25 m/s, cubic between)."""
        return float(power_curve(np.array([self.at(when)["wind_ms"]]))[0])


def unit_output(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-unit output of PV (kW per kWp, as :meth:`WeatherSeries.pv_per_kwp`) and wind
    (per unit of rating, as :meth:`WeatherSeries.wind_per_unit`) for every row of a weather
    frame (columns ``ghi_wm2``, ``temp_c``, ``wind_ms``): columns ``pv`` and ``wind``."""
    ghi = frame["ghi_wm2"].to_numpy(float)
    t_cell = frame["temp_c"].to_numpy(float) + 0.03 * ghi
    pv = np.maximum(0.0, ghi / 1000.0 * (1 - 0.004 * (t_cell - 25.0)))
    wind = power_curve(frame["wind_ms"].to_numpy(float))
    return pd.DataFrame({"pv": pv, "wind": wind}, index=frame.index)


def power_curve(speed_ms: np.ndarray) -> np.ndarray:
    """Generic turbine power curve per unit (cut-in 3, rated 12, cut-out 25 m/s)."""
    v = np.nan_to_num(np.asarray(speed_ms, float))
    p = np.clip((v**3 - 27.0) / (1728.0 - 27.0), 0.0, 1.0)
    p[(v < 3.0) | (v >= 25.0)] = 0.0
    return p


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Unit-variance AR(1) sequence of length ``n``."""
    e = rng.standard_normal(n) * np.sqrt(1 - rho**2)
    out = np.empty(n)
    out[0] = rng.standard_normal()
    for i in range(1, n):
        out[i] = rho * out[i - 1] + e[i]
    return out


def make_weather(
    start: str | pd.Timestamp, days: int, step: str = "15min", cfg: WeatherConfig | None = None
) -> WeatherSeries:
    """A seeded weather series of ``days`` days from ``start`` (UTC) at ``step``."""
    import pvlib

    cfg = cfg or WeatherConfig()
    if days < 1:
        raise ValidationError(issues=[Issue("weather", "days", "must be at least 1", value=days)])
    idx = pd.date_range(
        pd.Timestamp(start),
        periods=int(days * 86400 / pd.Timedelta(step).total_seconds()),
        freq=step,
    )
    rng = np.random.default_rng(cfg.seed)
    loc = pvlib.location.Location(cfg.latitude, cfg.longitude, tz="UTC")
    cs = loc.get_clearsky(idx.tz_localize("UTC"), model="haurwitz")["ghi"].to_numpy()
    per_h = 3600.0 / pd.Timedelta(step).total_seconds()
    n = len(idx)
    # clear-sky index: a day-to-day part and an hours part, squashed into (0.05, 1.05)
    kt = (
        0.65
        + 0.25 * _ar1(rng, n, np.exp(-1 / (36 * per_h)))
        + 0.15 * _ar1(rng, n, np.exp(-1 / (2 * per_h)))
    )
    ghi = cs * np.clip(kt, 0.05, 1.05)
    doy = idx.dayofyear.to_numpy()
    hour = idx.hour.to_numpy() + idx.minute.to_numpy() / 60
    temp = (
        cfg.mean_temp_c
        - 7 * np.cos(2 * np.pi * (doy - 20) / 365)
        + 4 * np.sin(2 * np.pi * (hour - 9) / 24)
        + 3 * _ar1(rng, n, np.exp(-1 / (48 * per_h)))
    )
    wind = cfg.mean_wind_ms * np.exp(0.45 * _ar1(rng, n, np.exp(-1 / (12 * per_h))) - 0.1)
    frame = pd.DataFrame({"ghi_wm2": ghi, "temp_c": temp, "wind_ms": wind}, index=idx)
    return WeatherSeries(frame)


def weather_forecast(
    series: WeatherSeries,
    issued: pd.Timestamp,
    horizon_steps: int,
    *,
    history_steps: int = 0,
    noise: ForecastNoise | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The forecast issued at ``issued`` for the next ``horizon_steps`` grid steps (and the
    ``history_steps`` analysed rows before it): columns ``ghi_wm2``, ``temp_c``,
    ``wind_ms``, indexed by time (UTC). The error grows with lead (module docstring)."""
    noise = noise or ForecastNoise()
    idx = series.frame.index
    step = idx[1] - idx[0]
    issued = pd.Timestamp(issued).floor(step)
    times = pd.date_range(
        issued - history_steps * step, periods=history_steps + horizon_steps, freq=step
    )
    truth = series.values_at(times)
    lead_h = np.clip((times - issued) / pd.Timedelta(hours=1), 0.0, None)
    fut = lead_h > 0
    rng = np.random.default_rng([seed, int(issued.value // 10**9)])
    rho = float(np.exp(-(step / pd.Timedelta(hours=1)) / noise.corr_time_h))
    out = truth.copy()
    for col, s0, s1, mult in (
        ("ghi_wm2", noise.ghi_sigma0, noise.ghi_sigma_per_day, True),
        ("temp_c", noise.temp_sigma0, noise.temp_sigma_per_day, False),
        ("wind_ms", noise.wind_sigma0, noise.wind_sigma_per_day, True),
    ):
        err = (s0 + s1 * lead_h / 24.0) * _ar1(rng, len(times), rho) * fut
        v = truth[col].to_numpy()
        out[col] = v * np.exp(err) if mult else v + err
    return out
