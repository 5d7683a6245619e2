"""gridpilot.forecast: load and renewable forecasting with quantiles, and backtests."""

from gridpilot.forecast.base import DEFAULT_QUANTILES, Forecaster
from gridpilot.forecast.data import History, prepare_history
from gridpilot.forecast.linear import LinearForecaster
from gridpilot.forecast.naive import SeasonalNaive
from gridpilot.forecast.result import ForecastResult

__all__ = [
    "DEFAULT_QUANTILES",
    "ForecastResult",
    "Forecaster",
    "History",
    "LinearForecaster",
    "SeasonalNaive",
    "prepare_history",
]
