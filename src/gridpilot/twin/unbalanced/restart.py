"""Warm start of a QSTS control re-solve (compiled loop): the linear response to the action.

After a regulator's tap move or a capacitor step the step is re-solved (OpenDSS's control
iterations); the plain start is the solution before the action. A tap move scales the
voltages downstream of its winding by the ratio of the turns, a capacitor step lifts those
around it: each controlled element's relative response ``g_e = ∂ln V / ∂p_e`` (``p``: the
log of the regulated winding's tap, or the closed kvar of a bank) is measured once per run
at packing, as a finite difference of two linear solves of the factorised matrix (the loads
as their constant admittances), and a re-solve starts from ``V·(1 + g_e·Δp_e)`` summed over
the elements that acted. Given an operating point (:class:`.response.LoadOp`, the run's mean
load powers) the response is that of the power flow with the loads linearised there
(:mod:`.response`: constant-power loads feed back on a tap move, which the constant
admittances miss; ieee8500 re-solves 6.25 → 5.6 iterations); the constant-admittance
response stays the fallback. The fixed point then converges to the same tolerance as from
the plain start; only the start moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT
from gridpilot.twin.unbalanced.fastctl import Caps, Regs, Stamps, restamp
from gridpilot.twin.unbalanced.schur import SchurLU, schur_solve
from gridpilot.twin.unbalanced.schur_update import schur_exact

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.response import LoadOp

STEP = 1e-3  # finite-difference step: log of a tap, or kvar per kvar of the bank


class Restart(NamedTuple):
    """Responses of the controlled elements and their parameters before a control sample."""

    row: np.ndarray  # (s,) row of ``g`` of each stamp (-1: no control acts on it / off)
    wind: np.ndarray  # (s,) the regulated winding of a transformer stamp
    g: np.ndarray  # (rows, n) relative voltage response per unit of the parameter
    prev: np.ndarray  # (s,) parameter at the last mark


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def param(st: Stamps, e: int, wind: int) -> float:
    """The stamp's controlled parameter: log of its regulated tap, or its closed kvar."""
    if st.kind[e] == 0:
        return np.log(st.taps[e, wind])
    on = 0.0
    for k in range(st.nsteps[e]):
        if st.state[e, k]:
            on += st.kvar[e, k]
    return on


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def mark(rs: Restart, st: Stamps) -> None:
    """Remember the controlled parameters (before a control sample)."""
    for e in range(len(rs.row)):
        if rs.row[e] >= 0:
            rs.prev[e] = param(st, e, rs.wind[e])


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def warm(rs: Restart, st: Stamps, v: np.ndarray) -> None:
    """Move the start ``v`` by the linear response to what changed since :func:`mark`."""
    for e in range(len(rs.row)):
        r = rs.row[e]
        if r < 0:
            continue
        d = param(st, e, rs.wind[e]) - rs.prev[e]
        if d == 0.0:
            continue
        g = rs.g[r]
        for i in range(len(v)):
            v[i] *= 1.0 + g[i] * d


@njit(cache=True, nogil=True, error_model="numpy")
def _perturbed(f: SchurLU, st: Stamps, e: int, wind: int, isrc: np.ndarray) -> np.ndarray:
    """The linear solution with stamp ``e``'s parameter moved by ``STEP`` (the stamp is left
    as it was, the factorisation at the moved state)."""
    y = st.y[e].copy()
    if st.kind[e] == 0:
        t = st.taps[e, wind]
        st.taps[e, wind] = t * np.exp(STEP)
        restamp(st, e)
        st.taps[e, wind] = t
    else:
        for i in range(st.nc[e]):
            for j in range(st.nc[e]):
                st.y[e, i, j] += STEP * st.core[e, i, j]
    schur_exact(st, f)
    v1 = np.empty_like(isrc)
    schur_solve(f, isrc, v1)
    st.y[e, :, :] = y
    return v1


def live_nodes(v: np.ndarray) -> np.ndarray:
    """Nodes whose voltage is not ~0 (relative to the largest, or 1 V): where a relative
    response ``dV/V`` is defined; elsewhere it stays 0."""
    return np.abs(v) >= 1e-6 * max(float(np.abs(v).max()), 1.0)


def make_restart(  # noqa: PLR0913
    f: SchurLU, st: Stamps, rg: Regs, cp: Caps, isrc: np.ndarray, on: bool = True,
    op: LoadOp | None = None,
) -> Restart:  # fmt: skip
    """The responses of every stamp a regulator or capacitor control acts on, measured at
    the present state (the factorisation is left at that state); ``on=False``: none (the
    plain start, the solution before the action). With ``op`` the loads are linearised at
    that operating point (:mod:`.response`), each stamp falling back to its response with
    the loads as constant admittances where that fails."""
    s, n = len(st.kind), len(isrc)
    wind = np.zeros(s, np.int64)
    wind[rg.stamp] = rg.wind
    act = np.union1d(rg.stamp, cp.stamp).astype(np.int64) if on else np.zeros(0, np.int64)
    row = np.full(s, -1, np.int64)
    row[act] = np.arange(len(act))
    g = np.zeros((len(act), n), complex)
    if len(act):
        v0 = np.zeros(n, complex)
        schur_solve(f, isrc, v0)
        live = live_nodes(v0)
        for r, e in enumerate(act):
            v1 = _perturbed(f, st, int(e), int(wind[e]), isrc)
            g[r, live] = (v1[live] / v0[live] - 1.0) / STEP
        schur_exact(st, f)
        if op is not None:  # (imported here: response → faststep → restart)
            from gridpilot.twin.unbalanced.response import linearised

            g = linearised(op, f, st, act, wind, v0, g)
    return Restart(row, wind, g, np.zeros(s))
