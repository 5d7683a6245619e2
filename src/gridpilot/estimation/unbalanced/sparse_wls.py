"""The three-phase WLS estimator on the sparse model (:mod:`.sparse`): the same estimator as
:class:`.wls.UnbalancedEstimator` (the same objective, state, flat start, Gauss-Newton loop,
step halving and stop), with sparse linear algebra for feeders whose dense map does not fit.

A Gauss-Newton step over ``z`` is the step over ``x = (V, I_load)`` constrained to KCL,
``C dx = 0``, and to the angle reference (``Im dV`` of the source's first phase is 0). It is
solved in Hachtel's augmented form (the sparse tableau), which keeps the residual ``r`` as an
unknown instead of forming ``JᵀJ`` (whose condition number is the square of ``J``'s):

    [ I    J    0  ] [ r ]   [ b ]
    [ Jᵀ   0   αCᵀ ] [dx ] = [ 0 ]      (b: weighted residuals)
    [ 0   αC    0  ] [ λ ]   [ 0 ]

with ``J`` the weighted Jacobian over ``x`` (a few entries per row) and ``C`` the real form of
``[Y_r·, -N_r]``: every block is sparse, so one sparse LU (SuperLU) per step replaces the
dense estimator's normal equations over ``z``. Variables are scaled (voltages by their base,
currents by the load's nominal current), each constraint row by its largest entry and the
constraint block by ``α``, the root-mean-square column norm of ``J``. (The normal-equation
form ``[JᵀJ Cᵀ; C 0]`` lost 4–5 digits of ``K_ii`` on ieee123: a regulator's current is a
difference of two large voltages times its large admittance; this form agrees with the dense
estimator's SVD within 1e-8.)

The hat-matrix diagonal for the normalised residuals is exact too: with ``b = e_i`` the
solution's ``r_i`` is ``1 − K_ii`` (the residual sensitivity), from one solve per measurement
row, ``_BLOCK`` rows at a time. It is computed on demand, for the rows asked
(:meth:`.wls.UnbalancedEstimate.k_at`): the bad-data test asks only for its ``candidates``
largest weighted residuals (:mod:`.lnr`), 30 solves instead of 6,389 on ieee8500.

**Observability.** No SVD: a load branch whose current no row reaches (no P/Q, meter or
pseudo) is named, as the dense check would; any other rank loss shows as a singular matrix
and is reported as unobservable without names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.estimation.unbalanced.measurements import UnbalancedMeasurements
from gridpilot.estimation.unbalanced.model import LinearNetwork, SeNetwork
from gridpilot.estimation.unbalanced.sparse import SparseNetwork
from gridpilot.estimation.unbalanced.wls import (
    GaussNewton,
    UnbalancedEstimator,
    UnobservableError,
    WlsOptions,
    unobservable_message,
)
from gridpilot.twin.unbalanced.lowrank import one_blas_thread

log = logging.getLogger(__name__)
_BLOCK = 128  # measurement rows per block of K_ii solves (dense block: rows × KKT size)


@dataclass
class _SparseStep:
    """One linearisation on the sparse model: ``h``, the weighted and scaled Jacobian over
    ``x`` and the augmented matrix's LU (factored on first use)."""

    h: np.ndarray
    jac: sp.csr_matrix
    cons: sp.csr_matrix
    d: np.ndarray
    lin: SparseNetwork
    lu: Any = None
    aug: Any = None

    def factor(self) -> Any:
        """The LU of the augmented matrix (module docstring); RuntimeError if singular."""
        if self.lu is None:
            rms = np.sqrt(np.asarray(self.jac.multiply(self.jac).sum()) / self.jac.shape[1])
            c = float(rms) * self.cons if rms > 0 else self.cons
            eye = sp.identity(self.jac.shape[0], format="csr")
            self.aug = sp.bmat(
                [[eye, self.jac, None], [self.jac.T, None, c.T], [None, c, None]], format="csc"
            )
            self.lu = splu(self.aug, permc_spec="MMD_AT_PLUS_A")
        return self.lu

    def direction(self, rs: np.ndarray) -> np.ndarray:
        """The complex state step ``dz`` for weighted residuals ``rs``."""
        lu = self.factor()
        rhs = np.zeros(self.aug.shape[0])
        rhs[: rs.size] = rs
        sol = lu.solve(rhs)
        sol = sol + lu.solve(rhs - self.aug @ sol)  # one step of iterative refinement
        nv = self.jac.shape[1]
        xi = self.d * sol[rs.size : rs.size + nv]
        q = self.lin.width
        return self.lin.reduce(xi[:q] + 1j * xi[q:])

    def k_diag(self) -> np.ndarray:
        """The whole hat-matrix diagonal (every row's solve, in blocks of ``_BLOCK`` rows)."""
        return self.k_rows(np.arange(self.jac.shape[0]))

    def k_rows(self, rows: np.ndarray) -> np.ndarray:
        """``K_ii`` for measurement ``rows``: ``1 − r_i`` for ``b = e_i``, the columns solved
        together (one multi-column solve per ``_BLOCK`` rows)."""
        lu = self.factor()
        rows = np.asarray(rows, dtype=int)
        out = np.zeros(rows.size)
        with one_blas_thread():  # called after estimate(): BLAS threads only wait here too
            for lo in range(0, rows.size, _BLOCK):
                blk = rows[lo : lo + _BLOCK]
                cols = np.arange(blk.size)
                rhs = np.zeros((self.aug.shape[0], blk.size))
                rhs[blk, cols] = 1.0
                out[lo : lo + blk.size] = 1.0 - lu.solve(rhs)[blk, cols]
        return out


