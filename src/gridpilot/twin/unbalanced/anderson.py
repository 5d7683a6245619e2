"""Anderson acceleration of the compiled fixed point (:func:`.faststep.fixed_point`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.faststep import Work


@njit(cache=True, nogil=True, error_model="numpy")
def anderson(w: Work, first: bool) -> None:
    """``w.x`` ← the Anderson mix of the last ``depth`` pairs (real least squares: the map
    is only R-linear); ``w.gbr`` holds the image of the present ``w.x``.

    The pairs (changes of residual and image between two iterations of one solve) are kept
    across solves: the next step's map has nearly the same Jacobian, so its first iteration
    is already a secant step instead of a plain one. ``first``: the first iteration of a
    solve (no pair with the previous solve's map)."""
    depth, m = w.df.shape[0], len(w.x)
    slot = w.hist[0] % depth
    for q in range(m):
        fq = w.gbr[q] - w.x[q]
        if not first:
            w.df[slot, q] = fq - w.last[0, q]
            w.dg[slot, q] = w.gbr[q] - w.last[1, q]
        w.last[0, q] = fq
        w.last[1, q] = w.gbr[q]
    if not first:
        w.hist[0] += 1
    k = min(w.hist[0], depth)
    if k == 0:
        w.x[:] = w.gbr
        return
    a = np.empty((k, k))
    rhs = np.empty(k)
    for i0 in range(0, k, 4):  # the new Gram row and the right-hand side
        _rdots4(w, i0, k, slot, rhs, not first)
    for i in range(k):
        for j in range(k):
            a[i, j] = w.gram[i, j]
    tr = 0.0
    for i in range(k):
        tr += a[i, i]
    for i in range(k):
        a[i, i] += tr * 1e-10 + 1e-300
    gamma = np.linalg.solve(a, rhs)
    x = w.x
    x[:] = w.gbr
    for i in range(k):  # contiguous passes, each element summed in the same order; real
        gi, dgi = gamma[i], w.dg[i]  # times complex spelled out (numba multiplies complex)
        for q in range(m):
            d = dgi[q]
            x[q] = complex(x[q].real - gi * d.real, x[q].imag - gi * d.imag)


@njit(cache=True, nogil=True, error_model="numpy")
def _rdots4(w: Work, i0: int, k: int, slot: int, rhs: np.ndarray, row: bool) -> None:
    """Rows ``i0 … i0+3`` (below ``k``) of ``rhs[i] = rdot(df[i], last[0])`` and, with
    ``row``, of ``gram[slot, i] = gram[i, slot] = rdot(df[slot], df[i])``, in one pass:
    eight independent sums (one sum alone waits on each addition), each added in the
    order of ``rdot`` (the same bits)."""
    df, last, gram = w.df, w.last, w.gram
    r0, r1, r2, r3 = i0, min(i0 + 1, k - 1), min(i0 + 2, k - 1), min(i0 + 3, k - 1)
    g0 = g1 = g2 = g3 = h0 = h1 = h2 = h3 = 0.0
    for q in range(df.shape[1]):
        u, f = df[slot, q], last[0, q]
        a0, a1, a2, a3 = df[r0, q], df[r1, q], df[r2, q], df[r3, q]
        h0 += a0.real * f.real + a0.imag * f.imag
        h1 += a1.real * f.real + a1.imag * f.imag
        h2 += a2.real * f.real + a2.imag * f.imag
        h3 += a3.real * f.real + a3.imag * f.imag
        if row:
            g0 += u.real * a0.real + u.imag * a0.imag
            g1 += u.real * a1.real + u.imag * a1.imag
            g2 += u.real * a2.real + u.imag * a2.imag
            g3 += u.real * a3.real + u.imag * a3.imag
    for j, (h, g) in enumerate(((h0, g0), (h1, g1), (h2, g2), (h3, g3))):
        if i0 + j < k:
            rhs[i0 + j] = h
            if row:
                gram[slot, i0 + j] = gram[i0 + j, slot] = g
