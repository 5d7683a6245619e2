"""Warm start of a QSTS step extrapolated from the previous steps (compiled loop).

The loads of a step follow a few load shapes, so a step's change of the load powers is
nearly a combination of the previous steps' changes. Each step leaves one pair: its change
of the load powers ``Δs`` and the change of the node voltages it produced, from the previous
step's final solution to this step's first converged solve (before any control acted, so
both ends have the same taps and capacitor states). The next step starts from the previous
solution plus ``Σ c_j ΔV_j``, the real least-squares fit ``Δs ≈ Σ c_j Δs_j`` (real: P and Q
may follow different shapes). The fixed point then converges to the same tolerance as from
the plain warm start; only the start moves.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT, copy_into, ridge_solve

MAX_COEF = 8.0  # larger fitted coefficients: no extrapolation
RIDGE = 1e-10  # relative to the trace: one load shape makes the Δs collinear


class Pred(NamedTuple):
    """The predictor's pairs (a ring of ``depth`` slots; depth 0: off)."""

    dv: np.ndarray  # (depth, n): ΔV of each pair; the pending slot holds its start voltages
    ds: np.ndarray  # (depth, m): Δs of each pair
    s0: np.ndarray  # (m,): the previous step's load powers
    gram: np.ndarray  # (depth, depth): real inner products of the Δs
    cnt: np.ndarray  # (3,): pairs stored, previous powers known (0/1), pair pending (0/1)
    idx: np.ndarray  # (depth,) int64 scratch of the fit: the pairs fitted
    sub: np.ndarray  # (2, depth, depth) scratch: their Gram block, its factorisation
    rc: np.ndarray  # (2, depth) scratch: right-hand side, coefficients


def make_pred(pairs: int, n: int, m: int) -> Pred:
    """An empty predictor fitting ``pairs`` pairs (0: off) for ``n`` nodes and ``m`` load
    branches (one more slot holds the pending pair)."""
    depth = pairs + 1 if pairs > 0 else 0
    z = np.zeros
    return Pred(z((depth, n), complex), z((depth, m), complex), z(m, complex), z((depth, depth)),
                z(3, np.int64), z(depth, np.int64), z((2, depth, depth)), z((2, depth)))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def rdot(a: np.ndarray, b: np.ndarray) -> float:
    """Real inner product of two complex vectors (``Re(a·conj(b))`` summed)."""
    acc = 0.0
    for i in range(len(a)):
        acc += a[i].real * b[i].real + a[i].imag * b[i].imag
    return acc


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _rdot3(a: np.ndarray, b: np.ndarray, c: np.ndarray,
           d: np.ndarray) -> tuple[float, float, float]:  # fmt: skip
    """``rdot`` of ``a``, ``b`` and ``c`` with ``d`` in one pass (each sum in rdot's order:
    the same bits; three chains of additions at once)."""
    sa = sb = sc = 0.0
    for i in range(len(d)):
        x, y = d[i].real, d[i].imag
        sa += a[i].real * x + a[i].imag * y
        sb += b[i].real * x + b[i].imag * y
        sc += c[i].real * x + c[i].imag * y
    return sa, sb, sc


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _open(p: Pred, s: np.ndarray) -> int:
    """Open this step's pair in the oldest slot: its ``Δs`` and its row and column of the
    Gram matrix (the slot is left out of the fit until :func:`close`); -1 when the powers
    did not change (no pair) or are the first seen."""
    if p.cnt[1] == 0:
        copy_into(p.s0, s)
        p.cnt[1] = 1
        return -1
    moved = False
    for q in range(len(s)):
        if s[q] != p.s0[q]:
            moved = True
            break
    if not moved:
        return -1
    depth = p.dv.shape[0]
    slot = p.cnt[0] % depth
    live = min(p.cnt[0] + 1, depth)  # the stored pairs and this one
    d = p.ds[slot]
    for q in range(len(s)):
        d[q] = s[q] - p.s0[q]
        p.s0[q] = s[q]
    if live == 3:  # the default (two pairs): the three sums side by side, one pass
        g = _rdot3(p.ds[0], p.ds[1], p.ds[2], d)
        for j in range(3):
            p.gram[slot, j] = p.gram[j, slot] = g[j]
    else:
        for j in range(live):
            p.gram[slot, j] = p.gram[j, slot] = rdot(p.ds[j], d)
    p.cnt[2] = 1
    return slot


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _fit(p: Pred, slot: int) -> int:
    """The stored pairs (all but ``slot``: ``p.idx[:k]``) and their coefficients fitting
    its ``Δs`` (``p.rc[1, :k]``; ridge-regularised normal equations, the slot's Gram row
    is this step's); returns ``k``, 0 for no fit."""
    idx, a, rhs = p.idx, p.sub[0], p.rc[0]
    k = 0
    for i in range(min(p.cnt[0], p.dv.shape[0])):
        if i != slot:
            idx[k] = i
            k += 1
    tr, finite = 0.0, True
    for i in range(k):
        rhs[i] = p.gram[slot, idx[i]]
        finite = finite and np.isfinite(rhs[i])
        for j in range(k):
            a[i, j] = p.gram[idx[i], idx[j]]
            finite = finite and np.isfinite(a[i, j])
        tr += a[i, i]
    if not (tr > 0.0 and finite):  # no change yet, or powers beyond float range: no fit
        return 0
    ridge_solve(a, rhs, k, tr * RIDGE, p.sub[1], p.rc[1])
    return k


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _move2(start: np.ndarray, v: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: float,
           c1: float) -> None:  # fmt: skip
    """``start ← v`` and ``v += c0·r0 + c1·r1`` in one pass over their floats (the two
    axpys' order, real times complex: the same values)."""
    sf, vf, a, b = (
        start.view(np.float64),
        v.view(np.float64),
        r0.view(np.float64),
        r1.view(np.float64),
    )
    for q in range(len(vf)):
        x = vf[q]
        sf[q] = x
        vf[q] = (x + c0 * a[q]) + c1 * b[q]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def predict(p: Pred, s: np.ndarray, v: np.ndarray) -> None:
    """Move the warm start ``v`` (the previous step's solution) by the fitted ``ΔV`` for the
    step's powers ``s``, and open this step's pair (closed by :func:`close`): its start
    voltages are stored in the same pass over ``v`` that moves it."""
    if p.dv.shape[0] == 0:
        return
    slot = _open(p, s)
    if slot < 0:
        return
    k = _fit(p, slot)
    idx, c = p.idx, p.rc[1]
    for i in range(k):
        if not abs(c[i]) <= MAX_COEF:  # a wild extrapolation (or NaN): plain warm start
            k = 0
    start = p.dv[slot]
    if k == 2:  # the default, two pairs: one pass on the real parts and imaginary parts
        _move2(start, v, p.dv[idx[0]], p.dv[idx[1]], c[0], c[1])
        return
    copy_into(start, v)
    for i in range(k):
        row = p.dv[idx[i]]
        ci = c[i]
        for q in range(len(v)):
            v[q] += ci * row[q]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def close(p: Pred, v: np.ndarray) -> None:
    """Close the pending pair with the step's first converged voltages ``v`` (its Gram
    row and column were set when it was opened)."""
    depth = p.dv.shape[0]
    if depth == 0 or p.cnt[2] == 0:
        return
    row, vf = p.dv[p.cnt[0] % depth].view(np.float64), v.view(np.float64)
    for q in range(len(vf)):
        row[q] = vf[q] - row[q]
    p.cnt[0] += 1
    p.cnt[2] = 0
