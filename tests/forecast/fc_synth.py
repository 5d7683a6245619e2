"""Generated series with a known seasonal signal for the forecasting tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_series(
    days: int = 60, noise: float = 0.1, seed: int = 0, start: str = "2024-01-01"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly frame with two series (signal + Gaussian noise) and the noise-free signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    idx = pd.date_range(start, periods=len(t), freq="h")
    daily = np.sin(2 * np.pi * t / 24)
    weekly = 0.5 * np.sin(2 * np.pi * t / 168)
    sig = pd.DataFrame(
        {"feeder_a_mw": 3.0 + daily + weekly, "feeder_b_mw": 1.0 + 0.5 * daily - 0.3 * weekly},
        index=idx,
    )
    obs = sig + noise * rng.standard_normal(sig.shape)
    return obs, sig
