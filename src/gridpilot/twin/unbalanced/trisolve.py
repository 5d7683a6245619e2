"""Sparse LU solves for many right-hand sides at once (numba triangular substitution).

SuperLU factorises ``Pr·A·Pc = L·U`` once; its own ``solve`` pays a large cost per column,
so the time-series engine solves with the factors here instead: one pass over the rows of
``L`` then ``U`` updates all columns together (contiguous, vectorised).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit


@njit(cache=True, nogil=True)
def _lower(ip: np.ndarray, ix: np.ndarray, dx: np.ndarray, x: np.ndarray) -> None:
    """In place: x ← L⁻¹ x for unit-lower L in CSR without its diagonal."""
    n, m = x.shape
    for i in range(n):
        for k in range(ip[i], ip[i + 1]):
            j = ix[k]
            a = dx[k]
            for c in range(m):
                x[i, c] -= a * x[j, c]


@njit(cache=True, nogil=True)
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
