"""Metrics by hand, rolling-origin backtests, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fc_synth import make_series

from gridpilot.errors import ValidationError
from gridpilot.forecast import LinearForecaster, backtest
from gridpilot.forecast import metrics as mt


def test_metrics_by_hand() -> None:
    y = np.array([1.0, 2.0, 4.0, 0.0])
    p = np.array([2.0, 2.0, 2.0, 0.0])
    assert mt.mae(y, p) == pytest.approx(0.75)
    assert mt.mse(y, p) == pytest.approx(5 / 4)
    assert mt.rmse(y, p) == pytest.approx(np.sqrt(5 / 4))
    assert mt.mape(y, p) == pytest.approx((1.0 + 0.0 + 0.5) / 3)  # y = 0 left out
    assert mt.smape(y, p) == pytest.approx((2 / 3 + 0 + 4 / 6 + 0) / 4)
    # pinball at 0.9 of a forecast 1 below the actual: 0.9·1
    assert mt.pinball(np.array([2.0]), {0.9: np.array([1.0])}) == pytest.approx(0.9)
    assert mt.pinball(np.array([2.0]), {0.1: np.array([3.0])}) == pytest.approx(0.9)
    assert mt.coverage(y, y - 1, y + 1) == 1.0
    assert mt.coverage(y, p, p) == 0.5
    m = mt.all_metrics(y[None, None, :], p[None, None, :], scale=np.array([2.0]))
    assert m["mse_norm"] == pytest.approx(5 / 16)


def test_backtest_beside_baseline(tmp_path: Path) -> None:
    obs, _ = make_series(days=80, noise=0.3, seed=4)
    res = backtest(LinearForecaster(24, lookback=168), obs, test_fraction=0.25, stride=2)
    assert res.baseline_metrics is not None
    assert res.metrics["mae"] < 0.8 * res.baseline_metrics["mae"]
    assert res.mae_reduction is not None and res.mae_reduction > 0.2
    assert 0.72 <= res.metrics["coverage_80"] <= 0.88
    assert res.point.shape == res.actual.shape == (len(res.origins), 2, 24)
    assert set(res.per_series.index) == {"feeder_a_mw", "feeder_b_mw"}
    d = res.to_dict()
    assert d["baseline"]["mae"] == pytest.approx(res.baseline_metrics["mae"], rel=1e-5)
    png = res.plot(tmp_path / "bt.png")
    html = res.plot(tmp_path / "bt.html", series="feeder_b_mw")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in html.read_text()[:5000].lower()
    with pytest.raises(ValidationError, match=r"\.png or \.html"):
        res.plot(tmp_path / "bt.pdf")


def test_backtest_fixed_and_rolling_calibration_differ_only_in_quantiles() -> None:
    obs, _ = make_series(days=60, noise=0.2, seed=5)
    a = backtest(LinearForecaster(24, lookback=168), obs, calibration="fixed", baseline=None)
    b = backtest(LinearForecaster(24, lookback=168), obs, calibration="rolling", baseline=None)
    np.testing.assert_allclose(a.point, b.point)
    assert not np.allclose(a.quantiles[0.9], b.quantiles[0.9])
    assert a.baseline_metrics is None


def test_backtest_bad_arguments() -> None:
    obs, _ = make_series(days=30)
    with pytest.raises(ValidationError, match="calibration"):
        backtest(LinearForecaster(24, lookback=48), obs, calibration="weekly")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="fewer than the horizon"):
        backtest(LinearForecaster(24, lookback=48), obs, test_start=len(obs) - 10)
    with pytest.raises(ValidationError, match="val_start"):
        backtest(LinearForecaster(24, lookback=48), obs, test_start=500, val_start=600)
