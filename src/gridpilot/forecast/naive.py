"""Seasonal-naive baseline: every step repeats the value one season (default one day) earlier."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import (
    ForecastBatch,
    Forecaster,
    horizon_rows,
    seasonal_lag,
    values_at,
)
from gridpilot.forecast.data import History, Repair


class SeasonalNaive(Forecaster):
    """ŷ[o + h] = y[o + h − k·S] with the smallest k ≥ 1 that lies in the past.

    ``season`` is S in steps; ``None`` means one day at the data's resolution (24 for
    hourly data). Quantiles are split-conformal like every model's.
    """

    name = "seasonal-naive"

    def __init__(
        self,
        horizon: int,
        season: int | None = None,
        *,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
    ) -> None:
        super().__init__(horizon, calibration_fraction=calibration_fraction, repair=repair)
        if season is not None and int(season) < 1:
            raise ValidationError(
                issues=[Issue(self.name, "season", "must be at least 1 step", value=season)]
            )
        self.season = None if season is None else int(season)
        self._season_fit = self.season

    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the season times the seasons the horizon spans."""
        s = self._season_fit or self.season or 1
        return s * int(np.ceil(self.horizon / s))

    def min_train_rows(self) -> int:
        """Rows needed to fit: the context plus one."""
        return self.min_context + 1

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        if self.season is None:
            step = pd.Timedelta(data.index[1] - data.index[0])
            self._season_fit = max(1, round(pd.Timedelta(days=1) / step))
        else:
            self._season_fit = self.season

    def _on_history(self, history: History) -> None:
        self._season_fit = self.season or history.steps_per_day

    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Seasonal-naive forecasts (N, C, H) in data units."""
        s = self._season_fit or 1
        lag = seasonal_lag(np.arange(self.horizon), s)
        idx = horizon_rows(batch.origins, self.horizon) - lag[None, :]
        if idx.min() < 0:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "origin",
                        f"needs {self.min_context} rows before each origin",
                        value=int(batch.origins.min()),
                    )
                ]
            )
        return values_at(batch.values, idx)
