"""Exact batched power flows of a hosting study by a chord (fixed-Jacobian Newton) method.

Every column of a study sits near one operating point (the critical hour without the
DER), so the true Jacobian of the current-injection equations at that point, factorised
once per hour, solves each column in a few iterations where the engine's fixed point
(constant-impedance loads in the matrix, contraction ~0.6 per iteration on ieee8500) takes
over twenty. The equations are the engine's own,

    R(V) = Y V − I_src − inc·(I_L(V_br) − y_eq·V_br) = 0

(``Y`` with the loads' admittances), so a column converged here is the engine's solution
to the same tolerance. Constant-power loads draw ``conj(S/V)``, which is not complex-
differentiable: the Jacobian is real-linear, ``dR = A·dV + B·conj(dV)``, and is factorised
in its real 2n form (:func:`~gridpilot.twin.unbalanced.jacobian.real_jacobian`: central
differences of the engine's own load model, so every load model (constant P, Z, I,
exponential CVR, ZIP) is covered). The same factorisation gives the tangent
sensitivities (voltage change per W of DER) for the first-pass estimates.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.sparse.linalg import splu

from gridpilot.errors import ValidationError
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.jacobian import real_jacobian
from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents
from gridpilot.twin.unbalanced.network import variable_y
from gridpilot.twin.unbalanced.trisolve import LuFactors

log = logging.getLogger(__name__)


class Chord:
    """The Jacobian of a twin's power-flow equations at ``v0`` (V, nodes) with load-branch
    powers ``s0`` (VA, branches), factorised; :meth:`solve` runs columns to convergence."""

    def __init__(self, tw: UnbalancedTwin, v0: np.ndarray, s0: np.ndarray) -> None:
        net = tw.net
        self.tw = tw
        self.n = net.n
        self.y = (net.y_fixed + variable_y(net) + tw.y_loads).tocsr()
        self.isrc = net.i_source[:, None]
        try:
            self.lu = LuFactors(splu(real_jacobian(tw, v0, s0)), float)
        except RuntimeError as exc:
            raise ValidationError(
                f"{tw.grid.name}: the power-flow Jacobian at the operating point is singular "
                f"({exc})"
            ) from None

    def apply_inv(self, rhs: np.ndarray) -> np.ndarray:
        """``dV`` (complex, nodes × cols) with ``A·dV + B·conj(dV) = rhs``."""
        x = self.lu.solve(np.concatenate([rhs.real, rhs.imag]))
        return x[: self.n] + 1j * x[self.n :]

    def residual(self, v: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``R(V)`` (A) of columns ``v`` with load-branch powers ``s``."""
        tw = self.tw
        vbr = branch_voltage(tw.loads, v)
        comp = load_currents(tw.loads, vbr, s) - tw.yeq_b[:, None] * vbr
        return self.y @ v - self.isrc - tw.inc @ comp

    def solve(self, s: np.ndarray, v: np.ndarray, tol_pu: float,
              max_iter: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Columns ``v`` (V, a start per column of ``s``) iterated until each one's largest
        change is below ``tol_pu`` of its node base; returns the voltages and a mask of the
        columns that did not get there within ``max_iter`` (or went non-finite)."""
        v = np.array(v, complex, copy=True)
        vb = self.tw.net.vbase_v[:, None]
        act = np.arange(v.shape[1])
        bad = np.zeros(v.shape[1], bool)
        last = np.full(v.shape[1], np.inf)
        with np.errstate(all="ignore"):
            for _ in range(max_iter):
                va = v[:, act]
                dv = self.apply_inv(-self.residual(va, s[:, act]))
                v[:, act] = va + dv
                step = np.max(np.abs(dv) / vb, axis=0)
                fin = np.isfinite(step)
                bad[act[~fin]] = True
                # done: below the tolerance, or at the rounding floor of the residual
                # (steps no longer shrinking, within 10x the tolerance: ieee123 ~1.5e-8 pu)
                floor = (step < 10 * tol_pu) & (step > 0.5 * last[act])
                last[act] = step
                act = act[fin & (step >= tol_pu) & ~floor]
                if act.size == 0:
                    break
        bad[act] = True
        return v, bad
