"""Edge detectors of theft and false data, feeder balance, the threshold baseline."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.estimation import (
    FdiDetector,
    TheftDetector,
    calibrate_threshold,
    feeder_balance,
    threshold_baseline,
)
from gridpilot.estimation.anomaly import group_median


def test_group_median_matches_numpy_with_nan() -> None:
    rng = np.random.default_rng(0)
    g = rng.integers(0, 7, 500)
    x = rng.normal(size=500)
    x[::17] = np.nan
    got = group_median(x, g)
    for k in range(7):
        m = g == k
        assert np.allclose(got[m], np.nanmedian(x[m]))
    with pytest.raises(ValidationError):
        group_median(x[:10], g)


def _days(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    size = rng.lognormal(np.log(12.0), 0.4, n)
    season = np.linspace(1.0, 1.3, days)[:, None]  # common drift: neighbours cancel it
    return size * season * rng.lognormal(0.0, 0.1, (days, n))


def test_theft_detector_finds_the_thief_and_spares_the_rest() -> None:
    rng = np.random.default_rng(1)
    n, days = 400, 20
    e = _days(rng, n, days)
    e[12:, 5] *= 0.5  # meter 5 reports half from day 12
    det = TheftDetector(np.arange(n) % 8, learn_days=7, h=0.3)
    alarms = np.zeros((days, n), bool)
    for d in range(days):
        _score, alarms[d] = det.update_day(e[d])
    assert not alarms[:12].any(axis=0)[5]
    assert alarms[13:, 5].all()  # detected within two days and held
    honest = np.delete(np.arange(n), 5)
    assert alarms[:, honest].mean() < 0.01
    assert det.state_floats_per_meter <= 4
    with pytest.raises(ValidationError, match="expected 400"):
        det.update_day(np.ones(3))


def test_fdi_detector_voltage_bias_and_replay() -> None:
    rng = np.random.default_rng(2)
    n, per_day = 60, 24
    group = np.arange(n) // 10
    det = FdiDetector(group, intervals_per_day=per_day, learn_days=2, h_v_pu=0.003, h_replay=0.05)
    offset = rng.normal(0, 0.003, n)  # fixed service-drop offsets are learned, not flagged
    prev_p = None
    out = None
    for d in range(6):
        bus_v = 1.0 - 0.02 * rng.random((per_day, 1)) - 0.005 * group[None, :]
        v = bus_v + offset + rng.normal(0, 0.002, (per_day, n))
        p = rng.lognormal(-0.5, 0.6, (per_day, n))
        if d >= 4:
            v[:, 3] += 0.01  # a forged voltage, 1 %
            p[:, 7] = prev_p[:, 7] * (1 + rng.normal(0, 0.01, per_day))  # replay of yesterday
        for t in range(per_day):
            det.update_interval(p[t], v[t])
        out = det.end_day()
        prev_p = p
        if 2 <= d < 4:
            assert not out["alarm"].any()
    assert out is not None
    assert out["v_alarm"][3] and not np.delete(out["v_alarm"], 3).any()
    assert out["replay_alarm"][7] and not np.delete(out["replay_alarm"], 7).any()
    assert det.state_floats_per_meter < 120


def test_feeder_balance_and_calibration() -> None:
    un = feeder_balance(
        np.array([100.0, 50.0]),
        np.array([30.0, 40.0, 20.0, 25.0]),
        np.array([0, 0, 1, -1]),
        np.array([5.0, 2.0]),
    )
    assert np.allclose(un, [25.0, 28.0])
    s = np.arange(1000.0)
    assert calibrate_threshold(s, 0.01) == pytest.approx(np.quantile(s, 0.99))
    with pytest.raises(ValidationError):
        calibrate_threshold(np.array([np.nan]), 0.01)


def test_threshold_baseline() -> None:
    got = threshold_baseline(
        np.array([10.0, 4.0, 10.0]), np.array([10.0, 10.0, 10.0]), np.array([1.0, 1.0, 1.07])
    )
    assert got.tolist() == [False, True, True]
