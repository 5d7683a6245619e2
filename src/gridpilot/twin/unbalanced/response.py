"""Response of the node voltages to a tap or capacitor step with the loads linearised.

The warm start of a control re-solve (:mod:`.restart`) scales the voltages by each acted
element's relative response ``g_e = ∂ln V / ∂p_e``. Measured with the loads as their
constant admittances it misses how they feed back: a constant-power load draws *more*
current when its voltage drops (``dI = −I·conj(dV/V)``), which deepens a tap's effect at the
far secondaries (ieee8500: 1.1-1.8 times the turns ratio) and, through ``conj``, turns the
other way for angle changes. Here the response is that of the power flow itself, linearised
at an operating point (the loads at powers ``s``, solved with the present taps and steps):

``(Y + Jₗ)·dV = −(∂Y/∂p_e)·V``, ``Jₗ·dV = inc·(A ∘ dv_br + B ∘ conj(dv_br))``,

with each load branch's ``dI = A·dv + B·conj(dv)`` taken (central differences) from the
loads' own current law inside its voltage band: a band edge crossed at the operating point
would make the response hold for that point only. ``Jₗ`` is only R-linear, so the system is
solved in real form (``2n`` unknowns, one SuperLU at packing). Any failure (no converged
operating point, a singular matrix, a response that is not finite or far from the fixed-
admittance one) leaves the caller with its fixed-admittance response.
"""

from __future__ import annotations

import copy
import logging
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.twin.unbalanced.fastctl import Stamps
from gridpilot.twin.unbalanced.faststats import StatArr
from gridpilot.twin.unbalanced.faststep import fixed_point, make_work
from gridpilot.twin.unbalanced.loads import LoadArr, LoadBranches, branch_voltage, load_currents
from gridpilot.twin.unbalanced.network import Network
from gridpilot.twin.unbalanced.restart import live_nodes
from gridpilot.twin.unbalanced.schur import SchurLU

log = logging.getLogger(__name__)

H_REL = 1e-7  # central-difference step of a load's current law, relative to its voltage
OP_TOL = 1e-5  # the operating point's power flow (pu): the Jacobian needs no more
MAX_ITER, DEPTH = 100.0, 8  # its iterations and Anderson depth
PLAUSIBLE = 8.0  # a linearised response this many times the fixed-admittance one: rejected


class LoadOp(NamedTuple):
    """The network, its loads and their powers at the operating point (VA per branch)."""

    net: Network
    lb: LoadBranches
    inc: sp.csr_matrix  # node-by-branch incidence (see ``solver.load_admittance``)
    ld: LoadArr  # the compiled loop's loads and statistics arrays (for its power flow)
    sa: StatArr
    s: np.ndarray  # (m,) complex load powers of the operating point


def operating_point(op: LoadOp, f: SchurLU, v0: np.ndarray) -> np.ndarray | None:
    """Node voltages of the power flow with the loads at ``op.s`` (present taps and steps,
    the compiled loop's fixed point from ``v0``); None if it does not converge."""
    n, m = len(v0), op.lb.m
    w = make_work(n, m, np.array([OP_TOL, MAX_ITER, DEPTH, 0.0, 0.0]))
    v = v0.copy()
    s = np.ascontiguousarray(op.s, complex)
    if not np.all(np.isfinite(s)):
        return None
    return v if fixed_point(f, op.ld, op.sa, w, s, v) > 0 else None


