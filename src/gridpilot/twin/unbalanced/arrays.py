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
through a temporary: use :func:`copy_into`), no array returned.
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
