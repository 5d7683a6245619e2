"""The QSTS step loop in compiled code: per step the fixed-point power flow (warm start from
the previous step, Anderson-accelerated on the load-branch voltages), the control samples
and actions of :mod:`.fastctl` (re-solving the step until none is due, as
``qsts._settle``), and the running statistics of :mod:`.qsts_stats` (no voltages kept;
kernels in :mod:`.faststats`). The loads' arrays are :class:`.loads.LoadArr`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced import fastinv
from gridpilot.twin.unbalanced.anderson import anderson, histories
from gridpilot.twin.unbalanced.arrays import NO_RT, copy_into
from gridpilot.twin.unbalanced.fastctl import Caps, Regs, Stamps, sample_all
from gridpilot.twin.unbalanced.fastinv import InvArr
from gridpilot.twin.unbalanced.faststats import StatArr, record
from gridpilot.twin.unbalanced.loads import LoadArr, branch_voltages, load_current, pq_excess
from gridpilot.twin.unbalanced.predict import Pred, close, predict
from gridpilot.twin.unbalanced.restart import Restart, mark, warm
from gridpilot.twin.unbalanced.schur import SchurLU, schur_solve
from gridpilot.twin.unbalanced.schur_update import update_schur

MAX_SETTLE = 100


class Work(NamedTuple):
    """Scratch and settings of the step loop."""

    rhs: np.ndarray  # (n,)
    g: np.ndarray  # (n,)
    x: np.ndarray  # (m,) load-branch voltages the loads are evaluated at
    gbr: np.ndarray  # (m,)
    df: np.ndarray  # (depth, m) Anderson histories
    dg: np.ndarray
    last: np.ndarray  # (2, m): the last residual and image
    opt: np.ndarray  # tol_pu, max_iter, depth, predictor pairs, re-solve start (0/1)
    hist: np.ndarray  # (1,): pairs stored so far (ring position), kept across solves
    gram: np.ndarray  # (depth, depth): real inner products of the stored residual changes
    sums: np.ndarray  # (2, depth) scratch of the mix: right-hand side and new Gram row
    chol: np.ndarray  # (depth, depth) scratch: the mix's factorisation
    gamma: np.ndarray  # (depth,) scratch: the mix's coefficients
    s: np.ndarray  # (m,) the present step's load powers (VA per branch)


def make_work(n: int, m: int, opt: np.ndarray) -> Work:
    """Empty scratch for ``n`` nodes and ``m`` load branches with the settings ``opt``
    (the Anderson depth ``opt[2]``, at least one ring row)."""
    depth = max(int(opt[2]), 1)
    z = np.zeros
    return Work(z(n, complex), z(n, complex), z(m, complex), z(m, complex),
                *histories(depth, m), z((2, m), complex), opt, z(1, np.int64),
                z((depth, depth)), z((2, depth)), z((depth, depth)), z(depth), z(m, complex))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _rhs(ld: LoadArr, sa: StatArr, x: np.ndarray, s: np.ndarray, rhs: np.ndarray,
         full: bool) -> None:  # fmt: skip
    """``rhs`` ← the source currents less the loads' currents beyond their admittances in
    the matrix. ``full``: copy all of ``isrc`` (else only the rows loads touch are reset:
    the others still hold it from the solve's first iteration).

    The constant-PQ loads inside their band in SIMD lanes (``loads.pq_excess``), the others
    with ``load_current``; the rows are reset where a branch first adds to them."""
    if full:
        copy_into(rhs, sa.isrc)
    pq_excess(ld.lo2, ld.hi2, x, s, ld.yeq, ld.comp)
    _scatter(ld, sa.isrc, x, s, rhs, ld.sole[0] != 0)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _scatter(ld: LoadArr, isrc: np.ndarray, x: np.ndarray, s: np.ndarray,
             rhs: np.ndarray, sole: bool) -> None:  # fmt: skip
    """Add in branch order, each row starting from ``isrc`` at its first branch end;
    ``sole``: every branch grounded and alone on its row, one store each."""
    a, b, first, comp = ld.a, ld.b, ld.first, ld.comp
    vbase, model, vmin, vmax, cvr, zipc = ld.vbase, ld.model, ld.vmin, ld.vmax, ld.cvr, ld.zip
    yeq = ld.yeq
    for q in range(len(a)):
        c = comp[q]
        if c.real != c.real:  # not a constant-PQ load inside its band
            i = load_current(x[q], s[q], vbase[q], model[q], vmin[q], vmax[q], cvr, zipc, q)
            c = i - yeq[q] * x[q]
        r = np.uint64(a[q])
        if sole:
            rhs[r] = isrc[r] - c
            continue
        rhs[r] = (isrc[r] if first[q, 0] else rhs[r]) - c
        if b[q] >= 0:
            r = np.uint64(b[q])
            rhs[r] = (isrc[r] if first[q, 1] else rhs[r]) + c


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def fixed_point(f: SchurLU, ld: LoadArr, sa: StatArr, w: Work, s: np.ndarray,
                v: np.ndarray) -> int:  # fmt: skip
    """Solve one step in place from the warm start ``v``; iterations, or -1.

    Converged (Anderson, depth > 0) when the loads were evaluated within ``tol`` pu of
    the load-branch voltages their currents produce: the fixed point's residual. The node
    voltages are then the network's exact solution for those currents, so no confirming
    solve is needed (ieee123: 3.86 → 3.25 iterations a step; an Anderson mix can stall
    with small steps, which a test on the step alone would take for a solution). Plain
    iteration (depth 0) keeps OpenDSS's rule: no node voltage moved by ``tol`` pu.

    The solves alternate between ``v`` and ``w.g`` (no copy per iteration); the last one
    is copied into ``v`` if it is in ``w.g``."""
    tol, max_iter, depth = w.opt[0], int(w.opt[1]), int(w.opt[2])
    branch_voltages(ld, v, w.x)
    cur, nxt = v, w.g
    it = 0
    while it < max_iter:
        it += 1
        _rhs(ld, sa, w.x, s, w.rhs, it == 1)
        schur_solve(f, w.rhs, nxt)
        cur, nxt = nxt, cur
        if depth == 0:
            if not _moved(sa.inv_vb2, cur, nxt, tol * tol):
                return _final(v, w.g, it, it)
            branch_voltages(ld, cur, w.x)
            continue
        branch_voltages(ld, cur, w.gbr)
        if _evaluated_at(ld, w, tol):
            return _final(v, w.g, it, it)
        anderson(w, it == 1)
    return _final(v, w.g, it, -1)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _moved(inv_vb2: np.ndarray, new: np.ndarray, old: np.ndarray, tol2: float) -> bool:
    """Whether a node voltage moved by ``tol`` pu or more (``tol2`` its square; NaN
    counts as moved); stops at the first."""
    for i in range(len(new)):
        d = new[i] - old[i]
        if not (d.real * d.real + d.imag * d.imag) * inv_vb2[i] < tol2:
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _final(v: np.ndarray, g: np.ndarray, solves: int, ret: int) -> int:
    """``v`` ← the last solution (in ``g`` after an odd number of solves); ``ret``."""
    if solves % 2 == 1:
        copy_into(v, g)
    return ret


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _evaluated_at(ld: LoadArr, w: Work, tol: float) -> bool:
    """Whether the loads were evaluated (``w.x``) within ``tol`` pu of the voltages they
    produced (``w.gbr``); NaN counts as not."""
    for q in range(len(w.x)):
        d = w.gbr[q] - w.x[q]
        if not (d.real * d.real + d.imag * d.imag) <= (tol * ld.vbase[q]) ** 2:
            return False
    return True


class Steps(NamedTuple):
    """The load powers of a chunk of steps: branch ``q`` draws ``s_va[q]·mult[row[q], k]``
    at step ``k`` (the shapes' values only: a handful of rows, not branches × steps)."""

    s_va: np.ndarray  # (m,) nominal power per load branch (VA)
    mult: np.ndarray  # (shapes, steps) multipliers
    row: np.ndarray  # (m,) int64: each branch's shape


class Run(NamedTuple):
    """Everything the step loop reads and updates."""

    f: SchurLU
    ld: LoadArr
    sa: StatArr
    st: Stamps
    rg: Regs
    cp: Caps
    w: Work
    iv: InvArr  # smart inverters (none: a plain twin)
    p: Pred  # warm-start predictor of each step
    rs: Restart  # warm start of a control re-solve


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def settle(r: Run, s: np.ndarray, v: np.ndarray) -> int:
    """Solve one step with the inverters settled on their curves (``InverterTwin._settle``:
    control iterations around the power flow, which is held no tighter than the controls'
    own moves until they have settled); power-flow iterations, -1 if a power flow failed,
    -2 if the controls did not settle. ``r.iv.s`` is left with the settled powers."""
    iv, w = r.iv, r.w
    fastinv.start(iv, r.ld.a, r.ld.b, s, v)
    base, v_tol, max_it = w.opt[0], iv.opt[0], int(iv.opt[1])
    iters, dvm, tight = 0, 1e-3, False
    for it in range(1, max_it + 1):
        fastinv.write(iv)
        tol = base if tight else max(base, min(1e-4, 0.05 * dvm))
        w.opt[0] = tol
        n = fixed_point(r.f, r.ld, r.sa, w, iv.s, v)
        w.opt[0] = base
        if n < 0:
            return -1
        iters += n
        fastinv.measure(iv, r.ld.a, r.ld.b, v)
        fastinv.targets(iv)
        ok, dvm = fastinv.step(iv, it == 1)
        if it > 1 and dvm <= v_tol and ok:
            if tol <= base:
                iv.cnt[1] += it
                return iters
            tight = True
        fastinv.move(iv)
    iv.cnt[2] = 1
    return -2


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _solve(r: Run, s: np.ndarray, v: np.ndarray) -> int:
    if len(r.iv.nrows) == 0:
        return fixed_point(r.f, r.ld, r.sa, r.w, s, v)
    return settle(r, s, v)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def run_chunk(  # noqa: PLR0913
    r: Run, sc: Steps, step0: int, t_base: float, dt: float, v: np.ndarray,
    loss: np.ndarray, logs: np.ndarray,
) -> tuple[int, int]:  # fmt: skip
    """Steps ``step0 …`` of the chunk ``sc``; returns (steps done, iterations). Fewer steps
    done than columns means the next one did not converge. ``logs`` (regs + capacitor
    stamps, steps) gets the taps and closed kvar steps (when it has columns)."""
    iters = 0
    controls = len(r.rg.stamp) + len(r.cp.stamp) > 0
    s_va, mult, row = sc.s_va, sc.mult, sc.row
    s = r.w.s  # contiguous: loads.pq_excess in SIMD
    for k in range(mult.shape[1]):
        for q in range(len(s)):
            s[q] = s_va[q] * mult[row[q], k]
        t = t_base + (step0 + k + 1) * dt
        predict(r.p, s, v)
        it = _solve(r, s, v)
        if it < 0:
            return k, iters
        close(r.p, v)
        iters += it
        if controls:
            mark(r.rs, r.st)
            acted = sample_all(r.rg, r.cp, r.st, t, v)
            n = 0
            while acted and n < MAX_SETTLE:
                update_schur(r.st, r.f)
                warm(r.rs, r.st, v)
                it = _solve(r, s, v)
                if it < 0:
                    return k, iters
                iters += it
                mark(r.rs, r.st)
                acted = sample_all(r.rg, r.cp, r.st, t, v)
                n += 1
            if acted:
                update_schur(r.st, r.f)
        loss[k] = record(r.sa, r.ld, r.iv.s if len(r.iv.nrows) else s, v, r.w.x)
        if logs.shape[1]:
            _log(r, logs, k)
    return mult.shape[1], iters


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _log(r: Run, logs: np.ndarray, k: int) -> None:
    nr = len(r.rg.stamp)
    for i in range(nr):
        logs[i, k] = r.st.taps[r.rg.stamp[i], r.rg.wind[i]]
    j = nr
    for e in range(len(r.st.kind)):
        if r.st.kind[e] == 1:
            on = 0
            for q in range(r.st.nsteps[e]):
                on += r.st.state[e, q]
            logs[j, k] = on
            j += 1
    n = len(r.iv.nrows)
    if logs.shape[0] >= j + 2 * n:
        for i in range(n):  # the inverters' settled kW, then kvar
            logs[j + i, k] = r.iv.p[i]
            logs[j + n + i, k] = r.iv.q[i]
