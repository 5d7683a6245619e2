"""Forecast error metrics on arrays of any matching shape (series on axis ``axis``).

All functions take actuals ``y`` and forecasts in the same units and return floats in those
units (MAE, RMSE, pinball), squared units (MSE), or fractions (MAPE, sMAPE, coverage).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def mae(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error, data units."""
    return float(np.mean(np.abs(p - y)))


def mse(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error, squared data units."""
    return float(np.mean((p - y) ** 2))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    """Root mean squared error, data units."""
    return float(np.sqrt(mse(y, p)))


def mape(y: np.ndarray, p: np.ndarray, eps_rel: float = 1e-3) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10 %).

    Points with ``|y| <= eps_rel · mean|y|`` are left out (the ratio is undefined there);
    near-zero series (net loads, PV at night) make MAPE meaningless: read sMAPE or MAE.
    """
    a = np.abs(y)
    keep = a > eps_rel * max(float(a.mean()), 1e-300)
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs(p - y)[keep] / a[keep]))


def smape(y: np.ndarray, p: np.ndarray) -> float:
    """Symmetric MAPE as a fraction in [0, 2]: mean of 2|p − y| / (|y| + |p|), 0/0 counted 0."""
    den = np.abs(y) + np.abs(p)
    num = 2.0 * np.abs(p - y)
    return float(np.mean(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))


def pinball(y: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> float:
    """Pinball (quantile) loss averaged over levels and points, data units."""
    if not quantiles:
        return float("nan")
    losses = []
    for q, pred in quantiles.items():
        d = y - pred
        losses.append(np.mean(np.maximum(q * d, (q - 1.0) * d)))
    return float(np.mean(losses))


def pinball_by_quantile(y: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> dict[float, float]:
    """Pinball loss of each quantile level, data units."""
    out = {}
    for q, pred in quantiles.items():
        d = y - pred
        out[float(q)] = float(np.mean(np.maximum(q * d, (q - 1.0) * d)))
    return out


def reliability(y: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> dict[float, float]:
    """Observed share of actuals at or below each quantile forecast (fraction), by nominal
    level: a calibrated forecast has share ≈ level (the reliability diagram)."""
    return {float(q): float(np.mean(y <= pred)) for q, pred in sorted(quantiles.items())}


def rmae(y: np.ndarray, p: np.ndarray) -> float:
    """MAE relative to the range of the actuals (OpenSTEF's rMAE), fraction."""
    rng = float(np.max(y) - np.min(y))
    return float("nan") if rng <= 0 else mae(y, p) / rng


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of points with lo ≤ y ≤ hi (fraction)."""
    return float(np.mean((y >= lo) & (y <= hi)))


def all_metrics(
    y: np.ndarray,
    p: np.ndarray,
    quantiles: Mapping[float, np.ndarray] | None = None,
    scale: np.ndarray | None = None,
    series_axis: int = 1,
) -> dict[str, float]:
    """Every metric at once: mae, rmse, mse, mape, smape; with ``scale`` (one std per series)
    also ``mse_norm``/``mae_norm`` on standardised data; with quantiles ``pinball`` (and
    ``pinball_norm``), per level ``pinball_q<level>`` (data units) and ``below_q<level>``
    (share of actuals at or below that quantile: :func:`reliability`) and, when 0.1 and 0.9
    are present, ``coverage_80`` (P10–P90)."""
    out = {
        "mae": mae(y, p),
        "rmse": rmse(y, p),
        "mse": mse(y, p),
        "mape": mape(y, p),
        "smape": smape(y, p),
    }
    shape = [1] * y.ndim
    if scale is not None:
        shape[series_axis] = -1
        s = np.asarray(scale, dtype=float).reshape(shape)
        out["mse_norm"] = mse(y / s, p / s)
        out["mae_norm"] = mae(y / s, p / s)
    if quantiles:
        out["pinball"] = pinball(y, quantiles)
        if scale is not None:
            s = np.asarray(scale, dtype=float).reshape(shape)
            out["pinball_norm"] = pinball(y / s, {q: v / s for q, v in quantiles.items()})
        qk = {round(q, 6): v for q, v in quantiles.items()}
        if 0.1 in qk and 0.9 in qk:
            out["coverage_80"] = coverage(y, qk[0.1], qk[0.9])
        for q, v in pinball_by_quantile(y, quantiles).items():
            out[f"pinball_q{q:g}"] = v
        for q, v in reliability(y, quantiles).items():
            out[f"below_q{q:g}"] = v
    return out
