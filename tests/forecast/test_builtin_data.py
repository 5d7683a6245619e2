"""Forecasting without a CSV of one's own: a grid's own profiles as data (builtin:<grid>)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridpilot.cli import _register, app

_register()


def test_grid_series_is_the_twins_own_load_injection() -> None:
    from gridpilot.agent import demo_grid
    from gridpilot.model import GenKind, grid_series
    from gridpilot.twin import profiles_for, step_injections

    g = demo_grid("case33bw")
    s = grid_series(g, 96 * 3)
    prof, cols = profiles_for(g, 96 * 3)
    inj = step_injections(g, prof, cols, slice(0, 96 * 3))
    assert np.allclose(s["load_mw"].to_numpy(), inj["load_p_mw"].sum(axis=1))
    wind = g.generator["kind"] == GenKind.WIND
    assert np.allclose(s["wind_mw"].to_numpy(), inj["gen_p_mw"][:, wind].sum(axis=1))
    assert len(s) == 96 * 3 and s.index[1] - s.index[0] == pd.Timedelta(minutes=15)


def test_day_ahead_on_builtin_data_shows_the_band(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["forecast", "day-ahead", "--data", "builtin:case33bw", "--horizon", "8", "--json"]
    )
    assert r.exit_code == 0, r.output
    rows = pd.DataFrame(json.loads(r.output))
    assert set(rows["series"]) == {"load_mw"}
    # the table (the model does not matter for its columns: the quick one)
    r = CliRunner().invoke(
        app,
        ["forecast", "day-ahead", "--data", "builtin:case33bw", "--horizon", "8",
         "--model", "seasonal-naive"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "P10" in r.output and "P90" in r.output and "point" in r.output


def test_export_writes_the_series_that_builtin_forecasts(tmp_path: Path) -> None:
    from gridpilot.model import grid_series, load_grid

    out = tmp_path / "c33.csv"
    r = CliRunner().invoke(
        app, ["forecast", "export", "case33bw", "--out", str(out), "--days", "3"]
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out, index_col=0)
    assert len(df) == 3 * 96
    assert np.allclose(
        df["load_mw"].to_numpy(), grid_series(load_grid("case33bw"), 3 * 96)["load_mw"]
    )


@pytest.mark.parametrize(("spec", "needle"), [("ieee13", "three-phase"), ("nosuch", "nosuch")])
def test_builtin_data_refuses_by_name(spec: str, needle: str) -> None:
    r = CliRunner().invoke(app, ["forecast", "day-ahead", "--data", f"builtin:{spec}"])
    assert r.exit_code == 2 and needle in r.output, r.output
    assert "Traceback" not in r.output
