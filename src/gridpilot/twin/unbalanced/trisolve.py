"""Sparse LU solves for many right-hand sides at once (numba triangular substitution).

SuperLU factorises ``Pr·A·Pc = L·U`` once; its own ``solve`` pays a large cost per column,
so the time-series engine solves with the factors here instead: one pass over the rows of
``L`` then ``U`` updates all columns together (contiguous, vectorised).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.extending import intrinsic

from gridpilot.twin.unbalanced.arrays import NO_RT


@njit(cache=True, nogil=True, **NO_RT)
def _lower(ip: np.ndarray, ix: np.ndarray, dx: np.ndarray, x: np.ndarray) -> None:
    """In place: x ← L⁻¹ x for unit-lower L in CSR without its diagonal."""
    n, m = x.shape
    for i in range(n):
        for k in range(ip[i], ip[i + 1]):
            j = ix[k]
            a = dx[k]
            for c in range(m):
                x[i, c] -= a * x[j, c]


@njit(cache=True, nogil=True, **NO_RT)
def _upper(ip: np.ndarray, ix: np.ndarray, dx: np.ndarray, diag: np.ndarray, x: np.ndarray) -> None:
    """In place: x ← U⁻¹ x for upper U in CSR without its diagonal (``diag`` apart)."""
    n, m = x.shape
    for i in range(n - 1, -1, -1):
        for k in range(ip[i], ip[i + 1]):
            j = ix[k]
            a = dx[k]
            for c in range(m):
                x[i, c] -= a * x[j, c]
        d = 1.0 / diag[i]
        for c in range(m):
            x[i, c] *= d


class LuFactors:
    """The factors of a SuperLU object, ready for multi-column solves; ``dtype`` complex (the
    network) or float (a real Jacobian: the numba kernels compile for either)."""

    def __init__(self, lu: object, dtype: type = complex) -> None:
        low = sp.csr_matrix(lu.L)  # type: ignore[attr-defined]
        up = sp.csr_matrix(lu.U)  # type: ignore[attr-defined]
        low.setdiag(0)
        low.eliminate_zeros()
        self.dtype = dtype
        self.diag = up.diagonal().astype(dtype)
        up.setdiag(0)
        up.eliminate_zeros()
        self.l = (low.indptr.astype(np.int64), low.indices.astype(np.int64), low.data.astype(dtype))
        self.u = (up.indptr.astype(np.int64), up.indices.astype(np.int64), up.data.astype(dtype))
        self.perm_r = np.asarray(lu.perm_r)  # type: ignore[attr-defined]
        self.perm_c = np.asarray(lu.perm_c)  # type: ignore[attr-defined]
        self.n = len(self.diag)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A⁻¹ b`` for ``b`` of shape (n,) or (n, columns)."""
        one = b.ndim == 1
        bb = b[:, None] if one else b
        x: np.ndarray = np.empty(bb.shape, self.dtype)
        x[self.perm_r] = bb  # row permutation: (Pr b)[perm_r[i]] = b[i]
        _lower(*self.l, x)
        _upper(*self.u, self.diag, x)
        out = x[self.perm_c]  # Pr·A·Pc = L·U, so x = Pc·y: x[i] = y[perm_c[i]]
        return out[:, 0] if one else out


# One-column sweeps by level chunks (schur.py). The rows of a triangular factor are put in
# levels (a row's level is one more than the highest of the rows it reads); the rows of a
# level do not depend on each other, so they are swept four at a time in <4 x double>
# registers: real and imaginary parts apart, four complex values of the work vector
# loaded per entry (16 bytes each), the products rounded exactly as complex arithmetic
# rounds them (``acc − (ar·xr − ai·xi, ar·xi + ai·xr)``). A chunk's rows have the same
# number of entries: shorter rows are padded with zeros that read an always-zero slot;
# a level's last chunk is filled up with copies of its first row (same value, same place).

LANES = 4
_PERM = np.array([0, 2, 1, 3])  # lane order of the registers (see _load4)


