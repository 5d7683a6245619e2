"""The running statistics of the compiled QSTS step loop (:mod:`.faststep`), one solved
step at a time: voltage extremes, time outside Range A and unbalance per node-phase,
branch loading, losses (the rules of :mod:`.qsts_stats`; no voltages kept).

Gathers index with unsigned integers (``np.uint64``): a signed index costs a wrap-around
test (``i < 0``) per access, which here was most of a gather's cost.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT
from gridpilot.twin.unbalanced.branchcur import BranchGroups
from gridpilot.twin.unbalanced.lanes import lane_i2
from gridpilot.twin.unbalanced.loads import LoadArr, branch_voltages, load_current

A120 = np.exp(2j * np.pi / 3)


class StatArr(NamedTuple):
    """Running statistics (updated in place) and what they need."""

    vbase: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    outside: np.ndarray
    tri: np.ndarray
    vuf_max: np.ndarray
    vuf_above: np.ndarray
    br: BranchGroups  # branch conductor currents (rows of Y over the nodes, in groups)
    rating: np.ndarray
    overload: np.ndarray
    max_loading: np.ndarray
    src_idx: np.ndarray
    src_y: np.ndarray
    isrc: np.ndarray
    inv_vb2: np.ndarray  # 1 / vbase² per node


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _rec_voltages(sa: StatArr, v: np.ndarray) -> None:
    """Extremes, time outside Range A and unbalance, on squared magnitudes (a root only
    where an extreme moves)."""
    for i in range(len(v)):
        v2 = (v[i].real * v[i].real + v[i].imag * v[i].imag) * sa.inv_vb2[i]
        if v2 > 0.0025:  # 0.05 pu: a live node-phase
            if v2 < sa.vmin[i] * sa.vmin[i]:
                sa.vmin[i] = np.sqrt(v2)
            if sa.vmax[i] < 0.0 or v2 > sa.vmax[i] * sa.vmax[i]:
                sa.vmax[i] = np.sqrt(v2)
            if v2 < 0.9025 or v2 > 1.1025:  # outside 0.95 … 1.05 pu
                sa.outside[i] += 1
    a2 = A120 * A120
    tri = sa.tri
    for q in range(tri.shape[0]):
        va, vb = v[np.uint64(tri[q, 0])], v[np.uint64(tri[q, 1])]
        vc = v[np.uint64(tri[q, 2])]
        p1 = va + A120 * vb + a2 * vc
        p2 = va + a2 * vb + A120 * vc
        n1 = max(p1.real * p1.real + p1.imag * p1.imag, 9e-24)  # |3·V1|², floored at 1e-12
        r2 = 1e4 * (p2.real * p2.real + p2.imag * p2.imag) / n1  # VUF² in %²
        if r2 > sa.vuf_max[q] * sa.vuf_max[q]:
            sa.vuf_max[q] = np.sqrt(r2)
        if r2 > 4.0:
            sa.vuf_above[q] += 1


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _rec_loading(sa: StatArr, v: np.ndarray) -> None:
    """Overload count and largest loading of each branch conductor (its ``|I|²`` four rows
    at a time, :mod:`.lanes`)."""
    br, vf = sa.br, v.view(np.float64)
    for g in range(len(br.row0)):
        lane_i2(vf, br.col, br.yr, br.yi, br.i2, br.start[g], br.start[g + 1], br.row0[g])
    rating, overload, max_loading, i2s = sa.rating, sa.overload, sa.max_loading, br.i2
    for r in range(len(rating)):
        i2 = i2s[r]
        rt = rating[r]
        if i2 > rt * rt:
            overload[r] += 1
        top = max_loading[r] * rt
        if i2 > top * top:
            max_loading[r] = np.sqrt(i2) / rt


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _source_power(sa: StatArr, v: np.ndarray) -> complex:
    p = 0j
    n1 = len(sa.src_idx)
    for i in range(n1):
        if sa.src_idx[i] < 0:
            continue
        inj = sa.isrc[sa.src_idx[i]]
        for j in range(n1):
            if sa.src_idx[j] >= 0:
                inj -= sa.src_y[i, j] * v[sa.src_idx[j]]
        p += v[sa.src_idx[i]] * np.conj(inj)
    return p


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def record(sa: StatArr, ld: LoadArr, s: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    """Fold one solved step into the statistics; its losses (kW)."""
    _rec_voltages(sa, v)
    _rec_loading(sa, v)
    p = _source_power(sa, v)
    branch_voltages(ld, v, x)
    lo2, hi2 = ld.lo2, ld.hi2
    vbase, model, vmin, vmax, cvr, zipc = ld.vbase, ld.model, ld.vmin, ld.vmax, ld.cvr, ld.zip
    for q in range(len(x)):
        xq = x[q]
        v2 = xq.real * xq.real + xq.imag * xq.imag
        if v2 > lo2[q] and v2 < hi2[q]:
            p -= s[q]  # constant PQ within its band draws its power exactly: skip I
            continue
        i = load_current(xq, s[q], vbase[q], model[q], vmin[q], vmax[q], cvr, zipc, q)
        p -= xq * np.conj(i)
    return p.real / 1e3
