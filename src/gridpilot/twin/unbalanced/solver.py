"""Fixed-point current-injection power flow on a factorised node admittance matrix.

As OpenDSS does: the loads' nominal admittances sit in ``Y``; each iteration injects the
difference between the loads' true currents and those admittances' currents and solves
``Y V = I`` with the one factorisation, for all time steps (columns) at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.twin.unbalanced.loads import LoadBranches, branch_voltage, load_currents
from gridpilot.twin.unbalanced.network import Network, variable_y
from gridpilot.twin.unbalanced.trisolve import LuFactors


@dataclass(frozen=True)
class SolveOptions:
    """Tolerance (largest voltage change per iteration, pu of the node base) and limits."""

    tol_pu: float = 1e-8
    max_iter: int = 200


def load_admittance(net: Network, lb: LoadBranches) -> tuple[sp.csc_matrix, sp.csr_matrix]:
    """The loads' nominal admittance matrix and the node-by-branch incidence (-1 at the
    phase end, +1 at the other end) that scatters branch currents into node injections."""
    yeq = np.where(lb.s_va.real >= 0, lb.yeq(), 0.0)
    m = lb.m
    j = np.arange(m)
    has_b = lb.b >= 0
    rows = np.concatenate([lb.a, lb.b[has_b]])
    cols = np.concatenate([j, j[has_b]])
    vals = np.concatenate([-np.ones(m), np.ones(int(has_b.sum()))])
    inc = sp.csr_matrix((vals, (rows, cols)), shape=(net.n, m))
    y = (inc @ sp.diags(yeq) @ inc.T).tocsc()
    return y, inc


class Factor:
    """A factorised system matrix ``Y_fixed + Y_variable + Y_loads`` (SuperLU)."""

    def __init__(self, net: Network, y_loads: sp.csc_matrix) -> None:
        y = (net.y_fixed + variable_y(net) + y_loads).tocsc()
        try:
            self.lu = splu(y)
            self.factors = LuFactors(self.lu)
        except RuntimeError as exc:
            raise ValidationError(
                f"{net.grid.name}: the admittance matrix is singular ({exc}): a part of the "
                "grid floats with no path to ground or to the source"
            ) from None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``Y⁻¹ rhs`` for one or many right-hand sides (columns)."""
        return self.factors.solve(np.ascontiguousarray(rhs, dtype=complex))


def solve_steps(
    net: Network,
    lb: LoadBranches,
    factor: Factor,
    inc: sp.csr_matrix,
    s_steps: np.ndarray,
    v0: np.ndarray | None = None,
    opts: SolveOptions = SolveOptions(),
) -> tuple[np.ndarray, int]:
    """Node voltages (V, complex, nodes × steps) for the load powers ``s_steps`` (VA,
    branches × steps), and the iterations taken. Raises :class:`ConvergenceError` listing
    the steps that did not converge."""
    steps = s_steps.shape[1]
    yeq = np.where(lb.s_va.real >= 0, lb.yeq(), 0.0)[:, None]
    isrc = np.repeat(net.i_source[:, None], steps, axis=1)
    v = factor.solve(isrc) if v0 is None else v0.copy()
    vb = net.vbase_v[:, None]
    for it in range(1, opts.max_iter + 1):
        vbr = branch_voltage(lb, v)
        comp = load_currents(lb, vbr, s_steps) - yeq * vbr
        v_new = factor.solve(isrc + inc @ comp)
        dv = np.max(np.abs(v_new - v) / vb, axis=0)
        v = v_new
        if np.all(dv < opts.tol_pu):
            return v, it
    bad = [int(k) for k in np.flatnonzero(dv >= opts.tol_pu)]
    raise ConvergenceError(
        f"{net.grid.name}: power flow did not converge in {opts.max_iter} iterations "
        f"(largest change {float(dv.max()):.2e} pu)",
        steps=bad,
    )
