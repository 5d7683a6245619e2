"""The compiled fixed point's stop rule (faststep.fixed_point): with Anderson mixing it
stops on the residual of the loads (no confirming solve), and what it returns is then a
solution to within the tolerance: one more plain iteration hardly moves it."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.model import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.faststep import Run, fixed_point
from gridpilot.twin.unbalanced.qsts_fast import pack
from gridpilot.twin.unbalanced.qsts_stats import Accumulator


def _run(tw: UnbalancedTwin, tol: float, depth: int) -> Run:
    acc = Accumulator(tw.net.nodes, tw.net.vbase_v, 0)
    return pack(tw, acc, np.zeros(0), np.array([tol, 200.0, float(depth), 0.0, 0.0]))


@pytest.mark.parametrize("name", ["ieee13", "ieee123"])
@pytest.mark.parametrize("tol", [1e-4, 1e-8])
def test_the_residual_stop_returns_a_solution_within_the_tolerance(name: str, tol: float) -> None:
    tw = UnbalancedTwin(load_grid(name))
    run = _run(tw, tol, 3)
    s = np.ascontiguousarray(tw.loads.s_va * 0.9)
    v = np.zeros(tw.net.n, complex)
    first = _run(tw, 1e-12, 0)
    assert fixed_point(first.f, first.ld, first.sa, first.w, s * 0.5, v) > 0  # a start
    it = fixed_point(run.f, run.ld, run.sa, run.w, s, v)
    assert it > 0
    exact = v.copy()
    assert fixed_point(first.f, first.ld, first.sa, first.w, s, exact) > 0
    err = np.abs(v - exact) / tw.net.vbase_v
    assert err.max() < 20 * tol, err.max()  # a contraction's residual bounds the error
    plain = _run(tw, tol, 0)  # OpenDSS's rule from the same start takes more solves
    v0 = v.copy()
    assert fixed_point(first.f, first.ld, first.sa, first.w, s * 0.5, v0) > 0
    assert fixed_point(plain.f, plain.ld, plain.sa, plain.w, s, v0) >= it
