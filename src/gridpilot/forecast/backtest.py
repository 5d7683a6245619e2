"""Rolling-origin backtests: a model and the seasonal-naive baseline scored side by side.

The model is fitted on the rows before the test part (tuned on a validation part when
``val_start`` is given). With ``refit_every`` it is trained again, with the settings tuned
then, on every row observed before each block of ``refit_every`` test origins (periodic
refit, as in operation: a block starting at row b sees rows [0, b) only). Then every origin in the test part (every ``stride`` steps, targets
inside the test part) is forecast from the actual history up to it, as in operation.

Quantiles: ``calibration="fixed"`` uses the residuals held out at fit time;
``calibration="rolling"`` (default) recalibrates the split-conformal offsets every
``recalibrate_every`` origins (default one day) from the last ``calibration_window``
out-of-sample residuals observed so far (held-out ones from fit, then those of test origins
whose targets are already observed) — what an operator does when errors drift with the
season. Models with their own quantile models (LightGBM with
quantile loss) keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import DEFAULT_QUANTILES, Forecaster, check_quantiles, target_windows
from gridpilot.forecast.data import History, align_covariates, prepare_history
from gridpilot.forecast.metrics import all_metrics
from gridpilot.forecast.naive import SeasonalNaive


@dataclass
class BacktestResult:
    """Scores and forecasts of one backtest.

    ``metrics`` and ``baseline_metrics`` hold the pooled metrics (see
    :func:`~gridpilot.forecast.metrics.all_metrics`; ``*_norm`` on data standardised with the
    training rows); ``per_series`` one row per series (model and baseline MAE, coverage).
    Arrays are (N, C, H) in data units: ``actual``, ``point``, ``baseline_point``;
    ``quantiles`` maps level → (N, C, H). ``train_s`` is the model's training time in
    seconds: the fit plus every periodic refit (``refit_every``).
    """

    model: str
    horizon: int
    columns: tuple[str, ...]
    origins: pd.DatetimeIndex
    metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    per_series: pd.DataFrame
    actual: np.ndarray
    point: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)
    baseline_point: np.ndarray | None = None
    train_s: float = 0.0
    freq: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(hours=1))

    @property
    def mae_reduction(self) -> float | None:
        """1 − MAE_model / MAE_baseline (fraction; 0.25 = 25 % lower MAE), on standardised
        data so that every series weighs the same."""
        if not self.baseline_metrics:
            return None
        key = "mae_norm" if "mae_norm" in self.metrics else "mae"
        return 1.0 - self.metrics[key] / self.baseline_metrics[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "model": self.model,
            "horizon": self.horizon,
            "series": list(self.columns),
            "n_origins": len(self.origins),
            "first_origin": str(self.origins[0]),
            "last_origin": str(self.origins[-1]),
            "train_s": round(self.train_s, 3),
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()},
            "baseline": (
                {k: round(v, 6) for k, v in self.baseline_metrics.items()}
                if self.baseline_metrics
                else None
            ),
            "mae_reduction_vs_baseline": (
                None if self.mae_reduction is None else round(self.mae_reduction, 4)
            ),
            "per_series": self.per_series.round(6).reset_index().to_dict(orient="records"),
        }

    def plot(self, path: str | Path, series: str | None = None, max_days: int = 14) -> Path:
        """Write forecast vs actual (stitched forecasts, P10–P90 band) to PNG or HTML."""
        from gridpilot.forecast.plot import plot_backtest

        return plot_backtest(self, path, series=series, max_days=max_days)


def _position(h: History, when: int | str | pd.Timestamp | None, what: str) -> int | None:
    if when is None:
        return None
    if isinstance(when, int | np.integer):
        pos = int(when)
    else:
        pos = int(h.index.searchsorted(pd.Timestamp(when)))
    if not 0 < pos < len(h):
        raise ValidationError(
            issues=[Issue("backtest", what, f"must lie inside the data (0, {len(h)})", value=when)]
        )
    return pos


def rolling_quantiles(  # noqa: PLR0913
    model: Forecaster,
    values: np.ndarray,
    index: pd.DatetimeIndex,
    cov: np.ndarray | None,
    origins: np.ndarray,
    quantiles: Sequence[float],
    *,
    window: int,
    every: int,
    point_all: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Point (N, C, H) and quantiles (Q, N, C, H) with conformal offsets recomputed every
    ``every`` origins from the last ``window`` out-of-sample residuals observed so far: the
    model's held-out residuals from fit, followed by those of test origins whose targets
    are already observed (scaled by :meth:`Forecaster.residual_scale` where the model has
    one). In-sample residuals are never used: they would make the bands too narrow.
    ``point_all`` (origins min..max, e.g. from periodic refits) replaces the model's
    forecasts."""
    if model.residuals_ is None:
        raise ValidationError(issues=[Issue(model.name, "state", "is not fitted")])
    hzn = model.horizon
    first, last = int(origins.min()), int(origins.max())
    allo = np.arange(first, last + 1)
    if point_all is None:
        point_all = model.forecast_origins(values, index, cov, allo)
    ok = allo + hzn <= len(values)
    resid = np.full_like(point_all, np.nan)
    resid[ok] = target_windows(values, allo[ok], hzn) - point_all[ok]
    scale_all = model.residual_scale(index, allo)
    if scale_all is not None:
        resid = resid / scale_all
    point = point_all[origins - first]
    scale = None if scale_all is None else np.nan_to_num(scale_all[origins - first])
    held = model.residuals_
    qs = np.empty((len(quantiles), *point.shape))
    for b in range(first, last + 1, every):
        block = (origins >= b) & (origins < b + every)
        if not block.any():
            continue
        seen = max(0, b - hzn - first + 1)  # test origins whose targets end before b
        cal = np.concatenate([held, resid[:seen]])[-window:]
        offsets = model.quantile_offsets(quantiles, cal)  # (Q, C, H)
        if scale is None:
            qs[:, block] = point[block][None] + offsets[:, None]
        else:
            qs[:, block] = point[block][None] + offsets[:, None] * scale[block][None]
    return point, qs


