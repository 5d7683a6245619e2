"""The common forecaster interface and split-conformal quantiles.

Every model is *direct multi-horizon*: from an origin (the first unseen step) it forecasts
steps ``origin .. origin + horizon - 1`` of every series at once. Models implement three
array-level hooks; :class:`Forecaster` turns them into ``fit`` / ``predict`` on DataFrames:

- ``min_context`` – rows of past a forecast needs (the lookback);
- ``_fit_arrays(data, val_start)`` – train on rows ``[0, val_start)`` of the
  :class:`ForecastBatch` ``data``, tune hyper-parameters on origins in
  ``[val_start, T - horizon]`` (or, with ``val_start=None``, train on everything with the
  hyper-parameters already chosen);
- ``_forecast(batch)`` – point forecasts (N, C, H) in the data's units for every origin of
  the batch, vectorised (public: :meth:`Forecaster.forecast_origins`).

Quantiles are split-conformal: the residuals of the point model on a held-out window (the
``validation`` frame, or the last ``calibration_fraction`` of the history) give, per series
and per horizon step, empirical quantiles added to the point forecast. Models with their own
quantile method (LightGBM with quantile loss) override ``_quantiles(batch)``; models that bound their output (non-negative PV, a
net-load floor) override ``_bound_quantiles``.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.data import History, Repair, align_covariates, prepare_history
from gridpilot.forecast.result import ForecastResult

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
"""The quantiles a forecast carries unless told otherwise: P10, P50, P90."""


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Sorted, de-duplicated quantile levels, each strictly between 0 and 1."""
    qs = tuple(sorted({float(q) for q in quantiles}))
    bad = [q for q in qs if not 0.0 < q < 1.0]
    if bad:
        raise ValidationError(
            issues=[Issue("forecast", "quantiles", "must lie strictly in (0, 1)", value=bad[0])]
        )
    return qs