class Chunks(NamedTuple):
    """A triangular factor in level chunks of four rows, for one sweep."""

    off: np.ndarray  # int64 (chunks): first entry slot of each chunk
    width: np.ndarray  # int64 (chunks): entries per row of each chunk
    idx: np.ndarray  # int16 or int32 (slots × 4): 2 × the position read (a float64 index)
    vr: np.ndarray  # float (slots × 4): the entry, real part, lanes in _PERM order
    vi: np.ndarray  # imaginary part
    src: np.ndarray  # int32 (chunks × 4): 2 × where each row's start value is
    dr: np.ndarray  # float (chunks × 4): the start value's factor, real (_PERM order)
    di: np.ndarray  # its imaginary part
    dst: np.ndarray  # int32 (chunks × 4): 2 × where each row's value goes in ``out``


@njit(cache=True, nogil=True)
def _levels(p: np.ndarray, i: np.ndarray, lower: bool) -> np.ndarray:
    """Each row's level: one more than the highest level of the rows it reads."""
    n = len(p) - 1
    lvl = np.zeros(n, np.int64)
    for k in range(n):
        r = k if lower else n - 1 - k
        top = -1
        for q in range(p[r], p[r + 1]):
            top = max(top, lvl[i[q]])
        lvl[r] = top + 1
    return lvl


@njit(cache=True, nogil=True)
def _pack_rows(order: np.ndarray, lvl: np.ndarray) -> np.ndarray:
    """``order`` (rows sorted by level) four to a chunk, never across a level; a level's
    last chunk filled up with copies of the chunk's first row. Shape (chunks, 4)."""
    out = np.empty((len(order), LANES), np.int64)  # at most one chunk a row
    c, a = 0, 0
    while a < len(order):
        b = a
        while b < len(order) and lvl[order[b]] == lvl[order[a]]:
            b += 1
        for s in range(a, b, LANES):
            for lane in range(LANES):
                out[c, lane] = order[s + lane] if s + lane < b else order[s]
            c += 1
        a = b
    return out[:c]


def _chunk_rows(p: np.ndarray, i: np.ndarray, lower: bool) -> np.ndarray:
    """Rows by level, longest first within a level, four to a chunk (filled up with the
    chunk's first row): shape (chunks, 4)."""
    lens = np.diff(p)
    lvl = _levels(p, i.astype(np.int64), lower)
    order = np.lexsort((-lens, lvl)).astype(np.int64)
    return _pack_rows(order, lvl)


@njit(cache=True, nogil=True, **NO_RT)
def _fill(  # noqa: PLR0913
    chunks: np.ndarray, p: np.ndarray, i: np.ndarray, x: np.ndarray, pos: np.ndarray,
    off: np.ndarray, idx: np.ndarray, val: np.ndarray,
) -> None:  # fmt: skip
    """Entry ``k`` of the row in lane ``l`` of chunk ``c`` at slot ``off[c] + l + 4k``: its
    value and 2 × the position it reads (padding keeps the zero slot)."""
    for c in range(chunks.shape[0]):
        for lane in range(LANES):
            r = chunks[c, lane]
            for k in range(p[r + 1] - p[r]):
                at = off[c] + lane + LANES * k
                idx[at] = 2 * pos[i[p[r] + k]]
                val[at] = x[p[r] + k]


