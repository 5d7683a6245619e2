"""day_ahead() for the twin and the flexibility planner; the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from fc_synth import make_series
from typer.testing import CliRunner

from gridpilot.errors import ValidationError
from gridpilot.forecast import ForecastResult, day_ahead, make_model
from gridpilot.forecast.cli import register
from gridpilot.forecast.data import epoch_unit, prepare_history
from gridpilot.forecast.protocol import ett_split


def test_day_ahead_contract() -> None:
    obs, sig = make_series(days=45, noise=0.1)
    res = day_ahead(obs.iloc[:-24])
    assert isinstance(res, ForecastResult)
    assert res.horizon == 24 and res.columns == ("feeder_a_mw", "feeder_b_mw")
    pd.testing.assert_index_equal(res.index, obs.index[-24:], check_names=False)
    q1, q5, q9 = (res.quantile(q) for q in (0.1, 0.5, 0.9))
    assert (q1 <= q5).all() and (q5 <= q9).all()
    assert np.abs(res.point - sig.to_numpy()[-24:]).mean() < 0.1
    df = res.series("feeder_a_mw")
    assert list(df.columns) == ["point", "q0.1", "q0.5", "q0.9"]
    long = res.to_long()
    assert len(long) == 24 * 2 * 4
    with pytest.raises(ValidationError, match="available"):
        res.quantile(0.25)


def test_day_ahead_other_models_and_resolution() -> None:
    obs, _ = make_series(days=30)
    q15 = obs.resample("15min").interpolate()
    res = day_ahead(q15, model="seasonal-naive")
    assert res.horizon == 96  # one day at 15-minute resolution
    res = day_ahead(obs, 6, model="gbm", n_estimators=30, max_rows=10_000)
    assert res.point.shape == (6, 2)
    with pytest.raises(ValidationError, match="unknown model"):
        make_model("prophet", 24)
    with pytest.raises(ValidationError, match="latitude"):
        make_model("pv", 24)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """test root"""

    register(app)
    return app


def test_cli_backtest_json(tmp_path: Path) -> None:
    obs, _ = make_series(days=50, noise=0.3)
    csv = tmp_path / "loads.csv"
    obs.rename_axis("time").to_csv(csv)
    plot = tmp_path / "bt.png"
    bt24 = ["forecast", "backtest", "--data", str(csv), "--horizon", "24"]
    r = CliRunner().invoke(_app(), [*bt24, "--json", "--lookback", "168", "--plot", str(plot)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model"] == "linear" and out["horizon"] == 24
    assert out["metrics"]["mae"] < out["baseline"]["mae"]
    assert plot.exists()
    r = CliRunner().invoke(_app(), [*bt24, "--lookback", "48", "--stride", "6"])
    assert r.exit_code == 0 and "seasonal-naive" in r.output
    args = ["forecast", "backtest", "--data", str(csv), "--lookback", "48", "--stride", "6"]
    once = CliRunner().invoke(_app(), [*args, "--json"])
    refit = CliRunner().invoke(_app(), [*args, "--json", "--refit-every", "48"])
    assert once.exit_code == 0 and refit.exit_code == 0, refit.output
    mae_once = json.loads(once.output)["metrics"]["mae"]
    assert json.loads(refit.output)["metrics"]["mae"] != mae_once
    r = CliRunner().invoke(_app(), [*args, "--refit-every", "0"])
    assert r.exit_code == 2 and "refit_every" in r.output


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    r = CliRunner().invoke(_app(), ["forecast", "backtest", "--data", str(tmp_path / "no.csv")])
    assert r.exit_code == 2 and "file not found" in r.output
    bad = tmp_path / "dup.csv"
    obs, _ = make_series(days=5)
    pd.concat([obs, obs.iloc[:3]]).rename_axis("time").to_csv(bad)
    r = CliRunner().invoke(_app(), ["forecast", "day-ahead", "--data", str(bad)])
    assert r.exit_code == 2 and "duplicate" in r.output
    assert "Traceback" not in r.output


def test_cli_day_ahead(tmp_path: Path) -> None:
    obs, _ = make_series(days=30)
    csv = tmp_path / "h.csv"
    obs.rename_axis("time").to_csv(csv)
    out = tmp_path / "f.csv"
    r = CliRunner().invoke(_app(), ["forecast", "day-ahead", "--data", str(csv), "--out", str(out)])
    assert r.exit_code == 0, r.output
    f = pd.read_csv(out)
    assert set(f["kind"]) == {"point", "q0.1", "q0.5", "q0.9"} and len(f) == 24 * 2 * 4


def test_result_matrix_orders_columns_for_the_twin() -> None:
    obs, _ = make_series(days=30)
    res = day_ahead(obs, model="seasonal-naive")
    m = res.matrix(["feeder_b_mw", "feeder_a_mw"])
    np.testing.assert_array_equal(m[:, 0], res.point[:, 1])
    np.testing.assert_array_equal(res.matrix(quantile=0.9), res.quantile(0.9))
    with pytest.raises(ValidationError, match="load_7"):
        res.matrix(["feeder_a_mw", "load_7"])


def _dst_frame(days: int = 40) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Hourly local-time rows across the end of summer time (+02:00 -> +01:00)."""
    idx = pd.date_range("2024-10-01", periods=24 * days, freq="h", tz="Europe/Berlin")
    t = np.arange(idx.size)
    load = 3.0 + np.sin(2 * np.pi * t / 24) + 0.05 * np.cos(t)
    return pd.DataFrame({"time": [x.isoformat() for x in idx], "load_mw": load}), idx


def _invoke(csv: Path, *extra: str, cmd: str = "day-ahead") -> Any:
    r = CliRunner().invoke(_app(), ["forecast", cmd, "--data", str(csv), *extra])
    assert "Traceback" not in r.output
    return r


