"""Command-line tests for the commands no other test file covers: ``grids``, ``powerflow``,
``timeseries``, ``serve``, ``flex frequency`` and ``reconfigure``'s bad input.

Expectations come from outside the code under test where one exists: the Baran & Wu paper's
base case (202.7 kW losses, 0.9131 pu at bus 18), the swing equation's initial RoCoF, and the
grid's own bus count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from gridpilot.cli import _register, app
from netutil import free_port

_register()
RUNNER = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    """Invoke the CLI in-process; returns (exit code, stdout and stderr together)."""
    res = RUNNER.invoke(app, list(args))
    return res.exit_code, res.output


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out, out


def test_grids_json_lists_builtin_grids_with_their_bus_counts() -> None:
    from gridpilot.model import load_grid

    code, out = _run("grids", "--json")
    assert code == 0, out
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"case33bw", "case69", "cigre-mv", "oberrhein"} <= set(rows)
    # the listed count is the loaded grid's, not a number typed into a table
    assert rows["case33bw"]["buses"] == len(load_grid("case33bw").bus) == 33
    assert rows["case69"]["buses"] == len(load_grid("case69").bus) == 69


def test_grids_table_names_each_grid() -> None:
    code, out = _run("grids")
    assert code == 0, out
    for name in ("case33bw", "case69", "oberrhein", "schutterwald"):
        assert name in out
    # grid families have no fixed size: they say so instead of a blank cell
    assert out.count("on demand") == 2


@pytest.mark.slow
def test_every_fixed_bus_count_is_the_loaded_grids() -> None:
    from gridpilot.model import list_grids, load_grid

    fixed = [g for g in list_grids() if g.buses is not None and not g.name.startswith("ieee")]
    assert {g.name for g in fixed} >= {
        "case33bw",
        "case69",
        "cigre-mv",
        "oberrhein",
        "schutterwald",
    }
    for g in fixed:
        assert len(load_grid(g.name).bus) == g.buses, g.name


def test_powerflow_json_reproduces_the_baran_wu_base_case() -> None:
    code, out = _run("powerflow", "case33bw", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["grid"] == "case33bw" and s["converged"] is True
    # Baran & Wu (1989) base case: 202.67 kW losses, lowest voltage 0.9131 pu at bus 18
    assert s["losses_kw"] == pytest.approx(202.68, abs=0.05)
    assert s["vmin_pu"] == pytest.approx(0.9131, abs=5e-4)
    assert s["vmin_bus"] == 18
    assert s["deenergised_buses"] == 0


def test_powerflow_text_output_and_bad_grid() -> None:
    code, out = _run("powerflow", "case33bw")
    assert code == 0 and "losses_kw" in out, out
    code, out = _run("powerflow", "no-such-grid")
    assert code == 2
    assert "no-such-grid" in out
    _no_traceback(out)


def test_powerflow_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    code, out = _run("powerflow", str(missing))
    assert code == 2
    assert "absent.json" in out
    _no_traceback(out)


def test_timeseries_json_counts_its_steps_and_bounds_voltages() -> None:
    code, out = _run("timeseries", "case33bw", "--steps", "8", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["steps"] == 8 and s["converged_steps"] == 8 and s["failed_steps"] == []
    assert s["buses"] == 33
    # the profiles scale the base load down, so the base case bounds the series from below
    assert 0.9130 < s["vmin_pu"] <= s["vmax_pu"] <= 1.0 + 1e-9
    assert s["energy_losses_mwh"] > 0


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_timeseries_refuses_non_positive_steps(steps: str) -> None:
    code, out = _run("timeseries", "case33bw", "--steps", steps, "--json")
    assert code == 2
    assert "steps" in out and steps in out
    _no_traceback(out)


def test_flex_frequency_matches_the_swing_equation_and_fleet_helps() -> None:
    code, out = _run("flex", "frequency", "--loss-mw", "600", "--ffr-mw", "900", "--json")
    assert code == 0, out
    r = json.loads(out)
    sys_ = r["system"]
    # initial RoCoF of the swing equation: dP f0 / (2 H S)
    rocof = 600 * sys_["f0_hz"] / (2 * sys_["h_s"] * sys_["s_mw"])
    assert r["without"]["rocof_hz_per_s"] == pytest.approx(rocof, rel=1e-6)
    assert r["with_fleet"]["nadir_hz"] > r["without"]["nadir_hz"]
    assert r["without"]["ffr_peak_mw"] == 0
    assert 0 < r["with_fleet"]["ffr_peak_mw"] <= 900 + 1e-9
    assert r["loss_mw"] == 600


def test_reconfigure_bad_input_names_the_field_and_value(tmp_path: Path) -> None:
    code, out = _run("reconfigure", "no-such-grid")
    assert code == 2 and "no-such-grid" in out
    _no_traceback(out)
    code, out = _run("reconfigure", "case33bw", "--vmin", "7")
    assert code == 2 and "7" in out and "v_min" in out
    _no_traceback(out)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, out = _run("reconfigure", str(bad))
    assert code == 2 and "bad.json" in out
    _no_traceback(out)


@pytest.mark.slow
def test_serve_answers_the_api_then_stops_on_ctrl_c() -> None:
    """``gridpilot serve`` serves /api/state to the printed viewer key; Ctrl-C (SIGINT) stops it
    with its summary and exit 0 (--duration is only a backstop here; its timer has its own
    test in tests/api/test_feeder_view.py)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gridpilot", "serve", "--port", str(port), "--duration", "120"]
    cmd += ["--world", "sim", "--speed", "600"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        head = ""
        deadline = time.monotonic() + 60
        while "operator key" not in head and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            head += line
        m = re.search(r"key=([A-Za-z0-9_\-]+)", head)
        assert m, head
        viewer = m.group(1)
        state = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/state", headers={"X-API-Key": viewer}, timeout=2
                )
            except httpx.TransportError:
                time.sleep(0.3)
                continue
            state = r
            break
        assert state is not None and state.status_code == 200, state
        refused = httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=2)
        assert refused.status_code == 401
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, head + rest
    assert "stopped at" in rest
    _no_traceback(head + rest)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (52210.4, "52,210"),
        (0.40960221821620085, "0.410"),
        (0.00123456, "0.00123"),
        (0.0, "0"),
        (1234567, "1,234,567"),
        (True, "True"),
        ({"ev": 3, "battery": 12}, "ev 3, battery 12"),
        (float("nan"), "nan"),
        ({}, "none"),
        ([], "none"),
    ],
)
def test_format_value_never_prints_scientific_money_or_raw_floats(value: object, text: str) -> None:
    from gridpilot.tables import format_value

    assert format_value(value) == text


