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
from gridpilot.twin.unbalanced.schur import factorise, schur_factor, schur_solve, variable_nodes
from gridpilot.twin.unbalanced.trisolve import LANES, chunk_factor


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
    lu = factorise(a.tocsc(), "ieee13")
    assert lu.L.nnz - a.shape[0] <= 1.1 * sp.tril(a, -1).nnz  # type: ignore[attr-defined]
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


def _random_system(n: int, density: float, seed: int) -> sp.csr_matrix:
    """A structurally symmetric, diagonally dominant complex matrix (values not symmetric)."""
    rng = np.random.default_rng(seed)
    m = sp.random(n, n, density, random_state=rng, format="coo")
    pattern = sp.csr_matrix((np.ones(m.nnz), (m.row, m.col)), (n, n))
    pattern = ((pattern + pattern.T) > 0).astype(float).tocoo()
    vals = rng.standard_normal(pattern.nnz) + 1j * rng.standard_normal(pattern.nnz)
    off = sp.csr_matrix((vals, (pattern.row, pattern.col)), (n, n))
    off.setdiag(0)
    diag = np.asarray(abs(off).sum(axis=1)).ravel() + 1.0
    return (off + sp.diags(diag * (1 + 0.3j))).tocsr()


@pytest.mark.parametrize(("n", "density", "nk", "seed"),
                         [(40, 0.05, 0, 1), (60, 0.08, 5, 2), (200, 0.02, 12, 3), (9, 0.5, 3, 4)])  # fmt: skip
def test_random_sparse_systems_match_spsolve(n: int, density: float, nk: int, seed: int) -> None:
    y = _random_system(n, density, seed)
    kn = np.sort(np.random.default_rng(seed).choice(n, nk, replace=False)).astype(np.int64)
    rng = np.random.default_rng(seed + 10)
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    ref = sp.linalg.spsolve(y.tocsc(), b)
    f = schur_factor(y, kn, "random")
    # the backward sweep reads the rows it wrote into ``out`` (padding: a written place
    # times zero), so whatever ``out`` held before, even NaN, must not leak into the result
    out = np.full(n, np.nan, complex)
    for _ in range(2):  # the scratch vectors are reused: a second solve is the same
        schur_solve(f, b, out)
        assert np.abs(out - ref).max() <= 1e-12 * np.abs(ref).max()


def test_level_chunks_hold_every_row_once_in_dependency_order() -> None:
    # rows of many lengths (0 to ~20): a dense lower triangle with holes
    n = 23
    rng = np.random.default_rng(5)
    low = np.tril(rng.standard_normal((n, n)) + 1j, -1) * (rng.random((n, n)) < 0.6)
    for r in range(n):
        low[r, :r] = np.where(np.arange(r) < rng.integers(0, r + 1), low[r, :r], 0)
    csr = sp.csr_matrix(low)
    csr.sort_indices()
    src = np.arange(n) + 100
    ch, pos = chunk_factor(csr.indptr, csr.indices, csr.data, True, src)
    lens = np.diff(csr.indptr)
    assert len(set(lens)) > 5
    zero = 2 * len(ch.src)  # indices count float64s: 2 per complex
    assert len(ch.src) % LANES == 0 and sorted(set(pos)) == sorted(pos)
    written = set()
    for c, (o, w) in enumerate(zip(ch.off, ch.width, strict=True)):
        idx = ch.idx[o : o + LANES * w].reshape(w, LANES)
        # a chunk reads only rows written by earlier chunks (or the zero slot)
        assert set(idx.ravel()) <= written | {zero}
        for lane in range(LANES):
            r = ch.src[LANES * c + lane] // 2 - 100
            assert lens[r] <= w
            assert np.array_equal(
                idx[: lens[r], lane], 2 * pos[csr.indices[csr.indptr[r] : csr.indptr[r + 1]]]
            )
            assert np.all(idx[lens[r] :, lane] == zero)
        rows = [int(ch.src[LANES * c + lane]) // 2 - 100 for lane in range(LANES)]
        # a chunk is as wide as its longest row; a short chunk repeats its own first row
        assert w == max(lens[r] for r in rows)
        assert all(r == rows[0] for r in rows[len(set(rows)) :])
        written |= set(range(2 * LANES * c, 2 * LANES * c + 2 * LANES, 2))
    assert {int(r) // 2 - 100 for r in ch.src} == set(range(n))


def test_a_large_tree_uses_four_byte_indices_and_solves() -> None:
    n = 17_000  # twice the rows exceed int16: the chunks index with int32
    rng = np.random.default_rng(6)
    parent = np.array([rng.integers(0, i) for i in range(1, n)])
    vals = rng.standard_normal(n - 1) + 1j * rng.standard_normal(n - 1)
    off = sp.csr_matrix((vals, (np.arange(1, n), parent)), (n, n))
    off = off + off.T
    y = (off + sp.diags(np.asarray(abs(off).sum(axis=1)).ravel() + 1 + 1j)).tocsr()
    kn = np.array([3, 70, 900], np.int64)
    f = schur_factor(y, kn, "tree")
    assert f.lc.idx.dtype == np.int32
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    out = np.zeros(n, complex)
    schur_solve(f, b, out)
    ref = sp.linalg.spsolve(y.tocsc(), b)
    assert np.abs(out - ref).max() <= 1e-12 * np.abs(ref).max()
