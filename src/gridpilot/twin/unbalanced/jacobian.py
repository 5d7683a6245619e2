"""The power flow's Jacobian in real form, at an operating point of an :class:`UnbalancedTwin`.

The twin solves ``Y V = I_src + inc · I(V_br, S)`` (``Y`` the network without the loads, ``I``
the load branches' currents, :mod:`gridpilot.twin.unbalanced.solver`). The loads' currents are
only R-linear in ``V``, so the linearisation is written in real form over ``(Re V, Im V)``:

    J = [[Y_r + L(∂I/∂Re V)_r, -Y_i + L(∂I/∂Im V)_r],
         [Y_i + L(∂I/∂Re V)_i,  Y_r + L(∂I/∂Im V)_i]],   L(d) = inc · diag(d) · incᵀ,

the derivatives by central differences of the engine's own load models (every model covered).
Used by the hosting study's chord method and the flex plan's sensitivity rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents
from gridpilot.twin.unbalanced.network import variable_y
from gridpilot.twin.unbalanced.twin import UnbalancedTwin


def real_jacobian(tw: UnbalancedTwin, v: np.ndarray, s: np.ndarray) -> sp.csc_matrix:
    """``J`` (2n x 2n, CSC) at node voltages ``v`` (V, n) with load-branch powers ``s`` (VA)."""
    lb, inc = tw.loads, tw.inc
    vbr = branch_voltage(lb, np.reshape(v, (-1, 1)))[:, 0]
    s2 = np.reshape(s, (-1, 1))
    h = 1e-6 * np.maximum(np.abs(vbr), 1.0)

    def slope(dv: np.ndarray) -> np.ndarray:
        up = load_currents(lb, (vbr + dv)[:, None], s2)[:, 0]
        down = load_currents(lb, (vbr - dv)[:, None], s2)[:, 0]
        return (up - down) / (2 * h)

    d_re, d_im = slope(h), slope(1j * h)
    y = (tw.net.y_fixed + variable_y(tw.net)).tocsr()
    inc_t = inc.T.tocsr()

    def ld(x: np.ndarray) -> sp.csr_matrix:
        return (inc @ sp.diags(x) @ inc_t).tocsr()

    return sp.bmat(
        [
            [y.real + ld(d_re.real), -y.imag + ld(d_im.real)],
            [y.imag + ld(d_re.imag), y.real + ld(d_im.imag)],
        ],
        format="csc",
    )