def test_flex_plan_json_is_clean_in_a_fresh_process() -> None:
    """HiGHS prints a banner on fd 1 at the process's first solver: stdout must stay pure JSON."""
    cmd = [sys.executable, "-m", "gridpilot", "flex", "plan", "case33bw", "--hours", "4", "--json"]
    env = {k: v for k, v in os.environ.items() if k != "GRIDPILOT_LP_LOG"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "HiGHS" not in res.stdout
    s = json.loads(res.stdout)
    assert s["steps"] == 16


def test_flex_dr_prints_a_table_with_rounded_numbers() -> None:
    code, out = _run("flex", "dr", "case33bw", "--event", "start=18:00,minutes=60,target_mw=0.5")
    assert code == 0, out
    assert "rebound_mwh" in out and "target_met" in out
    # no raw float repr such as 0.40960221821620085
    assert not re.search(r"\d\.\d{6,}", out), out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_timeseries_out_writes_the_steps_the_summary_describes(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    out = tmp_path / f"steps{suffix}"
    code, text = _run(
        "timeseries", "case33bw", "--steps", "6", "--out", str(out), "--voltages", "--json"
    )
    assert code == 0, text
    s = json.loads(text)
    df = pd.read_csv(out, index_col=0) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == s["steps"] == s["out_rows"] == 6
    assert df.shape[1] == s["out_columns"]
    volts = df[[c for c in df.columns if c.startswith("v_pu_")]]
    assert volts.shape[1] == 33
    # the per-step extremes are those of the per-bus columns, and the summary's of the file's
    assert np.allclose(volts.min(axis=1), df["vmin_pu"]) and np.allclose(
        volts.max(axis=1), df["vmax_pu"]
    )
    assert df["vmin_pu"].min() == pytest.approx(s["vmin_pu"], abs=1e-6)
    assert df["losses_kw"].sum() * 0.25 / 1e3 == pytest.approx(s["energy_losses_mwh"], abs=1e-4)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--out", "steps.txt"], "'.txt'"),
        (["--out", "no/such/folder/steps.csv"], "does not exist"),
        (["--voltages"], "--voltages"),
    ],
)
def test_timeseries_out_bad_input(tmp_path: Path, args: list[str], needle: str) -> None:
    args = [str(tmp_path / a) if a.startswith(("steps", "no/")) else a for a in args]
    code, out = _run("timeseries", "case33bw", "--steps", "4", *args)
    assert code == 2 and needle in out, out
    _no_traceback(out)


def test_scenario_help_lists_every_scenario() -> None:
    from gridpilot.agent.cli import SCENARIO_NAMES
    from gridpilot.agent.scenarios import SCENARIOS

    assert set(SCENARIO_NAMES) == set(SCENARIOS) - {"n-1"}
    code, out = _run("scenario", "--help")
    assert code == 0
    for name in SCENARIOS:
        assert name in out, name


def test_field_run_prints_a_table_not_a_python_dict() -> None:
    code, out = _run("field", "run", "case33bw", "--hours", "0.1")
    assert code == 0, out
    assert "ingest readings_stored" in out
    assert "{'" not in out and "'ingest':" not in out


def test_powerflow_calc_ms_is_the_flow_and_first_call_ms_the_kernel_load() -> None:
    """In a fresh process the first call loads numba's compiled kernels; calc_ms is the flow."""
    cmd = [sys.executable, "-m", "gridpilot", "powerflow", "case33bw", "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert 0 < s["calc_ms"] < s["first_call_ms"]
    assert s["losses_kw"] == pytest.approx(202.68, abs=0.05)


@pytest.mark.parametrize(
    "args",
    [
        ["flex", "dr", "ieee13", "--event", "start=18:00"],
        ["timeseries", "ieee13", "--steps", "2"],
        ["field", "run", "ieee13", "--hours", "0.1"],
    ],
)
def test_balanced_only_commands_refuse_a_three_phase_feeder_by_name(args: list[str]) -> None:
    """Not yet three-phase: a named error and exit 2, not an AttributeError traceback."""
    code, out = _run(*args)
    assert code == 2, out
    assert "'ieee13' is a three-phase" in out and "qsts" in out
    _no_traceback(out)


def test_require_balanced_passes_a_balanced_grid_through() -> None:
    from gridpilot.errors import ValidationError
    from gridpilot.model import load_grid, require_balanced

    g = load_grid("case33bw")
    assert require_balanced(g, "x") is g
    with pytest.raises(ValidationError, match="'ieee13' is a three-phase"):
        require_balanced(load_grid("ieee13"), "x")