def load_jacobian(
    lb: LoadBranches, vbr: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``A``, ``B`` of each branch's ``dI = A·dv + B·conj(dv)`` at branch voltages ``vbr``
    and powers ``s``, inside the voltage bands (central differences of ``load_currents``)."""
    free = copy.copy(lb)
    free.vmin_pu = np.zeros(lb.m)
    free.vmax_pu = np.full(lb.m, np.inf)
    h = H_REL * np.abs(vbr) + 1e-12
    s2 = s[:, None]

    def cur(x: np.ndarray) -> np.ndarray:
        return load_currents(free, x[:, None], s2)[:, 0]

    d1 = (cur(vbr + h) - cur(vbr - h)) / (2 * h)  # A + B
    dj = (cur(vbr + 1j * h) - cur(vbr - 1j * h)) / (2j * h)  # A − B
    return (d1 + dj) / 2, (d1 - dj) / 2


def stamps_matrix(st: Stamps, n: int, y: np.ndarray) -> sp.csr_matrix:
    """The stamps' admittances ``y`` (s, c, c) at their nodes (``st.node``), n × n."""
    rows, cols, vals = [], [], []
    for e in range(len(st.kind)):
        node = st.node[e, : st.nc[e]]
        ok = np.flatnonzero(node >= 0)
        ii, jj = np.meshgrid(ok, ok, indexing="ij")
        rows.append(node[ii].ravel())
        cols.append(node[jj].ravel())
        vals.append(y[e][ii, jj].ravel())
    if not rows:
        return sp.csr_matrix((n, n), dtype=complex)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def d_stamp(st: Stamps, e: int, wind: int) -> np.ndarray:
    """``∂Yprim/∂p`` of stamp ``e`` at its present state (``p``: log of the regulated
    winding's tap, or the closed kvar of a bank)."""
    n = st.nc[e]
    if st.kind[e] == 1:
        return st.core[e, :n, :n].copy()
    w = st.wind[e, :n]
    t = st.taps[e, w]
    hits = (w == wind).astype(float)
    return -st.core[e, :n, :n] / np.outer(t, t) * (hits[:, None] + hits[None, :])


def _real(m: sp.spmatrix, b: sp.spmatrix) -> sp.csc_matrix:
    """Real form of ``x ↦ m·x + b·conj(x)`` on ``[Re x; Im x]`` (2n × 2n)."""
    n = m.shape[0]
    m, b = m.tocoo(), b.tocoo()
    r = np.concatenate([m.row, m.row, m.row + n, m.row + n, b.row, b.row, b.row + n, b.row + n])
    c = np.concatenate([m.col, m.col + n, m.col, m.col + n, b.col, b.col + n, b.col, b.col + n])
    x = np.concatenate([m.data.real, -m.data.imag, m.data.imag, m.data.real,
                        b.data.real, b.data.imag, b.data.imag, -b.data.real])  # fmt: skip
    return sp.csc_matrix((x, (r, c)), shape=(2 * n, 2 * n))


def _rhs(st: Stamps, act: np.ndarray, wind: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``−(∂Y/∂p_e)·v`` of each acted stamp, real form (2n × len(act))."""
    n = len(v)
    out = np.zeros((2 * n, len(act)))
    for r, e in enumerate(act):
        node = st.node[e, : st.nc[e]]
        ok = np.flatnonzero(node >= 0)
        nodes = node[ok]
        cur = -d_stamp(st, int(e), int(wind[e]))[np.ix_(ok, ok)] @ v[nodes]
        np.add.at(out[:, r], nodes, cur.real)
        np.add.at(out[:, r], nodes + n, cur.imag)
    return out


def linearised(  # noqa: PLR0913
    op: LoadOp, f: SchurLU, st: Stamps, act: np.ndarray, wind: np.ndarray, v0: np.ndarray,
    g0: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Relative responses ``g`` (len(act), n) of the acted stamps with the loads linearised
    at ``op`` (see module docstring); ``v0`` starts the operating point's power flow. Rows
    of ``g0`` (the fixed-admittance responses) where that fails (:func:`checked`)."""
    n = op.net.n
    v = operating_point(op, f, v0)
    if v is None:
        log.info("%s: no operating point for the re-solve response", op.net.grid.name)
        return g0
    vbr = branch_voltage(op.lb, v[:, None])[:, 0]
    a, b = load_jacobian(op.lb, vbr, np.asarray(op.s, complex))
    inc = op.inc
    m = op.net.y_fixed + stamps_matrix(st, n, st.y) + inc @ sp.diags(a) @ inc.T
    try:
        lu = splu(_real(m, inc @ sp.diags(b) @ inc.T), permc_spec="MMD_AT_PLUS_A",
                  diag_pivot_thresh=0.1)  # fmt: skip
    except RuntimeError as exc:
        log.info("%s: linearised response singular (%s)", op.net.grid.name, exc)
        return g0
    x = lu.solve(_rhs(st, act, wind, v))
    dv = (x[:n] + 1j * x[n:]).T
    g = np.zeros((len(act), n), complex)
    live = live_nodes(v)
    g[:, live] = dv[:, live] / v[live]
    return checked(g0, g, op.net.grid.name)


def checked(g0: np.ndarray, g1: np.ndarray, name: str = "grid") -> np.ndarray:
    """``g1``'s rows where they are finite and within ``PLAUSIBLE`` times the largest
    element of ``g0``'s (the fixed-admittance response), else ``g0``'s."""
    out = g0.copy()
    for r in range(len(g0)):
        top = float(np.abs(g0[r]).max())
        if np.all(np.isfinite(g1[r])) and float(np.abs(g1[r]).max()) <= PLAUSIBLE * top:
            out[r] = g1[r]
        else:
            log.info("%s: linearised response %d implausible: fixed admittance kept", name, r)
    return out
