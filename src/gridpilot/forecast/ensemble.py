"""Ensemble forecaster: a weighted mean of member models with weights per horizon step.

Members (default: LightGBM with the L1 objective, the linear model and seasonal-naive) are
fitted on the training rows; on the validation rows (the ``validation`` frame, or the held-out
``calibration_fraction`` of the history) the weights of each horizon step are chosen on a
grid over the simplex (non-negative, summing to one, step ``weight_step``) to minimise the
MAE on standardised data. When the model is refitted (no validation part) the weights stay.
Quantiles are split-conformal on the ensemble's own held-out residuals, like every model's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import Forecaster, target_windows
from gridpilot.forecast.data import History, Repair


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors (K, n_members) with entries in multiples of ``step`` summing to 1."""
    k = round(1.0 / step)
    rows = [c for c in itertools.product(range(k + 1), repeat=n_members) if sum(c) == k]
    return np.asarray(rows, dtype=float) / k


class EnsembleForecaster(Forecaster):
    """Weighted mean of ``members`` with per-step weights tuned on the validation rows.

    ``members`` default to ``gbm-l1`` (LightGBM, ``num_threads`` threads), ``linear``
    (lookbacks ``lookback``) and ``seasonal-naive``. ``weight_step`` is the grid step of the
    weights (0.05: 231 candidates for three members). ``weights_`` (H, M) holds the chosen
    weights after fit.
    """

    name = "ensemble"
    uses_covariates = True

    def __init__(
        self,
        horizon: int,
        members: Sequence[Forecaster] | None = None,
        *,
        lookback: int | Sequence[int] = (168, 336, 512),
        num_threads: int = 1,
        weight_step: float = 0.05,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
    ) -> None:
        super().__init__(
            horizon, calibration_fraction=calibration_fraction, repair=repair, refit=refit
        )
        if not 0.0 < weight_step <= 0.5 or abs(round(1.0 / weight_step) * weight_step - 1) > 1e-9:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "weight_step",
                        "must divide 1 evenly and lie in (0, 0.5] (e.g. 0.05, 0.1)",
                        value=weight_step,
                    )
                ]
            )
        if members is None:
            from gridpilot.forecast.gbm import GBMForecaster
            from gridpilot.forecast.linear import LinearForecaster
            from gridpilot.forecast.naive import SeasonalNaive

            members = [
                GBMForecaster(horizon, objective="l1", num_threads=num_threads, repair=repair),
                LinearForecaster(horizon, lookback=lookback, repair=repair),
                SeasonalNaive(horizon, repair=repair),
            ]
        members = list(members)
        if len(members) < 2:
            raise ValidationError(
                issues=[
                    Issue(self.name, "members", "needs at least two models", value=len(members))
                ]
            )
        for m in members:
            if m.horizon != self.horizon:
                raise ValidationError(
                    issues=[
                        Issue(
                            self.name,
                            "members",
                            f"{m.name} has horizon {m.horizon}, the ensemble {self.horizon}",
                            value=m.horizon,
                        )
                    ]
                )
        self.members = members
        self.weight_step = float(weight_step)
        self.weights_: np.ndarray | None = None  # (H, M)
        self.val_mae_: dict[str, float] = {}

    @property
    def min_context(self) -> int:
        return max(m.min_context for m in self.members)

    def min_train_rows(self) -> int:
        return max(m.min_train_rows() for m in self.members)

    def _on_history(self, history: History) -> None:
        for m in self.members:
            m._on_history(history)

    def _member_cov(self, m: Forecaster, cov: np.ndarray | None) -> np.ndarray | None:
        return cov if m.uses_covariates else None

    def _fit_arrays(
        self,
        values: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        val_start: int | None,
    ) -> None:
        for m in self.members:
            m.mean_, m.std_ = self.mean_, self.std_
            m._fit_arrays(values, index, self._member_cov(m, cov), val_start)
        if val_start is None:
            if self.weights_ is None:
                raise ValidationError(
                    issues=[Issue(self.name, "weights", "need a validation part to be tuned")]
                )
            return
        assert self.std_ is not None
        origins = self._held_out_origins(val_start, len(values))
        y = target_windows(values, origins, self.horizon) / self.std_[None, :, None]
        preds = np.stack(
            [
                m.forecast_origins(values, index, self._member_cov(m, cov), origins)
                / self.std_[None, :, None]
                for m in self.members
            ]
        )  # (M, N, C, H)
        grid = simplex_grid(len(self.members), self.weight_step)  # (K, M)
        weights = np.empty((self.horizon, len(self.members)))
        for h in range(self.horizon):
            p = np.tensordot(grid, preds[..., h], axes=(1, 0))  # (K, N, C)
            err = np.abs(p - y[None, ..., h]).mean(axis=(1, 2))
            weights[h] = grid[int(err.argmin())]
        self.weights_ = weights
        self.val_mae_ = {
            m.name: float(np.abs(preds[i] - y).mean()) for i, m in enumerate(self.members)
        }
        self.val_mae_[self.name] = float(
            np.abs(np.einsum("hm,mnch->nch", weights, preds) - y).mean()
        )

    def forecast_origins(
        self,
        values: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
    ) -> np.ndarray:
        """Point forecasts (N, C, H) in data units: per-step weighted mean of the members."""
        self._check_trained(self.weights_)
        assert self.weights_ is not None
        out = np.zeros((len(origins), values.shape[1], self.horizon))
        for i, m in enumerate(self.members):
            w = self.weights_[:, i]
            if np.any(w > 0):
                out += w[None, None, :] * m.forecast_origins(
                    values, index, self._member_cov(m, cov), origins
                )
        return out
