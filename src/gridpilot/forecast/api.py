"""Plain entry points for other packages (twin what-if runs, flexibility planner, CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import DEFAULT_QUANTILES, Forecaster
from gridpilot.forecast.data import History, Repair, prepare_history
from gridpilot.forecast.inputs import ForecastInputDataset
from gridpilot.forecast.result import ForecastResult

MODELS: tuple[str, ...] = (
    "seasonal-naive",
    "linear",
    "linear-tod",
    "gbm",
    "gbm-l1",
    "gbm-quantile",
    "ensemble",
    "pv",
    "pv-weather",
    "wind-weather",
)
"""The model names :func:`make_model` (and ``gridpilot forecast --model``) accept."""


def make_model(name: str, horizon: int, **kwargs: Any) -> Forecaster:
    """A forecaster by name (one of :data:`MODELS`; ``naive`` also means seasonal-naive).

    ``kwargs`` go to the model's constructor (e.g. ``lookback`` for ``linear``,
    ``latitude``/``longitude`` for ``pv``).
    """
    from gridpilot.forecast.gbm import GBMForecaster
    from gridpilot.forecast.linear import LinearForecaster
    from gridpilot.forecast.naive import SeasonalNaive
    from gridpilot.forecast.pv import PVForecaster

    key = name.lower().strip()
    if key in ("naive", "seasonal-naive", "seasonal_naive"):
        return SeasonalNaive(horizon, **kwargs)
    if key in ("linear", "dlinear", "ridge"):
        return LinearForecaster(horizon, **kwargs)
    if key in ("linear-tod", "linear_tod"):
        from gridpilot.forecast.todlinear import TimeOfDayLinearForecaster

        return TimeOfDayLinearForecaster(horizon, **kwargs)
    if key in ("gbm", "lightgbm"):
        return GBMForecaster(horizon, **kwargs)
    if key in ("gbm-l1", "gbm_l1"):
        return GBMForecaster(horizon, objective="l1", **kwargs)
    if key == "ensemble":
        from gridpilot.forecast.ensemble import EnsembleForecaster

        return EnsembleForecaster(horizon, **kwargs)
    if key in ("gbm-quantile", "gbm_quantile"):
        return GBMForecaster(horizon, quantile_method="quantile", **kwargs)
    if key in ("pv-weather", "wind-weather"):
        from gridpilot.forecast.renewables import pv_weather_model, wind_weather_model

        if key == "wind-weather":
            return wind_weather_model(horizon, **kwargs)
        site = _pv_site(kwargs, name)
        return pv_weather_model(horizon, site, **kwargs)
    if key == "pv":
        if "latitude" not in kwargs or "longitude" not in kwargs:
            raise ValidationError(
                issues=[
                    Issue("forecast", "model", "'pv' needs latitude= and longitude=", value=name)
                ]
            )
        return PVForecaster(horizon, **kwargs)
    raise ValidationError(
        issues=[
            Issue("forecast", "model", f"unknown model; choose one of {list(MODELS)}", value=name)
        ]
    )


def _pv_site(kwargs: dict[str, Any], name: str) -> Any:
    """A PVSite from (and popped out of) ``latitude``/``longitude``/``tilt_deg``/
    ``azimuth_deg``/``ghi_scale`` in ``kwargs``."""
    from gridpilot.forecast.pvphys import PVSite

    if "latitude" not in kwargs or "longitude" not in kwargs:
        raise ValidationError(
            issues=[
                Issue("forecast", "model", f"{name!r} needs latitude= and longitude=", value=name)
            ]
        )
    keys = ("latitude", "longitude", "tilt_deg", "azimuth_deg", "ghi_scale")
    return PVSite(**{k: float(kwargs.pop(k)) for k in keys if k in kwargs})


def auto_lookbacks(
    n_rows: int, horizon: int, steps_per_day: int, calibration_fraction: float = 0.2
) -> tuple[int, ...]:
    """Lookback candidates (1, 2, 3 weeks) that leave enough training windows in ``n_rows``.

    Falls back to one day (or the horizon, if longer) for short histories; raises a
    :class:`ValidationError` when even that does not fit.
    """
    held = max(horizon + 1, round(calibration_fraction * n_rows))
    train = n_rows - held
    cands = [w * 7 * steps_per_day for w in (1, 2, 3)]
    ok = tuple(L for L in cands if train - L - horizon >= max(L, 50))
    if ok:
        return ok
    short = max(steps_per_day, horizon)
    if train - short - horizon >= 10:
        return (short,)
    need = int((2 * short + horizon + 10) / (1 - calibration_fraction)) + 1
    raise ValidationError(
        issues=[
            Issue(
                "history",
                "rows",
                f"too short for a {horizon}-step forecast: needs at least {need} rows",
                value=n_rows,
            )
        ]
    )


def day_ahead(
    history: pd.DataFrame | pd.Series | History | ForecastInputDataset,
    horizon_steps: int | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    *,
    model: str = "linear",
    covariates: pd.DataFrame | None = None,
    repair: Repair = "error",
    **model_kwargs: Any,
) -> ForecastResult:
    """Forecast every series of ``history`` for the next ``horizon_steps`` (default: one day).

    ``history`` is time-indexed (or has a ``time``/``date``/``timestamp`` column), one column
    per series, in any units (MW, kW …); it must be regular and complete unless
    ``repair="interpolate"`` (short gaps interpolated). ``model`` is one of :data:`MODELS`
    (default ``linear``: lookback chosen among 1–3 weeks on a held-out tail); ``covariates``
    (for ``gbm``/``gbm-l1``/``ensemble``/``pv``) must cover the history and the horizon;
    a :class:`~gridpilot.forecast.inputs.ForecastInputDataset` carries its own covariates
    (its rows after the target are their forecast; a missing one raises naming the column
    and the first missing time). Returns a
    :class:`ForecastResult` whose ``point`` and ``quantiles`` (H, C) are in the history's units
    and whose ``index`` holds the forecast timestamps.
    """
    if isinstance(history, ForecastInputDataset):
        if covariates is not None:
            raise ValidationError(
                issues=[Issue("forecast", "covariates", "are in the ForecastInputDataset already")]
            )
        h = history.history
        steps0 = horizon_steps if horizon_steps is not None else h.steps_per_day
        covariates = history.future_covariates(max(1, int(steps0)))
    else:
        h = prepare_history(history, repair=repair)
    steps = horizon_steps if horizon_steps is not None else h.steps_per_day
    if int(steps) < 1:
        raise ValidationError(
            issues=[Issue("forecast", "horizon_steps", "must be at least 1", value=horizon_steps)]
        )
    kwargs = dict(model_kwargs)
    if model.lower() in ("linear", "dlinear", "ridge") and "lookback" not in kwargs:
        kwargs["lookback"] = auto_lookbacks(len(h), int(steps), h.steps_per_day)
    m = make_model(model, int(steps), **kwargs)
    if covariates is not None:
        from gridpilot.forecast.data import _to_frame

        cov_df = _to_frame(covariates, "covariates")
        m.fit(h, cov_df.loc[cov_df.index <= h.index[-1]])
        return m.predict(h, cov_df, quantiles=quantiles)
    m.fit(h)
    return m.predict(quantiles=quantiles)