def chunk_factor(  # noqa: PLR0913
    p: np.ndarray,
    i: np.ndarray,
    x: np.ndarray,
    lower: bool,
    src: np.ndarray,
    scale: np.ndarray | None = None,
    dst: np.ndarray | None = None,
) -> tuple[Chunks, np.ndarray]:
    """The strict triangle ``(p, i, x)`` (CSR, sorted columns) in level chunks (row ``r``
    starts from ``src[r]``, times ``scale[r]``), and the position of each row in the
    sweep's work vector. Without ``dst`` the rows are written to the work vector (chunk
    order, its last slot an always-zero one that padding reads); with ``dst`` (the
    backward sweep) only to ``out[dst[r]]``, where the later rows read them: padding
    reads the first row's place, written before any padded chunk (level 0 has no
    entries), with a zero factor."""
    p = p.astype(np.int64)
    chunks = _chunk_rows(p, i, lower)
    rows = chunks.ravel()
    pos = np.zeros(len(p) - 1, np.int64)
    uniq, first = np.unique(rows, return_index=True)
    pos[uniq] = first  # a copied row keeps its first place
    where, pad = (pos, len(rows)) if dst is None else (dst, dst[rows[0]] if len(rows) else 0)
    width = np.diff(p)[chunks].max(axis=1) if len(chunks) else np.zeros(0, np.int64)
    off = np.concatenate([[0], np.cumsum(width * LANES)])[:-1].astype(np.int64)
    top = 2 * max(int(pad), int(where.max()) if len(where) else 0)
    small = top <= np.iinfo(np.int16).max  # 2 bytes an entry where that reaches
    idx = np.full(int(width.sum()) * LANES, 2 * pad, np.int16 if small else np.int32)
    val = np.zeros(len(idx), complex)
    _fill(chunks, p, i.astype(np.int64), np.asarray(x, complex), where, off, idx, val)
    val = val.reshape(-1, LANES)[:, _PERM].ravel()
    sc = (np.ones(len(rows), complex) if scale is None else scale[rows]).reshape(-1, LANES)
    sc = sc[:, _PERM].ravel()
    out = np.zeros(len(rows), np.int32) if dst is None else 2 * dst[rows].astype(np.int32)
    ch = Chunks(off, width, idx, val.real.copy(), val.imag.copy(), 2 * src[rows].astype(np.int32),
                sc.real.copy(), sc.imag.copy(), out)  # fmt: skip
    return ch, pos


_D = ir.DoubleType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V2 = ir.VectorType(_D, 2)
_V4 = ir.VectorType(_D, 4)


def _shuffle(b: ir.IRBuilder, x: ir.Value, y: ir.Value, mask: list[int]) -> ir.Value:
    return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(_I32, len(mask)), mask))


def _at(b: ir.IRBuilder, ptr: ir.Value, k: ir.Value, ty: ir.Type) -> ir.Value:
    return b.bitcast(b.gep(ptr, [k]), ty.as_pointer())


def _load4(b: ir.IRBuilder, vec: ir.Value, idx: ir.Value, s: ir.Value) -> tuple:
    """The complex values ``vec[idx[s + l]]``, l < 4, as (real, imaginary) registers in
    lane order (0, 2, 1, 3) (one unpack each from two 32-byte halves)."""
    v = []
    for lane in range(LANES):
        j = b.sext(b.load(b.gep(idx, [b.add(s, _I64(lane))])), _I64)
        v.append(b.load(_at(b, b.bitcast(vec, _D.as_pointer()), j, _V2), align=8))
    lo, hi = _shuffle(b, v[0], v[1], [0, 1, 2, 3]), _shuffle(b, v[2], v[3], [0, 1, 2, 3])
    return _shuffle(b, lo, hi, [0, 4, 2, 6]), _shuffle(b, lo, hi, [1, 5, 3, 7])


def _sweep(  # noqa: PLR0913
    b: ir.IRBuilder,
    w: ir.Value,
    ch: list,
    c4: ir.Value,
    o: ir.Value,
    width: ir.Value,
    re: ir.Value,
    im: ir.Value,
    store: bool = True,
) -> tuple:
    """``acc − Σ_k val_k·w[idx_k]`` over a chunk's ``width`` entries, in order (stored at
    the chunk's slots of ``w`` with ``store``)."""
    idx, vr, vi = ch
    accr, acci = cgutils.alloca_once(b, _V4), cgutils.alloca_once(b, _V4)
    b.store(re, accr)
    b.store(im, acci)
    with cgutils.for_range(b, width) as loop:
        s = b.add(o, b.shl(loop.index, _I64(2)))
        xr, xi = _load4(b, w, idx, s)
        ar, ai = b.load(_at(b, vr, s, _V4), align=8), b.load(_at(b, vi, s, _V4), align=8)
        pr = b.fsub(b.fmul(ar, xr), b.fmul(ai, xi))
        pi = b.fadd(b.fmul(ar, xi), b.fmul(ai, xr))
        b.store(b.fsub(b.load(accr), pr), accr)
        b.store(b.fsub(b.load(acci), pi), acci)
    re, im = b.load(accr), b.load(acci)
    lo, hi = _shuffle(b, re, im, [0, 4, 2, 6]), _shuffle(b, re, im, [1, 5, 3, 7])
    if store:  # the chunk's four values into the work vector (forward sweep)
        base = b.bitcast(b.gep(w, [c4]), _D.as_pointer())
        b.store(lo, _at(b, base, _I64(0), _V4), align=8)
        b.store(hi, _at(b, base, _I64(4), _V4), align=8)
    return lo, hi


