"""Ensemble forecaster: a weighted mean of member models with weights per horizon step.

Members (default: LightGBM with the L1 objective, the time-of-day linear model and
seasonal-naive) are
fitted on the training rows; on the validation rows (the ``validation`` frame, or the held-out
``calibration_fraction`` of the history) the weights of each horizon step are chosen on a
grid over the simplex (non-negative, summing to one, step ``weight_step``) to minimise the
MAE on standardised data. When the model is refitted (no validation part) the weights stay,
unless ``retune_window`` is set: then each refit first forecasts, with the members as they
were, the origins whose targets have been observed since their last training (out-of-sample
forecasts, kept with the validation ones), and tunes the weights again on the most recent
``retune_window`` of those origins before the members are trained on the new rows.
Quantiles are split-conformal on the ensemble's own held-out residuals, like every model's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import ForecastBatch, Forecaster, target_windows
from gridpilot.forecast.data import History, Repair


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors (K, n_members) with entries in multiples of ``step`` summing to 1."""
    k = round(1.0 / step)
    rows = [c for c in itertools.product(range(k + 1), repeat=n_members) if sum(c) == k]
    return np.asarray(rows, dtype=float) / k


class EnsembleForecaster(Forecaster):
    """Weighted mean of ``members`` with per-step weights tuned on the validation rows.

    ``members`` default to ``gbm-l1`` (LightGBM, ``num_threads`` threads), ``linear-tod``
    (:class:`~gridpilot.forecast.todlinear.TimeOfDayLinearForecaster`, lookback(s)
    ``lookback``) and ``seasonal-naive``. ``weight_step`` is the grid step of the
    weights (0.05: 231 candidates for three members). ``retune_window`` (steps, optional):
    at every refit, tune the weights again on the out-of-sample member forecasts of that
    many most recent origins (see the module docstring). ``weights_`` (H, M) holds the
    chosen weights after fit (and after the last refit).
    """

    name = "ensemble"
    uses_covariates = True

    def __init__(  # noqa: PLR0913
        self,
        horizon: int,
        members: Sequence[Forecaster] | None = None,
        *,
        lookback: int | Sequence[int] = 96,
        num_threads: int = 1,
        weight_step: float = 0.05,
        retune_window: int | None = None,
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
            from gridpilot.forecast.naive import SeasonalNaive
            from gridpilot.forecast.todlinear import TimeOfDayLinearForecaster

            members = [
                GBMForecaster(horizon, objective="l1", num_threads=num_threads, repair=repair),
                TimeOfDayLinearForecaster(horizon, lookback=lookback, repair=repair),
                SeasonalNaive(horizon, repair=repair),
            ]
        if retune_window is not None and int(retune_window) < 1:
            raise ValidationError(
                issues=[Issue(self.name, "retune_window", "must be ≥ 1 step", value=retune_window)]
            )
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
        self.retune_window = None if retune_window is None else int(retune_window)
        self.weights_: np.ndarray | None = None  # (H, M)
        self.val_mae_: dict[str, float] = {}
        # out-of-sample member forecasts (M, N, C, H) and targets (N, C, H), standardised,
        # the row up to which the members were last trained and the first origin not kept
        # yet (for ``retune_window``)
        self._oos_preds: np.ndarray | None = None
        self._oos_y: np.ndarray | None = None
        self._trained_until = 0
        self._next_origin = 0

    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the most any member needs."""
        return max(m.min_context for m in self.members)

    def min_train_rows(self) -> int:
        """Rows needed to fit: the most any member needs."""
        return max(m.min_train_rows() for m in self.members)

    def _on_history(self, history: History) -> None:
        for m in self.members:
            m._on_history(history)

    def _member_batch(self, m: Forecaster, batch: ForecastBatch) -> ForecastBatch:
        """The batch member ``m`` sees: the covariates only if it uses them."""
        return batch if m.uses_covariates else batch.but(cov=None)

    def _member_preds(self, batch: ForecastBatch) -> tuple[np.ndarray, np.ndarray]:
        """Standardised member forecasts (M, N, C, H) and targets (N, C, H) at ``origins``."""
        assert self.std_ is not None
        sd = self.std_[None, :, None]
        y = target_windows(batch.values, batch.origins, self.horizon) / sd
        preds = np.stack([m._forecast(self._member_batch(m, batch)) / sd for m in self.members])
        return preds, y

    def _tune(self, preds: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Weights (H, M) minimising the MAE of each step on the grid over the simplex."""
        grid = simplex_grid(len(self.members), self.weight_step)  # (K, M)
        weights = np.empty((self.horizon, len(self.members)))
        for h in range(self.horizon):
            p = np.tensordot(grid, preds[..., h], axes=(1, 0))  # (K, N, C)
            err = np.abs(p - y[None, ..., h]).mean(axis=(1, 2))
            weights[h] = grid[int(err.argmin())]
        return weights

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        if val_start is None:
            if self.weights_ is None:
                raise ValidationError(
                    issues=[Issue(self.name, "weights", "need a validation part to be tuned")]
                )
            if self.retune_window is not None:
                self._retune(data)
        for m in self.members:
            m.mean_, m.std_ = self.mean_, self.std_
            m._fit_arrays(self._member_batch(m, data), val_start)
        self._trained_until = len(data.values) if val_start is None else val_start
        if val_start is None:
            return
        n_rows = len(data.values)
        preds, y = self._member_preds(data.but(origins=self._held_out_origins(val_start, n_rows)))
        weights = self._tune(preds, y)
        self.weights_ = weights
        self._oos_preds, self._oos_y = preds, y
        self._next_origin = n_rows - self.horizon + 1
        self.val_mae_ = {
            m.name: float(np.abs(preds[i] - y).mean()) for i, m in enumerate(self.members)
        }
        self.val_mae_[self.name] = float(
            np.abs(np.einsum("hm,mnch->nch", weights, preds) - y).mean()
        )

    def _retune(self, data: ForecastBatch) -> None:
        """Before a refit on ``data`` (rows [0, end)): add the members' out-of-sample
        forecasts of the origins whose targets were observed since they were last trained
        (origins at or after that row: no target of theirs was seen in training), then tune
        the weights on the last ``retune_window`` origins kept."""
        assert self.retune_window is not None
        first = max(self._trained_until, self._next_origin, self.min_context)
        origins = np.arange(first, len(data.values) - self.horizon + 1)
        self._next_origin = max(self._next_origin, len(data.values) - self.horizon + 1)
        if len(origins):
            preds, y = self._member_preds(data.but(origins=origins))
            if self._oos_preds is None or self._oos_y is None:
                self._oos_preds, self._oos_y = preds, y
            else:
                self._oos_preds = np.concatenate([self._oos_preds, preds], axis=1)
                self._oos_y = np.concatenate([self._oos_y, y], axis=0)
        if self._oos_preds is None or self._oos_y is None:
            return
        keep = self.retune_window
        self._oos_preds = self._oos_preds[:, -keep:]
        self._oos_y = self._oos_y[-keep:]
        self.weights_ = self._tune(self._oos_preds, self._oos_y)

    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Point forecasts (N, C, H) in data units: per-step weighted mean of the members."""
        self._check_trained(self.weights_)
        assert self.weights_ is not None
        out = np.zeros((len(batch.origins), batch.values.shape[1], self.horizon))
        for i, m in enumerate(self.members):
            w = self.weights_[:, i]
            if np.any(w > 0):
                out += w[None, None, :] * m._forecast(self._member_batch(m, batch))
        return out
