"""The Schur-complement factorisation: diagonal pivots where they are accurate, partial
pivoting where they are not, the same solution either way."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from gridpilot.model.threephase.builtin import ieee_feeder
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.network import variable_y
from gridpilot.twin.unbalanced.schur import schur_factor, schur_solve, variable_nodes


def _solve(y: sp.csr_matrix, kn: np.ndarray, b: np.ndarray) -> np.ndarray:
    f = schur_factor(y, kn, "test")
    out = np.zeros(len(b), complex)
    schur_solve(f, b, out)
    return out


def test_feeder_gets_diagonal_pivots_and_the_dense_solution() -> None:
    tw = UnbalancedTwin(ieee_feeder("ieee13"))
    y = (tw.net.y_fixed + variable_y(tw.net) + tw.y_loads).tocsr()
    kn = variable_nodes(tw.net)
    f = schur_factor(y, kn, "ieee13")
    assert np.array_equal(f.rnode, f.cnode)  # Pr = Pc: the symmetric order was kept
    # no fill beyond the strict lower triangle of A's pattern on this radial feeder, +10 %
    mask = np.ones(y.shape[0], bool)
    mask[kn] = False
    a = y[mask][:, mask]
    assert len(f.lx) <= 1.1 * sp.tril(a, -1).nnz
    rng = np.random.default_rng(1)
    b = rng.standard_normal(y.shape[0]) + 1j * rng.standard_normal(y.shape[0])
    out = np.zeros(len(b), complex)
    schur_solve(f, b, out)
    dense = y.toarray()
    scale = np.abs(dense) @ np.abs(out) + np.abs(b)
    assert (np.abs(dense @ out - b) / scale).max() < 1e-13  # componentwise backward error


def test_a_tiny_pivot_falls_back_to_partial_pivoting(caplog: pytest.LogCaptureFixture) -> None:
    # nodes 0 and 1 only couple to each other and to K: whichever goes first, its pivot is
    # 1e-14 and the other's -1e14 (growth 1e14): only partial pivoting is accurate
    a = np.array([[1e-14, 1, 0, 0, 0], [1, 1e-14, 0, 0, 0.5], [0, 0, 3, 1, 0],
                  [0, 0, 1, 4, 1], [0, 0.5, 0, 1, 5]], complex)  # fmt: skip
    y = sp.csr_matrix(a - 0.1j * (a.real > 0.4))
    b = np.arange(1, 6) + 1j
    with caplog.at_level(logging.INFO, logger="gridpilot.twin.unbalanced.schur"):
        out = _solve(y, np.array([3, 4]), b)
    assert "rejected" in caplog.text
    ref = np.linalg.solve(y.toarray(), b)
    assert np.abs(out - ref).max() <= 1e-12 * np.abs(ref).max()


def test_no_switching_nodes() -> None:
    y = sp.csr_matrix(np.array([[4, -1, 0], [-1, 4, -1], [0, -1, 4]], complex))
    b = np.array([1, 2, 3], complex)
    out = _solve(y, np.zeros(0, np.int64), b)
    assert np.abs(out - np.linalg.solve(y.toarray(), b)).max() < 1e-14
