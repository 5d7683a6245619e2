"""A cheap check on the public ETTh1 data (skipped when ../shared is not there)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gridpilot.forecast import LinearForecaster, backtest

ETT = Path(__file__).resolve().parents[3] / "shared" / "data" / "ett" / "ETTh1.csv"


@pytest.mark.skipif(not ETT.exists(), reason="ETTh1.csv not in ../shared/data/ett")
def test_ett_day_ahead_loads_beat_naive_with_calibrated_band() -> None:
    df = pd.read_csv(ETT, parse_dates=["date"]).set_index("date")
    loads = df[["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]].iloc[: 8640 + 2 * 2880]
    res = backtest(
        LinearForecaster(24, lookback=168), loads, val_start=8640, test_start=8640 + 2880, stride=4
    )
    assert res.baseline_metrics is not None
    assert res.metrics["mse_norm"] < 0.85 * res.baseline_metrics["mse_norm"]
    assert res.metrics["mae_norm"] < res.baseline_metrics["mae_norm"]
    assert 0.75 <= res.metrics["coverage_80"] <= 0.85