def _arrays(context: BaseContext, b: ir.IRBuilder, sig: object, args: list, ks: range) -> list:
    return [context.make_array(sig.args[k])(context, b, args[k]).data for k in ks]  # type: ignore[attr-defined]


def _ints(context: BaseContext, b: ir.IRBuilder, sig: object, args: list, ks: range) -> list:
    return [context.cast(b, args[k], sig.args[k], types.intp) for k in ks]  # type: ignore[attr-defined]


def _sweep_chunk(  # noqa: PLR0913
    typingctx: Any,
    w: Any,
    idx: Any,
    vr: Any,
    vi: Any,
    rhs: Any,
    src: Any,
    c: Any,
    o: Any,
    width: Any,
) -> tuple:
    """Forward chunk ``c``: ``w[4c + l] = rhs[src[4c + l]] − Σ val·w[idx]``."""
    sig = types.void(w, idx, vr, vi, rhs, src, c, o, width)

    def codegen(context: BaseContext, b: ir.IRBuilder, s: object, args: list) -> object:
        wd, idd, vrd, vid, rhd, srd = _arrays(context, b, s, args, range(6))
        c, o, width = _ints(context, b, s, args, range(6, 9))
        c4 = b.shl(c, _I64(2))
        re, im = _load4(b, rhd, srd, c4)
        _sweep(b, wd, [idd, vrd, vid], c4, o, width, re, im)
        return context.get_dummy_value()

    return sig, codegen


sweep_chunk: Any = intrinsic(_sweep_chunk)  # Any: numba's stub types the call with typingctx


def _back_chunk(  # noqa: PLR0913
    typingctx: Any,
    w: Any,
    idx: Any,
    vr: Any,
    vi: Any,
    start: Any,
    src: Any,
    dr: Any,
    di: Any,
    out: Any,
    dst: Any,
    c: Any,
    o: Any,
    width: Any,
) -> tuple:
    """Backward chunk ``c``: ``out[dst[4c + l]] = start[src]·d − Σ val·w[idx]`` (``w`` is
    ``out`` itself in the Schur solve: the later rows read the values written there)."""
    sig = types.void(w, idx, vr, vi, start, src, dr, di, out, dst, c, o, width)

    def codegen(context: BaseContext, b: ir.IRBuilder, s: object, args: list) -> object:
        wd, idd, vrd, vid, std, srd, drd, did, outd, dsd = _arrays(context, b, s, args, range(10))
        c, o, width = _ints(context, b, s, args, range(10, 13))
        c4 = b.shl(c, _I64(2))
        xr, xi = _load4(b, std, srd, c4)
        fr, fi = b.load(_at(b, drd, c4, _V4), align=8), b.load(_at(b, did, c4, _V4), align=8)
        re = b.fsub(b.fmul(xr, fr), b.fmul(xi, fi))
        im = b.fadd(b.fmul(xr, fi), b.fmul(xi, fr))
        lo, hi = _sweep(b, wd, [idd, vrd, vid], c4, o, width, re, im, store=False)
        for lane, (v, h) in enumerate(((lo, 0), (lo, 2), (hi, 0), (hi, 2))):
            j = b.sext(b.load(b.gep(dsd, [b.add(c4, _I64(lane))])), _I64)
            dp = b.bitcast(outd, _D.as_pointer())
            b.store(_shuffle(b, v, v, [h, h + 1]), _at(b, dp, j, _V2), align=8)
        return context.get_dummy_value()

    return sig, codegen


back_chunk: Any = intrinsic(_back_chunk)  # Any: numba's stub types the call with typingctx
