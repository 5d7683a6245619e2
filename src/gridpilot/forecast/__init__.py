"""gridpilot.forecast: load and renewable forecasting with quantiles, and backtests.

Entry points: :func:`day_ahead` (one call: fit on a history, forecast the next day with
P10/P50/P90; the history may be a :class:`ForecastInputDataset`, target and weather
covariates with their forecast rows), the models (:class:`SeasonalNaive`, :class:`LinearForecaster`,
:class:`TimeOfDayLinearForecaster`, :class:`GBMForecaster`, :class:`EnsembleForecaster`, :class:`PVForecaster`, or :func:`make_model` by name) with
``fit(history, covariates, validation=...)`` / ``predict(...) -> ForecastResult``, and
:func:`backtest` (rolling origin, metrics beside the seasonal-naive baseline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py). Helpers
# (metrics, plots, lookback choice) stay in their modules: gridpilot.forecast.metrics …
_EXPORTS: dict[str, tuple[str, ...]] = {
    "api": ("MODELS", "day_ahead", "make_model"),
    "backtest": ("BacktestResult", "backtest"),
    "base": ("DEFAULT_QUANTILES", "Forecaster"),
    "data": ("History", "prepare_history"),
    "ensemble": ("EnsembleForecaster",),
    "gbm": ("GBMForecaster",),
    "inputs": ("ForecastInputDataset",),
    "linear": ("LinearForecaster",),
    "naive": ("SeasonalNaive",),
    "pv": ("PVForecaster", "clearsky_ghi"),
    "result": ("ForecastResult",),
    "todlinear": ("TimeOfDayLinearForecaster",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.forecast.api import MODELS, day_ahead, make_model
    from gridpilot.forecast.backtest import BacktestResult, backtest
    from gridpilot.forecast.base import DEFAULT_QUANTILES, Forecaster
    from gridpilot.forecast.data import History, prepare_history
    from gridpilot.forecast.ensemble import EnsembleForecaster
    from gridpilot.forecast.gbm import GBMForecaster
    from gridpilot.forecast.inputs import ForecastInputDataset
    from gridpilot.forecast.linear import LinearForecaster
    from gridpilot.forecast.naive import SeasonalNaive
    from gridpilot.forecast.pv import PVForecaster, clearsky_ghi
    from gridpilot.forecast.result import ForecastResult
    from gridpilot.forecast.todlinear import TimeOfDayLinearForecaster
