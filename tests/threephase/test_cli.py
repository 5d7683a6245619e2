"""``gridpilot powerflow|qsts|grids`` on the three-phase grids."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner


def _invoke(*args: str) -> tuple[int, str]:
    from gridpilot.cli import _register, app

    _register()
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_powerflow_ieee13_json_has_per_phase_extremes_and_unbalance() -> None:
    code, out = _invoke("powerflow", "ieee13", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["nodes"] == 41
    for ph in (1, 2, 3):
        assert 0.9 < s[f"vmin_pu_phase{ph}"] <= s[f"vmax_pu_phase{ph}"] < 1.1
    assert s["vmin_node"].count(".") == 1
    assert 0 < s["max_unbalance_pct"] < 10


def test_qsts_json_counts_operations() -> None:
    code, out = _invoke("qsts", "ieee13", "--steps", "24", "--resolution", "1h", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["steps"] == 24 and s["resolution_s"] == 3600
    assert s["tap_ops"] == sum(s["tap_ops_per_regulator"].values())


def test_grids_lists_the_feeders_with_node_counts() -> None:
    code, out = _invoke("grids", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["ieee37"]["nodes"] == 117 and rows["ieee8500"]["buses"] == 4876


def test_bad_dss_is_one_clear_error_without_traceback(tmp_path: Path) -> None:
    p = tmp_path / "bad.dss"
    p.write_text("clear\nnew circuit.x basekv=12.47\nnew Widget.w1 bus1=sourcebus\n")
    code, out = _invoke("powerflow", str(p))
    assert code == 2
    assert "bad.dss" in out and "line: 3" in out and "Widget" in out
    assert "Traceback" not in out


def test_bad_resolution_is_refused() -> None:
    code, out = _invoke("qsts", "ieee13", "--resolution", "soon")
    assert code == 2 and "resolution" in out
