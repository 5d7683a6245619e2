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
  the Schur complement's inverse times a vector, :mod:`.schur`).

Both write all four lanes: ``out`` has three slots to spare past its last group.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.extending import intrinsic

LANES = 4
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


def _sums(b: ir.IRBuilder, arrays: list, k0: ir.Value, k1: ir.Value) -> tuple:
    """The four lanes' sums over slots ``k0 … k1 − 1`` as (real, imaginary) registers."""
    vd, cd, rd, idd = arrays
    zero = ir.Constant(_V4, [0.0] * LANES)
    accr, acci = cgutils.alloca_once(b, _V4), cgutils.alloca_once(b, _V4)
    b.store(zero, accr)
    b.store(zero, acci)
    with cgutils.for_range(b, b.sub(k1, k0)) as loop:
        k = b.add(k0, loop.index)
        q = b.load(b.gep(cd, [k]))
        sr = _splat(b, b.load(b.gep(vd, [q])))
        si = _splat(b, b.load(b.gep(vd, [b.add(q, _I64(1))])))
        at = b.shl(k, _I64(2))
        ar, ai = b.load(_v4(b, rd, at), align=8), b.load(_v4(b, idd, at), align=8)
        pr = b.fsub(b.fmul(ar, sr), b.fmul(ai, si))
        pi = b.fadd(b.fmul(ar, si), b.fmul(ai, sr))
        b.store(b.fadd(b.load(accr), pr), accr)
        b.store(b.fadd(b.load(acci), pi), acci)
    return b.load(accr), b.load(acci)


def _make(square: bool) -> Any:
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
            re, im = _sums(b, arrays[:4], k0, k1)
            out = arrays[4]
            if square:
                b.store(b.fadd(b.fmul(re, re), b.fmul(im, im)), _v4(b, out, at), align=8)
            else:  # complex out: (re, im) pairs, lanes 0-1 then 2-3
                mask = [
                    ir.Constant(ir.VectorType(_I32, 4), m) for m in ([0, 4, 1, 5], [2, 6, 3, 7])
                ]
                base = b.bitcast(b.gep(out, [at]), _D.as_pointer())
                b.store(b.shuffle_vector(re, im, mask[0]), _v4(b, base, _I64(0)), align=8)
                b.store(b.shuffle_vector(re, im, mask[1]), _v4(b, base, _I64(4)), align=8)
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(typer)


lane_i2: Any = _make(True)  # Any: numba's stub types the call with typingctx
lane_sum: Any = _make(False)
