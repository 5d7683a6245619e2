"""Branch conductor currents of the compiled QSTS statistics, four rows at a time in vector
registers.

A branch's conductor rows (``I = Y_row·V``, :attr:`.network.Network.branch_rows`) read the
same nodes: a three-phase line's three rows its six terminal nodes, a single-phase one's
row its two. Consecutive rows with one column set form a *group* of up to four rows;
each column of a group is one node voltage times a column of up to four admittances, which
here is one multiply-add on ``<4 x double>`` registers (real and imaginary parts apart),
where numba's scalar loop spends ~4 cycles on each complex multiply-add (ieee123: 1,342
entries a step). Lanes past a group's rows hold zeros. Every lane adds its row's terms in
the CSR order and rounds them as complex arithmetic does (``acc + (yr·wr − yi·wi)``, ...),
so each ``|I|²`` is bit for bit that of the row-by-row sum.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.extending import intrinsic

LANES = 4


class BranchGroups(NamedTuple):
    """Conductor rows in groups of up to four sharing their columns (:func:`branch_groups`)."""

    start: np.ndarray  # int64 (groups + 1,): first column slot of each group
    col: np.ndarray  # int64 (slots,): 2 × the node read (an index into V as float64 pairs)
    yr: np.ndarray  # float64 (slots × 4,): the group's admittances in that column, real
    yi: np.ndarray  # imaginary part
    row0: np.ndarray  # int64 (groups,): the group's first row
    i2: np.ndarray  # float64 (rows + 4,) scratch: |I|² of each row (4 lanes written a group)


def _groups(indptr: np.ndarray, indices: np.ndarray) -> list[tuple[int, int]]:
    """(first row, rows) of each group: consecutive rows with equal columns, at most four."""
    out, r, n = [], 0, len(indptr) - 1
    while r < n:
        cols = indices[indptr[r] : indptr[r + 1]]
        e = r + 1
        while (e < n and e - r < LANES
               and np.array_equal(indices[indptr[e] : indptr[e + 1]], cols)):  # fmt: skip
            e += 1
        out.append((r, e - r))
        r = e
    return out


def branch_groups(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> BranchGroups:
    """:class:`BranchGroups` of the CSR rows ``(indptr, indices, data)``."""
    indptr, indices = np.asarray(indptr, np.int64), np.asarray(indices, np.int64)
    data = np.asarray(data, complex)
    groups = _groups(indptr, indices)
    width = [int(indptr[r + 1] - indptr[r]) for r, _ in groups]
    start = np.concatenate([[0], np.cumsum(width)]).astype(np.int64)
    col = np.zeros(int(start[-1]), np.int64)
    y = np.zeros((int(start[-1]), LANES), complex)
    for (r, m), s, w in zip(groups, start[:-1], width, strict=True):
        col[s : s + w] = 2 * indices[indptr[r] : indptr[r] + w]
        for lane in range(m):
            y[s : s + w, lane] = data[indptr[r + lane] : indptr[r + lane] + w]
    row0 = np.array([r for r, _ in groups], np.int64)
    return BranchGroups(start, col, y.real.ravel().copy(), y.imag.ravel().copy(), row0,
                        np.zeros(len(indptr) - 1 + LANES))  # fmt: skip


_D = ir.DoubleType()
_I64 = ir.IntType(64)
_V4 = ir.VectorType(_D, LANES)


def _splat(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    v = ir.Constant(_V4, ir.Undefined)
    for lane in range(LANES):
        v = b.insert_element(v, x, _I64(lane))
    return v


def _group_i2(  # noqa: PLR0913
    typingctx: Any, vf: Any, col: Any, yr: Any, yi: Any, out: Any, k0: Any, k1: Any, r0: Any
) -> tuple:
    """``out[r0 + l] ← |Σ_k y[k, l]·v[col[k]]|²`` for the four lanes ``l`` of the group whose
    column slots are ``k0 … k1 − 1`` (see the module docstring)."""
    sig = types.void(vf, col, yr, yi, out, k0, k1, r0)

    def codegen(context: BaseContext, b: ir.IRBuilder, s: object, args: list) -> object:
        vd, cd, rd, idd, od = [
            context.make_array(s.args[k])(context, b, args[k]).data  # type: ignore[attr-defined]
            for k in range(5)
        ]
        k0, k1, r0 = [context.cast(b, args[k], s.args[k], types.intp) for k in range(5, 8)]  # type: ignore[attr-defined]
        zero = ir.Constant(_V4, [0.0] * LANES)
        accr, acci = cgutils.alloca_once(b, _V4), cgutils.alloca_once(b, _V4)
        b.store(zero, accr)
        b.store(zero, acci)
        with cgutils.for_range(b, b.sub(k1, k0)) as loop:
            k = b.add(k0, loop.index)
            q = b.load(b.gep(cd, [k]))
            wr, wi = b.load(b.gep(vd, [q])), b.load(b.gep(vd, [b.add(q, _I64(1))]))
            sr, si = _splat(b, wr), _splat(b, wi)
            at = b.shl(k, _I64(2))
            ar = b.load(b.bitcast(b.gep(rd, [at]), _V4.as_pointer()), align=8)
            ai = b.load(b.bitcast(b.gep(idd, [at]), _V4.as_pointer()), align=8)
            pr = b.fsub(b.fmul(ar, sr), b.fmul(ai, si))
            pi = b.fadd(b.fmul(ar, si), b.fmul(ai, sr))
            b.store(b.fadd(b.load(accr), pr), accr)
            b.store(b.fadd(b.load(acci), pi), acci)
        re, im = b.load(accr), b.load(acci)
        i2 = b.fadd(b.fmul(re, re), b.fmul(im, im))
        b.store(i2, b.bitcast(b.gep(od, [r0]), _V4.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


group_i2: Any = intrinsic(_group_i2)  # Any: numba's stub types the call with typingctx
