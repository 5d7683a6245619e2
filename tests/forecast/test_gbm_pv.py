"""LightGBM with covariates and the PV model with its clear-sky feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import GBMForecaster, PVForecaster, SeasonalNaive, clearsky_ghi
from gridpilot.forecast.base import ForecastBatch, target_windows

FAST = {"n_estimators": 80, "max_rows": 30_000}


def _temperature_driven(days: int = 70, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load = daily shape + strong response to a random daily temperature (known at target)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=days * 24, freq="h")
    t = np.arange(len(idx))
    temp_day = rng.normal(10, 6, days)
    temp = np.repeat(temp_day, 24) + 3 * np.sin(2 * np.pi * (t - 9) / 24)
    load = 5 + np.sin(2 * np.pi * t / 24) - 0.25 * temp + 0.05 * rng.standard_normal(len(t))
    return pd.DataFrame({"load_mw": load}, index=idx), pd.DataFrame({"temp_c": temp}, index=idx)


def test_gbm_uses_covariates_and_beats_naive() -> None:
    load, temp = _temperature_driven()
    cut = 55 * 24
    m = GBMForecaster(24, **FAST).fit(load.iloc[:cut], temp.iloc[:cut])
    vals, origins = load.to_numpy(), np.arange(cut, len(load) - 24 + 1, 4)
    cov = temp.to_numpy()
    p = m.forecast_origins(vals, load.index, cov, origins)
    pn = SeasonalNaive(24).fit(load.iloc[:cut]).forecast_origins(vals, load.index, None, origins)
    y = target_windows(vals, origins, 24)
    assert np.abs(p - y).mean() < 0.5 * np.abs(pn - y).mean()
    # prediction needs the covariates over the horizon
    with pytest.raises(ValidationError, match="covariates"):
        m.predict(load.iloc[:cut])
    with pytest.raises(ValidationError, match=r"temp_c.*no finite value"):
        m.predict(load.iloc[:cut], temp.iloc[: cut + 5])
    res = m.predict(load.iloc[:cut], temp)
    assert res.point.shape == (24, 1)


def test_gbm_quantile_loss_variant_is_monotone() -> None:
    obs, _ = make_series(days=30, noise=0.2)
    m = GBMForecaster(24, quantile_method="quantile", refit=False, **FAST).fit(obs)
    res = m.predict(quantiles=(0.1, 0.5, 0.9))
    q1, q5, q9 = (res.quantile(q) for q in (0.1, 0.5, 0.9))
    assert (q1 <= q5).all() and (q5 <= q9).all()
    assert float(np.mean(q9 - q1)) > 0.1  # a real band, not a point
    with pytest.raises(ValidationError, match="trained for"):
        m.predict(quantiles=(0.05, 0.5))


def test_linear_refuses_covariates() -> None:
    load, temp = _temperature_driven(days=30)
    from gridpilot.forecast import LinearForecaster

    with pytest.raises(ValidationError, match="does not use covariates"):
        LinearForecaster(24, lookback=48).fit(load, temp)


def _pv(days: int = 60, seed: int = 0) -> pd.DataFrame:
    idx = pd.date_range("2024-05-01", periods=days * 24, freq="h")
    ghi, _ = clearsky_ghi(idx, 48.0, 8.0)
    rng = np.random.default_rng(seed)
    cloud = np.repeat(rng.uniform(0.3, 1.0, days), 24)  # one cloudiness per day
    return pd.DataFrame({"pv_mw": 2.0 * ghi / ghi.max() * cloud}, index=idx)


def test_clearsky_shape_is_physical() -> None:
    idx = pd.date_range("2024-06-21", periods=24, freq="h")
    ghi, elev = clearsky_ghi(idx, 48.0, 8.0)
    assert ghi[0] == 0.0 and ghi[12] > 700  # midnight dark, near solar noon bright (UTC+~0.5h)
    assert (ghi[elev <= 0] == 0).all()


def test_pv_forecaster_zero_at_night_capped_and_beats_naive() -> None:
    pv = _pv()
    cut = 45 * 24
    m = PVForecaster(24, latitude=48.0, longitude=8.0, **FAST).fit(pv.iloc[:cut])
    vals, origins = pv.to_numpy(), np.arange(cut, len(pv) - 24 + 1, 3)
    p, q = m.quantile_origins(vals, pv.index, None, origins, (0.1, 0.9))
    y = target_windows(vals, origins, 24)
    ghi, _ = clearsky_ghi(pv.index, 48.0, 8.0)
    night = ghi[origins[:, None] + np.arange(24)] <= 0
    assert (p[:, 0][night] == 0).all() and (q[:, :, 0][:, night] == 0).all()
    cap = vals[:cut].max()
    assert p.max() <= cap + 1e-9 and p.min() >= 0
    pn = SeasonalNaive(24).fit(pv.iloc[:cut]).forecast_origins(vals, pv.index, None, origins)
    assert np.abs(p - y).mean() < 0.85 * np.abs(pn - y).mean()
    with pytest.raises(ValidationError, match="latitude"):
        PVForecaster(24, latitude=120.0, longitude=0.0)


def test_pv_backtest_band_scales_with_sunlight() -> None:
    from gridpilot.forecast import backtest

    pv = _pv(days=60, seed=1)
    res = backtest(PVForecaster(24, 48.0, 8.0, **FAST), pv, test_fraction=0.25, stride=3)
    # in-sample residuals would give a band far too narrow (coverage ≈ 0.4)
    assert 0.65 <= res.metrics["coverage_80"] <= 0.95
    width = res.quantiles[0.9] - res.quantiles[0.1]
    ghi, _ = clearsky_ghi(pv.index, 48.0, 8.0)
    pos = np.searchsorted(pv.index, res.origins)[:, None] + np.arange(24)
    noon, night = ghi[pos] > 600, ghi[pos] <= 0
    assert width[:, 0][night].max() == 0.0
    assert width[:, 0][noon].mean() > 0.2


def test_day_ahead_with_covariates_covering_the_horizon() -> None:
    from gridpilot.forecast import day_ahead

    load, temp = _temperature_driven(days=40)
    hist = load.iloc[:-24]
    res = day_ahead(hist, model="gbm", covariates=temp, n_estimators=40, max_rows=20_000)
    assert res.point.shape == (24, 1)
    assert np.abs(res.point[:, 0] - load.to_numpy()[-24:, 0]).mean() < 1.0
    with pytest.raises(ValidationError, match="no finite value"):
        day_ahead(hist, model="gbm", covariates=temp.iloc[:-30], n_estimators=20)


def test_gbm_n_seeds_averages_boosters_of_different_seeds() -> None:
    obs, _ = make_series(days=50, noise=0.3, seed=4)
    cut = 40 * 24
    kw = {**FAST, "params": {"feature_fraction": 0.7}}
    one = GBMForecaster(24, **kw).fit(obs.iloc[:cut])
    bag = GBMForecaster(24, n_seeds=3, **kw).fit(obs.iloc[:cut])
    assert len(one.extra_boosters_) == 0 and len(bag.extra_boosters_) == 2
    vals, origins = obs.to_numpy(), np.arange(cut, len(obs) - 24 + 1, 6)
    p_bag = bag.forecast_origins(vals, obs.index, None, origins)
    # the first booster is the single-seed model's; the average of all three differs
    batch = ForecastBatch(vals, obs.index, None, origins)
    p_first = bag._predict_booster(bag.booster_, batch)
    np.testing.assert_allclose(p_first, one.forecast_origins(vals, obs.index, None, origins))
    each = [p_first] + [bag._predict_booster(b, batch) for b in bag.extra_boosters_]
    np.testing.assert_allclose(p_bag, np.mean(each, axis=0))
    assert not np.allclose(p_bag, p_first)
    with pytest.raises(ValidationError, match="n_seeds"):
        GBMForecaster(24, n_seeds=0)
