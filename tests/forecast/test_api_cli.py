"""day_ahead() for the twin and the flexibility planner; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from fc_synth import make_series
from typer.testing import CliRunner

from gridpilot.errors import ValidationError
from gridpilot.forecast import ForecastResult, day_ahead, make_model
from gridpilot.forecast.cli import register


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
