"""Anderson acceleration of the compiled fixed point (:func:`.faststep.fixed_point`).

The load-branch voltages ``x`` are mixed from the image ``g`` of the present ``x`` and the
last ``depth`` pairs of changes of residual (``f = g - x``) and image between two
iterations: ``x ← g - Σ γ_i Δg_i`` where ``γ`` solves the real least-squares problem
``min ‖f - Σ γ_i Δf_i‖`` (real: the map is only R-linear). The pairs live in a ring kept
across solves, with their Gram matrix (one new row per iteration).

The cost is memory traffic over the histories (2·``depth`` rows of ``m`` complex numbers,
about 600 kB on ieee8500), so each row is read once per call, with all its arithmetic on
the way: the complex arrays are read as float64 arrays (re, im interleaved), where a real
inner product of two complex vectors is a plain dot product that the compiler vectorises
(``fastmath`` on the reductions only; the mix only fuses multiply-add); one pass updates
the ring, one computes the new Gram row and the right-hand side over eight rows at once,
the regularised k×k system is solved by Cholesky, and one pass mixes eight rows at once.

The pairs are stored in single precision (:data:`HISTORY`; the residual and image of the
present iterate, the Gram products and the mix stay double). The iteration runs from the
last level cache on large feeders (ieee8500: ~2 MB touched per iteration against 2 MB of
L2), so halving the histories' 600 kB saves time on every iteration; the pairs only steer
the acceleration, which a relative rounding of 6e-8 in them does not spoil, while the
fixed point and its stop rule stay in double (ieee8500, 96 steps: 11.10 → 11.04
iterations per step, ~6 % less time per step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT, copy_into, ridge_solve

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.faststep import Work

f64 = np.float64
HISTORY = np.complex64  # storage of the pairs: see the module docstring
REDUCE = {"reassoc", "contract"}  # the reductions: vectorised sums, fused multiply-add
FUSED = {"contract"}  # the mix: fused multiply-add


def histories(depth: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty rings of ``depth`` residual and image changes of ``m`` load branches."""
    return np.zeros((depth, m), HISTORY), np.zeros((depth, m), HISTORY)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def anderson(w: Work, first: bool) -> None:
    """``w.x`` ← the Anderson mix of the last ``depth`` pairs; ``w.gbr`` holds the image
    of the present ``w.x``.

    The pairs (changes of residual and image between two iterations of one solve) are kept
    across solves: the next step's map has nearly the same Jacobian, so its first iteration
    is already a secant step instead of a plain one. ``first``: the first iteration of a
    solve (no pair with the previous solve's map)."""
    depth = w.df.shape[0]
    slot = w.hist[0] % depth
    if not first:
        w.hist[0] += 1
    k = min(w.hist[0], depth)
    xf, gf = w.x.view(np.float64), w.gbr.view(np.float64)
    dff, dgf, lf = w.df.view(np.float32), w.dg.view(np.float32), w.last.view(np.float64)
    sums = w.sums  # right-hand side df[i]·f, new Gram row df[i]·df[slot]
    for i in range(k):
        sums[0, i] = sums[1, i] = 0.0
    _update(xf, gf, dff[slot], dgf[slot], lf, first)
    for i0 in range(0, k, 8):  # first: no new Gram row (nor a row to read)
        if first:
            _dots8(dff, lf[0], lf[0], i0, k, sums)
        else:
            _dots8(dff, lf[0], dff[slot], i0, k, sums)
    if k == 0:
        copy_into(xf, gf)
        return
    if not first:
        for i in range(k):
            w.gram[slot, i] = w.gram[i, slot] = sums[1, i]
    gamma = w.gamma
    _solve(w.gram, sums[0], k, w.chol, gamma)
    for i0 in range(0, k, 8):
        _mix8(xf, gf if i0 == 0 else xf, dgf, gamma, i0, k)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _update(x: np.ndarray, g: np.ndarray, df: np.ndarray, dg: np.ndarray, last: np.ndarray,
            first: bool) -> None:  # fmt: skip
    """The new pair into ``df``, ``dg`` (unless ``first``), and the present residual and
    image into ``last`` (where the last ones were)."""
    f, lg = last[0], last[1]
    if first:
        for j in range(len(x)):
            f[j] = g[j] - x[j]
            lg[j] = g[j]
        return
    for j in range(len(x)):
        fj = g[j] - x[j]
        df[j] = fj - f[j]
        dg[j] = g[j] - lg[j]
        f[j] = fj
        lg[j] = g[j]