class SparseEstimator(GaussNewton):
    """WLS estimation on one :class:`.sparse.SparseNetwork` (taps and capacitor states fixed);
    the interface of :class:`.wls.UnbalancedEstimator`. ``K_ii`` is left to be computed on
    demand (one sparse solve per row: the LNR test asks only for its candidates)."""

    eager_k = False

    def __init__(self, lin: SparseNetwork, opts: WlsOptions | None = None) -> None:
        super().__init__(lin, opts)
        self.net = lin
        q = lin.width
        cur = np.maximum(np.abs(lin.load_s_va) / lin.load_vbase_v, 1e-2)
        d = np.concatenate([lin.vbase_v, cur])
        self.d = np.concatenate([d, d])  # Re x, Im x
        c = lin.constraint()
        ref = sp.csr_matrix(([1.0], ([0], [q + int(lin.src[0])])), shape=(1, 2 * q))
        cons = sp.vstack([sp.bmat([[c.real, -c.imag], [c.imag, c.real]]), ref]) @ sp.diags(self.d)
        cons = sp.csr_matrix(cons)
        big = np.asarray(abs(cons).max(axis=1).toarray()).ravel()
        self.cons = (sp.diags(1.0 / np.where(big > 0, big, 1.0)) @ cons).tocsr()

    def _linearise(self, m: UnbalancedMeasurements, z: np.ndarray) -> _SparseStep:
        x = self.net.full(z)
        h = m.evaluate(x)
        jac = sp.diags(1.0 / m.sigma) @ m.jacobian(x) @ sp.diags(self.d)
        return _SparseStep(h, jac.tocsr(), self.cons, self.d, self.net)

    def _check_rank(self, st: _SparseStep) -> None:
        lin = self.net
        q, n = lin.width, lin.n
        hit = np.asarray(abs(st.jac).sum(axis=0)).ravel()
        reached = (hit[n:q] + hit[q + n :]) > 0
        if not reached.all():
            names = lin.state_labels()
            states = sorted({names[j] for j in np.flatnonzero(~reached)}, key=names.index)
            raise UnobservableError(
                unobservable_message(lin.grid, 2 * int((~reached).sum()), states), states
            )
        try:
            st.factor()
        except RuntimeError as exc:
            msg = unobservable_message(lin.grid, f"some ({exc})", ["(not named: sparse check)"])
            raise UnobservableError(msg, []) from None


def estimator_for(lin: SeNetwork, opts: WlsOptions | None = None) -> GaussNewton:
    """The estimator for ``lin``'s model: dense (:class:`.wls.UnbalancedEstimator`) or sparse
    (:class:`SparseEstimator`)."""
    if isinstance(lin, SparseNetwork):
        return SparseEstimator(lin, opts)
    if isinstance(lin, LinearNetwork):
        return UnbalancedEstimator(lin, opts)
    raise TypeError(f"estimator_for: unknown network model {type(lin).__name__}")