def horizon_rows(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Row indices (N, H) of the ``horizon`` target steps from each origin."""
    return origins[:, None] + np.arange(horizon)[None, :]


def values_at(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Values (N, C, H) of every series at row indices ``rows`` (N, H)."""
    return np.transpose(values[rows], (0, 2, 1))


def target_windows(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Actual values (N, C, H) for the ``horizon`` steps from each origin."""
    return values_at(values, horizon_rows(origins, horizon))


def seasonal_lag(steps: np.ndarray, period: int, extra: int = 0) -> np.ndarray:
    """Lags in steps (same shape as ``steps``, the 0-based horizon steps) back to the same
    phase of the season in the past: the smallest multiple of ``period`` above each step,
    plus ``extra`` periods."""
    return period * (steps // period + 1 + extra)


def _no_origins() -> np.ndarray:
    return np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class ForecastBatch:
    """The arrays a forecaster's fit and predict hooks work on, in one parameter object.

    ``values`` (T, C) in data units (rows from an origin on may be NaN), their ``index``,
    the covariates ``cov`` (T, K) on that index (None: the model uses none), the forecast
    ``origins`` (N,), and for quantile forecasts the ``quantiles`` levels and the
    calibration ``residuals`` (None: the held-out residuals from fit). The array view of a
    :class:`~gridpilot.forecast.inputs.ForecastInputDataset`.
    """

    values: np.ndarray
    index: pd.DatetimeIndex
    cov: np.ndarray | None = None
    origins: np.ndarray = field(default_factory=_no_origins)
    quantiles: tuple[float, ...] = ()
    residuals: np.ndarray | None = None

    def until(self, end: int) -> ForecastBatch:
        """Rows [0, end) of the values, index and covariates."""
        cov = None if self.cov is None else self.cov[:end]
        return dataclasses.replace(self, values=self.values[:end], index=self.index[:end], cov=cov)

    def but(self, **changes: Any) -> ForecastBatch:
        """A copy with ``changes`` (field=value) applied."""
        return dataclasses.replace(self, **changes)


class Forecaster(ABC):
    """Base class: fit on a history, predict ``horizon`` steps with quantiles.

    Parameters common to all models: ``horizon`` (steps), ``calibration_fraction`` (share of
    the history held out for tuning and conformal calibration when no ``validation`` frame
    is given), ``repair`` (see :func:`~gridpilot.forecast.data.prepare_history`) and
    ``refit`` (after tuning on the held-out part, train again on the whole history).
    """

    name = "forecaster"
    uses_covariates = False

    def __init__(
        self,
        horizon: int,
        *,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
    ) -> None:
        if int(horizon) < 1:
            raise ValidationError(
                issues=[Issue(self.name, "horizon", "must be at least 1 step", value=horizon)]
            )
        if not 0.0 < calibration_fraction < 1.0:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "calibration_fraction",
                        "must lie in (0, 1)",
                        value=calibration_fraction,
                    )
                ]
            )
        self.horizon = int(horizon)
        self.calibration_fraction = float(calibration_fraction)
        self.repair: Repair = repair
        self.refit = refit
        self.history_: History | None = None
        self.cov_columns_: tuple[str, ...] | None = None
        self.residuals_: np.ndarray | None = None  # (N, C, H) held-out errors, data units
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.train_s_: float = 0.0

    # ------------------------------------------------------------------ hooks
    @property
    @abstractmethod
    def min_context(self) -> int:
        """Rows of history needed before an origin."""

    @abstractmethod
    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        """Train on rows [0, val_start) of ``data`` and tune on the rest (or train on all
        if None)."""

    @abstractmethod
    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Point forecasts (N, C, H) in data units for each origin of ``batch`` (rows before
        it are known)."""

    def _bound_quantiles(self, qs: np.ndarray, batch: ForecastBatch) -> np.ndarray:
        """Quantiles (Q, N, C, H) kept within the model's bounds (default: unchanged)."""
        return qs

    def _on_history(self, history: History) -> None:  # noqa: B027 - optional hook
        """Called with the full history before fitting (models may fix a season here)."""

    def min_train_rows(self) -> int:
        """Rows a training part needs (one lookback plus one horizon, plus a little)."""
        return self.min_context + self.horizon + 1

    # ------------------------------------------------------------- public API
    def fit(
        self,
        history: pd.DataFrame | pd.Series | History,
        covariates: pd.DataFrame | None = None,
        *,
        validation: pd.DataFrame | pd.Series | History | None = None,
    ) -> Self:
        """Fit on ``history`` (time-indexed, one column per series); returns self.

        ``covariates`` (optional, e.g. temperature or irradiance) must cover the history,
        the validation frame and, at prediction time, the horizon. With ``validation`` (the
        rows that directly follow ``history``) hyper-parameters are tuned and quantiles
        calibrated on it and the model is trained on ``history`` only; without it the last
        ``calibration_fraction`` of the history is held out for that, then (``refit``) the
        model is trained again on everything.
        """

        t0 = time.perf_counter()
        if covariates is not None and not self.uses_covariates:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "covariates",
                        "this model does not use covariates; use the 'gbm' or 'pv' model",
                    )
                ]
            )
        full, val_start = self._with_validation(
            prepare_history(history, repair=self.repair), validation
        )
        self._on_history(full)
        self._check_length(val_start, full)
        cov = align_covariates(covariates, full.index) if covariates is not None else None
        self.cov_columns_ = (
            tuple(str(c) for c in _cov_names(covariates)) if covariates is not None else None
        )
        self.history_ = full
        train = full.values[:val_start]
        self.mean_ = train.mean(axis=0)
        std = train.std(axis=0)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        data = ForecastBatch(full.values, full.index, cov)
        self._fit_arrays(data, val_start)
        origins = self._held_out_origins(val_start, len(full))
        pred = self._forecast(data.but(origins=origins))
        resid = target_windows(full.values, origins, self.horizon) - pred
        scale = self.residual_scale(full.index, origins)
        self.residuals_ = resid if scale is None else resid / scale
        if validation is None and self.refit:
            self._fit_arrays(data, None)
        self.train_s_ = time.perf_counter() - t0
        return self

    def _with_validation(
        self, h: History, validation: pd.DataFrame | pd.Series | History | None
    ) -> tuple[History, int]:
        """The history with the validation rows appended (checked: same series, starting one
        step after the history) and where they start; without them, the history and the
        start of its held-out ``calibration_fraction``."""
        if validation is not None:
            v = prepare_history(validation, repair=self.repair, what="validation")
            if v.columns != h.columns:
                raise ValidationError(
                    issues=[
                        Issue(
                            "validation",
                            "columns",
                            f"must equal the history's {list(h.columns)}",
                            value=list(v.columns),
                        )
                    ]
                )
            if v.index[0] != h.index[-1] + h.freq or v.freq != h.freq:
                raise ValidationError(
                    issues=[
                        Issue(
                            "validation",
                            "index",
                            f"must start one step ({h.freq}) after the history ends "
                            f"({h.index[-1]})",
                            value=str(v.index[0]),
                        )
                    ]
                )
            full = History(
                h.index.append(v.index),
                np.vstack([h.values, v.values]),
                h.columns,
                h.freq,
            )
            val_start = len(h)
        else:
            full = h
            n_val = max(self.horizon + 1, round(self.calibration_fraction * len(h)))
            val_start = len(h) - n_val
        return full, val_start

    def predict(
        self,
        history: pd.DataFrame | pd.Series | History | None = None,
        covariates: pd.DataFrame | None = None,
        *,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        horizon: int | None = None,
    ) -> ForecastResult:
        """Forecast the ``horizon`` steps after the end of ``history`` (default: the fitted one).

        Returns a :class:`ForecastResult` in the history's units with the point forecast and
        the requested quantile levels. ``covariates`` must cover the history and the horizon
        when the model was fitted with covariates. ``horizon`` may be shorter than the
        trained one.
        """
        self._check_fitted()
        assert self.history_ is not None
        h = (
            self.history_
            if history is None
            else prepare_history(history, repair=self.repair, freq=self.history_.freq)
        )
        if h.columns != self.history_.columns:
            raise ValidationError(
                issues=[
                    Issue(
                        "history",
                        "columns",
                        f"must equal the fitted series {list(self.history_.columns)}",
                        value=list(h.columns),
                    )
                ]
            )
        if len(h) < self.min_context:
            raise ValidationError(
                issues=[
                    Issue(
                        "history",
                        "rows",
                        f"{self.name} needs at least {self.min_context} rows before the "
                        "forecast origin",
                        value=len(h),
                    )
                ]
            )
        steps = self.horizon if horizon is None else int(horizon)
        if not 1 <= steps <= self.horizon:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "horizon",
                        f"must be between 1 and the trained horizon {self.horizon}",
                        value=horizon,
                    )
                ]
            )
        fut = h.future_index(self.horizon)
        cov = self._predict_covariates(covariates, h.index.append(fut))
        qs = check_quantiles(quantiles)
        values = np.vstack([h.values, np.full((self.horizon, h.values.shape[1]), np.nan)])
        batch = ForecastBatch(values, h.index.append(fut), cov, np.array([len(h)]), qs)
        point, qarr = self._quantiles(batch)
        qarr = self._bound_quantiles(qarr, batch)
        return ForecastResult(
            index=fut[:steps],
            columns=h.columns,
            point=point[0, :, :steps].T.copy(),
            quantiles={q: qarr[i, 0, :, :steps].T.copy() for i, q in enumerate(qs)},
            model=self.name,
        )

    def _predict_covariates(
        self, covariates: pd.DataFrame | None, index: pd.DatetimeIndex
    ) -> np.ndarray | None:
        """The covariates on ``index`` (history and horizon) for a model fitted with them
        (missing ones are an error); None for a model fitted without."""
        if self.cov_columns_ is None:
            return None
        if covariates is None:
            raise ValidationError(
                issues=[
                    Issue(
                        "covariates",
                        "columns",
                        f"model was fitted with covariates {list(self.cov_columns_)}; "
                        "pass them for the history and the horizon",
                    )
                ]
            )
        return align_covariates(covariates, index)

    def forecast_origins(
        self,
        values: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
    ) -> np.ndarray:
        """Point forecasts (N, C, H) in data units for each origin (rows before it are known)."""
        return self._forecast(ForecastBatch(values, index, cov, origins))

    def quantile_origins(
        self,
        values: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
        quantiles: Sequence[float],
        residuals: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point (N, C, H) and quantiles (Q, N, C, H) for each origin, data units.

        Quantiles are the point forecast plus the empirical quantiles of ``residuals``
        (default: the held-out residuals from :meth:`fit`) per series and step, or the
        model's own quantile method.
        """
        batch = ForecastBatch(values, index, cov, origins, tuple(quantiles), residuals)
        point, qs = self._quantiles(batch)
        return point, self._bound_quantiles(qs, batch)

    def _quantiles(self, batch: ForecastBatch) -> tuple[np.ndarray, np.ndarray]:
        """Point (N, C, H) and conformal quantiles (Q, N, C, H) for the batch's origins."""
        point = self._forecast(batch)
        offsets = self.quantile_offsets(batch.quantiles, batch.residuals)  # (Q, C, H)
        scale = self.residual_scale(batch.index, batch.origins)
        if scale is None:
            return point, point[None] + offsets[:, None]
        return point, point[None] + offsets[:, None] * np.nan_to_num(scale)[None]

    def refit_until(
        self, values: np.ndarray, index: pd.DatetimeIndex, cov: np.ndarray | None, end: int
    ) -> None:
        """Train the point model again on rows [0, end) only (every target before ``end``),
        keeping the tuned settings (iterations, lookback, penalty, weights), the training
        normalisation and the held-out residuals: the periodic refit of an operator. Its time
        is added to ``train_s_`` (the training time of the fit and every refit since)."""
        self._check_fitted()
        if not self.min_train_rows() <= end <= len(values):
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "end",
                        f"must lie in [{self.min_train_rows()}, {len(values)}]",
                        value=end,
                    )
                ]
            )
        t0 = time.perf_counter()
        self._fit_arrays(ForecastBatch(values, index, cov).until(end), None)
        self.train_s_ += time.perf_counter() - t0

    def residual_scale(self, index: pd.DatetimeIndex, origins: np.ndarray) -> np.ndarray | None:
        """Scale (N, 1 or C, H) of the errors at each target, or None (errors homogeneous).

        Models whose errors scale with something known (PV with the clear-sky irradiance)
        return it: conformal quantiles are then taken of residual / scale and multiplied
        back (normalised conformal). NaN marks targets known exactly (PV at night).
        """
        return None

    def quantile_offsets(
        self, quantiles: Sequence[float], residuals: np.ndarray | None = None
    ) -> np.ndarray:
        """Conformal offsets (Q, C, H): residual quantiles per series and horizon step."""
        res = self.residuals_ if residuals is None else residuals
        if res is None or len(res) == 0:
            raise ValidationError(
                issues=[Issue(self.name, "calibration", "no held-out residuals; fit first")]
            )
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slots → 0 below
                off = np.nanquantile(res, list(quantiles), axis=0)
        return np.nan_to_num(off)

    # ---------------------------------------------------------------- helpers
    def _check_fitted(self) -> None:
        if self.history_ is None:
            raise ValidationError(
                issues=[Issue(self.name, "state", "is not fitted; call fit(history) first")]
            )

    def _held_out_origins(self, val_start: int, n_rows: int) -> np.ndarray:
        """Every origin from ``val_start`` (and at least ``min_context``) whose whole horizon
        lies within ``n_rows`` rows: the held-out origins that tune and calibrate."""
        return np.arange(max(val_start, self.min_context), n_rows - self.horizon + 1)

    def _check_trained(self, *state: object) -> None:
        """Raise when any of the model's trained parts in ``state`` is still None."""
        if any(x is None for x in state):
            raise ValidationError(issues=[Issue(self.name, "state", "is not fitted")])

    def _check_length(self, val_start: int, full: History) -> None:
        need_train = self.min_train_rows()
        need_val = self.horizon + 1
        if val_start < need_train or len(full) - val_start < need_val:
            raise ValidationError(
                issues=[
                    Issue(
                        "history",
                        "rows",
                        f"too short for {self.name} (lookback {self.min_context}, horizon "
                        f"{self.horizon}): needs at least {need_train} training rows plus "
                        f"{need_val} held-out rows, has {val_start} + {len(full) - val_start}",
                        value=len(full),
                    )
                ]
            )

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Values standardised with the training mean and std of each series."""
        assert self.mean_ is not None and self.std_ is not None
        return (values - self.mean_) / self.std_

    def denormalise(self, z: np.ndarray) -> np.ndarray:
        """Forecasts (N, C, H) standardised with :meth:`normalise` back in data units."""
        assert self.mean_ is not None and self.std_ is not None
        return z * self.std_[None, :, None] + self.mean_[None, :, None]


def _cov_names(cov: pd.DataFrame | pd.Series) -> list[str]:
    if isinstance(cov, pd.Series):
        return [str(cov.name or "value")]
    from gridpilot.forecast.data import TIME_COLUMNS

    return [str(c) for c in cov.columns if str(c).lower() not in TIME_COLUMNS]
