"""The system matrix factorised with the switching nodes last: taps and capacitor steps in
compiled code at the cost of a K × K update.

The nodes that regulating transformers and capacitors touch (``K``, a few dozen) are
ordered after all others. With ``A`` the rest, ``Y = [[A, B], [C, D]]`` and
``Pr·A·Pc = L·U`` (SuperLU, once):

* ``E = L⁻¹·Pr·B`` and ``F = C·Pc·U⁻¹`` are kept sparse (fill along the elimination tree);
* the Schur complement ``S = D − F·E`` is K × K; every tap or capacitor step changes only
  ``D`` (all their admittance lies in the K × K block), so an action costs a K × K inverse;
* a solve is one forward sweep, ``x₂ = S⁻¹·(b₂ − F·z₁)``, one backward sweep on
  ``z₁ − E·x₂``: no dense n × K correction per solve (unlike a Woodbury update).

Exact (no approximation): the same LU a full factorisation with K last would produce.

``A`` is structurally symmetric (a network), so it is first factorised with a symmetric
minimum-degree order and diagonal pivots (``Pr = Pc``, SuperLU's symmetric mode): on a
radial feeder hardly any fill (ieee8500: 19.4k entries per factor against 27k with COLAMD
and partial pivoting). That factorisation is kept only if a random solve's backward error
is at rounding level; otherwise (a tiny pivot) the partial-pivoting LU is used. Both are
the exact LU of ``A`` (``L`` and ``U`` stored apart; no symmetry of values is assumed).
The solve kernels fold the permutations into the sweeps (the node of each factor row),
hold ``U`` as ``diag(U)⁻¹·U`` (unit, its diagonal as a product on each row's start value)
and sweep each factor by level chunks, four independent rows at a time in vector registers
(trisolve.chunk_factor; ieee8500 solve 56 → 40 µs): every row's terms are subtracted in
the same order and rounded as before, so the solution is bit-for-bit that of row-by-row
sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.linalg import splu, spsolve_triangular

from gridpilot.errors import ValidationError
from gridpilot.twin.unbalanced.arrays import NO_RT
from gridpilot.twin.unbalanced.lanes import (
    LANES,
    Grouped,
    equal_groups,
    four_groups,
    grouped,
    lane_sub,
    lane_sum,
)
from gridpilot.twin.unbalanced.network import Network, Stamp, variable_y
from gridpilot.twin.unbalanced.trisolve import Chunks, _lower, back_chunk, chunk_factor, sweep_chunk

log = logging.getLogger(__name__)

BACKWARD_ERROR = 1e-12  # a diagonal-pivot factorisation is kept below this
ORDERS = ("MMD_AT_PLUS_A", "MMD_ATA")  # symmetric orders tried; the sparser is kept


class SchurLU(NamedTuple):
    """Arrays of the factorisation (see module docstring); ``sinv`` changes with the state.
    Row ``i`` of the factors is node ``rnode[i]`` in the forward sweep and ``cnode[i]`` in
    the backward one (equal with diagonal pivots)."""

    nk: np.ndarray  # node ids of the A part
    kn: np.ndarray  # node ids of the K part
    rnode: np.ndarray  # uint32: node of each row of L (Pr folded in)
    cnode: np.ndarray  # uint32: node of each row of U (Pc folded in)
    lc: Chunks  # L (unit lower, strict) in level chunks, rows starting from rhs[rnode]
    uc: Chunks  # diag(U)⁻¹·U (unit upper, strict), rows from wf·diag(U)⁻¹, to out[cnode]
    kq: np.ndarray  # uint32 copy of kn
    fstart: np.ndarray  # F (K rows) in groups of four lanes (lanes.layout): slots per group
    fcol: np.ndarray  # 2 × the position in wf each slot reads
    fyr: np.ndarray  # the group's entries of F there, real
    fyi: np.ndarray  # imaginary part
    frow0: np.ndarray  # int64: each group's first row
    ep: np.ndarray  # E in CSC (K columns), rows as positions in wf
    ei: np.ndarray
    ex: np.ndarray
    s0: np.ndarray  # Schur complement at the base state (K × K)
    sinv: np.ndarray  # inverse of the Schur complement at the present state
    wf: np.ndarray  # work vector of the forward sweep (chunk order; last slot stays 0)
    zk: np.ndarray  # scratch (K + 4: the last group's spare lanes)
    nup: np.ndarray  # (1,) low-rank updates of sinv since it was last inverted (.schur_update)
    wk: np.ndarray  # (4, K, K) scratch of the updates
    wp: np.ndarray  # (K,) int64 scratch: the changed K positions
    wmap: np.ndarray  # (K,) int64 scratch: each K position's slot among them (-1: none)
    kcol: np.ndarray  # int64 (groups·K,): 2 × the column of each slot (zk as float pairs)
    kr: np.ndarray  # float64 (groups·K·4,): sinv in row groups of four lanes (publish), real
    ki: np.ndarray  # imaginary part
    xk: np.ndarray  # complex (groups·4,) scratch: sinv·zk


def variable_nodes(net: Network, caps: Collection[str] | None = None) -> np.ndarray:
    """Sorted node ids that the regulating transformers and capacitors touch (``caps``:
    only those capacitors, by lower-case name; None: all)."""
    stamps: list[Stamp] = [
        *net.xf_stamps.values(),
        *(st for name, st in net.cap_stamps.items() if caps is None or name in caps),
    ]
    nodes = np.unique(np.concatenate([s.idx for s in stamps] + [np.zeros(0, np.int64)]))
    return nodes[nodes >= 0].astype(np.int64)


def _u32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.uint32)


def _csr(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = sp.csr_matrix(m)
    c.eliminate_zeros()
    c.sort_indices()
    return _u32(c.indptr), _u32(c.indices), c.data.astype(complex)


def backward_error(a: sp.spmatrix, lu: object) -> float:
    """Componentwise backward error ``max |A·x − b| / (|A|·|x| + |b|)`` of a random solve."""
    rng = np.random.default_rng(0)
    b = rng.standard_normal(a.shape[0]) + 1j * rng.standard_normal(a.shape[0])
    x = lu.solve(b)  # type: ignore[attr-defined]
    if not np.all(np.isfinite(x)):
        return float("inf")
    scale = abs(a) @ np.abs(x) + np.abs(b)
    return float((np.abs(a @ x - b) / scale).max())


def factorise(a: sp.csc_matrix, name: str) -> object:
    """SuperLU of ``A``: symmetric order and diagonal pivots when that is as accurate as
    partial pivoting (see module docstring), else SuperLU's default."""
    best = None
    for order in ORDERS:
        try:
            lu = splu(a, permc_spec=order, diag_pivot_thresh=0.0,
                      options={"SymmetricMode": True})  # fmt: skip
        except RuntimeError:
            continue
        err = backward_error(a, lu)
        if err > BACKWARD_ERROR or not np.array_equal(lu.perm_r, lu.perm_c):
            log.info("%s: diagonal pivots (%s) rejected: backward error %.1e", name, order, err)
            continue
        if best is None or lu.L.nnz + lu.U.nnz < best.L.nnz + best.U.nnz:
            best = lu
    if best is not None:
        return best
    try:
        return splu(a)
    except RuntimeError as exc:
        raise ValidationError(
            f"{name}: the admittance matrix is singular ({exc}): a part of the "
            "grid floats with no path to ground or to the source"
        ) from None


