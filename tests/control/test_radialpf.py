"""The FLISR candidate sweep (radialpf) and section helpers: agreement, warm starts, errors."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.control.flisr import FlisrEngine, Limits, branch_status_all
from gridpilot.control.radialpf import RadialSolver
from gridpilot.control.sections import subtree_mask
from gridpilot.errors import ValidationError
from gridpilot.model import load_grid
from gridpilot.twin import Injections, Twin


@pytest.fixture(scope="module")
def grid():
    return load_grid("case33bw")


def _candidates(grid, n: int, seed: int = 0) -> tuple[np.ndarray, FlisrEngine]:
    """The base state plus radial variants: close one tie, open a switch on the loop it makes."""
    eng = FlisrEngine(grid, Limits(v_min_pu=0.9), verify="radial")
    rng = np.random.default_rng(seed)
    sw = grid.switch
    rows = [branch_status_all(eng, sw["closed"])]
    ties = np.flatnonzero(~sw["closed"])
    while len(rows) < n:
        closed = sw["closed"].copy()
        closed[rng.choice(ties)] = True
        closed[rng.choice(np.flatnonzero(closed))] = False
        rows.append(branch_status_all(eng, closed))
    return np.array(rows), eng


def test_warm_start_gives_the_cold_solution(grid):
    cond, eng = _candidates(grid, 40)
    solver = eng.solver
    roots = grid.bus.position_map(grid.source["bus"])
    reg = solver.prepare(
        np.arange(len(grid.bus)), np.arange(cond.shape[1]), roots, grid.source["vm_pu"]
    )
    cold = solver.run(reg, cond)
    warm = solver.run(reg, cond, warm_from_first=True)
    ok = cold.converged & cold.radial
    assert ok.sum() > 10
    assert np.array_equal(cold.supplied, warm.supplied) and np.array_equal(cold.radial, warm.radial)
    assert np.max(np.abs(cold.v_pu[ok] - warm.v_pu[ok])) < 1e-8
    assert np.max(np.abs(cold.loading_pct[ok] - warm.loading_pct[ok])) < 1e-5
    assert warm.iterations <= cold.iterations


def test_sweep_candidates_match_the_twin(grid):
    """Every radial candidate of the batch against power-grid-model on the same switch states."""
    cond, eng = _candidates(grid, 12, seed=1)
    twin = Twin(grid, engine="pgm")
    roots = grid.bus.position_map(grid.source["bus"])
    out = eng.solver.solve(
        np.arange(len(grid.bus)), np.arange(cond.shape[1]), roots, grid.source["vm_pu"], cond
    )
    nl = len(grid.line)
    checked = 0
    for t in np.flatnonzero(out.radial & out.converged):
        on = cond[t, :nl]
        closed = np.ones(len(grid.switch), bool)
        closed[grid.switch.index_of(grid.line.ids[~on])] = False  # case33bw: one switch per line
        pf = twin.powerflow(Injections(switch_closed=closed))
        assert pf.converged
        live = pf.energised
        assert np.array_equal(live, out.supplied[t])
        assert np.max(np.abs(out.v_pu[t][live] - pf.v_pu[live])) < 1e-6
        assert out.max_loading_pct[t] == pytest.approx(
            float(np.nanmax(pf.line_loading_pct)), abs=1e-3
        )
        checked += 1
    assert checked >= 5


def test_bad_batch_shapes_are_clear_errors(grid):
    solver = RadialSolver(grid)
    reg = solver.prepare(np.arange(33), np.arange(37), np.array([0]), np.array([1.0]))
    with pytest.raises(ValidationError, match="conducting: expected 37 columns"):
        solver.run(reg, np.ones((2, 5), bool))
    with pytest.raises(ValidationError, match="roots"):
        solver.prepare(np.arange(1, 33), np.arange(1, 37), np.array([0]), np.array([1.0]))
    with pytest.raises(ValidationError, match="branches"):
        solver.prepare(np.arange(5), np.arange(37), np.array([0]), np.array([1.0]))


def test_subtree_mask_matches_walking_up():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 50))
        parent = np.array(
            [-1 if i == 0 or rng.random() < 0.15 else int(rng.integers(0, i)) for i in range(n)]
        )
        perm = rng.permutation(n)  # parents need not come first
        inv = np.argsort(perm)
        parent = np.where(parent >= 0, inv[np.maximum(parent, 0)], -1)[perm]
        tops = rng.choice(n, int(rng.integers(1, 4)))
        got = subtree_mask(parent, tops)
        for x in range(n):
            y, inside = x, False
            while y >= 0 and not inside:
                inside = y in set(tops.tolist())
                y = parent[y]
            assert got[x] == inside


def test_final_check_reports_the_twins_values(grid):
    eng = FlisrEngine(grid, Limits(v_min_pu=0.9), verify="twin")
    twin = Twin(grid, engine="pgm")
    for lid in (6, 2, 28):
        res = eng.respond_to_faults([lid])
        pf = twin.powerflow(Injections(switch_closed=res.switch_closed_after))
        assert res.verified_by == "twin"
        assert res.vmin_pu_after == pytest.approx(pf.vmin_pu, abs=1e-9)
        assert res.max_loading_pct_after == pytest.approx(pf.max_loading_pct, abs=1e-6)