@dataclass(frozen=True)
class _Split:
    """Row positions of a backtest: test part [ts, te), validation start ``vs`` (or None),
    the test origins."""

    ts: int
    te: int
    vs: int | None
    origins: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """What every model of one backtest runs on: the history, its split, the covariates
    (array on the history's rows, and as a frame), the quantile levels and how they are
    calibrated, the periodic refit."""

    h: History
    split: _Split
    cov_full: np.ndarray | None
    cov_df: pd.DataFrame | None
    qs: tuple[float, ...]
    calibration: str
    window: int
    every: int
    refit_every: int | None


def _split(  # noqa: PLR0913
    h: History,
    hzn: int,
    test_start: int | str | pd.Timestamp | None,
    test_end: int | str | pd.Timestamp | None,
    val_start: int | str | pd.Timestamp | None,
    test_fraction: float,
    stride: int,
) -> _Split:
    """The test part, the validation start and the origins (checked)."""
    if int(stride) < 1:
        raise ValidationError(issues=[Issue("backtest", "stride", "must be ≥ 1", value=stride)])
    ts = _position(h, test_start, "test_start")
    if ts is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValidationError(
                issues=[
                    Issue("backtest", "test_fraction", "must lie in (0, 1)", value=test_fraction)
                ]
            )
        ts = len(h) - round(test_fraction * len(h))
    te = _position(h, test_end, "test_end") or len(h)
    vs = _position(h, val_start, "val_start")
    if vs is not None and not vs < ts:
        raise ValidationError(
            issues=[Issue("backtest", "val_start", "must come before test_start", value=val_start)]
        )
    origins = np.arange(ts, te - hzn + 1, int(stride))
    if len(origins) == 0:
        raise ValidationError(
            issues=[
                Issue(
                    "backtest",
                    "test part",
                    f"has {te - ts} rows, fewer than the horizon {hzn}",
                    value=te - ts,
                )
            ]
        )
    return _Split(ts, te, vs, origins)