def build_schur(net: Network, y_loads: sp.spmatrix, caps: Collection[str] | None = None) -> SchurLU:
    """Factorise ``Y_fixed + Y_variable + Y_loads`` with the variable nodes last (the
    capacitors among them: ``caps``, see :func:`variable_nodes`; the others stay in the
    factorisation at their present steps)."""
    y = (net.y_fixed + variable_y(net) + y_loads).tocsr()
    return schur_factor(y, variable_nodes(net, caps), net.grid.name)


def schur_factor(y: sp.csr_matrix, kn: np.ndarray, name: str = "grid") -> SchurLU:
    """The factorisation of ``y`` with the nodes ``kn`` last (see module docstring)."""
    mask = np.ones(y.shape[0], bool)
    mask[kn] = False
    nk = np.flatnonzero(mask).astype(np.int64)
    a = y[nk][:, nk].tocsc()
    lu = factorise(a, name)
    low = sp.csr_matrix(lu.L)  # type: ignore[attr-defined]
    up = sp.csr_matrix(lu.U)  # type: ignore[attr-defined]
    udiag = 1.0 / up.diagonal().astype(complex)
    perm_r = np.asarray(lu.perm_r, np.int64)  # type: ignore[attr-defined]
    perm_c = np.asarray(lu.perm_c, np.int64)  # type: ignore[attr-defined]
    k = len(kn)
    b = y[nk][:, kn].toarray()
    e = np.zeros((len(nk), k), complex)
    e[perm_r] = b
    strict = low.copy()
    strict.setdiag(0)
    strict.eliminate_zeros()
    _lower(strict.indptr.astype(np.int64), strict.indices.astype(np.int64),
           strict.data.astype(complex), e)  # fmt: skip
    c = y[kn][:, nk].toarray()
    cpc = np.zeros_like(c)
    cpc[:, perm_c] = c
    ft = spsolve_triangular(up.T.tocsr(), cpc.T.astype(complex), lower=True)
    f = np.asarray(ft).T.reshape(k, len(nk))
    e_csc = sp.csc_matrix(np.where(np.abs(e) > 0, e, 0.0))
    e_csc.eliminate_zeros()
    e_csc.sort_indices()
    s0 = y[kn][:, kn].toarray().astype(complex) - f @ e
    sinv = np.linalg.inv(s0) if k else np.zeros((0, 0), complex)
    unit_up = sp.diags(udiag) @ up
    unit_up.setdiag(0)
    rnode, cnode = np.empty(len(nk), np.int64), np.empty(len(nk), np.int64)
    rnode[perm_r], cnode[perm_c] = nk, nk
    lc, pos = chunk_factor(*_csr(strict), True, rnode)
    uc, _ = chunk_factor(*_csr(unit_up), False, pos, udiag, cnode)
    out = SchurLU(
        nk, kn, _u32(rnode), _u32(cnode), lc, uc, _u32(kn), *_f_lanes(f, pos),
        _u32(e_csc.indptr), _u32(pos[e_csc.indices]), e_csc.data.astype(complex), s0, sinv,
        np.zeros(len(lc.src) + 1, complex), np.zeros(k + LANES, complex), np.zeros(1, np.int64),
        np.zeros((4, k, k), complex), np.zeros(k, np.int64), np.full(k, -1, np.int64),
        *_lane_arrays(k),
    )  # fmt: skip
    publish(out)
    return out


