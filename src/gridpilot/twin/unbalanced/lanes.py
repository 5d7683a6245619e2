"""Sums over columns with four rows in the lanes of ``<4 x double>`` registers (numba
intrinsics), for small dense or grouped products in the QSTS step loop.

Layout: a group of up to four rows owns the column slots ``k0 … k1 − 1``; slot ``k`` reads
the complex value at float index ``col[k]`` of ``vf`` (a complex vector viewed as float64
pairs) and holds the four rows' coefficients at ``y[4k … 4k + 3]`` (real and imaginary
parts in two arrays; zeros in lanes past the group's rows). Per slot one multiply-add on
the registers (real and imaginary apart), where numba's scalar loop spends ~4 cycles on
each complex multiply-add. Each lane adds its terms in slot order and rounds them as
complex arithmetic does (``acc + (yr·wr − yi·wi)``, ``acc + (yr·wi + yi·wr)``; no fused
multiply-add), so a lane's sum is bit for bit that of the scalar loop over the same terms
starting from ``0j``.

* :data:`lane_i2` writes the four sums' ``|·|²`` to ``out[at … at + 3]`` (branch currents,
  :mod:`.branchcur`);
* :data:`lane_sum` writes the four complex sums to ``out[at … at + 3]`` (a complex array;
  the Schur complement's inverse times a vector, :mod:`.schur`);
* :data:`lane_sub` subtracts the terms from ``out[at … at + 3]`` in place (each lane
  ``acc − (yr·wr − yi·wi)``, ... from its value there: bit for bit the scalar
  ``acc -= y·w``; ``F·w`` in the Schur solve's forward part).

All three write all four lanes: a lane past its group's rows lands on the next group's
first rows (written again there, or, by :data:`lane_sub`, written back as it was) or on
the spare slots ``out`` holds past its last group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.extending import intrinsic

LANES = 4


def equal_groups(indptr: np.ndarray, indices: np.ndarray) -> list[tuple[int, int]]:
    """(first row, rows) of each group: consecutive rows with equal columns, at most four
    (no padded slots)."""
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


def four_groups(n: int) -> list[tuple[int, int]]:
    """Rows four at a time, whatever their columns (a slot for each column of the union)."""
    return [(r, min(LANES, n - r)) for r in range(0, n, LANES)]


def layout(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
           groups: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:  # fmt: skip
    """``start, col, yr, yi`` of the CSR rows (sorted columns) in ``groups``: a slot for each
    column of a group's union, in column order (``col`` = 2 × the column), each lane its
    row's entry there or 0."""
    indptr, indices = np.asarray(indptr, np.int64), np.asarray(indices, np.int64)
    data = np.asarray(data, complex)
    unions = [np.unique(indices[indptr[r] : indptr[r + m]]) for r, m in groups]
    start = np.concatenate([[0], np.cumsum([len(u) for u in unions])]).astype(np.int64)
    y = np.zeros((int(start[-1]), LANES), complex)
    for (r, m), s, u in zip(groups, start[:-1], unions, strict=True):
        for lane in range(m):
            a, b = indptr[r + lane], indptr[r + lane + 1]
            y[s + np.searchsorted(u, indices[a:b]), lane] = data[a:b]
    col = 2 * np.concatenate([np.zeros(0, np.int64), *unions]).astype(np.int64)
    return start, col, y.real.ravel().copy(), y.imag.ravel().copy()


Grouped = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def grouped(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
            groupings: list[list[tuple[int, int]]]) -> Grouped:  # fmt: skip
    """``start, col, yr, yi, row0`` of the CSR rows in whichever of ``groupings`` (lists of
    (first row, rows), e.g. :func:`equal_groups`, :func:`four_groups`) needs fewest slots."""
    options = [(layout(indptr, indices, data, g), g) for g in groupings]
    (start, col, yr, yi), best = min(options, key=lambda o: len(o[0][1]))
    return start, col, yr, yi, np.array([r for r, _ in best], np.int64)


_D = ir.DoubleType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V4 = ir.VectorType(_D, LANES)


