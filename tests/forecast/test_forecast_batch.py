"""ForecastBatch: the one parameter object the forecasters' fit and predict hooks take."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fc_synth import make_series

from gridpilot.forecast import LinearForecaster
from gridpilot.forecast.base import ForecastBatch


def test_until_slices_values_index_and_covariates_and_keeps_the_rest() -> None:
    obs, _ = make_series(days=3)
    cov = np.arange(len(obs), dtype=float)[:, None]
    b = ForecastBatch(obs.to_numpy(), obs.index, cov, np.array([5]), (0.5,))
    cut = b.until(10)
    assert cut.values.shape == (10, obs.shape[1]) and len(cut.index) == 10
    assert cut.cov is not None and cut.cov[-1, 0] == 9.0
    assert cut.origins.tolist() == [5] and cut.quantiles == (0.5,)
    assert ForecastBatch(obs.to_numpy(), obs.index).until(4).cov is None
    assert b.but(cov=None).cov is None and b.cov is cov
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.values = obs.to_numpy()  # type: ignore[misc]


def test_public_array_faces_equal_the_batch_hooks() -> None:
    obs, _ = make_series(days=30, noise=0.3, seed=2)
    m = LinearForecaster(24, lookback=48).fit(obs.iloc[: 25 * 24])
    vals, origins = obs.to_numpy(), np.arange(25 * 24, len(obs) - 24 + 1, 12)
    batch = ForecastBatch(vals, obs.index, None, origins, (0.1, 0.9))
    point = m.forecast_origins(vals, obs.index, None, origins)
    np.testing.assert_array_equal(point, m._forecast(batch))
    p2, q = m.quantile_origins(vals, obs.index, None, origins, (0.1, 0.9))
    np.testing.assert_array_equal(p2, point)
    assert q.shape == (2, *point.shape) and (q[0] <= q[1]).all() and (q[0] < q[1]).any()