def _f_lanes(f: np.ndarray, pos: np.ndarray) -> Grouped:
    """``F`` (K × A, dense) in groups of four rows (:mod:`.lanes`): rows with equal columns
    together (a three-phase element's nodes) or four at a time, whichever needs fewer
    slots; each row's terms in its column order, its columns read at their ``wf``
    positions ``pos``."""
    p, i, x = _csr(sp.csr_matrix(f))
    start, col, yr, yi, row0 = grouped(p, i, x, [equal_groups(p, i), four_groups(len(p) - 1)])
    return start, 2 * pos[col // 2].astype(np.int64), yr, yi, row0


def _lane_arrays(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``kcol``, and ``kr``, ``ki``, ``xk`` empty (:func:`publish` fills ``kr``, ``ki``),
    of :class:`SchurLU` for K × K."""
    groups = -(-k // LANES)
    z = np.zeros(groups * k * LANES)
    kcol = np.tile(2 * np.arange(k, dtype=np.int64), groups)
    return kcol, z, z.copy(), np.zeros(groups * LANES, complex)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def publish(f: SchurLU) -> None:
    """``f.kr``, ``f.ki`` ← ``f.sinv`` in row groups of four lanes (after every change of
    ``sinv``: the solve reads only these)."""
    k = len(f.kq)
    for r in range(k):
        g, lane = r // LANES, r % LANES
        for c in range(k):
            at = (g * k + c) * LANES + lane
            f.kr[at] = f.sinv[r, c].real
            f.ki[at] = f.sinv[r, c].imag


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _forward(f: SchurLU, rhs: np.ndarray) -> None:
    """``wf ← L⁻¹·Pr·rhs[A]`` (by level chunks) and ``zk ← rhs[K] − F·wf``."""
    c, w = f.lc, f.wf
    for k in range(len(c.off)):
        sweep_chunk(w, c.idx, c.vr, c.vi, rhs, c.src, k, c.off[k], c.width[k])
    for r in range(len(f.kq)):
        f.zk[r] = rhs[f.kq[r]]
    wv = w.view(np.float64)
    for g in range(len(f.frow0)):  # four rows at a time (lanes.lane_sub: acc -= F·w)
        lane_sub(wv, f.fcol, f.fyr, f.fyi, f.zk, f.fstart[g], f.fstart[g + 1], f.frow0[g])


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _backward(f: SchurLU, out: np.ndarray) -> None:
    """``out[A] ← U⁻¹·(wf − E·x₂)`` (by level chunks; the later rows read ``out``)."""
    w = f.wf
    for c in range(len(f.kq)):
        x2 = out[f.kq[c]]
        for q in range(f.ep[c], f.ep[c + 1]):
            w[f.ei[q]] -= f.ex[q] * x2
    ch = f.uc
    for k in range(len(ch.off)):
        back_chunk(out, ch.idx, ch.vr, ch.vi, w, ch.src, ch.dr, ch.di, out, ch.dst, k,
                   ch.off[k], ch.width[k])  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def schur_solve(f: SchurLU, rhs: np.ndarray, out: np.ndarray) -> None:
    """``out ← Y⁻¹·rhs`` (one column) at the present state (``f.sinv`` as published in
    ``f.kr``, ``f.ki``: ``x₂ = S⁻¹·z`` four rows at a time in vector lanes, each row's sum
    in column order, bit for bit the scalar loop's)."""
    _forward(f, rhs)
    k = len(f.kq)
    zf = f.zk.view(np.float64)
    for g in range(len(f.xk) // LANES):
        lane_sum(zf, f.kcol, f.kr, f.ki, f.xk, g * k, (g + 1) * k, g * LANES)
    for r in range(k):
        out[f.kq[r]] = f.xk[r]
    _backward(f, out)
