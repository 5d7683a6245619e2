"""Array helpers for the kernels that numba compiles without its runtime (``_nrt=False``).

The QSTS step loop's kernels take their arrays in named tuples (:class:`.faststep.Run`).
With numba's runtime (NRT) every array read out of such a tuple, and every view, takes a
reference: an atomic increment, then an atomic decrement when it goes out of scope. In the
loop's small kernels these counts cost more than the arithmetic (a regulator's time-mode
sample: 1.2 µs with them, 0.3 µs without; ieee123's QSTS step 41 → 25 µs). The kernels
that neither allocate nor return an array are therefore compiled with ``**NO_RT`` (numba's
``_nrt=False`` option: no reference counts; an allocation is a compile error). The arrays are
owned by the Python caller for the whole call, so no count is needed.

A kernel called from such a kernel inherits the option unless it sets its own: one that
allocates says ``_nrt=True`` in ``RT`` (``**RT``) where a ``NO_RT`` kernel calls it.

Rules for such a kernel (``tests/threephase/test_no_runtime.py`` checks them): no
allocation (``np.empty``, ``.copy()``, an array slice assignment, which numba may copy
through a temporary: use :func:`copy_into`), no array returned. Scratch lives in the
loop's tuples; :func:`ridge_solve` solves the small dense systems of the Anderson mix and
the step predictor in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

# ``@njit(..., **NO_RT)``: compiled without the runtime (numba's ``_nrt`` option, which its
# type stubs do not list)
NO_RT: dict[str, Any] = {"_nrt": False}
RT: dict[str, Any] = {"_nrt": True}


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: callers cache it
def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[:] = src`` for 1-d arrays of one length, without a temporary."""
    for i in range(len(dst)):
        dst[i] = src[i]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def ridge_solve(g: np.ndarray, rhs: np.ndarray, k: int, reg: float, a: np.ndarray,
                y: np.ndarray) -> None:  # fmt: skip
    """``y[:k]`` ← the solution of ``(g + reg·I)·y = rhs`` for the leading k×k block of
    ``g`` (:func:`lu_solve` in the scratch ``a``; small systems: the Anderson mix's and the
    step predictor's fits). A zero pivot gives ``y = 0`` (their plain step)."""
    for i in range(k):
        y[i] = rhs[i]
        for j in range(k):
            a[i, j] = g[i, j] + (reg if i == j else 0.0)
    if not lu_solve(a, y.reshape((len(y), 1)), k):
        for i in range(k):
            y[i] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def lu_solve(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    """``b[:k]`` ← ``a[:k, :k]⁻¹·b[:k]`` in place (all of ``b``'s columns), by Gaussian
    elimination with partial pivoting (``a`` overwritten; real or complex); False at a
    zero pivot (``b`` then undefined)."""
    for col in range(k):
        if not _pivot(a, b, col, k):
            return False
        for i in range(col + 1, k):
            m = a[i, col] / a[col, col]
            for j in range(col, k):
                a[i, j] -= m * a[col, j]
            for c in range(b.shape[1]):
                b[i, c] -= m * b[col, c]
    for i in range(k - 1, -1, -1):
        for c in range(b.shape[1]):
            s = b[i, c]
            for j in range(i + 1, k):
                s -= a[i, j] * b[j, c]
            b[i, c] = s / a[i, i]
    return True


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _pivot(a: np.ndarray, b: np.ndarray, col: int, k: int) -> bool:
    """Swap the row with the largest pivot of column ``col`` into place (in ``a`` and
    ``b``); False if that pivot is zero."""
    piv = col
    for i in range(col + 1, k):
        if abs(a[i, col]) > abs(a[piv, col]):
            piv = i
    if a[piv, col] == 0:
        return False
    if piv != col:
        for j in range(k):
            a[col, j], a[piv, j] = a[piv, j], a[col, j]
        for c in range(b.shape[1]):
            b[col, c], b[piv, c] = b[piv, c], b[col, c]
    return True
