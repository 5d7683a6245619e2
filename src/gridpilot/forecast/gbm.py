"""LightGBM forecaster with lag, calendar and covariate features (OpenSTEF-style).

One direct model for all horizon steps and all series (pooled, series as a categorical
feature). Each training row is (origin o, step h, series c); values are standardised per
series and expressed relative to the anchor ``a`` = mean of the last day before o:

- the last values ``z[o-k] - a`` (k = 1, 2, 3, 6, 12), the last day's std, the last week's
  mean;
- seasonal lags of the target time: same time one and two days and one week earlier,
  taken from the past only (``z[o+h-k·S]`` with the smallest k that lies before o);
- daily-profile features (``profile_features``, on by default; off for PV): the mean of the
  same hour over the last 3 and 7 days and its 7-day median (relative to the anchor), the
  values 4, 5 and one day before o, and how the last hours before o deviate from the same
  hours one day and on average seven days earlier (today's level against the profile). On
  ETTh1 day-ahead loads they raised the validation MAE gain over seasonal-naive from
  6.6 % to 11.1 %;
- calendar of the target time: hour of day, weekday, holiday flag (dates passed in
  ``holidays``), optionally day of year (off by default: with a year or two of history
  it over-fits: on ETTh1 it turned an 9 % MAE gain over seasonal-naive into an 8 % loss);
  the step h;
- covariates (e.g. temperature, irradiance) at the target time and their day mean before o.

The target is ``z[o+h] - a``. Quantiles are split-conformal by default; with
``quantile_method="quantile"`` one extra LightGBM model per level is trained with the
pinball (quantile) loss instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import (
    DEFAULT_QUANTILES,
    ForecastBatch,
    Forecaster,
    check_quantiles,
    horizon_rows,
    seasonal_lag,
    values_at,
)
from gridpilot.forecast.data import History, Repair

_LAGS = (1, 2, 3, 6, 12)


def per_series(arr_nc: np.ndarray, horizon: int) -> np.ndarray:
    """Feature (N, C, H) from a value per origin and series (N, C), the same at every step."""
    n, c = arr_nc.shape
    return np.broadcast_to(arr_nc[:, :, None], (n, c, horizon))


def per_target(arr_nh: np.ndarray, n_series: int) -> np.ndarray:
    """Feature (N, C, H) from a value per origin and target step (N, H), the same for every
    series."""
    n, hzn = arr_nh.shape
    return np.broadcast_to(arr_nh[:, None, :], (n, n_series, hzn))


class GBMForecaster(Forecaster):
    """Gradient-boosted trees (LightGBM) over lag, calendar and covariate features.

    ``season`` is one day in steps (default from the data); ``holidays`` dates flagged in
    the calendar; ``max_rows`` caps training rows (origins are thinned evenly);
    ``quantile_method`` is ``"conformal"`` or ``"quantile"`` (pinball-loss models for
    ``quantiles``); ``profile_features`` adds the daily-profile features (same-hour means
    over the last days, deviation of today's level from them); ``objective`` the point loss (``"l2"``: mean, ``"l1"``: median, better
    when scored by MAE); ``day_of_year`` adds that calendar feature; ``params`` override
    LightGBM parameters; ``num_threads`` its threads (1 by default: OpenMP threads spin
    badly on a busy machine); ``n_seeds`` point models trained with seeds ``seed``,
    ``seed + 1`` … (the extra ones with the number of trees early stopping chose for the
    first) and averaged (bagging: lower variance; useful with ``feature_fraction`` < 1).
    """

    name = "gbm"
    uses_covariates = True

    def __init__(  # noqa: PLR0913
        self,
        horizon: int,
        *,
        season: int | None = None,
        holidays: Iterable[date | str | pd.Timestamp] = (),
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        max_rows: int = 300_000,
        objective: Literal["l2", "l1"] = "l2",
        day_of_year: bool = False,
        profile_features: bool = True,
        quantile_method: Literal["conformal", "quantile"] = "conformal",
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        params: dict[str, Any] | None = None,
        num_threads: int = 1,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
        seed: int = 0,
        n_seeds: int = 1,
    ) -> None:
        super().__init__(
            horizon, calibration_fraction=calibration_fraction, repair=repair, refit=refit
        )
        if quantile_method not in ("conformal", "quantile"):
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "quantile_method",
                        "must be 'conformal' or 'quantile'",
                        value=quantile_method,
                    )
                ]
            )
        if objective not in ("l2", "l1"):
            raise ValidationError(
                issues=[Issue(self.name, "objective", "must be 'l2' or 'l1'", value=objective)]
            )
        if int(n_seeds) < 1:
            raise ValidationError(
                issues=[Issue(self.name, "n_seeds", "must be at least 1", value=n_seeds)]
            )
        self.n_seeds = int(n_seeds)
        self.objective = objective
        if objective == "l1":
            self.name = f"{type(self).name}-l1"
        self.day_of_year = bool(day_of_year)
        self.profile_features = bool(profile_features)
        self.season = season
        self.holidays = frozenset(pd.Timestamp(d).date() for d in holidays)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.max_rows = int(max_rows)
        self.quantile_method = quantile_method
        self.quantile_levels = check_quantiles(quantiles)
        self.params = dict(params or {})
        self.num_threads = int(num_threads)
        self.seed = int(seed)
        self.season_: int = season or 24
        self.n_iter_: int | None = None
        self.booster_: Any = None
        self.extra_boosters_: list[Any] = []  # seeds seed+1 … (``n_seeds`` > 1)
        self.quantile_boosters_: dict[float, Any] = {}
        self.feature_names_: list[str] = []

    # ----------------------------------------------------------- geometry
    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the lags and rolling weekly features, in steps."""
        week = 7 * self.season_
        base = week * int(np.ceil(self.horizon / week)) + self.season_
        return max(base, week + 4) if self.profile_features else base

    def _on_history(self, history: History) -> None:
        self.season_ = self.season or history.steps_per_day

    # ----------------------------------------------------------- features
    def _seasonal_rows(self, pos: np.ndarray, period: int, extra: int = 0) -> np.ndarray:
        """Rows (N, H) of the same phase of ``period`` before the origin as each target in
        ``pos`` (N, H) (see :func:`~gridpilot.forecast.base.seasonal_lag`)."""
        return pos - seasonal_lag(np.arange(pos.shape[1]), period, extra)[None, :]

    def _features(
        self,
        z: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature matrix (N·C·H, F), anchor (N, C) and target positions (N, H)."""
        s = self.season_
        n, c, hzn = len(origins), z.shape[1], self.horizon
        steps = np.arange(hzn)
        pos = horizon_rows(origins, hzn)  # (N, H) target rows
        day = origins[:, None] + np.arange(-s, 0)[None, :]
        zd = z[day]  # (N, S, C)
        anchor = zd.mean(axis=1)  # (N, C)
        cols: dict[str, np.ndarray] = {}
        for k in _LAGS:
            cols[f"lag{k}"] = per_series(z[origins - k] - anchor, hzn)
        cols["day_std"] = per_series(zd.std(axis=1), hzn)
        week = origins[:, None] + np.arange(-7 * s, 0)[None, :]
        cols["week_mean"] = per_series(z[week].mean(axis=1) - anchor, hzn)
        for name, period, extra in (("sn_day", s, 0), ("sn_2day", s, 1), ("sn_week", 7 * s, 0)):
            src = self._seasonal_rows(pos, period, extra)  # (N, H)
            cols[name] = values_at(z, src) - anchor[:, :, None]
        if self.profile_features:
            cols.update(self._profile_features(z, origins, pos, anchor))
        cols["step"] = per_target(np.broadcast_to(steps[None, :], (n, hzn)).astype(float), c)
        cols["series"] = np.broadcast_to(np.arange(c, dtype=float)[None, :, None], (n, c, hzn))
        ts = index[pos.ravel()]
        hour = (ts.hour + ts.minute / 60.0).to_numpy(dtype=float).reshape(n, hzn)
        cols["hour"] = per_target(hour, c)
        cols["weekday"] = per_target(ts.weekday.to_numpy(dtype=float).reshape(n, hzn), c)
        if self.day_of_year:
            cols["doy"] = per_target(ts.dayofyear.to_numpy(dtype=float).reshape(n, hzn), c)
        if self.holidays:
            hol = np.fromiter((d in self.holidays for d in ts.date), bool, len(ts))
            cols["holiday"] = per_target(hol.reshape(n, hzn).astype(float), c)
        if cov is not None:
            for j in range(cov.shape[1]):
                cols[f"cov{j}"] = per_target(cov[pos, j], c)
                cols[f"cov{j}_day"] = per_target(
                    np.broadcast_to(cov[day, j].mean(axis=1)[:, None], (n, hzn)), c
                )
        for name, arr in self._extra_features(z, index, cov, origins, pos).items():
            cols[name] = arr
        self.feature_names_ = list(cols)
        feats = np.stack([np.ascontiguousarray(v).reshape(-1) for v in cols.values()], axis=1)
        return feats, anchor, pos

    def _profile_features(
        self, z: np.ndarray, origins: np.ndarray, pos: np.ndarray, anchor: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Daily-profile features (N, C, H): same-hour means/median over the last days
        (past only, relative to ``anchor``), lags 4, 5 and one day, and the deviation of
        the last hours before each origin from the same hours on earlier days."""
        s = self.season_
        hzn = self.horizon
        src = self._seasonal_rows(pos, s)[None] - s * np.arange(7)[:, None, None]  # (7, N, H)
        same_hour = np.transpose(z[src], (0, 1, 3, 2))  # (7, N, C, H)
        rel = anchor[:, :, None]
        out: dict[str, np.ndarray] = {
            "sh_mean7": same_hour.mean(axis=0) - rel,
            "sh_mean3": same_hour[:3].mean(axis=0) - rel,
            "sh_med7": np.median(same_hour, axis=0) - rel,
        }
        for name, k in (("lag4", 4), ("lag5", 5), ("lag_day", s)):
            out[name] = per_series(z[origins - k] - anchor, hzn)
        last = z[origins - 1]  # (N, C)
        out["dev_day"] = per_series(last - z[origins - 1 - s], hzn)
        days = s * np.arange(1, 8)
        week_before = z[origins[:, None] - 1 - days[None, :]].mean(axis=1)
        out["dev_mean7"] = per_series(last - week_before, hzn)
        recent = origins[:, None] - np.arange(1, 4)[None, :]  # (N, 3)
        earlier = recent[:, :, None] - days[None, None, :]  # (N, 3, 7)
        out["dev3_mean7"] = per_series(z[recent].mean(axis=1) - z[earlier].mean(axis=(1, 2)), hzn)
        return out

    def _extra_features(
        self,
        z: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
        pos: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Hook for subclasses: more (N, C, H) feature arrays."""
        return {}

    def _target(self, z: np.ndarray, anchor: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return (values_at(z, pos) - anchor[:, :, None]).reshape(-1)

    def _from_target(self, pred: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        return pred + anchor[:, :, None]

    def _postprocess(
        self, pred: np.ndarray, index: pd.DatetimeIndex, pos: np.ndarray
    ) -> np.ndarray:
        """Hook for subclasses: adjust forecasts (N, C, H) in data units."""
        return pred

    # ------------------------------------------------------------------ fit
    def _lgb_params(self, objective: str, alpha: float | None = None) -> dict[str, Any]:
        p: dict[str, Any] = {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": 63,
            "min_data_in_leaf": 100,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "num_threads": self.num_threads,
            "verbose": -1,
            "seed": self.seed,
        }
        if alpha is not None:
            p["alpha"] = alpha
        p.update(self.params)
        return p

    def _origins(self, first: int, last: int, n_series: int) -> np.ndarray:
        origins = np.arange(first, last + 1)
        per_origin = n_series * self.horizon
        stride = max(1, int(np.ceil(len(origins) * per_origin / self.max_rows)))
        return origins[::stride]

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        import lightgbm as lgb

        z, index, cov = self.normalise(data.values), data.index, data.cov
        end = len(z) if val_start is None else val_start
        tr = self._origins(self.min_context, end - self.horizon, z.shape[1])
        x, anchor, pos = self._features(z, index, cov, tr)
        y = self._target(z, anchor, pos)
        cat = [self.feature_names_.index("series")]
        dtrain = lgb.Dataset(x, y, feature_name=self.feature_names_, categorical_feature=cat)
        if val_start is not None:
            va = self._origins(max(val_start, self.min_context), len(z) - self.horizon, z.shape[1])
            xv, av, pv = self._features(z, index, cov, va)
            dval = lgb.Dataset(xv, self._target(z, av, pv), reference=dtrain)
            booster = lgb.train(
                self._lgb_params(self.objective),
                dtrain,
                num_boost_round=self.n_estimators,
                valid_sets=[dval],
                callbacks=[lgb.early_stopping(50, verbose=False)],
            )
            self.n_iter_ = max(1, int(booster.best_iteration or self.n_estimators))
        else:
            booster = lgb.train(
                self._lgb_params(self.objective),
                dtrain,
                num_boost_round=self.n_iter_ or self.n_estimators,
            )
        self.booster_ = booster
        self.extra_boosters_ = [
            lgb.train(
                {**self._lgb_params(self.objective), "seed": self.seed + k},
                dtrain,
                num_boost_round=self.n_iter_ or self.n_estimators,
            )
            for k in range(1, self.n_seeds)
        ]
        self.quantile_boosters_ = {}
        if self.quantile_method == "quantile":
            for q in self.quantile_levels:
                self.quantile_boosters_[q] = lgb.train(
                    self._lgb_params("quantile", q),
                    dtrain,
                    num_boost_round=self.n_iter_ or self.n_estimators,
                )

    # -------------------------------------------------------------- predict
    def _predict_booster(
        self, booster: Any, batch: ForecastBatch, extra: Sequence[Any] = ()
    ) -> np.ndarray:
        """Forecasts (N, C, H) in data units of ``booster`` (averaged with ``extra`` ones)."""
        z, origins = self.normalise(batch.values), batch.origins
        x, anchor, pos = self._features(z, batch.index, batch.cov, origins)
        boosters = [booster, *extra]
        raw = np.mean(
            [b.predict(x, num_iteration=b.best_iteration or None) for b in boosters], axis=0
        )
        zp = self._from_target(raw.reshape(len(origins), z.shape[1], self.horizon), anchor)
        return self._postprocess(self.denormalise(zp), batch.index, pos)

    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Point forecasts (N, C, H) in data units."""
        self._check_trained(self.booster_)
        return self._predict_booster(self.booster_, batch, self.extra_boosters_)

    def _quantiles(self, batch: ForecastBatch) -> tuple[np.ndarray, np.ndarray]:
        """Point (N, C, H) and quantiles (Q, N, C, H); pinball-loss models if so configured."""
        if self.quantile_method == "conformal":
            return super()._quantiles(batch)
        missing = [q for q in batch.quantiles if q not in self.quantile_boosters_]
        if missing:
            raise ValidationError(
                issues=[
                    Issue(
                        self.name,
                        "quantiles",
                        f"quantile models were trained for {list(self.quantile_levels)} only",
                        value=missing[0],
                    )
                ]
            )
        point = self._forecast(batch)
        qs = np.stack(
            [self._predict_booster(self.quantile_boosters_[q], batch) for q in batch.quantiles]
        )
        return point, np.sort(qs, axis=0)  # no quantile crossing
