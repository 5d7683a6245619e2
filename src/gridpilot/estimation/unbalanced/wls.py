"""Weighted-least-squares three-phase state estimation (Gauss-Newton on the state of
:mod:`.model`: load-branch currents and source voltages, rectangular).

``min Σ ((z_i - h_i(x)) / σ_i)²``, solved by Gauss-Newton on the normal equations of the weighted,
column-scaled Jacobian (small dense problems: a few hundred states on ieee123). An SVD at
the start gives the numerical rank (observability: a rank deficit names the states no
measurement reaches) and one at the solution the hat-matrix diagonal ``K_ii`` for the
normalised residuals (:mod:`.lnr`). The loop (:class:`GaussNewton`) is shared with the
sparse estimator for large feeders (:mod:`.sparse_wls`), which differs only in the linear
algebra of a step, of the rank check and of ``K_ii``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.special import chdtri  # chi-square quantile

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.estimation.residuals import ChiSquareMixin
from gridpilot.estimation.unbalanced.measurements import UnbalancedMeasurements
from gridpilot.estimation.unbalanced.model import LinearNetwork, SeNetwork
from gridpilot.twin.unbalanced.lowrank import one_blas_thread

log = logging.getLogger(__name__)


class UnobservableError(ValidationError):
    """The sensors do not determine the state; ``states`` names what no measurement reaches."""

    def __init__(self, message: str, states: list[str]) -> None:
        super().__init__(message)
        self.states = states


@dataclass(frozen=True)
class WlsOptions:
    """Gauss-Newton stop (largest node-phase voltage change of a step, pu), iteration cap,
    the chi-square test's ``alpha`` and the relative singular-value cut for the rank
    (observability)."""

    tol_pu: float = 1e-9
    max_iter: int = 50
    alpha: float = 0.01
    rank_tol: float = 1e-9


@dataclass
class UnbalancedEstimate(ChiSquareMixin):
    """One three-phase state estimate.

    ``v`` node-phase voltages (V, complex, angle reference: the source bus's first phase at
    0°), ``z`` the state, ``residual`` measured minus estimated per measurement row (its
    units), ``sigma`` the same order, ``k_known`` the hat-matrix diagonal where computed (NaN
    elsewhere: the sparse estimator computes ``K_ii`` on demand, :meth:`k_at`, through
    ``k_solver``), ``chi2`` the weighted sum of squared residuals with ``dof`` = rows - real
    states and ``chi2_limit`` its ``1 - alpha`` quantile; ``calc_ms`` the estimate's wall time.
    """

    grid: str
    nodes: list[tuple[str, int]]
    vbase_v: np.ndarray
    v: np.ndarray
    z: np.ndarray
    residual: np.ndarray
    sigma: np.ndarray
    k_known: np.ndarray
    chi2: float
    dof: int
    chi2_limit: float
    iterations: int
    calc_ms: float
    meta: dict[str, object] = field(default_factory=dict)
    k_solver: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def k_at(self, rows: np.ndarray) -> np.ndarray:
        """``K_ii`` for measurement ``rows`` (computed through ``k_solver`` where not known
        yet, then kept)."""
        rows = np.asarray(rows, dtype=int)
        todo = np.unique(rows[np.isnan(self.k_known[rows])])
        if todo.size:
            if self.k_solver is None:
                raise ValueError(f"{self.grid}: K_ii of rows {todo[:5].tolist()} unknown")
            self.k_known[todo] = np.clip(self.k_solver(todo), 0.0, 1.0)
        return np.asarray(self.k_known[rows])

    @property
    def k_diag(self) -> np.ndarray:
        """The whole hat-matrix diagonal (on the sparse model: every row's solve, once)."""
        return self.k_at(np.arange(self.k_known.size))

    @property
    def v_pu(self) -> np.ndarray:
        """|V| per node-phase (pu of its line-to-neutral base)."""
        return np.abs(self.v) / self.vbase_v

    @property
    def angle_deg(self) -> np.ndarray:
        """Voltage angle per node-phase (degrees, source bus phase 1 at 0)."""
        return np.angle(self.v, deg=True)


class Step(Protocol):
    """One linearisation: ``h(z)``, the Gauss-Newton direction for weighted residuals and
    the hat-matrix diagonal."""

    h: np.ndarray

    def direction(self, rs: np.ndarray) -> np.ndarray: ...  # noqa: D102
    def k_diag(self) -> np.ndarray: ...  # noqa: D102
    def k_rows(self, rows: np.ndarray) -> np.ndarray: ...  # noqa: D102


@dataclass
class _Step:
    h: np.ndarray
    jac: np.ndarray  # weighted, column-scaled Jacobian (rows × free states)
    c: np.ndarray  # column scaling
    free: np.ndarray  # the free real states (all but the angle reference)
    svd: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def decompose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The thin SVD of ``jac`` (computed once)."""
        if self.svd is None:
            self.svd = np.linalg.svd(self.jac, full_matrices=False)
        return self.svd

    def step(self, rs: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step for weighted residuals ``rs`` (normal equations, Cholesky;
        the SVD where Cholesky fails)."""
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        try:
            y = cho_solve(cho_factor(self.jac.T @ self.jac), self.jac.T @ rs)
        except LinAlgError:
            u, s, vt = self.decompose()
            y = vt.T @ ((u.T @ rs) / s)
        return y / self.c

    def direction(self, rs: np.ndarray) -> np.ndarray:
        """The complex state step for weighted residuals ``rs``."""
        p = (self.free.size + 1) // 2
        full = np.zeros(2 * p)
        full[self.free] = self.step(rs)
        return full[:p] + 1j * full[p:]

    def k_diag(self) -> np.ndarray:
        """The hat-matrix diagonal (from the SVD)."""
        return np.asarray(np.sum(self.decompose()[0] ** 2, axis=1))

    def k_rows(self, rows: np.ndarray) -> np.ndarray:
        """``K_ii`` for ``rows`` (from the SVD)."""
        return np.asarray(np.sum(self.decompose()[0][rows] ** 2, axis=1))


class GaussNewton:
    """The Gauss-Newton loop with step halving, on any :class:`.model.SeNetwork`; subclasses
    give the linearisation (:meth:`_linearise`), the rank check and ``n_free``;
    ``eager_k`` False leaves ``K_ii`` to be computed on demand (:meth:`UnbalancedEstimate.k_at`)."""

    eager_k = True

    def __init__(self, lin: SeNetwork, opts: WlsOptions | None = None) -> None:
        self.lin = lin
        self.opts = opts or WlsOptions()

    @property
    def n_free(self) -> int:
        """Real states estimated: 2 per complex state but the angle reference's imaginary part."""
        return 2 * self.lin.p - 1

    def flat_start(self) -> np.ndarray:
        """The no-load voltages from nominal source voltages, and the nominal load currents."""
        return self.lin.nominal_state()

    def _linearise(self, m: UnbalancedMeasurements, z: np.ndarray) -> Any:
        raise NotImplementedError

    def _check_rank(self, st: Any) -> None:
        raise NotImplementedError

    def estimate(
        self, m: UnbalancedMeasurements, z0: np.ndarray | None = None
    ) -> UnbalancedEstimate:
        """Estimate the state from ``m``; returns an :class:`UnbalancedEstimate`. Raises
        :class:`UnobservableError` (naming the unobserved states) when the sensors are too
        few, :class:`ConvergenceError` when Gauss-Newton does not converge."""
        if m.size == 0:
            raise ValidationError(f"{self.lin.grid}: no measurements")
        if m.u.shape[1] != self.lin.width:
            raise ValidationError(
                f"measurements: built for {m.u.shape[1]} columns, the network has "
                f"{self.lin.width} ({type(self.lin).__name__})"
            )
        with one_blas_thread():  # small dense algebra: threads only wait on a busy machine
            return self._estimate(m, z0)

    def _estimate(self, m: UnbalancedMeasurements, z0: np.ndarray | None) -> UnbalancedEstimate:
        t0 = time.perf_counter()
        z = self.flat_start() if z0 is None else z0.astype(complex).copy()
        z[self.lin.m] = abs(z[self.lin.m])  # the reference phase at 0°
        st = self._linearise(m, z)
        self._check_rank(st)
        j_old = float(np.sum(((m.value - st.h) / m.sigma) ** 2))
        for it in range(1, self.opts.max_iter + 1):
            dz = st.direction((m.value - st.h) / m.sigma)
            dz, j_new = self._line_search(m, z, dz, j_old)
            z = z + dz
            st = self._linearise(m, z)
            dv = float(np.max(np.abs(self.lin.voltages(dz)) / self.lin.vbase_v))
            # slow linear convergence (large residuals): stop once J no longer moves
            stalled = abs(j_old - j_new) <= 1e-9 * j_old and dv < 1e4 * self.opts.tol_pu
            if dv < self.opts.tol_pu or stalled:
                return self._result(m, z, st, it, t0)
            j_old = j_new
        raise ConvergenceError(
            f"{self.lin.grid}: state estimation did not converge in {self.opts.max_iter} "
            f"iterations (last voltage step {dv:.1e} pu)"
        )

    def _line_search(
        self, m: UnbalancedMeasurements, z: np.ndarray, dz: np.ndarray, j_old: float
    ) -> tuple[np.ndarray, float]:
        """The Gauss-Newton step, halved (up to 8 times) until the objective does not grow
        (large residuals, e.g. gross errors not yet removed, make the full step overshoot)."""
        for _ in range(8):
            j_new = float(np.sum(((m.value - m.evaluate(self.lin.full(z + dz))) / m.sigma) ** 2))
            if j_new <= j_old * (1 + 1e-12):
                return dz, j_new
            dz = dz / 2
        return dz, j_new

    def _result(self, m: UnbalancedMeasurements, z: np.ndarray, st: Step, it: int,
                t0: float) -> UnbalancedEstimate:  # fmt: skip
        r = m.value - st.h
        chi2 = float(np.sum((r / m.sigma) ** 2))
        dof = int(m.size - self.n_free)
        lim = float(chdtri(max(dof, 1), self.opts.alpha))
        k = st.k_diag() if self.eager_k else None  # None: on demand (K_ii costs solves)
        lin = self.lin
        return UnbalancedEstimate(
            grid=lin.grid,
            nodes=lin.nodes,
            vbase_v=lin.vbase_v,
            v=lin.voltages(z),
            z=z,
            residual=r,
            sigma=m.sigma.copy(),
            k_known=np.full(m.size, np.nan) if k is None else np.clip(k, 0.0, 1.0),
            chi2=chi2,
            dof=dof,
            chi2_limit=lim,
            iterations=it,
            calc_ms=(time.perf_counter() - t0) * 1e3,
            k_solver=st.k_rows if k is None else None,
        )


class UnbalancedEstimator(GaussNewton):
    """WLS estimation on one dense :class:`LinearNetwork` (taps and capacitor states fixed)."""

    def __init__(self, lin: LinearNetwork, opts: WlsOptions | None = None) -> None:
        super().__init__(lin, opts)
        p = lin.p
        self.ref = p + lin.m  # Im of the source's first phase: the angle reference
        self.free = np.setdiff1d(np.arange(2 * p), [self.ref])

    def _linearise(self, m: UnbalancedMeasurements, z: np.ndarray) -> _Step:
        h = m.evaluate(z)
        jac = m.jacobian(z)[:, self.free] / m.sigma[:, None]
        c = np.linalg.norm(jac, axis=0)
        c = np.where(c > 0, c, 1.0)
        return _Step(h, jac / c, c, self.free)

    def _check_rank(self, st: _Step) -> None:
        _, sv, vt = st.decompose()
        cut = sv[0] * self.opts.rank_tol if sv.size else 0.0
        weak = np.flatnonzero(sv <= cut)
        missing = self.free.size - sv.size
        if weak.size == 0 and missing <= 0:
            return
        null = vt[weak] if weak.size else np.zeros((0, self.free.size))
        if missing > 0:  # fewer rows than states: the complement of the row space
            _, _, vfull = np.linalg.svd(st.jac, full_matrices=True)
            null = np.vstack([null, vfull[sv.size :]])
        share = np.sum(null**2, axis=0)
        p = self.lin.p
        cols = self.free[share > 0.05]
        names = self.lin.state_labels()
        states = sorted({names[c % p] for c in cols}, key=names.index)
        raise UnobservableError(unobservable_message(self.lin.grid, null.shape[0], states), states)


def unobservable_message(grid: str, directions: int | str, states: list[str]) -> str:
    """The text of an :class:`UnobservableError`, naming up to 8 states."""
    shown = ", ".join(states[:8]) + (f" (+{len(states) - 8} more)" if len(states) > 8 else "")
    return (
        f"{grid}: not observable with these sensors: {directions} state "
        f"direction(s) have no measurement; unobserved: {shown} (add meters or "
        "pseudo-measurements there)"
    )