def _splat(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    v = ir.Constant(_V4, ir.Undefined)
    for lane in range(LANES):
        v = b.insert_element(v, x, _I64(lane))
    return v


def _v4(b: ir.IRBuilder, ptr: ir.Value, at: ir.Value) -> ir.Value:
    return b.bitcast(b.gep(ptr, [at]), _V4.as_pointer())


def _sums(b: ir.IRBuilder, arrays: list, k0: ir.Value, k1: ir.Value,
          start: tuple | None = None) -> tuple:  # fmt: skip
    """The four lanes' sums over slots ``k0 … k1 − 1`` as (real, imaginary) registers; with
    ``start`` (two registers) the products are subtracted from it instead."""
    vd, cd, rd, idd = arrays
    zero = ir.Constant(_V4, [0.0] * LANES)
    accr, acci = cgutils.alloca_once(b, _V4), cgutils.alloca_once(b, _V4)
    b.store(zero if start is None else start[0], accr)
    b.store(zero if start is None else start[1], acci)
    acc = b.fadd if start is None else b.fsub
    with cgutils.for_range(b, b.sub(k1, k0)) as loop:
        k = b.add(k0, loop.index)
        q = b.load(b.gep(cd, [k]))
        sr = _splat(b, b.load(b.gep(vd, [q])))
        si = _splat(b, b.load(b.gep(vd, [b.add(q, _I64(1))])))
        at = b.shl(k, _I64(2))
        ar, ai = b.load(_v4(b, rd, at), align=8), b.load(_v4(b, idd, at), align=8)
        pr = b.fsub(b.fmul(ar, sr), b.fmul(ai, si))
        pi = b.fadd(b.fmul(ar, si), b.fmul(ai, sr))
        b.store(acc(b.load(accr), pr), accr)
        b.store(acc(b.load(acci), pi), acci)
    return b.load(accr), b.load(acci)


_PAIRS = ([0, 4, 1, 5], [2, 6, 3, 7])  # (re, im) registers → complex pairs, lanes 0-1, 2-3
_SPLIT = ([0, 2, 4, 6], [1, 3, 5, 7])  # complex pairs (two registers) → re, im


def _mask(m: list[int]) -> ir.Constant:
    return ir.Constant(ir.VectorType(_I32, 4), m)


def _make(mode: str) -> Any:
    def typer(  # noqa: PLR0913
        typingctx: Any, vf: Any, col: Any, yr: Any, yi: Any, out: Any, k0: Any, k1: Any,
        at: Any,
    ) -> tuple:  # fmt: skip
        sig = types.void(vf, col, yr, yi, out, k0, k1, at)

        def codegen(context: BaseContext, b: ir.IRBuilder, s: object, args: list) -> object:
            arrays = [
                context.make_array(s.args[k])(context, b, args[k]).data  # type: ignore[attr-defined]
                for k in range(5)
            ]
            k0, k1, at = [context.cast(b, args[k], s.args[k], types.intp) for k in range(5, 8)]  # type: ignore[attr-defined]
            out = arrays[4]
            if mode == "i2":
                re, im = _sums(b, arrays[:4], k0, k1)
                b.store(b.fadd(b.fmul(re, re), b.fmul(im, im)), _v4(b, out, at), align=8)
                return context.get_dummy_value()
            base = b.bitcast(b.gep(out, [at]), _D.as_pointer())
            start = None
            if mode == "sub":  # start from out's four complex values
                lo = b.load(_v4(b, base, _I64(0)), align=8)
                hi = b.load(_v4(b, base, _I64(4)), align=8)
                start = tuple(b.shuffle_vector(lo, hi, _mask(m)) for m in _SPLIT)
            re, im = _sums(b, arrays[:4], k0, k1, start)
            b.store(b.shuffle_vector(re, im, _mask(_PAIRS[0])), _v4(b, base, _I64(0)), align=8)
            b.store(b.shuffle_vector(re, im, _mask(_PAIRS[1])), _v4(b, base, _I64(4)), align=8)
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(typer)


lane_i2: Any = _make("i2")  # Any: numba's stub types the call with typingctx
lane_sum: Any = _make("sum")
lane_sub: Any = _make("sub")
