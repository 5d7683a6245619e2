"""Smart-inverter control iterations in compiled code, for the QSTS step loop (:mod:`.faststep`).

The same rules as :meth:`.inverters.InverterTwin._settle`, one step at a time: the curve
lookup on the terminal voltage (``np.interp`` semantics), the ``delta_q``/``delta_p`` moves
with the halving damping, ``var_tol``/``v_tol``, reactive priority within ``kva`` and a
power flow held no tighter than the controls' own moves until they have settled. The arrays
are packed by :func:`pack_inverters` from an :class:`~.inverters.InverterTwin` (an empty set
for a plain twin: the step loop then solves as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT, copy_into

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin

# columns of InvArr.f
KVA, QMAX_KVAR, PMPP, VBASE, DELTA_Q, DELTA_P, VAR_TOL, MODE = range(8)
VOLTVAR, VOLTWATT = 1, 2  # bits of MODE
_MODES = {"voltvar": VOLTVAR, "voltwatt": VOLTWATT, "vv_vw": VOLTVAR | VOLTWATT}


class InvArr(NamedTuple):
    """Controlled inverters (one entry per DER), their curves and the settling state."""

    rows: np.ndarray  # (n, r) load branches of each inverter (-1 padding)
    nrows: np.ndarray  # (n,)
    f: np.ndarray  # (n, 8): kva kvar_max pmpp vbase delta_q delta_p var_tol mode
    vv: np.ndarray  # (n, 2, k): volt-var curve points (v; y), padded
    nvv: np.ndarray  # (n,)
    vw: np.ndarray  # (n, 2, k): volt-watt curve points
    nvw: np.ndarray
    opt: np.ndarray  # v_tol, max control iterations
    pav: np.ndarray  # (n,) available kW and own kvar of the present step
    qown: np.ndarray
    p: np.ndarray  # (n,) present set points (kW, kvar injected)
    q: np.ndarray
    pt: np.ndarray  # (n,) targets at the present voltages
    qt: np.ndarray
    dp: np.ndarray  # (n,) present factors
    dq: np.ndarray
    ep: np.ndarray  # (n,) previous errors
    eq: np.ndarray
    vm: np.ndarray  # (n,) terminal voltages (pu) and the previous iteration's
    vmp: np.ndarray
    s: np.ndarray  # (m,) the step's branch powers with the inverters at their set points
    cnt: np.ndarray  # warm (a previous solve's voltages exist), control iterations, failed


def pack_inverters(twin: UnbalancedTwin) -> InvArr:
    """The twin's controlled inverters as flat arrays (none unless an ``InverterTwin``)."""
    from gridpilot.twin.unbalanced.inverters import InverterTwin

    m = twin.loads.m
    if not isinstance(twin, InverterTwin) or not twin.inv.names:
        return _arrays(np.zeros((0, 1), np.int64), np.zeros(0, np.int64), np.zeros((0, 8)),
                       np.zeros((0, 2, 2)), np.zeros(0, np.int64), np.zeros((0, 2, 2)),
                       np.zeros(0, np.int64), np.array([1.0, 1.0]), m)  # fmt: skip
    inv, controls = twin.inv, twin.controls
    n, nr = len(inv.names), max(len(r) for r in inv.rows)
    rows = np.full((n, nr), -1, np.int64)
    f = np.zeros((n, 8))
    k = max([len(c.voltvar.v) for c in controls] + [len(c.voltwatt.v) for c in controls])
    vv, vw = np.zeros((n, 2, k)), np.zeros((n, 2, k))
    nvv, nvw = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        c = controls[int(inv.ctl[i])]
        rows[i, : len(inv.rows[i])] = inv.rows[i]
        f[i] = [inv.kva[i], inv.qmax[i], inv.pmpp[i], inv.vbase[i], c.delta_q, c.delta_p,
                c.var_tol, _MODES[c.mode]]  # fmt: skip
        for arr, cnt, cv in ((vv, nvv, c.voltvar), (vw, nvw, c.voltwatt)):
            cnt[i] = len(cv.v)
            arr[i, 0, : len(cv.v)] = cv.v
            arr[i, 1, : len(cv.y)] = cv.y
    opt = np.array([min(c.v_tol for c in controls), float(max(c.max_iter for c in controls))])
    nrows = np.array([len(r) for r in inv.rows], np.int64)
    return _arrays(rows, nrows, f, vv, nvv, vw, nvw, opt, m)


