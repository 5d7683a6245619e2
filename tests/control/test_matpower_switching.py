"""MATPOWER cases can be switched (status-0 branches are ties), or are refused clearly
(issue #21 item 5)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridpilot.cli import _register, app


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register()
    return CliRunner()


def _case(tmp_path: Path, name: str) -> str:
    text = resources.files("gridpilot.model.data").joinpath(f"{name}.m").read_text()
    p = tmp_path / f"my_{name}.m"
    p.write_text(text)
    return str(p)


def test_m_file_with_status_0_branches_reconfigures_and_restores(runner, tmp_path):
    path = _case(tmp_path, "case33bw")  # five status-0 branches: the ties
    r = runner.invoke(app, ["reconfigure", path, "--vmin", "0.9", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert sorted(out["open"]) == [7, 9, 14, 32, 37]
    assert out["losses_kw_after"] == pytest.approx(139.55, rel=1e-3)
    r = runner.invoke(app, ["flisr", path, "--fault", "6", "--vmin", "0.9", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["located"] == [6] and out["restore"] and out["restored_kw"] > 0


def test_m_file_without_switch_data_is_refused_clearly(runner, tmp_path):
    path = _case(tmp_path, "case69")  # radial, no status-0 branch: no switches
    r = runner.invoke(app, ["reconfigure", path, "--json"])
    assert r.exit_code == 2
    assert "no remote-controllable switch" in r.output and "status-0" in r.output
    r = runner.invoke(app, ["flisr", path, "--fault", "6", "--json"])
    assert r.exit_code == 2
    assert "no switch can interrupt a fault on line(s) [6]" in r.output
