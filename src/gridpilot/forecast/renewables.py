"""PV and wind forecasts from weather forecasts: physics plus a learned correction.

- :func:`pv_weather_model`: pvlib turns the irradiance and temperature forecasts into
  output per kWp (:func:`~gridpilot.forecast.pvphys.pv_per_kwp`); the capacity is fitted
  on the history; LightGBM learns the physics' error from the covariates, the calendar and
  the recent errors (the correction); output never below zero, exactly zero where the
  physics gives zero (sun down).
- :func:`wind_weather_model`: a power curve of the hub-height wind speed forecast
  (:class:`~gridpilot.forecast.windphys.PowerCurve`), the capacity fitted on the history,
  LightGBM for the correction; output never below zero.

Both are :class:`~gridpilot.forecast.netload.NetLoadForecaster` with ``sign=+1`` (the
series is the generation); their quantiles are split-conformal like every model's.
"""

from __future__ import annotations

from typing import Any

from gridpilot.forecast.gbm import GBMForecaster
from gridpilot.forecast.netload import NetLoadForecaster, PVComponent, WindComponent
from gridpilot.forecast.pvphys import PVSite
from gridpilot.forecast.windphys import PowerCurve


def _correction(horizon: int, gbm_kwargs: dict[str, Any]) -> GBMForecaster:
    kw = {"profile_features": False, "n_estimators": 300, **gbm_kwargs}
    return GBMForecaster(horizon, **kw)


def pv_weather_model(
    horizon: int,
    site: PVSite,
    *,
    ghi_column: str = "ghi",
    temp_column: str | None = "temp_air",
    **gbm_kwargs: Any,
) -> NetLoadForecaster:
    """PV output forecaster (data units, e.g. MW) from irradiance (``ghi_column``, scaled
    to W/m² by ``site.ghi_scale``) and temperature (°C) forecasts: pvlib physics times the
    fitted capacity plus a LightGBM correction (``gbm_kwargs`` go to
    :class:`GBMForecaster`)."""
    comp = PVComponent(site, ghi_column=ghi_column, temp_column=temp_column)
    m = NetLoadForecaster(
        _correction(horizon, gbm_kwargs), [comp], sign=1.0, floor=0.0, zero_when_idle=True
    )
    m.name = "pv-weather"
    return m


def wind_weather_model(
    horizon: int,
    *,
    speed_column: str = "wind_speed",
    curve: PowerCurve | None = None,
    height_m: float = 10.0,
    hub_m: float = 80.0,
    **gbm_kwargs: Any,
) -> NetLoadForecaster:
    """Wind output forecaster (data units) from a wind speed forecast in m/s at
    ``height_m`` (log law to ``hub_m``): power curve times the fitted capacity plus a
    LightGBM correction (``gbm_kwargs`` go to :class:`GBMForecaster`)."""
    comp = WindComponent(
        speed_column=speed_column, curve=curve or PowerCurve(), height_m=height_m, hub_m=hub_m
    )
    m = NetLoadForecaster(_correction(horizon, gbm_kwargs), [comp], sign=1.0, floor=0.0)
    m.name = "wind-weather"
    return m