def _refit_points(m: Forecaster, plan: _Plan) -> np.ndarray:
    """Point forecasts of every origin from the first to the last test origin, the model
    trained again on all rows before each block of ``refit_every`` origins."""
    h, origins = plan.h, plan.split.origins
    assert plan.refit_every is not None
    if getattr(m, "quantile_method", "conformal") == "quantile":
        raise ValidationError(
            issues=[
                Issue(
                    m.name,
                    "refit_every",
                    "periodic refit needs conformal quantiles, not quantile models",
                    value=plan.refit_every,
                )
            ]
        )
    cov_arr = plan.cov_full if m.uses_covariates else None
    allo = np.arange(int(origins.min()), int(origins.max()) + 1)
    point_all = np.empty((len(allo), h.values.shape[1], m.horizon))
    for b in range(int(allo[0]), int(allo[-1]) + 1, int(plan.refit_every)):
        if b > allo[0]:
            m.refit_until(h.values, h.index, cov_arr, b)
        sel = (allo >= b) & (allo < b + int(plan.refit_every))
        point_all[sel] = m.forecast_origins(h.values, h.index, cov_arr, allo[sel])
    return point_all


def _run(m: Forecaster, plan: _Plan) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """Fit ``m`` and forecast every test origin: point (N, C, H) and quantiles by level."""
    h, sp, qs = plan.h, plan.split, plan.qs
    train = h.slice(0, sp.vs if sp.vs is not None else sp.ts)
    val = h.slice(sp.vs, sp.ts) if sp.vs is not None else None
    cov_fit = None
    if plan.cov_df is not None and m.uses_covariates:
        cov_fit = plan.cov_df.iloc[: sp.ts]
    m.fit(train, cov_fit, validation=val)
    cov_arr = plan.cov_full if m.uses_covariates else None
    own = getattr(m, "quantile_method", "conformal") == "quantile"
    args = (h.values, h.index, cov_arr, sp.origins, qs)
    if plan.refit_every is not None and not isinstance(m, SeasonalNaive):
        point_all = _refit_points(m, plan)
        if plan.calibration == "fixed":
            point = point_all[sp.origins - sp.origins.min()]
            off = m.quantile_offsets(qs)[:, None]  # (Q, 1, C, H)
            sc = m.residual_scale(h.index, sp.origins)
            qarr = point[None] + (off if sc is None else off * np.nan_to_num(sc)[None])
        else:
            point, qarr = rolling_quantiles(
                m, *args, window=plan.window, every=plan.every, point_all=point_all
            )
    elif plan.calibration == "fixed" or own:
        point, qarr = m.quantile_origins(*args)
    else:
        point, qarr = rolling_quantiles(m, *args, window=plan.window, every=plan.every)
    return point, {q: qarr[i] for i, q in enumerate(qs)}


def _per_series(
    h: History,
    point: np.ndarray,
    actual: np.ndarray,
    qd: dict[float, np.ndarray],
    base_point: np.ndarray | None,
    scale: np.ndarray,
) -> pd.DataFrame:
    """One row per series: MAE (data units and standardised), P10–P90 coverage and the
    baseline's MAE with the reduction against it."""
    rows = []
    for j, name in enumerate(h.columns):
        r: dict[str, Any] = {
            "series": name,
            "mae": float(np.mean(np.abs(point[:, j] - actual[:, j]))),
            "mae_norm": float(np.mean(np.abs(point[:, j] - actual[:, j])) / scale[j]),
        }
        if 0.1 in qd and 0.9 in qd:
            r["coverage_80"] = float(
                np.mean((actual[:, j] >= qd[0.1][:, j]) & (actual[:, j] <= qd[0.9][:, j]))
            )
        if base_point is not None:
            r["baseline_mae"] = float(np.mean(np.abs(base_point[:, j] - actual[:, j])))
            r["mae_reduction"] = 1.0 - r["mae"] / r["baseline_mae"]
        rows.append(r)
    return pd.DataFrame(rows).set_index("series")


