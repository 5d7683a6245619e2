"""The compiled Anderson mix (:mod:`gridpilot.twin.unbalanced.anderson`) against a plain
numpy Anderson step on random data: few pairs (k < depth), the ring wrapping round, the
first iteration of a solve (no new pair), depths under, at and over one 8-row pass."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.twin.unbalanced.anderson import HISTORY, _solve, anderson
from gridpilot.twin.unbalanced.faststep import Work, make_work


def _work(m: int, depth: int) -> Work:
    return make_work(1, m, np.array([1e-6, 50.0, depth, 2.0, 1.0]))


def _rdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Real inner products of complex vectors (rows of ``a`` with ``b``)."""
    return a.real @ b.real.T + a.imag @ b.imag.T


class Reference:
    """Anderson by the book: the last ``depth`` pairs of one ring kept across solves (stored
    rounded to ``HISTORY``, as the compiled ring), the Gram matrix recomputed from them in
    double, ``np.linalg.solve``."""

    def __init__(self, m: int, depth: int) -> None:
        self.depth = depth
        self.df, self.dg = np.zeros((depth, m), complex), np.zeros((depth, m), complex)
        self.f, self.g, self.n = np.zeros(m, complex), np.zeros(m, complex), 0

    def step(self, x: np.ndarray, g: np.ndarray, first: bool) -> np.ndarray:
        f = g - x
        if not first:
            slot = self.n % self.depth
            self.df[slot] = (f - self.f).astype(HISTORY).astype(complex)
            self.dg[slot] = (g - self.g).astype(HISTORY).astype(complex)
            self.n += 1
        self.f, self.g = f, g.copy()
        k = min(self.n, self.depth)
        if k == 0:
            return g.copy()
        gram = _rdot(self.df[:k], self.df[:k])
        gram += (np.trace(gram) * 1e-10 + 1e-300) * np.eye(k)
        gamma = np.linalg.solve(gram, _rdot(self.df[:k], f))
        return g - gamma @ self.dg[:k]


@pytest.mark.parametrize("depth", [1, 3, 8, 11])
def test_mix_matches_a_plain_numpy_anderson_step(depth: int) -> None:
    rng = np.random.default_rng(depth)
    m = 53
    w, ref = _work(m, depth), Reference(m, depth)
    # solves of 1 to 6 iterations: k grows from 0, the ring wraps (25 pairs), first
    # iterations use the previous solve's pairs
    firsts = [it == 0 for n in (1, 4, 6, 2, 5, 3, 6, 5, 2) for it in range(n)]
    x = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    for first in firsts:
        # a contraction's image, so the pairs stay well conditioned like a real solve's
        g = 0.3 * x + rng.standard_normal(m) + 1j * rng.standard_normal(m)
        w.x[:], w.gbr[:] = x, g
        anderson(w, first)
        want = ref.step(x, g, first)
        np.testing.assert_allclose(w.x, want, rtol=0, atol=1e-11 * np.abs(want).max())
        x = want
    assert w.hist[0] == ref.n == len(firsts) - 9


def _gamma(gram: np.ndarray, rhs: np.ndarray, k: int) -> np.ndarray:
    y = np.full(k, np.nan)
    _solve(gram, rhs, k, np.full((k, k), np.nan), y)  # scratch of NaN: all of it written first
    return y


def test_solve_falls_back_to_lu_when_the_gram_is_not_positive_definite() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5))
    gram, rhs = a + a.T, rng.standard_normal(5)  # symmetric, indefinite
    reg = np.trace(gram) * 1e-10 + 1e-300
    want = np.linalg.solve(gram + reg * np.eye(5), rhs)
    np.testing.assert_allclose(_gamma(gram, rhs, 5), want, rtol=1e-12)
    spd = a @ a.T + np.eye(5)  # positive definite: Cholesky, on the leading 4×4 block
    lead = spd[:4, :4]
    want = np.linalg.solve(lead + (np.trace(lead) * 1e-10 + 1e-300) * np.eye(4), rhs[:4])
    np.testing.assert_allclose(_gamma(spd, rhs, 4), want, rtol=1e-12)


def test_solve_pivots_and_gives_the_plain_step_on_a_non_finite_system() -> None:
    gram = np.array([[0.0, 1.0], [1.0, 0.0]])  # indefinite; a zero first pivot without pivoting
    np.testing.assert_allclose(_gamma(gram, np.array([2.0, 3.0]), 2), [3.0, 2.0], rtol=1e-9)
    nan = np.array([[np.nan, 0.0], [0.0, 1.0]])
    assert np.array_equal(_gamma(nan, np.ones(2), 2), [0.0, 0.0])
