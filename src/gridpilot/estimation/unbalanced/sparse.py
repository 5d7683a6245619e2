"""The three-phase estimator's network for feeders too large for the dense map (ieee8500).

The dense model (:mod:`.model`) eliminates every node-phase voltage, ``V = A z``, with ``A``
dense: on ieee8500 that is 8,531 node-phases × 2,357 states (20 M complex entries, 320 MB),
and a Jacobian over ``z`` is dense too (6,400 rows × 4,700 real states: ~1e11 flops per
Gauss-Newton step and ~1e12 for the SVD). Here nothing is eliminated: the measurement rows act
on ``x = (V, I_load)`` (all node-phase voltages, then the load branch currents), where every
row is sparse (a voltage difference, a branch current, a regulator's or the source's current
from a few admittance entries), and KCL at every node-phase but the source's is kept as the
sparse equality ``C x = 0`` with ``C = [Y_r·, -N_r]`` — the very equations the dense model
solves to get ``A``. The state is still ``z = (I_load, V_src)``: ``full(z)`` solves for the
voltages with the sparse LU of ``Y_rr`` (``V_r = Y_rr⁻¹ (N_r I_load − Y_rs V_s)``), and the
estimator (:mod:`.sparse_wls`) takes Gauss-Newton steps constrained to ``C dx = 0``, which are
the dense estimator's steps in other coordinates.

A row of ``A`` is only formed where the sensor model needs it: a delayed meter's |V|
sensitivity to every load current (:meth:`SparseNetwork.load_columns`), by solving with the
transpose of ``Y_rr`` for a block of rows at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from gridpilot.errors import ValidationError
from gridpilot.estimation.unbalanced.model import (
    LinearNetwork,
    LoadStates,
    RegulatorPhase,
    SeNetwork,
    build_linear_network,
    dense_fits,
    load_fields,
    network_parts,
    regulators,
)
from gridpilot.twin.unbalanced import UnbalancedTwin

log = logging.getLogger(__name__)
SPARSE_LIMIT = 60_000  # node-phases + load branches; see check_network_size
_BLOCK = 256  # rows of A formed at a time (dense block: _BLOCK × node-phases complex)


@dataclass
class SparseNetwork(LoadStates):
    """The network of one grid at fixed taps as sparse matrices (module docstring): the
    admittance ``y`` without the source, the load incidence ``inc``, the LU of ``Y_rr``.
    Measurement rows are CSR rows over ``x = (V [n], I_load [m])``."""

    grid: str
    nodes: list[tuple[str, int]]
    vbase_v: np.ndarray
    y: sp.csr_matrix
    inc: sp.csr_matrix
    lu: Any
    src: np.ndarray
    rest: np.ndarray
    load_a: np.ndarray
    load_b: np.ndarray
    load_of: np.ndarray
    load_names: list[str]
    load_s_va: np.ndarray
    load_vbase_v: np.ndarray
    regs: list[RegulatorPhase] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of node-phases."""
        return len(self.nodes)

    @property
    def p(self) -> int:
        """Number of complex states (load branches + source phases)."""
        return self.m + len(self.src)

    @property
    def width(self) -> int:
        """Length of a measurement row: ``x = (V, I_load)``."""
        return self.n + self.m

    def voltages(self, z: np.ndarray) -> np.ndarray:
        """Every node-phase voltage (V) at state ``z`` (one sparse solve)."""
        v = np.zeros(self.n, complex)
        v[self.src] = z[self.m :]
        rhs = self.inc[self.rest] @ z[: self.m] - self.y[self.rest][:, self.src] @ z[self.m :]
        v[self.rest] = self.lu.solve(np.asarray(rhs, complex))
        return v

    def full(self, z: np.ndarray) -> np.ndarray:
        """``x = (V, I_load)`` of state ``z``."""
        return np.concatenate([self.voltages(z), z[: self.m]])

    def reduce(self, x: np.ndarray) -> np.ndarray:
        """The state ``z = (I_load, V_src)`` within ``x``."""
        return np.concatenate([x[self.n :], x[self.src]])

    def constraint(self) -> sp.csr_matrix:
        """KCL at every node-phase but the source's, over ``x``: ``C x = 0`` (n_r × (n + m))."""
        return sp.hstack([self.y[self.rest], -self.inc[self.rest]], format="csr")

    def _unit(self, cols: np.ndarray, coef: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.asarray(coef, complex), (np.zeros(len(cols), np.int64), cols)),
            shape=(1, self.width),
        )

    def src_v_row(self, k: int) -> sp.csr_matrix:
        """Row giving the source bus's ``k``-th phase voltage."""
        return self._unit(np.array([self.src[k]]), np.ones(1))

    def src_i_row(self, k: int) -> sp.csr_matrix:
        """Row giving the current out of the source's ``k``-th phase into the network:
        ``Y_s· V - N_s I_load``."""
        s = self.src[k]
        return sp.hstack([self.y[s], -self.inc[s]], format="csr")

    def load_row(self, j: int) -> sp.csr_matrix:
        """Row giving load branch ``j``'s current."""
        return self._unit(np.array([self.n + j]), np.ones(1))

    def branch_v_rows(self) -> sp.csr_matrix:
        """Rows giving each load branch's voltage (m × (n + m))."""
        has_b = self.load_b >= 0
        r = np.concatenate([np.arange(self.m), np.flatnonzero(has_b)])
        c = np.concatenate([self.load_a, self.load_b[has_b]])
        val = np.concatenate([np.ones(self.m), -np.ones(int(has_b.sum()))]).astype(complex)
        return sp.csr_matrix((val, (r, c)), shape=(self.m, self.width))

    def branch_voltages(self, z: np.ndarray) -> np.ndarray:
        """Each load branch's voltage (V) at state ``z``."""
        v = self.voltages(z)
        b = np.where(self.load_b >= 0, v[np.maximum(self.load_b, 0)], 0.0)
        return v[self.load_a] - b

    def load_columns(self, rows: sp.csr_matrix) -> np.ndarray:
        """The sensitivity of ``rows`` (over ``x``) to each load branch current (k × m): the
        rows' own current columns plus their voltage part through ``A``'s load columns,
        ``u_r Y_rr⁻¹ N_r``, by transposed solves, ``_BLOCK`` rows at a time."""
        rows = sp.csr_matrix(rows)
        out = np.asarray(rows[:, self.n :].toarray(), complex)
        u_r = rows[:, self.rest].tocsr()
        inc_r = self.inc[self.rest].tocsc()
        for lo in range(0, rows.shape[0], _BLOCK):
            blk = u_r[lo : lo + _BLOCK]
            if blk.nnz == 0:
                continue
            sol = self.lu.solve(np.asarray(blk.T.toarray(), complex), trans="T")
            out[lo : lo + _BLOCK] += np.asarray((inc_r.T @ sol).T)
        return out

    def load_of_rows(self, w: sp.csr_matrix) -> np.ndarray:
        """Per row of ``w``, the load branch whose current it weighs most."""
        cur = abs(sp.csr_matrix(w)[:, self.n :])
        return np.asarray(cur.argmax(axis=1)).ravel()

    def as_dense_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """``rows`` over ``x`` as rows of the dense model over ``z`` (k × p), by transposed
        solves; for tests and small feeders (the dense block is k × p)."""
        rows = sp.csr_matrix(rows)
        out = np.zeros((rows.shape[0], self.p), complex)
        out[:, : self.m] = self.load_columns(rows)
        v_src = rows[:, self.src].toarray()
        u_r = rows[:, self.rest].toarray()
        if u_r.any():
            y_rs = self.y[self.rest][:, self.src].toarray()
            sol = self.lu.solve(np.asarray(u_r.T, complex), trans="T")
            v_src = v_src - (sol.T @ y_rs)
        out[:, self.m :] = v_src
        return out