@njit(cache=True, nogil=True, error_model="numpy", fastmath=REDUCE, **NO_RT)
def _dots8(d: np.ndarray, f: np.ndarray, u: np.ndarray, i0: int, k: int,
           sums: np.ndarray) -> None:  # fmt: skip
    """``sums[0, i] += d[i]·f`` and ``sums[1, i] += d[i]·u`` for rows ``i0 … i0+7``
    below ``k``, in one pass (see :func:`_rows8`; the rows past ``k - 1`` are dropped)."""
    r0, r1, r2, r3, r4, r5, r6, r7 = _rows8(i0, k)
    h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = 0.0
    g0 = g1 = g2 = g3 = g4 = g5 = g6 = g7 = 0.0
    for j in range(len(f)):
        fj, uj = f64(f[j]), f64(u[j])  # double products of the single-precision rows
        a0, a1, a2, a3 = f64(d[r0, j]), f64(d[r1, j]), f64(d[r2, j]), f64(d[r3, j])
        a4, a5, a6, a7 = f64(d[r4, j]), f64(d[r5, j]), f64(d[r6, j]), f64(d[r7, j])
        h0 += a0 * fj
        h1 += a1 * fj
        h2 += a2 * fj
        h3 += a3 * fj
        h4 += a4 * fj
        h5 += a5 * fj
        h6 += a6 * fj
        h7 += a7 * fj
        g0 += a0 * uj
        g1 += a1 * uj
        g2 += a2 * uj
        g3 += a3 * uj
        g4 += a4 * uj
        g5 += a5 * uj
        g6 += a6 * uj
        g7 += a7 * uj
    for t, (h, g) in enumerate(((h0, g0), (h1, g1), (h2, g2), (h3, g3),
                                (h4, g4), (h5, g5), (h6, g6), (h7, g7))):  # fmt: skip
        if i0 + t < k:
            sums[0, i0 + t] += h
            sums[1, i0 + t] += g


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FUSED, **NO_RT)
def _mix8(x: np.ndarray, y: np.ndarray, d: np.ndarray, gamma: np.ndarray, i0: int,
          k: int) -> None:  # fmt: skip
    """``x ← y - Σ γ_i d[i]`` over rows ``i0 … i0+7`` below ``k``, subtracted in the order
    of ``i`` (rows past ``k - 1`` read row ``k - 1`` with a zero coefficient)."""
    r0, r1, r2, r3, r4, r5, r6, r7 = _rows8(i0, k)
    c0, c1, c2, c3, c4, c5, c6, c7 = _coefs8(gamma, i0, k)
    for j in range(len(x)):
        s = y[j] - c0 * d[r0, j] - c1 * d[r1, j] - c2 * d[r2, j] - c3 * d[r3, j]
        x[j] = s - c4 * d[r4, j] - c5 * d[r5, j] - c6 * d[r6, j] - c7 * d[r7, j]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _rows8(i0: int, k: int) -> tuple[int, int, int, int, int, int, int, int]:
    """Rows ``i0 … i0+7``, those past ``k - 1`` replaced by ``k - 1``."""
    h = k - 1
    return (i0, min(i0 + 1, h), min(i0 + 2, h), min(i0 + 3, h), min(i0 + 4, h),
            min(i0 + 5, h), min(i0 + 6, h), min(i0 + 7, h))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _coefs8(gamma: np.ndarray, i0: int, k: int) -> tuple[float, float, float, float, float,
                                                         float, float, float]:  # fmt: skip
    """``gamma[i0 … i0+7]``, zero past ``k - 1``."""
    return (_coef(gamma, i0, k), _coef(gamma, i0 + 1, k), _coef(gamma, i0 + 2, k),
            _coef(gamma, i0 + 3, k), _coef(gamma, i0 + 4, k), _coef(gamma, i0 + 5, k),
            _coef(gamma, i0 + 6, k), _coef(gamma, i0 + 7, k))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _coef(gamma: np.ndarray, i: int, k: int) -> float:
    return gamma[i] if i < k else 0.0


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _finite(gram: np.ndarray, rhs: np.ndarray, k: int) -> bool:
    """Whether the leading k×k block of ``gram`` and ``rhs[:k]`` are all finite."""
    for i in range(k):
        if not np.isfinite(rhs[i]):
            return False
        for j in range(k):
            if not np.isfinite(gram[i, j]):
                return False
    return True


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _solve(gram: np.ndarray, rhs: np.ndarray, k: int, c: np.ndarray, y: np.ndarray) -> None:
    """``y[:k]`` ← ``γ`` solving ``(G + (tr G·1e-10 + 1e-300) I) γ = rhs`` for the leading
    k×k block ``G`` of ``gram`` (``c``: k×k scratch): Cholesky (the regularised Gram is
    positive definite), else (rounding beyond the regularisation) an LU solve. A system that
    is not finite (a diverging iterate) gets ``γ = 0``, the plain step: the fixed point then
    runs out of iterations and reports it, where a factorisation would go on with NaN."""
    if not _finite(gram, rhs, k):
        _zero(y, k)
        return
    tr = 0.0
    for i in range(k):
        tr += gram[i, i]
    reg = tr * 1e-10 + 1e-300
    if not _cholesky(gram, k, reg, c):
        ridge_solve(gram, rhs, k, reg, c, y)
        return
    for i in range(k):
        s = rhs[i]
        for p in range(i):
            s -= c[i, p] * y[p]
        y[i] = s / c[i, i]
    for i in range(k - 1, -1, -1):
        s = y[i]
        for p in range(i + 1, k):
            s -= c[p, i] * y[p]
        y[i] = s / c[i, i]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _zero(y: np.ndarray, k: int) -> None:
    for i in range(k):
        y[i] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _cholesky(gram: np.ndarray, k: int, reg: float, c: np.ndarray) -> bool:
    """``c`` ← the lower Cholesky factor of the regularised leading block; False if a
    pivot is not positive (rounding beyond the regularisation)."""
    for i in range(k):
        for j in range(i + 1):
            s = gram[i, j] + (reg if i == j else 0.0)
            for p in range(j):
                s -= c[i, p] * c[j, p]
            if i != j:
                c[i, j] = s / c[j, j]
            elif s > 0.0:
                c[i, i] = np.sqrt(s)
            else:
                return False
    return True
