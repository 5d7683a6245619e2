"""The inverse Schur complement after a tap or capacitor action by a low-rank update.

A tap move or a capacitor step changes one element's ``Yprim``, i.e. only the rows and
columns of the few Schur nodes (``p`` ≤ its conductors) that element touches:
``S' = S + P·D·Pᵀ`` with ``D = Y − Y_held`` (p × p). Woodbury gives
``S'⁻¹ = S⁻¹ − S⁻¹P·(I + D·PᵀS⁻¹P)⁻¹·D·PᵀS⁻¹``: O(K²·p) instead of a K × K inverse.
Every ``REFRESH`` updates the inverse is rebuilt from ``S₀`` (:func:`.fastctl.update_schur`)
so that rounding cannot drift.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.fastctl import Stamps, update_schur
from gridpilot.twin.unbalanced.schur import SchurLU

REFRESH = 8  # low-rank updates between full re-inversions (drift: see the tests)


@njit(cache=True, nogil=True, error_model="numpy")
def _positions(loc: np.ndarray, n: int, pos: np.ndarray, where: np.ndarray) -> int:
    """Distinct Schur positions of an element's conductors into ``pos``; ``where[i]`` the
    slot of conductor ``i`` (-1: ground). How many."""
    p = 0
    for i in range(n):
        li = loc[i]
        where[i] = -1
        if li < 0:
            continue
        for q in range(p):
            if pos[q] == li:
                where[i] = q
        if where[i] < 0:
            pos[p] = li
            where[i] = p
            p += 1
    return p


@njit(cache=True, nogil=True, error_model="numpy")
def _pivot(m: np.ndarray, b: np.ndarray, c: int, p: int) -> None:
    """Swap into row ``c`` of ``m`` and ``b`` the row with the largest ``|m[·, c]|`` below."""
    piv, best = c, abs(m[c, c])
    for r in range(c + 1, p):
        if abs(m[r, c]) > best:
            piv, best = r, abs(m[r, c])
    if piv != c:
        for j in range(p):
            m[c, j], m[piv, j] = m[piv, j], m[c, j]
        for j in range(b.shape[1]):
            b[c, j], b[piv, j] = b[piv, j], b[c, j]


@njit(cache=True, nogil=True, error_model="numpy")
def _solve_small(m: np.ndarray, b: np.ndarray, p: int) -> None:
    """``b[:p] ← m[:p, :p]⁻¹·b[:p]`` in place (Gaussian elimination, partial pivoting)."""
    k = b.shape[1]
    for c in range(p):
        _pivot(m, b, c, p)
        inv = 1.0 / m[c, c]
        for r in range(c + 1, p):
            g = m[r, c] * inv
            for j in range(c + 1, p):
                m[r, j] -= g * m[c, j]
            for j in range(k):
                b[r, j] -= g * b[c, j]
    for c in range(p - 1, -1, -1):
        inv = 1.0 / m[c, c]
        for j in range(k):
            acc = b[c, j]
            for q in range(c + 1, p):
                acc -= m[c, q] * b[q, j]
            b[c, j] = acc * inv


@njit(cache=True, nogil=True, error_model="numpy")
def _woodbury(sinv: np.ndarray, d: np.ndarray, pos: np.ndarray, p: int) -> None:
    """``sinv ← (sinv⁻¹ + P·d·Pᵀ)⁻¹`` for the ``p`` positions ``pos``."""
    k = sinv.shape[0]
    m = np.empty((p, p), np.complex128)
    x = np.empty((p, k), np.complex128)
    for i in range(p):
        for j in range(p):
            acc = 1.0 + 0j if i == j else 0j
            for q in range(p):
                acc += d[i, q] * sinv[pos[q], pos[j]]
            m[i, j] = acc
        for c in range(k):
            acc = 0j
            for q in range(p):
                acc += d[i, q] * sinv[pos[q], c]
            x[i, c] = acc
    _solve_small(m, x, p)
    col = np.empty((k, p), np.complex128)
    for r in range(k):
        for q in range(p):
            col[r, q] = sinv[r, pos[q]]
    for r in range(k):
        for q in range(p):
            a = col[r, q]
            if a != 0:
                for c in range(k):
                    sinv[r, c] -= a * x[q, c]


@njit(cache=True, nogil=True, error_model="numpy")
def update_lowrank(st: Stamps, f: SchurLU) -> None:
    """``f.sinv`` after control actions: a Woodbury update per element whose ``Yprim``
    changed since ``f.sinv`` was built (``st.yk``), a full re-inversion every ``REFRESH``."""
    y, yk, loc, nc = st.y, st.yk, st.loc, st.nc
    c = y.shape[1]
    pos = np.empty(c, np.int64)
    where = np.empty(c, np.int64)
    d = np.empty((c, c), np.complex128)
    for e in range(len(nc)):
        n = nc[e]
        changed = False
        for i in range(n):
            for j in range(n):
                if y[e, i, j] != yk[e, i, j]:
                    changed = True
        if not changed:
            continue
        if st.nupd[0] >= REFRESH:
            update_schur(st, f)
            return
        p = _positions(loc[e], n, pos, where)
        d[:p, :p] = 0
        for i in range(n):
            if where[i] >= 0:
                for j in range(n):
                    if where[j] >= 0:
                        d[where[i], where[j]] += y[e, i, j] - yk[e, i, j]
        if p:
            _woodbury(f.sinv, d, pos, p)
        yk[e, :n, :n] = y[e, :n, :n]
        st.nupd[0] += 1
