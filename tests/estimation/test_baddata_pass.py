"""Balanced LNR with several non-interacting removals per pass: the same removals as one
measurement per estimate, with fewer estimates; a measurement the others' removal leaves
(nearly) critical is never taken."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gridpilot.estimation import (
    PowerSensorKind,
    estimate_robust,
    measurements_from_powerflow,
)
from gridpilot.estimation.baddata import _pass


def _flows_with_errors(grid, pf, seed: int, errors: int = 3):
    """Flow sensors on every line; ``errors`` line P readings 30 sigma off (as
    bench/se_baddata.py --case multi --kind flow)."""
    m, _ = measurements_from_powerflow(
        grid, pf, v_bus_ids=grid.bus.ids, line_from_ids=grid.line.ids,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    rng = np.random.default_rng(1000 + seed)
    flows = np.flatnonzero(m.p_kind == PowerSensorKind.LINE_FROM)
    j = rng.choice(flows, errors, replace=False)
    m.p_mw[j] += 30 * m.p_sigma_mw[j]
    return m


def test_several_per_pass_remove_what_one_at_a_time_removes(setup) -> None:
    grid, pf, se = setup
    estimates = {True: 0, False: 0}
    several = 0
    for seed in range(5):
        m = _flows_with_errors(grid, pf, seed)
        reps = {mode: estimate_robust(se, m, simultaneous=mode, max_removals=6)
                for mode in (False, True)}  # fmt: skip
        assert reps[True].removed_labels == reps[False].removed_labels, seed
        assert reps[True].result.chi2 == pytest.approx(reps[False].result.chi2, rel=1e-6)
        for mode, rep in reps.items():
            estimates[mode] += len(rep.chi2_history)
        several += int(len(reps[True].chi2_history) < len(reps[False].chi2_history))
    assert several >= 1 and estimates[True] < estimates[False]


@pytest.mark.parametrize("bus", [2, 9, 17, 24, 32])
def test_a_single_gross_voltage_error_is_removed_alike(setup, bus: int) -> None:
    grid, pf, se = setup
    m, _ = measurements_from_powerflow(
        grid, pf, v_bus_ids=grid.bus.ids, line_from_ids=[1, 18, 22, 25],
        rng=np.random.default_rng(0),
    )  # fmt: skip
    m.v_pu[bus] += 0.08
    one = estimate_robust(se, m, simultaneous=False)
    many = estimate_robust(se, m)
    assert many.removed_labels == one.removed_labels
    assert many.chi2_history == pytest.approx(one.chi2_history)


@pytest.mark.parametrize("coupling", [1.0, 0.999])
def test_a_row_left_critical_by_the_pass_is_never_taken(coupling: float) -> None:
    """Rows 0 and 1 carry the same information (``coupling`` 1: row 1 becomes critical when
    row 0 goes; 0.999: nearly); row 2 is independent and bad. The pass takes 0 and 2."""
    m = SimpleNamespace(v_pu=np.zeros(3), p_kind=np.zeros(0))
    res = SimpleNamespace(sigma=np.ones(3), residual=np.array([20.0, 19.9, 10.0]),
                          chi2=1e4, dof=100)  # fmt: skip
    s = np.array([[1.0, coupling, 0.0], [coupling, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rows = np.arange(3)
    out, j_pred = _pass(m, res, rows, s, (0, 20.0), 3.0, 0.01, 5, 3)  # type: ignore[arg-type]
    assert [r for r, _ in out] == [0, 2]
    assert j_pred == pytest.approx(1e4 - 20.0**2 - 10.0**2)
    s[2, 0] = s[0, 2] = 0.5  # row 2 now interacts with row 0: left to the next estimate
    out, _ = _pass(m, res, rows, s, (0, 20.0), 3.0, 0.01, 5, 3)  # type: ignore[arg-type]
    assert [r for r, _ in out] == [0]
