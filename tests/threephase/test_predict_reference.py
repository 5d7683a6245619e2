"""The compiled step predictor (:mod:`gridpilot.twin.unbalanced.predict`, its passes
fused) against a plain reference with one pass per sum and per axpy: bit for bit (its fit by
Gaussian elimination written out in the compiled order)."""

from __future__ import annotations

import numpy as np

from gridpilot.twin.unbalanced.predict import MAX_COEF, RIDGE, close, make_pred, predict


def _elimination(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian elimination with partial pivoting, written out (the compiled fit's order)."""
    a, y, k = a.copy(), b.copy(), len(b)
    for col in range(k):
        piv = col + int(np.argmax(np.abs(a[col:, col])))
        a[[col, piv]], y[[col, piv]] = a[[piv, col]], y[[piv, col]]
        for i in range(col + 1, k):
            g = a[i, col] / a[col, col]
            a[i, col:] -= g * a[col, col:]
            y[i] -= g * y[col]
    for i in range(k - 1, -1, -1):
        acc = y[i]
        for j in range(i + 1, k):
            acc -= a[i, j] * y[j]
        y[i] = acc / a[i, i]
    return y


def test_the_written_out_elimination_solves() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal(3)
    np.testing.assert_allclose(_elimination(a, b), np.linalg.solve(a, b), rtol=1e-12)


class _OldPredictor:
    """The step predictor as it was (a pass per axpy, the Gram sums at closing)."""

    def __init__(self, pairs: int, n: int, m: int) -> None:
        self.depth = pairs + 1
        self.dv = np.zeros((self.depth, n), complex)
        self.ds = np.zeros((self.depth, m), complex)
        self.s0 = np.zeros(m, complex)
        self.gram = np.zeros((self.depth, self.depth))
        self.cnt, self.known, self.pending = 0, False, False

    @staticmethod
    def _rdot(a: np.ndarray, b: np.ndarray) -> float:
        acc = 0.0
        for x, y in zip(a, b, strict=True):
            acc += x.real * y.real + x.imag * y.imag
        return acc

    def predict(self, s: np.ndarray, v: np.ndarray) -> None:
        if not self.known:
            self.s0[:], self.known = s, True
            return
        if np.array_equal(s, self.s0):
            return
        slot = self.cnt % self.depth
        self.ds[slot] = s - self.s0
        self.s0[:] = s
        self.dv[slot] = v
        self.pending = True
        idx = [i for i in range(min(self.cnt, self.depth)) if i != slot]
        a = self.gram[np.ix_(idx, idx)].copy()
        rhs = np.array([self._rdot(self.ds[i], self.ds[slot]) for i in idx])
        tr = float(np.trace(a))
        if not idx or tr <= 0.0:
            return
        c = _elimination(a + tr * RIDGE * np.eye(len(idx)), rhs)
        if not np.all(np.abs(c) <= MAX_COEF):
            return
        for i, ci in zip(idx, c, strict=True):
            v += ci * self.dv[i]

    def close(self, v: np.ndarray) -> None:
        if not self.pending:
            return
        slot = self.cnt % self.depth
        self.dv[slot] = v - self.dv[slot]
        self.cnt += 1
        self.pending = False
        for j in range(min(self.cnt, self.depth)):
            self.gram[slot, j] = self.gram[j, slot] = self._rdot(self.ds[slot], self.ds[j])


def test_fused_step_predictor_matches_the_old_one_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    n, m = 40, 12
    jac = rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m))
    for pairs in (1, 2, 3):
        new, old = make_pred(pairs, n, m), _OldPredictor(pairs, n, m)
        base = rng.standard_normal(m) + 1j * rng.standard_normal(m)
        v_new = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        v_old = v_new.copy()
        moved = 0
        for t in range(12):
            s = base * (1.0 + 0.1 * rng.standard_normal()) if t % 5 != 4 else old.s0.copy()
            before = v_new.copy()
            predict(new, s, v_new)
            old.predict(s, v_old)
            assert np.array_equal(v_new, v_old)
            moved += not np.array_equal(v_new, before)
            sol = jac @ s.real + 1j * (jac @ s.imag) + 0.01 * rng.standard_normal(n)
            v_new[:], v_old[:] = sol, sol
            close(new, v_new)
            old.close(v_old)
            assert np.array_equal(new.dv, old.dv) and np.array_equal(new.gram, old.gram)
        assert moved >= 5  # the predictor extrapolated (not only plain warm starts)
