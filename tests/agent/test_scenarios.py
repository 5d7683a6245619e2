from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridpilot.agent import ScenarioSpec, n1_sweep, run_scenario
from gridpilot.agent.scenarios import run_many, write_report
from gridpilot.errors import UnknownComponentError, ValidationError


def test_fault_scenario_energy_not_served_within_10_percent(tmp_path: Path) -> None:
    rep = run_scenario("fault", "case33bw", hours=1.0, params={"at_min": 10})
    u, c = rep.uncontrolled.kpis, rep.controlled.kpis
    assert u["energy_not_served_mwh"] > 0.5
    assert c["energy_not_served_mwh"] <= 0.10 * u["energy_not_served_mwh"]
    assert c["saidi_min"] < 0.2 * u["saidi_min"] and c["saifi"] < u["saifi"]
    assert rep.checks["ens_within_10pct"] is True
    paths = write_report(rep, tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["checks"]["ens_within_10pct"] is True
    assert saved["world"] == "field"  # the default world: gridpilot.field's simulator


def test_heatwave_violations_removed_by_control() -> None:
    rep = run_scenario("heatwave", "case33bw", hours=4, step_s=120, params={"start_hour": 16})
    u, c = rep.uncontrolled.kpis, rep.controlled.kpis
    assert (
        u["voltage_violation_min"] + u["loading_violation_min"] > 30
    )  # the uncontrolled case has them
    assert c["voltage_violation_min"] + c["loading_violation_min"] == 0
    assert rep.controlled.actions >= 1


def test_ev_surge_violations_removed_without_running_batteries_flat() -> None:
    rep = run_scenario("ev-surge", "case33bw", hours=6, step_s=120)
    u, c = rep.uncontrolled.kpis, rep.controlled.kpis
    assert u["voltage_violation_min"] > 60
    assert (
        c["voltage_violation_min"] == 0
    )  # batteries alone run empty mid-evening: the policy must see that


def test_cyberattack_forged_commands_refused() -> None:
    rep = run_scenario("cyberattack", "case33bw", hours=0.75)
    assert rep.uncontrolled.kpis["energy_not_served_mwh"] > 0 and rep.uncontrolled.notes
    assert rep.controlled.kpis["energy_not_served_mwh"] == 0
    assert rep.controlled.refused >= 3
    assert rep.checks["telemetry_frames_refused"] >= 3
    # the compromised voltage sensor (signed, so telemetry passes it) is caught by the estimator
    assert rep.checks["bad_data_removed"] == ["V bus 18"]
    assert any("bus 18 compromised" in n for n in rep.controlled.notes)


@pytest.mark.parametrize("world", ["field", "sim"])
def test_n1_sweep_restores_most_load(world: str) -> None:
    # 2: the whole feeder behind the first line goes dark (the DR room must be judged on the
    # demand the dark loads will have, not on their metered zero); 33 is a tie: skipped
    rep = n1_sweep("case33bw", lines=[2, 7, 20, 33], world=world)
    assert [r.line for r in rep.results] == [2, 7, 20]
    for r in rep.results:
        assert r.unsupplied_mw_controlled < 0.4 * r.unsupplied_mw_uncontrolled, r
    assert rep.to_dict()["world"] == world
    s = rep.summary
    assert s["controlled"]["unsupplied_mw_total"] < 0.15 * s["uncontrolled"]["unsupplied_mw_total"]
    assert s["controlled"]["worst_vmin_pu"] >= 0.90 - 1e-3


@pytest.mark.slow
def test_dask_executor_gives_the_same_results() -> None:
    specs = [ScenarioSpec("fault", "case33bw", 0.3, c, params={"at_min": 5}) for c in (False, True)]
    serial = run_many(specs, "serial")
    dask = run_many(specs, "dask", workers=2)
    assert [r.kpis for r in serial] == [r.kpis for r in dask]


def test_bad_scenario_input() -> None:
    with pytest.raises(UnknownComponentError, match="scenario"):
        run_scenario("tsunami")
    with pytest.raises(ValidationError, match="executor"):
        run_many([ScenarioSpec("fault")], "threads")
    with pytest.raises(UnknownComponentError, match="line"):
        run_scenario("fault", hours=0.2, params={"line": 999})
    with pytest.raises(ValidationError, match=r"world.*'twin'"):
        n1_sweep("case33bw", lines=[7], world="twin")


def test_cli_demo_and_scenario(tmp_path: Path) -> None:
    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--steps", "45"])
    assert r.exit_code == 0, r.output
    assert "flisr" in r.output and '"audit_chain_ok": true' in r.output
    r = CliRunner().invoke(
        app,
        ["scenario", "fault", "case33bw", "--hours", "0.75", "--json", "--report", str(tmp_path)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    ens = {k: data[k]["kpis"]["energy_not_served_mwh"] for k in ("uncontrolled", "controlled")}
    assert (
        ens["controlled"] < 0.2 * ens["uncontrolled"]
    )  # a 15-minute outage: the first minute weighs more
    assert (tmp_path / "timeseries.png").exists()
    r = CliRunner().invoke(app, ["scenario", "tsunami"])
    assert r.exit_code == 2 and "unknown scenario" in r.output
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--world", "twin"])
    assert r.exit_code == 2 and "world" in r.output and "Traceback" not in r.output
