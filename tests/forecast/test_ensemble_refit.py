"""Ensemble with per-step weights tuned on validation; periodic refit in backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import (
    EnsembleForecaster,
    GBMForecaster,
    LinearForecaster,
    SeasonalNaive,
    backtest,
    make_model,
)
from gridpilot.forecast.ensemble import simplex_grid


def test_simplex_grid_covers_the_simplex() -> None:
    g = simplex_grid(3, 0.1)
    assert g.shape == (66, 3)  # C(12, 2)
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    assert g.min() == 0.0 and g.max() == 1.0


def test_ensemble_weights_pick_the_better_member() -> None:
    # a pure daily cycle (no weekly part, no noise): seasonal-naive is exact, so the
    # tuned weights must put (nearly) everything on it and the ensemble must be exact too
    idx = pd.date_range("2024-01-01", periods=40 * 24, freq="h")
    t = np.arange(len(idx))
    df = pd.DataFrame({"a_mw": 2.0 + np.sin(2 * np.pi * t / 24)}, index=idx)
    # a deliberately poor linear member (two-step lookback, heavy penalty)
    members = [LinearForecaster(24, lookback=2, penalties=(100.0,)), SeasonalNaive(24)]
    m = EnsembleForecaster(24, members=members, weight_step=0.1).fit(df)
    assert m.weights_ is not None and m.weights_.shape == (24, 2)
    np.testing.assert_allclose(m.weights_.sum(axis=1), 1.0)
    # (at the last step the lookback-2 member sees the value one day before the target,
    # so it is exact there too and may share the weight)
    assert m.weights_[:-1, 1].min() >= 0.9
    res = m.predict()
    expected = 2.0 + np.sin(2 * np.pi * np.arange(len(idx), len(idx) + 24) / 24)
    assert np.abs(res.point[:, 0] - expected).max() < 0.05
    assert m.val_mae_["ensemble"] <= min(m.val_mae_.values()) + 1e-9
    assert m.val_mae_["linear"] > 0.1


def test_ensemble_default_members_backtest_beats_naive() -> None:
    obs, _ = make_series(days=70, noise=0.3, seed=11)
    m = make_model("ensemble", 24, lookback=(168,), weight_step=0.25)
    assert isinstance(m, EnsembleForecaster)
    assert [x.name for x in m.members] == ["gbm-l1", "linear-tod", "seasonal-naive"]
    res = backtest(m, obs, test_fraction=0.2, stride=6)
    assert res.mae_reduction is not None and res.mae_reduction > 0.2
    assert 0.65 <= res.metrics["coverage_80"] <= 0.95


def test_ensemble_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="weight_step"):
        EnsembleForecaster(24, weight_step=0.3)
    with pytest.raises(ValidationError, match="at least two"):
        EnsembleForecaster(24, members=[SeasonalNaive(24)])
    with pytest.raises(ValidationError, match="horizon 12"):
        EnsembleForecaster(24, members=[SeasonalNaive(12), SeasonalNaive(24)])


def test_refit_sees_only_the_past_and_changes_the_forecasts() -> None:
    # a level shift inside the test part: a model refitted after the shift has seen it
    obs, _ = make_series(days=90, noise=0.1, seed=3)
    n = len(obs)
    ts = n - 30 * 24
    shifted = obs.copy()
    shifted.iloc[ts + 10 * 24 :] += 1.5
    kw = {"test_start": ts, "val_start": ts - 20 * 24, "stride": 24, "baseline": None}
    once = backtest(LinearForecaster(24, lookback=168), shifted, **kw)
    refit = backtest(LinearForecaster(24, lookback=168), shifted, refit_every=5 * 24, **kw)
    # the first block (before any refit) is identical; later blocks differ
    np.testing.assert_allclose(refit.point[:5], once.point[:5])
    assert not np.allclose(refit.point[-5:], once.point[-5:])
    # future rows never leak into a refit: changing the data after an origin's block
    # leaves that block's forecasts untouched
    later = shifted.copy()
    later.iloc[ts + 20 * 24 :] += 10.0
    refit2 = backtest(LinearForecaster(24, lookback=168), later, refit_every=5 * 24, **kw)
    first_changed = int(np.argmax(refit2.origins >= shifted.index[ts + 20 * 24 - 24]))
    np.testing.assert_allclose(refit2.point[:first_changed], refit.point[:first_changed])


def test_refit_every_bad_values() -> None:
    obs, _ = make_series(days=40)
    with pytest.raises(ValidationError, match="refit_every"):
        backtest(LinearForecaster(24, lookback=48), obs, refit_every=0)
    with pytest.raises(ValidationError, match="refit_every"):
        backtest(
            GBMForecaster(24, quantile_method="quantile", n_estimators=20),
            obs,
            refit_every=48,
            stride=24,
        )
    m = LinearForecaster(24, lookback=48).fit(obs)
    with pytest.raises(ValidationError, match="end"):
        m.refit_until(obs.to_numpy(), obs.index, None, 10)


def test_day_ahead_with_the_ensemble_follows_the_signal() -> None:
    from gridpilot.forecast import day_ahead

    obs, _ = make_series(days=60, noise=0.1, seed=2)
    _, sig_next = make_series(days=61, noise=0.1, seed=2)
    res = day_ahead(obs, model="ensemble")
    assert res.model == "ensemble" and res.point.shape == (24, 2)
    truth = sig_next.iloc[-24:].to_numpy()
    assert np.abs(res.point - truth).mean() < 0.06  # seasonal-naive: 0.24
    assert (res.quantiles[0.9] >= res.quantiles[0.1]).all()


def _regime_change(days: int = 84, change_day: int = 49) -> pd.DataFrame:
    """A daily cycle on a level that jumps every day (one-day seasonal-naive is close,
    the one-week one far) until ``change_day``; then a fixed level with a weekly pattern
    (the one-week seasonal-naive is exact, the one-day one wrong after every weekend)."""
    rng = np.random.default_rng(5)
    idx = pd.date_range("2024-01-01", periods=days * 24, freq="h")
    t = np.arange(len(idx))
    level = np.repeat(np.cumsum(rng.normal(0.0, 0.4, days)), 24)
    weekend = np.asarray(idx.weekday >= 5)
    x = np.where(t < change_day * 24, level, 3.0 + 2.0 * weekend)
    return pd.DataFrame({"a_mw": x + np.sin(2 * np.pi * t / 24)}, index=idx)


def test_retune_window_follows_the_better_member_and_sees_only_the_past() -> None:
    df = _regime_change()
    day = 24
    kw = {"test_start": 49 * day, "val_start": 35 * day, "stride": 6, "baseline": None}

    def run(data: pd.DataFrame, retune: int | None) -> tuple[EnsembleForecaster, object]:
        m = EnsembleForecaster(
            24,
            members=[SeasonalNaive(24), SeasonalNaive(24, season=7 * day)],
            weight_step=0.1,
            retune_window=retune,
        )
        return m, backtest(m, data, refit_every=7 * day, **kw)

    kept, res_kept = run(df, None)
    tuned, res_tuned = run(df, 7 * day)
    assert kept.weights_ is not None and tuned.weights_ is not None
    # validation (old regime) favours the one-day member; the weights kept stay there
    assert kept.weights_[:, 1].mean() < 0.2
    # re-tuned on the last week's out-of-sample forecasts: the one-week member
    assert tuned.weights_[:, 1].mean() > 0.8
    assert res_tuned.metrics["mae"] < 0.8 * res_kept.metrics["mae"]
    # the first week (before any refit) is the same
    np.testing.assert_allclose(res_tuned.point[:28], res_kept.point[:28])
    # no leak: changing the data from some row on leaves every earlier block untouched
    later = df.copy()
    cut = 49 * day + 21 * day
    later.iloc[cut:] += 10.0
    _, res_later = run(later, 7 * day)
    n_same = int(np.argmax(res_later.origins >= df.index[cut - 24]))
    assert n_same > 0
    np.testing.assert_allclose(res_later.point[:n_same], res_tuned.point[:n_same])
    assert not np.allclose(res_later.point[n_same:], res_tuned.point[n_same:])


def test_retune_window_bad_value() -> None:
    with pytest.raises(ValidationError, match="retune_window"):
        EnsembleForecaster(24, members=[SeasonalNaive(24), SeasonalNaive(24)], retune_window=0)


def test_train_s_counts_the_fit_and_every_periodic_refit() -> None:
    obs, _ = make_series(days=40)
    m = LinearForecaster(24, lookback=48).fit(obs.iloc[: 30 * 24])
    fit_s = m.train_s_
    assert fit_s > 0.0
    m.refit_until(obs.to_numpy(), obs.index, None, 35 * 24)
    once = m.train_s_
    m.refit_until(obs.to_numpy(), obs.index, None, 40 * 24)
    assert fit_s < once < m.train_s_  # each refit's time is added
