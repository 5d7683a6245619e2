"""Generation behind the meter from weather (pvlib, power curve), PV/wind forecasters,
pinball per quantile and the reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gridpilot.forecast import GBMForecaster, backtest
from gridpilot.forecast.metrics import all_metrics, pinball_by_quantile, reliability
from gridpilot.forecast.netload import (
    NetLoadForecaster,
    PVComponent,
    WindComponent,
    estimate_capacities,
)
from gridpilot.forecast.pvphys import PVSite, pv_per_kwp
from gridpilot.forecast.renewables import pv_weather_model
from gridpilot.forecast.windphys import PowerCurve, wind_per_unit

SITE = PVSite(52.0, 5.0)


def weather(days: int, seed: int = 1) -> pd.DataFrame:
    """Hourly synthetic weather: GHI = clear-sky × a daily cloud factor, temperature,
    a wind speed that persists over days (AR(1))."""
    from gridpilot.forecast.pv import clearsky_ghi

    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-04-01", periods=24 * days, freq="h")
    cs, _ = clearsky_ghi(idx, SITE.latitude, SITE.longitude)
    cloud = np.repeat(rng.uniform(0.2, 1.0, days), 24)
    ws = np.empty(len(idx))
    ws[0] = 7.0
    for i in range(1, len(idx)):
        ws[i] = max(0.0, 7.0 + 0.97 * (ws[i - 1] - 7.0) + rng.normal(0, 0.8))
    temp = 12 + 6 * np.sin(2 * np.pi * (idx.hour.to_numpy() - 9) / 24)
    return pd.DataFrame({"ghi": cs * cloud, "temp": temp, "ws": ws}, index=idx)


def net_load(w: pd.DataFrame, k_pv: float, k_wind: float, seed: int = 2) -> pd.Series:
    rng = np.random.default_rng(seed)
    hour = w.index.hour.to_numpy()
    demand = 10 + 3 * np.sin(2 * np.pi * (hour - 6) / 24) + np.linspace(0, 2, len(w))
    s_pv = pv_per_kwp(w.index, w["ghi"].to_numpy(), w["temp"].to_numpy(), SITE)
    s_w = wind_per_unit(w["ws"].to_numpy())
    y = demand - k_pv * s_pv - k_wind * s_w + rng.normal(0, 0.1, len(w))
    return pd.Series(y, index=w.index, name="load")


def test_capacities_recovered_from_day_differences() -> None:
    w = weather(60)
    y = net_load(w, 5.0, 3.0)
    shapes = np.stack(
        [
            pv_per_kwp(w.index, w["ghi"].to_numpy(), w["temp"].to_numpy(), SITE),
            wind_per_unit(w["ws"].to_numpy()),
        ],
        axis=1,
    )
    k = estimate_capacities(y.to_numpy(), shapes, 24)
    assert np.allclose(k, [5.0, 3.0], rtol=0.05)
    # a shape the load does not depend on (or rises with) gets no capacity
    k2 = estimate_capacities(y.to_numpy() + 4 * shapes[:, 1] * 2, shapes, 24)
    assert k2[1] == 0.0 and k2[0] > 4.0


def test_power_curve_shape() -> None:
    c = PowerCurve(3.0, 12.0, 25.0)
    p = c(np.array([0.0, 2.9, 3.0, 7.5, 12.0, 20.0, 25.0, np.nan]))
    assert p[0] == p[1] == p[2] == 0.0 and 0 < p[3] < 1
    assert p[4] == p[5] == 1.0 and p[6] == 0.0 and p[7] == 0.0


def test_net_load_model_beats_its_base_when_generation_drives_the_load() -> None:
    w = weather(70)
    y = net_load(w, 4.0, 6.0).to_frame()
    kw = {"n_estimators": 150, "max_rows": 40_000, "objective": "l1"}
    bt = {"val_start": 24 * 42, "test_start": 24 * 56, "stride": 24}
    base = backtest(GBMForecaster(24, **kw), y, covariates=w, **bt)
    net = NetLoadForecaster(
        GBMForecaster(24, **kw), [PVComponent(SITE, "ghi", "temp"), WindComponent("ws")]
    )
    res = backtest(net, y, covariates=w, **bt)
    assert net.capacity_ is not None and np.allclose(net.capacity_[0], [4.0, 6.0], rtol=0.1)
    assert res.metrics["mae"] < 0.7 * base.metrics["mae"]


def test_pv_weather_model_is_zero_at_night_and_beats_naive() -> None:
    w = weather(60, seed=3)
    s = pv_per_kwp(w.index, w["ghi"].to_numpy(), w["temp"].to_numpy(), SITE)
    rng = np.random.default_rng(4)
    pv = pd.DataFrame({"pv_mw": np.maximum(8.0 * s * rng.normal(1, 0.03, len(s)), 0)}, w.index)
    # the model gets a noisy forecast of the irradiance
    fc = w.assign(ghi=w["ghi"] * np.exp(rng.normal(0, 0.1, len(w))))
    m = pv_weather_model(24, SITE, ghi_column="ghi", temp_column="temp", n_estimators=100)
    res = backtest(m, pv, covariates=fc, val_start=24 * 35, test_start=24 * 47, stride=24)
    assert res.mae_reduction is not None and res.mae_reduction > 0.3
    sun_down = np.array([[s[w.index.get_loc(o) + h] == 0 for h in range(24)] for o in res.origins])
    assert np.all(res.point[:, 0, :][sun_down] == 0.0)
    assert (res.point >= 0).all()


def test_pinball_per_quantile_and_reliability(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(4000, 1, 1))
    qs = {0.1: np.full_like(y, -1.2816), 0.5: np.zeros_like(y), 0.9: np.full_like(y, 1.2816)}
    rel = reliability(y, qs)
    assert abs(rel[0.1] - 0.1) < 0.02 and abs(rel[0.9] - 0.9) < 0.02
    pin = pinball_by_quantile(y, qs)
    assert pin[0.5] == np.mean(np.abs(y)) / 2
    m = all_metrics(y, qs[0.5], qs)
    assert m["pinball_q0.9"] == pin[0.9] and m["below_q0.5"] == rel[0.5]
    # a too-narrow band is visible in the diagram's numbers
    narrow = reliability(y, {0.1: np.full_like(y, -0.5), 0.9: np.full_like(y, 0.5)})
    assert narrow[0.1] > 0.25 and narrow[0.9] < 0.75


def test_reliability_plot_written(tmp_path: Path) -> None:
    from gridpilot.forecast.plot import plot_reliability

    w = weather(30)
    y = net_load(w, 2.0, 2.0).to_frame()
    from gridpilot.forecast import SeasonalNaive

    res = backtest(SeasonalNaive(24), y, stride=24, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    out = plot_reliability(res, tmp_path / "rel.png")
    assert out.exists() and out.stat().st_size > 1000
