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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.linalg import splu, spsolve_triangular

from gridpilot.errors import ValidationError
from gridpilot.twin.unbalanced.network import Network, Stamp, variable_y
from gridpilot.twin.unbalanced.trisolve import _lower


class SchurLU(NamedTuple):
    """Arrays of the factorisation (see module docstring); ``sinv`` changes with the state."""

    nk: np.ndarray  # node ids of the A part, in A's order
    kn: np.ndarray  # node ids of the K part
    lp: np.ndarray
    li: np.ndarray
    lx: np.ndarray
    up: np.ndarray
    ui: np.ndarray
    ux: np.ndarray
    udiag: np.ndarray  # 1 / U's diagonal (a product per row in the backward sweep)
    perm_r: np.ndarray
    perm_c: np.ndarray
    fp: np.ndarray  # F in CSR (K rows)
    fi: np.ndarray
    fx: np.ndarray
    ep: np.ndarray  # E in CSC (K columns)
    ei: np.ndarray
    ex: np.ndarray
    s0: np.ndarray  # Schur complement at the base state (K × K)
    sinv: np.ndarray  # inverse of the Schur complement at the present state
    work: np.ndarray  # scratch (n - K)
    zk: np.ndarray  # scratch (K)


def variable_nodes(net: Network) -> np.ndarray:
    """Sorted node ids that the regulating transformers and capacitors touch."""
    stamps: list[Stamp] = [*net.xf_stamps.values(), *net.cap_stamps.values()]
    nodes = np.unique(np.concatenate([s.idx for s in stamps] + [np.zeros(0, np.int64)]))
    return nodes[nodes >= 0].astype(np.int64)


def _csr(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = sp.csr_matrix(m)
    c.eliminate_zeros()
    return c.indptr.astype(np.int64), c.indices.astype(np.int64), c.data.astype(complex)


def build_schur(net: Network, y_loads: sp.spmatrix) -> SchurLU:
    """Factorise ``Y_fixed + Y_variable + Y_loads`` with the variable nodes last."""
    y = (net.y_fixed + variable_y(net) + y_loads).tocsr()
    kn = variable_nodes(net)
    mask = np.ones(net.n, bool)
    mask[kn] = False
    nk = np.flatnonzero(mask).astype(np.int64)
    a = y[nk][:, nk].tocsc()
    try:
        lu = splu(a)
    except RuntimeError as exc:
        raise ValidationError(
            f"{net.grid.name}: the admittance matrix is singular ({exc}): a part of the "
            "grid floats with no path to ground or to the source"
        ) from None
    low = sp.csr_matrix(lu.L)
    up = sp.csr_matrix(lu.U)
    udiag = 1.0 / up.diagonal().astype(complex)
    low.setdiag(0)
    up.setdiag(0)
    perm_r, perm_c = np.asarray(lu.perm_r, np.int64), np.asarray(lu.perm_c, np.int64)
    lcsr, ucsr = _csr(low), _csr(up)
    k = len(kn)
    b = y[nk][:, kn].toarray()
    e = np.zeros((len(nk), k), complex)
    e[perm_r] = b
    _lower(*lcsr, e)
    c = y[kn][:, nk].toarray()
    cpc = np.zeros_like(c)
    cpc[:, perm_c] = c
    ft = spsolve_triangular(sp.csr_matrix(lu.U).T.tocsr(), cpc.T.astype(complex), lower=True)
    f = np.asarray(ft).T.reshape(k, len(nk))
    e_csc = sp.csc_matrix(np.where(np.abs(e) > 0, e, 0.0))
    e_csc.eliminate_zeros()
    s0 = y[kn][:, kn].toarray().astype(complex) - f @ e
    sinv = np.linalg.inv(s0) if k else np.zeros((0, 0), complex)
    return SchurLU(
        nk, kn, *lcsr, *ucsr, udiag, perm_r, perm_c, *_csr(sp.csr_matrix(f)),
        e_csc.indptr.astype(np.int64), e_csc.indices.astype(np.int64),
        e_csc.data.astype(complex), s0, sinv, np.zeros(len(nk), complex), np.zeros(k, complex),
    )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _forward(f: SchurLU, rhs: np.ndarray) -> None:
    """``work ← L⁻¹·Pr·rhs[A]`` and ``zk ← rhs[K] − F·work``."""
    nk, w = f.nk, f.work
    for i in range(len(nk)):
        w[f.perm_r[i]] = rhs[nk[i]]
    for i in range(len(nk)):
        acc = w[i]
        for q in range(f.lp[i], f.lp[i + 1]):
            acc -= f.lx[q] * w[f.li[q]]
        w[i] = acc
    for r in range(len(f.kn)):
        acc = rhs[f.kn[r]]
        for q in range(f.fp[r], f.fp[r + 1]):
            acc -= f.fx[q] * w[f.fi[q]]
        f.zk[r] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _backward(f: SchurLU, out: np.ndarray) -> None:
    """``work ← U⁻¹·(work − E·x₂)`` and scatter both parts into ``out``."""
    w = f.work
    for c in range(len(f.kn)):
        x2 = out[f.kn[c]]
        for q in range(f.ep[c], f.ep[c + 1]):
            w[f.ei[q]] -= f.ex[q] * x2
    for i in range(len(w) - 1, -1, -1):
        acc = w[i]
        for q in range(f.up[i], f.up[i + 1]):
            acc -= f.ux[q] * w[f.ui[q]]
        w[i] = acc * f.udiag[i]
    for i in range(len(w)):
        out[f.nk[i]] = w[f.perm_c[i]]


@njit(cache=True, nogil=True, error_model="numpy")
def schur_solve(f: SchurLU, rhs: np.ndarray, out: np.ndarray) -> None:
    """``out ← Y⁻¹·rhs`` (one column) at the present state (``f.sinv``)."""
    _forward(f, rhs)
    k = len(f.kn)
    for r in range(k):
        acc = 0j
        for c in range(k):
            acc += f.sinv[r, c] * f.zk[c]
        out[f.kn[r]] = acc
    _backward(f, out)