def check_network_size(twin: UnbalancedTwin) -> None:
    """Raise :class:`ValidationError` when the grid is beyond the sparse estimator's limit
    (``SPARSE_LIMIT`` node-phases + load branches), naming the grid and its size."""
    n, m = twin.net.n, twin.loads.m
    if n + m > SPARSE_LIMIT:
        raise ValidationError(
            f"{twin.grid.name}: {n:,} node-phases + {m:,} load branches = {n + m:,} is too "
            f"large for the three-phase estimator (limit {SPARSE_LIMIT:,}; ieee8500 has "
            "10,885; the whole hat-matrix diagonal, for detectability, costs one sparse "
            "solve per measurement, so the time grows with the square of the size)"
        )


def build_sparse_network(twin: UnbalancedTwin) -> SparseNetwork:
    """The sparse model of ``twin``'s grid at its present taps and capacitor states. Raises
    :class:`ValidationError` when the grid is too large (:func:`check_network_size`) or the
    network without its source floats."""
    check_network_size(twin)
    pt = network_parts(twin)
    net, lb = twin.net, twin.loads
    lin = SparseNetwork(
        grid=twin.grid.name,
        nodes=list(net.nodes),
        vbase_v=np.asarray(net.vbase_v, float),
        y=pt.y,
        inc=pt.inc,
        lu=pt.lu,
        src=pt.src,
        rest=pt.rest,
        **load_fields(lb),
    )
    lin.regs = regulators(twin, lin._unit)
    log.debug("%s: sparse SE model %d node-phases, %d load branches", lin.grid, lin.n, lin.m)
    return lin


def build_network(twin: UnbalancedTwin, *, sparse: bool | None = None) -> SeNetwork:
    """The estimator's model of ``twin``: dense (:func:`build_linear_network`) when ``A``
    fits ``model._DENSE_LIMIT``, sparse otherwise (``sparse`` forces either)."""
    use_sparse = not dense_fits(twin) if sparse is None else sparse
    if use_sparse:
        return build_sparse_network(twin)
    net: LinearNetwork = build_linear_network(twin)
    return net
