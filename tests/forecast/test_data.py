"""Bad input gives a clear error (or the documented repair), never a silent wrong forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import LinearForecaster, SeasonalNaive, day_ahead, prepare_history


def test_clean_history_round_trips() -> None:
    obs, _ = make_series(days=5)
    h = prepare_history(obs)
    assert h.values.shape == (120, 2)
    assert h.columns == ("feeder_a_mw", "feeder_b_mw")
    assert h.freq == pd.Timedelta(hours=1)
    assert h.steps_per_day == 24
    np.testing.assert_array_equal(h.values, obs.to_numpy())


def test_time_column_is_accepted() -> None:
    obs, _ = make_series(days=3)
    df = obs.rename_axis("timestamp").reset_index()
    h = prepare_history(df)
    assert h.index[0] == obs.index[0] and len(h) == len(obs)


def test_second_resolution_index() -> None:
    """A datetime64[s] index (numpy's default for many sources) means the same steps."""
    obs, _ = make_series(days=3)
    coarse = obs.copy()
    coarse.index = coarse.index.as_unit("s")
    h = prepare_history(coarse)
    assert h.freq == pd.Timedelta(hours=1) and len(h) == len(obs)
    np.testing.assert_array_equal(h.values, obs.to_numpy())
    assert coarse.index.unit == "s"  # the caller's frame is left as it was


def test_unsorted_rows_are_sorted() -> None:
    obs, _ = make_series(days=3)
    h = prepare_history(obs.iloc[::-1])
    np.testing.assert_array_equal(h.values, obs.to_numpy())


def test_nan_names_column_and_time() -> None:
    obs, _ = make_series(days=5)
    obs.iloc[30, 1] = np.nan
    with pytest.raises(ValidationError, match=r"feeder_b_mw.*NaN.*2024-01-02 06:00"):
        prepare_history(obs)


def test_inf_is_treated_as_missing() -> None:
    obs, _ = make_series(days=5)
    obs.iloc[10, 0] = np.inf
    with pytest.raises(ValidationError, match="feeder_a_mw"):
        prepare_history(obs)


def test_nan_repair_interpolates_short_runs() -> None:
    obs, _ = make_series(days=5, noise=0.0)
    truth = obs.iloc[40, 0]
    obs.iloc[40, 0] = np.nan
    h = prepare_history(obs, repair="interpolate")
    assert abs(h.values[40, 0] - truth) < 0.05  # linear between neighbours of a smooth curve
    assert np.isfinite(h.values).all()


def test_long_nan_run_is_refused_even_with_repair() -> None:
    obs, _ = make_series(days=5)
    obs.iloc[40:50, 0] = np.nan
    with pytest.raises(ValidationError, match="run of 10 missing"):
        prepare_history(obs, repair="interpolate", max_gap_steps=3)


def test_gap_in_timestamps() -> None:
    obs, _ = make_series(days=5)
    gappy = obs.drop(obs.index[50:52])
    with pytest.raises(ValidationError, match="2 missing timestamps"):
        prepare_history(gappy)
    h = prepare_history(gappy, repair="interpolate")
    assert len(h) == len(obs)
    np.testing.assert_allclose(h.values[50:52], obs.to_numpy()[50:52], atol=0.6)


def test_duplicate_timestamps_are_refused() -> None:
    obs, _ = make_series(days=5)
    dup = pd.concat([obs, obs.iloc[[7]]])
    with pytest.raises(ValidationError, match="duplicate timestamps"):
        prepare_history(dup)
    with pytest.raises(ValidationError, match="duplicate"):
        day_ahead(dup)


def test_off_grid_timestamps_are_refused() -> None:
    obs, _ = make_series(days=5)
    idx = obs.index.to_list()
    idx[20] = idx[20] + pd.Timedelta(minutes=7)
    with pytest.raises(ValidationError, match="off the regular"):
        prepare_history(obs.set_axis(pd.DatetimeIndex(idx)))


def test_non_numeric_and_missing_time() -> None:
    obs, _ = make_series(days=3)
    bad = obs.assign(name="x")
    with pytest.raises(ValidationError, match=r"'name'.*not numeric"):
        prepare_history(bad)
    with pytest.raises(ValidationError, match="DatetimeIndex or a time column"):
        prepare_history(obs.reset_index(drop=True))
    with pytest.raises(ValidationError, match="empty"):
        prepare_history(obs.iloc[:0])


def test_too_short_history_is_refused() -> None:
    obs, _ = make_series(days=10)
    with pytest.raises(ValidationError, match="too short"):
        LinearForecaster(24, lookback=336).fit(obs)
    with pytest.raises(ValidationError, match="too short"):
        day_ahead(obs.iloc[:60])
    m = SeasonalNaive(24).fit(obs)
    with pytest.raises(ValidationError, match="at least 24 rows"):
        m.predict(obs.iloc[:10])


def test_bad_parameters() -> None:
    with pytest.raises(ValidationError, match="horizon"):
        LinearForecaster(0)
    with pytest.raises(ValidationError, match="lookback"):
        LinearForecaster(24, lookback=1)
    with pytest.raises(ValidationError, match="penalties"):
        LinearForecaster(24, penalties=(0.0,))
    obs, _ = make_series(days=30)
    with pytest.raises(ValidationError, match="quantiles"):
        SeasonalNaive(24).fit(obs).predict(quantiles=(0.1, 1.5))
