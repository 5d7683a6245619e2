"""Constraint generation in the phase-aware plan: sensitivity rows computed on demand, the
monitored set, and re-planning until the exact power flow holds (issue 17 item 3 on ieee8500)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.flex import PhaseFleet, PhasePlanConfig, PlaceConfig, place_fleet, plan_phases
from gridpilot.flex.phase_cuts import TOL_V_PU
from gridpilot.flex.phase_network import PhaseNetwork
from gridpilot.model import load_grid
from gridpilot.model.threephase import ThreePhaseGrid


def test_sensitivity_rows_on_demand_match_the_dense_block(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet
) -> None:
    """Adjoint solves of the linearised power flow give the rows the dense perturbation
    solve gives (it moves 10 kW, so they agree to its nonlinearity), and only those asked."""
    steps = np.arange(48, 144)
    dense = PhaseNetwork(ieee13, fleet13.points(), steps, sens="dense")
    rows = PhaseNetwork(ieee13, fleet13.points(), steps, sens="rows")
    assert dense.mode == "dense" and rows.mode == "rows" and rows.sens is None
    assert rows.rows_computed == 0
    top = len(dense.controls) - 1
    li, nodes = np.array([0, top, 0]), np.array([5, 17, len(dense.nodes) - 1])
    want = dense.sens_at(li, nodes)
    got = rows.sens_at(li, nodes)
    assert got.shape == want.shape == (3, len(fleet13.points()))
    assert np.abs(got - want).max() <= 0.01 * np.abs(want).max()
    assert rows.rows_computed == 3  # the three (level, node-phase) rows, not the block
    v2r, v1r = rows.seq_at(np.array([top]), np.array([0]))
    v2d, v1d = dense.seq_at(np.array([top]), np.array([0]))
    assert np.abs(v2r - v2d).max() <= 0.01 * np.abs(v2d).max() + 1e-9
    assert np.abs(v1r - v1d).max() <= 0.01 * np.abs(v1d).max()


def test_constraint_generation_adds_a_broken_node_phase_and_the_replan_holds_it(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet
) -> None:
    """A tight lower voltage limit, no monitored set: the first plan breaks it at node-phases
    without a cut; their rows are added and the re-plan keeps them in the exact check."""
    cfg = PhasePlanConfig(t0=72, steps=32, sens="rows", monitor=0, v_min_pu=0.98)
    p = plan_phases(ieee13, fleet13, cfg)
    s = p.summary()
    cs = p.cut_set
    assert cs is not None
    assert s["sens_mode"] == "rows" and s["rounds"] >= 2
    assert s["broken_by_round"][0] > 0 and s["broken_by_round"][-1] == 0
    new = sorted(cs.round_nodes[1])  # node-phases round 1's exact check found broken
    assert new
    after = p.checks["after"]
    lo = np.minimum(0.98, p.checks["fixed"].v_pu)
    assert np.all(after.v_pu[new] >= lo[new] - TOL_V_PU)
    assert s["feasible"] is True
    assert 0 < s["sens_rows"] < len(p.checks["after"].v_pu) * len(set(cs.net.level.tolist()))
    one = plan_phases(ieee13, fleet13, dataclasses.replace(cfg, max_rounds=1))
    assert one.summary()["feasible"] is False  # the first plan fails its own exact check
    assert "voltage outside the band" in one.reason


def test_rows_plan_equals_the_dense_plan_on_ieee123() -> None:
    """Nothing binds outside the monitored set and the generated rows: the same optimum."""
    g = load_grid("ieee123")
    assert isinstance(g, ThreePhaseGrid)
    pf = place_fleet(g, PlaceConfig(seed=0))
    cfg = PhasePlanConfig(t0=64, steps=48)  # 16:00-04:00, the evening sessions
    dense = plan_phases(g, pf, dataclasses.replace(cfg, sens="dense")).summary()
    rows = plan_phases(g, pf, dataclasses.replace(cfg, sens="rows")).summary()
    assert dense["sens_mode"] == "dense" and rows["sens_mode"] == "rows"
    assert dense["feasible"] is True and rows["feasible"] is True
    assert rows["objective_eur"] == pytest.approx(dense["objective_eur"], rel=1e-4, abs=1e-2)
    assert rows["ev_delivered_mwh"] == pytest.approx(dense["ev_delivered_mwh"], rel=1e-6)
    assert rows["after"]["vuf_max_pct"] <= 2.01 and dense["after"]["vuf_max_pct"] <= 2.01
    assert rows["sens_rows"] < dense["sens_rows"] / 5


def test_bad_sensitivity_mode_or_monitor_is_a_named_error(
    ieee13: ThreePhaseGrid, fleet13: PhaseFleet
) -> None:
    with pytest.raises(ValidationError, match=r"field 'sens' = 'sparse'"):
        PhasePlanConfig(sens="sparse")
    with pytest.raises(ValidationError, match=r"field 'monitor' = -1"):
        PhasePlanConfig(monitor=-1)
    with pytest.raises(ValidationError, match=r"field 'sens' = 'full'"):
        PhaseNetwork(ieee13, fleet13.points(), np.arange(48, 50), sens="full")
