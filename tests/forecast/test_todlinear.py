"""The time-of-day linear model: weights per origin hour and series, Huber loss (issue #5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import LinearForecaster, TimeOfDayLinearForecaster, make_model
from gridpilot.forecast.base import target_windows


def _daily_level_series(days: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Each day a new random level a_d times a fixed daily shape, plus small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    sig = rng.standard_normal(days)[t // 24] * (1 + 0.5 * np.sin(2 * np.pi * (t % 24) / 24))
    obs = sig + 0.1 * rng.standard_normal(t.size)
    idx = pd.date_range("2024-01-01", periods=t.size, freq="h")
    return pd.DataFrame({"x": obs}, index=idx), sig


def test_recovers_noise_free_signal_exactly() -> None:
    obs, sig = make_series(days=40, noise=0.0)
    m = TimeOfDayLinearForecaster(24, lookback=168, penalties=(1e-6, 1e-6, 1e-6), huber_delta=None)
    res = m.fit(obs.iloc[:-24]).predict()
    np.testing.assert_allclose(res.point, sig.to_numpy()[-24:], atol=1e-6)
    assert m.weights_ is not None and m.weights_.shape == (24, 2, 169, 24)


def test_learns_what_depends_on_the_hour_of_the_origin() -> None:
    # the best forecast is the day's level times the shape for the rest of the day, and 0
    # (the mean level) for the next day: a map that changes with the origin's hour, which one
    # weight matrix for all origins (the DLinear-style model) cannot express
    obs, sig = _daily_level_series(150, seed=5)
    cut = 120 * 24
    origins = np.arange(cut, len(obs) - 24 + 1)
    rows = origins[:, None] + np.arange(24)[None, :]
    same_day = (rows // 24 == origins[:, None] // 24) & (origins[:, None] % 24 > 0)
    best = np.where(same_day, sig[rows], 0.0)
    vals = obs.to_numpy()
    truth = vals[rows, 0]
    err = {}
    for m in (TimeOfDayLinearForecaster(24, lookback=48), LinearForecaster(24, lookback=48)):
        p = m.fit(obs.iloc[:cut]).forecast_origins(vals, obs.index, None, origins)[:, 0, :]
        err[m.name] = (np.abs(p - best).mean(), np.abs(p - truth).mean())
    assert err["linear-tod"][0] < 0.5 * err["linear"][0]  # much closer to the best forecast
    assert err["linear-tod"][1] < 1.06 * np.abs(best - truth).mean()


def test_huber_loss_resists_outliers_in_the_training_rows() -> None:
    obs, sig = make_series(days=90, noise=0.2, seed=2)
    cut = 70 * 24
    dirty = obs.copy()
    spikes = np.random.default_rng(0).choice(cut, 30, replace=False)
    dirty.iloc[spikes, 0] += 15.0  # 30 wild readings on the first feeder
    origins = np.arange(cut, len(obs) - 24 + 1, 3)
    truth = target_windows(sig.to_numpy(), origins, 24)
    err = {}
    for delta in (0.6, None):
        m = TimeOfDayLinearForecaster(24, lookback=48, huber_delta=delta).fit(dirty.iloc[:cut])
        p = m.forecast_origins(obs.to_numpy(), obs.index, None, origins)
        err[delta] = np.abs(p - truth)[:, 0].mean()
    assert err[0.6] < 0.9 * err[None]


def test_lookback_chosen_on_validation_and_coarse_data_use_one_group() -> None:
    obs, _ = make_series(days=60, noise=0.2, seed=4)
    m = make_model("linear-tod", 24, lookback=(24, 96))
    assert isinstance(m, TimeOfDayLinearForecaster)
    m.fit(obs.iloc[: 45 * 24], validation=obs.iloc[45 * 24 :])
    assert set(m.val_mae_) == {24, 96} and m.lookback_ == min(m.val_mae_, key=m.val_mae_.get)
    rng = np.random.default_rng(1)
    daily = pd.DataFrame(
        {"x": np.sin(np.arange(400) * 2 * np.pi / 7) + 0.1 * rng.standard_normal(400)},
        index=pd.date_range("2020-01-01", periods=400, freq="D"),
    )
    res = TimeOfDayLinearForecaster(7, lookback=28).fit(daily).predict()
    expected = np.sin(np.arange(400, 407) * 2 * np.pi / 7)
    assert np.abs(res.point[:, 0] - expected).max() < 0.2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lookback": 1}, "lookback"),
        ({"penalties": (0.1, 0.3)}, "penalties"),
        ({"penalties": (0.1, -1.0, 3.0)}, "penalties"),
        ({"huber_delta": 0.0}, "huber_delta"),
        ({"irls_iterations": -1}, "irls_iterations"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TimeOfDayLinearForecaster(24, **kwargs)


def test_too_short_history_is_a_clear_error() -> None:
    obs, _ = make_series(days=5)
    with pytest.raises(ValidationError, match="too short"):
        TimeOfDayLinearForecaster(24, lookback=96).fit(obs)