def _covariates(
    covariates: pd.DataFrame | None, h: History
) -> tuple[np.ndarray | None, pd.DataFrame | None]:
    """The covariates on the history's rows, as an array and as a frame (None, None
    without)."""
    if covariates is None:
        return None, None
    from gridpilot.forecast.base import _cov_names

    cov_full = align_covariates(covariates, h.index)
    return cov_full, pd.DataFrame(cov_full, index=h.index, columns=_cov_names(covariates))


def _check_options(calibration: str, refit_every: int | None) -> None:
    """The calibration rule and the refit period, checked."""
    if calibration not in ("rolling", "fixed"):
        raise ValidationError(
            issues=[
                Issue("backtest", "calibration", "must be 'rolling' or 'fixed'", value=calibration)
            ]
        )
    if refit_every is not None and int(refit_every) < 1:
        raise ValidationError(
            issues=[Issue("backtest", "refit_every", "must be ≥ 1 step", value=refit_every)]
        )


def backtest(  # noqa: PLR0913
    model: Forecaster,
    data: pd.DataFrame | History,
    *,
    test_start: int | str | pd.Timestamp | None = None,
    test_end: int | str | pd.Timestamp | None = None,
    val_start: int | str | pd.Timestamp | None = None,
    test_fraction: float = 0.2,
    stride: int = 1,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    calibration: Literal["rolling", "fixed"] = "rolling",
    calibration_window: int | None = None,
    recalibrate_every: int | None = None,
    baseline: Forecaster | Literal["seasonal-naive"] | None = "seasonal-naive",
    covariates: pd.DataFrame | None = None,
    refit_every: int | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``model`` (and a baseline) on ``data``.

    Rows before ``test_start`` (default: the last ``test_fraction`` of the rows are the test
    part) train the model; with ``val_start`` the rows [val_start, test_start) are its
    validation part (tuning, conformal calibration). Test origins run every ``stride`` steps
    with all targets before ``test_end``. Returns a :class:`BacktestResult` with metrics in
    data units and on data standardised with the training rows. ``refit_every`` (steps):
    retrain the point model on all rows before each block of that many test steps (the
    first block uses the fit before the test part); ``None``: fit once.
    """
    h = prepare_history(data, repair=model.repair)
    qs = check_quantiles(quantiles)
    _check_options(calibration, refit_every)
    hzn = model.horizon
    sp = _split(h, hzn, test_start, test_end, val_start, test_fraction, stride)
    cov_full, cov_df = _covariates(covariates, h)
    spd = h.steps_per_day
    plan = _Plan(
        h,
        sp,
        cov_full,
        cov_df,
        tuple(qs),
        calibration,
        calibration_window or 30 * spd,
        recalibrate_every or spd,
        refit_every,
    )
    point, qd = _run(model, plan)
    actual = target_windows(h.values, sp.origins, hzn)
    train_rows = h.values[: sp.vs if sp.vs is not None else sp.ts]
    scale = train_rows.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    metrics = all_metrics(actual, point, qd, scale)
    base_metrics = None
    base_point = None
    if baseline == "seasonal-naive":
        baseline = SeasonalNaive(hzn, repair=model.repair)
    if baseline is not None:
        base_point, bq = _run(baseline, plan)
        base_metrics = all_metrics(actual, base_point, bq, scale)
    return BacktestResult(
        model=model.name,
        horizon=hzn,
        columns=h.columns,
        origins=h.index[sp.origins],
        metrics=metrics,
        baseline_metrics=base_metrics,
        per_series=_per_series(h, point, actual, qd, base_point, scale),
        actual=actual,
        point=point,
        quantiles=qd,
        baseline_point=base_point,
        train_s=model.train_s_,
        freq=h.freq,
    )