def _arrays(  # noqa: PLR0913
    rows: np.ndarray, nrows: np.ndarray, f: np.ndarray, vv: np.ndarray, nvv: np.ndarray,
    vw: np.ndarray, nvw: np.ndarray, opt: np.ndarray, m: int,
) -> InvArr:  # fmt: skip
    """The settings plus fresh state and scratch (one set of array types for every twin:
    the step loop compiles once)."""
    n = len(nrows)
    z = [np.zeros(n) for _ in range(12)]
    return InvArr(rows, nrows, f, vv, nvv, vw, nvw, opt, z[0], z[1], z[2], z[3], z[4], z[5],
                  z[6], z[7], z[8], z[9], z[10], z[11], np.zeros(m, complex),
                  np.zeros(3, np.int64))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def interp(x: float, xp: np.ndarray, fp: np.ndarray, n: int) -> float:
    """``np.interp(x, xp[:n], fp[:n])``, the same arithmetic (flat beyond the ends)."""
    if x < xp[0]:
        return fp[0]
    if x >= xp[n - 1]:
        return fp[n - 1]
    j = 0
    while j + 1 < n and xp[j + 1] <= x:
        j += 1
    if xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    return slope * (x - xp[j]) + fp[j]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def measure(iv: InvArr, a: np.ndarray, b: np.ndarray, v: np.ndarray) -> None:
    """``iv.vm`` ← each inverter's terminal voltage: mean |V| over its branches, pu."""
    for i in range(len(iv.nrows)):
        acc = 0.0
        for j in range(iv.nrows[i]):
            q = iv.rows[i, j]
            vb = v[b[q]] if b[q] >= 0 else 0j
            acc += abs(v[a[q]] - vb)
        iv.vm[i] = acc / iv.nrows[i] / iv.f[i, VBASE]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def targets(iv: InvArr) -> None:
    """``iv.qt``, ``iv.pt`` ← the curves at ``iv.vm``, reactive power first within kVA."""
    for i in range(len(iv.nrows)):
        mode, kva, vm = int(iv.f[i, MODE]), iv.f[i, KVA], iv.vm[i]
        q, p = iv.qown[i], iv.pav[i]
        if mode & VOLTVAR:
            q = interp(vm, iv.vv[i, 0], iv.vv[i, 1], iv.nvv[i]) * iv.f[i, QMAX_KVAR]
        if mode & VOLTWATT and p > 0:
            p = min(p, interp(vm, iv.vw[i, 0], iv.vw[i, 1], iv.nvw[i]) * iv.f[i, PMPP])
        room = np.sqrt(max(kva * kva - q * q, 0.0))
        iv.qt[i] = min(max(q, -kva), kva)
        iv.pt[i] = min(max(p, -room), room)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def available(iv: InvArr, s: np.ndarray) -> None:
    """``iv.pav``, ``iv.qown`` from the step's branch powers ``s`` (VA, loads convention)."""
    for i in range(len(iv.nrows)):
        p, q = 0.0, 0.0
        for j in range(iv.nrows[i]):
            p -= s[iv.rows[i, j]].real
            q -= s[iv.rows[i, j]].imag
        iv.pav[i], iv.qown[i] = p / 1e3, q / 1e3


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def write(iv: InvArr) -> None:
    """``iv.s`` ← the inverters' present set points, shared evenly over their branches."""
    for i in range(len(iv.nrows)):
        val = -(iv.p[i] + 1j * iv.q[i]) * 1e3 / iv.nrows[i]
        for j in range(iv.nrows[i]):
            iv.s[iv.rows[i, j]] = val


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def start(iv: InvArr, a: np.ndarray, b: np.ndarray, s: np.ndarray, v: np.ndarray) -> None:
    """The first set points of a solve: the curves at the warm-start voltages ``v`` (the
    available power on the very first solve), the factors at their settings."""
    copy_into(iv.s, s)
    available(iv, s)
    if iv.cnt[0]:
        measure(iv, a, b, v)
        targets(iv)
        copy_into(iv.q, iv.qt)
        copy_into(iv.p, iv.pt)
    else:
        copy_into(iv.q, iv.qown)
        copy_into(iv.p, iv.pav)
    iv.cnt[0] = 1
    for i in range(len(iv.nrows)):
        iv.dq[i], iv.dp[i] = iv.f[i, DELTA_Q], iv.f[i, DELTA_P]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def step(iv: InvArr, first: bool) -> tuple[bool, float]:
    """One control move after a solve (``iv.vm`` measured, ``iv.qt``/``iv.pt`` its targets):
    whether every error is within ``var_tol``, and the largest voltage change (1e-3 on the
    first iteration). Halves a factor whose error flips sign without halving, then moves."""
    ok, dvm = True, 0.0
    for i in range(len(iv.nrows)):
        eq, ep = iv.qt[i] - iv.q[i], iv.pt[i] - iv.p[i]
        tol = iv.f[i, VAR_TOL]
        if abs(eq) > tol * iv.f[i, QMAX_KVAR] or abs(ep) > tol * max(iv.f[i, PMPP], 1e-9):
            ok = False
        if not first:
            dvm = max(dvm, abs(iv.vm[i] - iv.vmp[i]))
            if eq * iv.eq[i] < 0 and abs(eq) > 0.5 * abs(iv.eq[i]):
                iv.dq[i] = iv.dq[i] / 2
            if ep * iv.ep[i] < 0 and abs(ep) > 0.5 * abs(iv.ep[i]):
                iv.dp[i] = iv.dp[i] / 2
        iv.eq[i], iv.ep[i] = eq, ep
    return ok, (1e-3 if first else dvm)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def move(iv: InvArr) -> None:
    """Set points ← set points + factor × error; the voltages become the previous ones."""
    for i in range(len(iv.nrows)):
        iv.q[i] += iv.dq[i] * iv.eq[i]
        iv.p[i] += iv.dp[i] * iv.ep[i]
        iv.vmp[i] = iv.vm[i]
