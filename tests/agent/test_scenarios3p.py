"""Scenarios and N-1 on a three-phase feeder (ieee123): the balanced KPIs and the node-phase
ones, from the unbalanced physics (issue #17, item 7)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from gridpilot.agent.contingency import n1_sweep
from gridpilot.agent.phase_kpis import PHASE_KPI_UNITS
from gridpilot.agent.scenarios import KPI_UNITS, run_scenario


def _sane(k: dict) -> None:
    assert set(KPI_UNITS) | set(PHASE_KPI_UNITS) <= set(k)
    assert 0.5 < k["peak_import_mw"] < 10.0  # ieee123 peaks near 3.5 MW
    assert k["losses_mwh"] > 0
    assert 0.85 < k["vmin_node_phase_pu"] <= k["vmax_node_phase_pu"] < 1.15
    assert k["node_phase_violation_min"] >= k["phase_voltage_violation_min"] >= 0
    assert 0 < k["max_unbalance_pct"] < 10


def test_heatwave_on_ieee123() -> None:
    rep = run_scenario("heatwave", "ieee123", hours=0.5)
    u, c = rep.uncontrolled.kpis, rep.controlled.kpis
    _sane(u)
    _sane(c)
    assert u["energy_not_served_mwh"] == 0.0
    assert rep.to_dict()["grid"] == "ieee123"
    units = {r["kpi"]: r["unit"] for r in rep.table()}
    assert units["vmin_node_phase_pu"] == "pu"
    assert len(rep.uncontrolled.series["vmin_phase_pu"]) == 30


def test_fault_on_ieee123_restores_part() -> None:
    rep = run_scenario("fault", "ieee123", hours=1.0, params={"at_min": 10, "repair_h": 2})
    u, c = rep.uncontrolled.kpis, rep.controlled.kpis
    _sane(u)
    _sane(c)
    assert u["energy_not_served_mwh"] > 0.5  # the feeder breaker trips: most load dark 50 min
    assert c["energy_not_served_mwh"] < u["energy_not_served_mwh"]  # FLISR restores a part
    assert rep.controlled.actions >= 1
    assert rep.checks["ens_ratio"] is not None and rep.checks["ens_ratio"] < 1


def test_ev_surge_on_ieee123_raises_import() -> None:
    calm = run_scenario("ev-surge", "ieee123", hours=0.5, params={"factor": 1.0})
    surge = run_scenario("ev-surge", "ieee123", hours=0.5, params={"factor": 4.0})
    _sane(surge.uncontrolled.kpis)
    _sane(surge.controlled.kpis)
    assert surge.uncontrolled.kpis["peak_import_mw"] > calm.uncontrolled.kpis["peak_import_mw"]


@pytest.mark.slow
def test_theft_on_ieee123_is_detected_without_false_alarms() -> None:
    # the meter path learns 24 intervals (6 h); tampering from 6 h 15 min
    rep = run_scenario("theft", "ieee123", hours=7.5, params={"at_min": 375})
    _sane(rep.controlled.kpis)
    assert rep.checks["detected"], rep.controlled.notes
    assert rep.checks["detection_delay_min"] <= 60
    assert rep.checks["false_alarms_before_theft"] == 0
    assert rep.checks["false_alarms_clean_run"] == 0


def test_n1_on_ieee123_reports_node_phases() -> None:
    rep = n1_sweep("ieee123", lines=[40, 61])
    assert rep.world == "three-phase"
    for r in rep.results:
        assert r.node_phase_violations_controlled is not None
        assert r.unsupplied_mw_uncontrolled > 0
        assert len(r.violating_node_phases_controlled) == min(
            r.node_phase_violations_controlled, 20
        )
        assert all("." in n for n in r.violating_node_phases_controlled)
    s = rep.summary
    assert s["controlled"]["unsupplied_mw_total"] <= s["uncontrolled"]["unsupplied_mw_total"]
    assert "node_phase_violations_total" in s["controlled"]
    assert 0.85 < s["controlled"]["worst_vmin_node_phase_pu"] <= 1.1


def test_scenario_cli_with_grid_option() -> None:
    from gridpilot.cli import _register, app

    if not any(c.name == "scenario" for c in app.registered_commands):
        _register()
    r = CliRunner().invoke(
        app, ["scenario", "heatwave", "--grid", "ieee123", "--hours", "0.25", "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["grid"] == "ieee123"
    assert math.isfinite(data["controlled"]["kpis"]["vmin_node_phase_pu"])
    bad = CliRunner().invoke(app, ["scenario", "heatwave", "--grid", "ieee124", "--json"])
    assert bad.exit_code == 2 and "ieee124" in bad.output


def test_fault_scenario_runs_on_ieee13_too() -> None:
    # a feeder whose one switch is behind most of its lines: the loop runs, named KPIs
    rep = run_scenario("fault", "ieee13", hours=0.25, params={"at_min": 5})
    _sane(rep.uncontrolled.kpis)
    _sane(rep.controlled.kpis)
    assert rep.uncontrolled.kpis["max_unbalance_pct"] > 1.0  # ieee13 is the unbalanced one