def test_cli_mixed_utc_offsets_over_dst_are_read_as_utc(tmp_path: Path) -> None:
    df, idx = _dst_frame()
    assert df["time"].str[-6:].nunique() == 2  # both offsets are in the file
    csv = tmp_path / "dst.csv"
    df.to_csv(csv, index=False)
    h = prepare_history(pd.read_csv(csv))
    pd.testing.assert_index_equal(
        h.index, idx.tz_convert("UTC").tz_localize(None), check_names=False
    )
    r = _invoke(csv, "--json", "--horizon", "24")
    assert r.exit_code == 0, r.output
    first = json.loads(r.output)[0]["time"]
    assert pd.Timestamp(first) == idx[-1].tz_convert("UTC").tz_localize(None) + pd.Timedelta("1h")
    r = _invoke(csv, "--json", "--lookback", "48", "--stride", "24", cmd="backtest")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("unit,scale", [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_cli_integer_epoch_times_unit_by_magnitude(tmp_path: Path, unit: str, scale: int) -> None:
    df, idx = _dst_frame(days=30)
    utc = idx.tz_convert("UTC").tz_localize(None)
    df["time"] = (utc.asi8 // 10**9) * scale
    csv = tmp_path / "epoch.csv"
    df.to_csv(csv, index=False)
    assert epoch_unit(df["time"].to_numpy()) == unit
    h = prepare_history(pd.read_csv(csv))
    pd.testing.assert_index_equal(h.index, utc, check_names=False)
    r = _invoke(csv, "--json", "--horizon", "6")
    assert r.exit_code == 0, r.output
    assert pd.Timestamp(json.loads(r.output)[0]["time"]) == utc[-1] + pd.Timedelta("1h")
    r = _invoke(csv, "--json", "--horizon", "6", "--time-unit", unit)
    assert r.exit_code == 0, r.output
    r = _invoke(csv, "--time-unit", "fortnight")
    assert r.exit_code == 2 and "time_unit" in r.output


def test_cli_repair_option(tmp_path: Path) -> None:
    obs, _ = make_series(days=30)
    csv = tmp_path / "gap.csv"
    obs.drop(obs.index[[100, 101, 300]]).rename_axis("time").to_csv(csv)
    for cmd in ("day-ahead", "backtest"):
        r = _invoke(csv, cmd=cmd)
        assert r.exit_code == 2 and "missing timestamps" in r.output
        assert "--repair interpolate" in r.output
        r = _invoke(csv, "--repair", "interpolate", "--json", cmd=cmd)
        assert r.exit_code == 0, r.output
    r = _invoke(csv, "--repair", "interpolate", "--max-gap-steps", "1")
    assert r.exit_code == 2 and "run of 2 missing values" in r.output
    r = _invoke(csv, "--repair", "guess")
    assert r.exit_code == 2 and "repair" in r.output


def test_cli_not_numeric_names_column_value_and_time(tmp_path: Path) -> None:
    obs, _ = make_series(days=10)
    df = obs.rename_axis("time").reset_index()
    df["feeder_b_mw"] = df["feeder_b_mw"].astype(object)
    df.loc[30, "feeder_b_mw"] = "12,5 MW"
    csv = tmp_path / "text.csv"
    df.to_csv(csv, index=False)
    r = _invoke(csv)
    assert r.exit_code == 2
    assert "feeder_b_mw" in r.output and "12,5 MW" in r.output
    assert str(obs.index[30]) in r.output
    df.loc[30, "feeder_b_mw"] = 1.0
    df["time"] = df["time"].astype(str)
    df.loc[7, "time"] = "yesterday-ish"
    df.to_csv(csv, index=False)
    r = _invoke(csv)
    assert r.exit_code == 2 and "yesterday-ish" in r.output and "row 7" in r.output


def test_ett_split_from_the_time_step() -> None:
    h = ett_split(pd.Timedelta("1h"), 17_420)
    assert (h.val_start, h.test_start, h.end) == (8640, 11520, 14400)
    q = ett_split(pd.Timedelta("15min"), 70_000)
    assert (q.val_start, q.test_start, q.end) == (34560, 46080, 57600)
    with pytest.raises(ValidationError, match="divide 30 days"):
        ett_split(pd.Timedelta("7min"), 10**6)
    with pytest.raises(ValidationError, match="need 57600 rows"):
        ett_split(pd.Timedelta("15min"), 20_000)


def test_cli_ett_protocol_on_15_minute_data_tests_the_right_months(tmp_path: Path) -> None:
    n = 20 * 30 * 96 + 50
    idx = pd.date_range("2016-07-01", periods=n, freq="15min")
    t = np.arange(n)
    df = pd.DataFrame({"time": idx, "load_mw": 2 + np.sin(2 * np.pi * t / 96)})
    csv = tmp_path / "q.csv"
    df.to_csv(csv, index=False)
    args = ["--protocol", "ett", "--model", "seasonal-naive", "--horizon", "4", "--json"]
    r = _invoke(csv, *args, "--stride", "96", cmd="backtest")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    # test part: months 17-20 (30-day months) from the start, wherever the row counts say
    assert pd.Timestamp(out["first_origin"]) == idx[0] + pd.Timedelta(days=16 * 30)
    assert pd.Timestamp(out["last_origin"]) < idx[0] + pd.Timedelta(days=20 * 30)
    short = tmp_path / "short.csv"
    df.iloc[: 19 * 30 * 96].to_csv(short, index=False)
    r = _invoke(short, *args, cmd="backtest")
    assert r.exit_code == 2 and "ETT protocol" in r.output
