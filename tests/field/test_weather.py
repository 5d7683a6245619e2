"""The field's weather series: PV and wind follow it; its forecast's error grows with lead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridpilot.agent import demo_grid
from gridpilot.field import FieldSimulator, FleetConfig
from gridpilot.field.weather import WeatherConfig, make_weather, power_curve, weather_forecast
from gridpilot.model import GenKind


def test_pv_and_wind_follow_the_weather_series() -> None:
    grid = demo_grid("case33bw")
    w = make_weather("2021-07-01", 3, cfg=WeatherConfig(seed=3))
    # make the noon of day 2 overcast and calm, of day 3 clear and windy
    f = w.frame.copy()
    f.loc["2021-07-02 11:00":"2021-07-02 13:00", ["ghi_wm2", "wind_ms"]] = [80.0, 2.0]
    f.loc["2021-07-03 11:00":"2021-07-03 13:00", ["ghi_wm2", "wind_ms"]] = [800.0, 11.0]
    w = type(w)(f)
    out = {}
    for day in ("2021-07-02T12:00", "2021-07-03T12:00"):
        s = FieldSimulator(grid, FleetConfig(n_devices=800, seed=1), start=day, seed=1, weather=w)
        s.step(60)
        kind = grid.generator["kind"]
        gen = s.grid_p_mw["gen_p_mw"]
        out[day] = (
            float(s.meter_p_kw.sum()),
            gen[kind == GenKind.WIND].sum(),
            gen[kind == GenKind.PV].sum(),
        )
    dull, bright = out["2021-07-02T12:00"], out["2021-07-03T12:00"]
    assert bright[0] < dull[0]  # more rooftop PV: less net household load
    if (grid.generator["kind"] == GenKind.WIND).any():
        assert bright[1] > 3 * dull[1] + 1e-9
    if (grid.generator["kind"] == GenKind.PV).any():
        assert bright[2] > 3 * dull[2]


def test_forecast_error_grows_with_lead() -> None:
    w = make_weather("2021-03-01", 40, step="1h", cfg=WeatherConfig(seed=5))
    errs = []
    for d in range(3, 38):
        issued = pd.Timestamp("2021-03-01") + pd.Timedelta(days=d)
        fc = weather_forecast(w, issued, 48, seed=1)
        truth = w.frame.reindex(fc.index)
        errs.append(np.abs(fc["temp_c"] - truth["temp_c"]).to_numpy())
    e = np.mean(errs, axis=0)
    assert e[0] == 0.0  # the issue hour itself is analysed
    assert e[1:6].mean() < 0.5 * e[24:30].mean() < e[42:48].mean()


def test_power_curve_and_history_rows() -> None:
    assert list(power_curve(np.array([2.0, 12.0, 30.0]))) == [0.0, 1.0, 0.0]
    w = make_weather("2021-03-01", 5, cfg=WeatherConfig(seed=1))
    fc = weather_forecast(w, pd.Timestamp("2021-03-03 00:07"), 8, history_steps=4)
    assert fc.index[4] == pd.Timestamp("2021-03-03 00:00") and len(fc) == 12
    past = w.frame.reindex(fc.index[:5])
    assert np.allclose(fc.iloc[:5].to_numpy(), past.to_numpy())
