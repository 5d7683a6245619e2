"""Models on generated series: the linear model must recover a known seasonal signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import LinearForecaster, SeasonalNaive
from gridpilot.forecast.base import target_windows
from gridpilot.forecast.linear import moving_average_matrix


def test_seasonal_naive_repeats_the_previous_day() -> None:
    obs, _ = make_series(days=10)
    m = SeasonalNaive(30).fit(obs)
    res = m.predict(quantiles=(0.5,))
    v = obs.to_numpy()
    np.testing.assert_array_equal(res.point[:24], v[-24:])
    np.testing.assert_array_equal(res.point[24:30], v[-24:-18])  # step ≥ 24 repeats again
    assert res.index[0] == obs.index[-1] + pd.Timedelta(hours=1)


def test_linear_recovers_noise_free_signal_exactly() -> None:
    obs, sig = make_series(days=40, noise=0.0)
    m = LinearForecaster(24, lookback=168, penalties=(1e-6,)).fit(obs.iloc[:-24])
    res = m.predict()
    np.testing.assert_allclose(res.point, sig.to_numpy()[-24:], atol=2e-3)


def test_linear_recovers_signal_under_noise_and_beats_naive() -> None:
    obs, sig = make_series(days=90, noise=0.3, seed=1)
    cut = 70 * 24
    m = LinearForecaster(24, lookback=(168, 336)).fit(obs.iloc[:cut])
    assert m.lookback_ in (168, 336)
    vals = obs.to_numpy()
    origins = np.arange(cut, len(obs) - 24 + 1, 6)
    p = m.forecast_origins(vals, obs.index, None, origins)
    truth = target_windows(sig.to_numpy(), origins, 24)
    naive = SeasonalNaive(24).fit(obs.iloc[:cut])
    pn = naive.forecast_origins(vals, obs.index, None, origins)
    err_model = np.abs(p - truth).mean()
    err_naive = np.abs(pn - truth).mean()
    # naive carries yesterday's noise (≈0.8·σ = 0.24); the model averages it out
    assert err_model < 0.35 * err_naive
    assert err_model < 0.08


def test_ridge_closed_form_matches_direct_solve() -> None:
    obs, _ = make_series(days=20, noise=0.2, seed=3)
    lam = 0.05
    m = LinearForecaster(6, lookback=12, kernel=0, penalties=(lam,), refit=False)
    m.fit(obs.iloc[: 15 * 24], validation=obs.iloc[15 * 24 :])
    z = m.normalise(obs.to_numpy()[: 15 * 24])
    origins = np.arange(12, len(z) - 6 + 1)
    x = np.concatenate(
        [np.transpose(z[origins[:, None] + np.arange(-12, 0)], (0, 2, 1)).reshape(-1, 12)]
    )
    y = np.transpose(z[origins[:, None] + np.arange(6)], (0, 2, 1)).reshape(-1, 6)
    lvl = x[:, -1:]
    xc, yc = x - lvl, y - lvl
    xm, ym = xc.mean(0), yc.mean(0)
    a = (xc - xm).T @ (xc - xm) + lam * len(xc) * np.eye(12)
    w = np.linalg.solve(a, (xc - xm).T @ (yc - ym))
    assert m.weights_ is not None and m.bias_ is not None
    np.testing.assert_allclose(m.weights_, w, atol=1e-8)
    np.testing.assert_allclose(m.bias_, ym - xm @ w, atol=1e-8)


def test_moving_average_matrix_rows_sum_to_one() -> None:
    ma = moving_average_matrix(30, 5)
    np.testing.assert_allclose(ma.sum(axis=1), 1.0)
    x = np.arange(30.0)
    np.testing.assert_allclose((ma @ x)[2:-2], x[2:-2])  # a line is its own moving average


def test_quantiles_cover_gaussian_noise() -> None:
    obs, _ = make_series(days=120, noise=0.3, seed=2)
    cut = 90 * 24
    m = LinearForecaster(24, lookback=168).fit(obs.iloc[:cut])
    vals = obs.to_numpy()
    origins = np.arange(cut, len(obs) - 24 + 1, 3)
    _, q = m.quantile_origins(vals, obs.index, None, origins, (0.1, 0.5, 0.9))
    y = target_windows(vals, origins, 24)
    cov = np.mean((y >= q[0]) & (y <= q[2]))
    assert 0.75 <= cov <= 0.85
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
    # the band is about 2·1.28·σ wide
    assert 0.6 < float(np.mean(q[2] - q[0])) < 0.95


def test_predict_with_new_history_and_shorter_horizon() -> None:
    obs, _ = make_series(days=40)
    m = LinearForecaster(24, lookback=168).fit(obs.iloc[:-48])
    res = m.predict(obs, horizon=12)
    assert res.point.shape == (12, 2)
    assert res.index[0] == obs.index[-1] + pd.Timedelta(hours=1)
    with pytest.raises(ValidationError, match="trained horizon"):
        m.predict(obs, horizon=48)
    with pytest.raises(ValidationError, match="columns"):
        m.predict(obs[["feeder_a_mw"]])
    with pytest.raises(ValidationError, match="not fitted"):
        LinearForecaster(24).predict()


def test_validation_frame_must_follow_history() -> None:
    obs, _ = make_series(days=40)
    with pytest.raises(ValidationError, match="one step"):
        LinearForecaster(24, lookback=168).fit(obs.iloc[:600], validation=obs.iloc[610:])
