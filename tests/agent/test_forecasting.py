from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator
from gridpilot.agent.forecasting import LoadForecast
from gridpilot.errors import ValidationError

STEP = np.timedelta64(900, "s")


def _profiles(days: int) -> tuple[np.ndarray, np.ndarray]:
    n = days * 96
    index = np.datetime64("2025-03-01T00:00:00") + np.arange(n) * STEP
    hour = (np.arange(n) % 96) / 4
    daily = 1.0 + 0.5 * np.sin(2 * np.pi * (hour - 6) / 24)
    return index, np.column_stack([daily, 0.5 * daily])


def test_forecast_comes_from_the_past_only_and_refits_daily() -> None:
    index, values = _profiles(30)
    origin = 20 * 96
    future = values.copy()
    future[origin:] *= 3.0  # a change nobody could know from the history
    fc = LoadForecast(index, future, np.array([0, 1, -1]), history_days=14)
    t = index[origin] + np.array([0, 3600, 7200], "timedelta64[s]")
    got = fc.shape(t)
    assert fc.method.startswith("gridpilot.forecast.day_ahead") and fc.fits == 1
    assert np.allclose(got[:, 0], values[origin : origin + 9 : 4, 0], rtol=1e-6)
    assert np.allclose(got[:, 1], values[origin : origin + 9 : 4, 1], rtol=1e-6)
    assert np.all(got[:, 2] == 1.0)  # a load without a profile stays flat
    fc.shape(t + np.timedelta64(2 * 3600, "s"))
    assert fc.fits == 1  # same day: no refit
    nxt = fc.shape(t + np.timedelta64(86_400, "s"))
    assert fc.fits == 2 and str(fc.origin) == str(index[origin + 96])
    assert np.allclose(nxt[:, 0], 3.0 * values[origin : origin + 9 : 4, 0], rtol=1e-6)


def test_short_history_falls_back_to_the_profile_and_bad_input_is_refused() -> None:
    index, values = _profiles(5)
    fc = LoadForecast(index, values, np.array([0]), history_days=14)
    got = fc.shape(index[2 * 96 : 2 * 96 + 1])
    assert fc.method.startswith("profile shape") and fc.fits == 0
    assert got[0, 0] == pytest.approx(values[2 * 96, 0])
    with pytest.raises(ValidationError, match="history_days"):
        LoadForecast(index, values, np.array([0]), history_days=1)
    with pytest.raises(ValidationError, match="horizon_days"):
        LoadForecast(index, values, np.array([0]), horizon_days=0)


def test_the_orchestrator_forecasts_with_gridpilot_forecast(orch: Orchestrator) -> None:
    orch.step()
    assert orch.load_forecast.method.startswith("gridpilot.forecast.day_ahead")
    ratio = orch.forecast_ratio(np.array([0, 30]))
    assert np.allclose(ratio[0], 1.0)
    prof, col = orch._prof, int(orch._cols["load_p"][0])
    x0 = int((orch.last.time - prof.index[0]) / STEP)
    truth = np.interp(x0 + 2.0, np.arange(x0, x0 + 4), prof.values[x0 : x0 + 4, col])
    assert ratio[1, 0] == pytest.approx(truth / prof.values[x0, col], rel=0.02)
