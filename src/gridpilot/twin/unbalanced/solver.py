"""Fixed-point current-injection power flow on a factorised node admittance matrix.

As OpenDSS does: the loads' nominal admittances sit in ``Y``; each iteration injects the
difference between the loads' true currents and those admittances' currents and solves
``Y V = I`` with the one factorisation, for all time steps (columns) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
    accel: int = 0  # Anderson acceleration depth (0: plain fixed point; 4 halves the
    # iterations on heavily loaded feeders, but costs more than it saves in QSTS blocks)


def load_admittance(
    net: Network, lb: LoadBranches, yeq: np.ndarray | None = None
) -> tuple[sp.csc_matrix, sp.csr_matrix, np.ndarray]:
    """The loads' admittance matrix, the node-by-branch incidence (-1 at the phase end, +1 at
    the other end) that scatters branch currents into node injections, and the per-branch
    admittances used (S): ``yeq`` if given, else each load's nominal constant-Z admittance;
    generating branches get none."""
    if yeq is None:
        yeq = lb.yeq()
    yeq = np.where(lb.s_va.real >= 0, yeq, 0.0)
    m = lb.m
    j = np.arange(m)
    has_b = lb.b >= 0
    rows = np.concatenate([lb.a, lb.b[has_b]])
    cols = np.concatenate([j, j[has_b]])
    vals = np.concatenate([-np.ones(m), np.ones(int(has_b.sum()))])
    inc = sp.csr_matrix((vals, (rows, cols)), shape=(net.n, m))
    y = (inc @ sp.diags(yeq) @ inc.T).tocsc()
    return y, inc, yeq


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


class _Anderson:
    """Anderson acceleration of the fixed point ``v = G(v)``, column by column (each column
    its own real least-squares mix of the last ``depth`` steps; the fixed point is
    unchanged, only reached in fewer iterations)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.df: list[np.ndarray] = []
        self.dg: list[np.ndarray] = []
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, v: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The next iterate from the present one ``v`` and its image ``g`` (nodes × steps).

        Histories are kept as real views (steps × 2·nodes): the mix is real because the map
        is only R-linear (the loads' currents involve conj(V))."""
        f = np.ascontiguousarray((g - v).T).view(float)  # steps × 2n
        gt = np.ascontiguousarray(g.T).view(float)
        if self.last is not None:
            self.df.append(f - self.last[0])
            self.dg.append(gt - self.last[1])
            if len(self.df) > self.depth:
                self.df.pop(0)
                self.dg.pop(0)
        self.last = (f, gt)
        if not self.df:
            return g
        d = np.stack(self.df, axis=1)  # steps × m × 2n
        a = np.matmul(d, d.transpose(0, 2, 1))
        b = np.matmul(d, f[:, :, None])
        m = a.shape[1]
        tr = np.trace(a, axis1=1, axis2=2)[:, None, None]
        gamma = np.linalg.solve(a + (tr * 1e-10 + 1e-300) * np.eye(m), b)  # steps × m × 1
        mix = np.matmul(gamma.transpose(0, 2, 1), np.stack(self.dg, axis=1))[:, 0, :]
        return np.ascontiguousarray(gt - mix).view(complex).T


class LinearSolver(Protocol):
    """Anything that solves the system matrix: :class:`Factor` or a low-rank corrected one."""

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``Y⁻¹ rhs`` for one or many right-hand sides (columns)."""
        ...


def solve_steps(  # noqa: PLR0913
    net: Network,
    lb: LoadBranches,
    factor: LinearSolver,
    inc: sp.csr_matrix,
    yeq_b: np.ndarray,
    s_steps: np.ndarray,
    v0: np.ndarray | None = None,
    opts: SolveOptions = SolveOptions(),
) -> tuple[np.ndarray, int]:
    """Node voltages (V, complex, nodes × steps) for the load powers ``s_steps`` (VA,
    branches × steps), and the iterations taken. Raises :class:`ConvergenceError` listing
    the steps that did not converge."""
    steps = s_steps.shape[1]
    yeq = yeq_b[:, None]
    isrc = np.repeat(net.i_source[:, None], steps, axis=1)
    v = factor.solve(isrc) if v0 is None else v0.copy()
    vb = net.vbase_v[:, None]
    acc = _Anderson(opts.accel) if opts.accel > 0 else None
    for it in range(1, opts.max_iter + 1):
        vbr = branch_voltage(lb, v)
        comp = load_currents(lb, vbr, s_steps) - yeq * vbr
        g = factor.solve(isrc + inc @ comp)
        dv = np.max(np.abs(g - v) / vb, axis=0)
        if np.all(dv < opts.tol_pu):
            return g, it
        v = acc.step(v, g) if acc is not None else g
    bad = [int(k) for k in np.flatnonzero(dv >= opts.tol_pu)]
    raise ConvergenceError(
        f"{net.grid.name}: power flow did not converge in {opts.max_iter} iterations "
        f"(largest change {float(dv.max()):.2e} pu)",
        steps=bad,
    )
