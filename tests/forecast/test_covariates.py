"""Covariates as first-class inputs: ForecastInputDataset, CLI --target/--covariates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from gridpilot.errors import ValidationError
from gridpilot.forecast import day_ahead
from gridpilot.forecast.cli import register
from gridpilot.forecast.inputs import ForecastInputDataset


def weather_frame(days: int = 40, future_h: int = 24, seed: int = 0) -> pd.DataFrame:
    """Hourly load driven by a random temperature (level per day) plus a daily cycle;
    the last ``future_h`` rows hold the temperature forecast only (load NaN)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    idx = pd.date_range("2024-01-01", periods=n, freq="h")
    temp = np.repeat(rng.normal(10, 6, days), 24) + rng.normal(0, 0.5, n)
    hour = idx.hour.to_numpy()
    load = 20 + 3 * np.sin(2 * np.pi * hour / 24) - 0.8 * temp + rng.normal(0, 0.2, n)
    df = pd.DataFrame({"time": idx, "load": load, "temp": temp, "noise": rng.normal(size=n)})
    df.loc[df.index[n - future_h :], "load"] = np.nan
    return df


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """test root"""

    register(app)
    return app


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(_app(), list(args))
    return r.exit_code, r.output + (r.stderr if r.stderr_bytes is not None else "")


def test_dataset_splits_target_and_future_covariates() -> None:
    df = weather_frame()
    ds = ForecastInputDataset.from_frame(df, "load", ["temp"])
    assert ds.target == ("load",) and ds.covariate_names == ("temp",)
    assert len(ds.history) == 39 * 24
    assert ds.history.index[-1] == pd.Timestamp("2024-02-08 23:00")
    fut = ds.future_covariates(24)
    assert fut is not None and fut.index[-1] == pd.Timestamp("2024-02-09 23:00")
    with pytest.raises(ValidationError, match=r"temp.*2024-02-10 00:00"):
        ds.future_covariates(25)
    alls = ForecastInputDataset.from_frame(df, "load", "all")
    assert alls.covariate_names == ("temp", "noise")


def test_weather_lowers_the_error_in_python_and_cli(tmp_path: Path) -> None:
    df = weather_frame()
    ds = ForecastInputDataset.from_frame(df, "load", ["temp"])
    truth = 20 + 3 * np.sin(2 * np.pi * np.arange(24) / 24) - 0.8 * df["temp"].to_numpy()[-24:]
    kw = {"n_estimators": 200, "max_rows": 20_000}
    with_w = day_ahead(ds, 24, model="gbm", **kw)
    without = day_ahead(ds.history, 24, model="gbm", **kw)
    err_w = np.abs(with_w.point[:, 0] - truth).mean()
    err_0 = np.abs(without.point[:, 0] - truth).mean()
    assert err_w < 0.6 * err_0
    path = tmp_path / "w.csv"
    df.to_csv(path, index=False)
    code, out = _run(
        "forecast",
        "day-ahead",
        "--data",
        str(path),
        "--target",
        "load",
        "--covariates",
        "temp",
        "--model",
        "gbm",
        "--json",
    )
    assert code == 0, out
    assert "2024-02-09 23:00" in out
    code, out = _run(
        "forecast",
        "backtest",
        "--data",
        str(path),
        "--target",
        "load",
        "--covariates",
        "temp",
        "--model",
        "gbm",
        "--stride",
        "24",
        "--json",
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.assign(temp=d["temp"].astype(object)).pipe(_put, 100, "temp", "warm"), "warm"),
        (lambda d: d.assign(temp=np.nan), "all NaN"),
        (lambda d: d.assign(temp=d["temp"].where(d.index % 2 == 0)), "2:00:00 time step"),
        (lambda d: d.iloc[:-5], "2024-02-09 19:00"),
        (lambda d: pd.concat([d, d.iloc[[50]]]), "2024-01-03 02:00"),
        (lambda d: d.assign(temp=d["temp"].where(d.index != 300)), "2024-01-13 12:00"),
    ],
    ids=["non-numeric", "all-nan", "other-step", "future-missing", "duplicate", "gap"],
)
def test_bad_covariates_exit_2_naming_column_and_time(
    tmp_path: Path, mutate: object, needle: str
) -> None:
    df = mutate(weather_frame())  # type: ignore[operator]
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    code, out = _run(
        "forecast",
        "day-ahead",
        "--data",
        str(path),
        "--target",
        "load",
        "--covariates",
        "temp",
        "--model",
        "gbm",
    )
    assert code == 2, out
    assert needle in out
    assert "Traceback" not in out
    if needle not in ("2024-01-03 02:00",):
        assert "temp" in out


def test_linear_model_refuses_covariates(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    weather_frame().to_csv(path, index=False)
    code, out = _run(
        "forecast",
        "day-ahead",
        "--data",
        str(path),
        "--target",
        "load",
        "--covariates",
        "temp",
        "--model",
        "linear",
    )
    assert code == 2 and "covariates" in out


def _put(df: pd.DataFrame, row: int, col: str, value: object) -> pd.DataFrame:
    df = df.copy()
    df.loc[row, col] = value
    return df


def test_dataset_from_parts_as_the_loop_would_pass_them() -> None:
    df = weather_frame().set_index("time")
    hist = df[["load"]].dropna()
    weather = df[["temp"]]
    ds = ForecastInputDataset.from_parts(hist, weather)
    res = day_ahead(ds, 24, model="gbm", n_estimators=50, max_rows=10_000)
    assert res.index[0] == pd.Timestamp("2024-02-09 00:00")
    hourly2 = weather.iloc[::2]
    with pytest.raises(ValidationError, match=r"temp.*2:00:00 time step"):
        ForecastInputDataset.from_parts(hist, hourly2)
