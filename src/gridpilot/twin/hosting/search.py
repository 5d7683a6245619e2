"""Exact checks near the estimate: every unresolved candidate is one column (two for PV's
cloud step) of one batch solve per round; brackets gallop from the estimate then bisect
down to ``step_kw``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ConvergenceError
from gridpilot.twin.hosting.checks import NO_CONVERGENCE, violations
from gridpilot.twin.hosting.feeder import TOL_PU, Feeder, Measure
from gridpilot.twin.hosting.newton import Chord
from gridpilot.twin.hosting.options import HostingOptions

log = logging.getLogger(__name__)
CHORD_ITER = 15  # a column the chord has not converged by then goes to the fixed point


@dataclass
class Base:
    """The operating point of one critical hour (controls settled, then frozen)."""

    s: np.ndarray  # load-branch powers (VA), one column
    v: np.ndarray  # node voltages (V)
    measure: Measure
    der_pu: float
    chord: Chord | None = None  # the hour's factorised Jacobian (exact columns in few steps)


def solve_columns(fd: Feeder, s: np.ndarray, v0: np.ndarray, guess: np.ndarray | None = None,
                  chord: Chord | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Voltages for the columns of ``s`` and a mask of columns that did not converge.

    With ``chord`` (the hour's Jacobian) every column is first iterated by the chord
    method (converged columns leave the batch); only the columns it does not converge are
    handed to the engine's fixed point. There a failed batch is split in halves until the
    divergent columns stand alone, so that one divergent size never takes the others
    down."""
    k = s.shape[1]
    v = np.repeat(v0[:, None], k, axis=1) if guess is None else guess.copy()
    bad = np.zeros(k, bool)
    todo = np.arange(k)
    if chord is not None:
        v, left = chord.solve(s, v, TOL_PU, CHORD_ITER)
        todo = np.flatnonzero(left)
        v[:, todo] = v0[:, None] if guess is None else guess[:, todo]
        if todo.size:
            log.debug("chord left %d of %d columns to the fixed point", todo.size, k)
    stack = [todo] if todo.size else []
    while stack:
        cols = stack.pop()
        try:
            with np.errstate(all="ignore"):
                v[:, cols], _ = fd.twin.solve(s[:, cols], v[:, cols])
        except ConvergenceError as exc:
            listed = cols[np.asarray([i for i in exc.steps if i < cols.size], np.int64)]
            if 0 < listed.size < cols.size:  # NaN columns are not listed: retry the rest
                bad[listed] = True
                v[:, listed] = v0[:, None]
                stack.append(np.setdiff1d(cols, listed))
            elif cols.size == 1:
                bad[cols] = True
                v[:, cols] = v0[:, None]
            else:
                h = cols.size // 2
                stack += [cols[:h], cols[h:]]
    return v, bad


def evaluate(fd: Feeder, base: Base, cols: np.ndarray, p_kw: np.ndarray,
             opts: HostingOptions, dv_per_w: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Violation flags of candidates ``cols`` at ratings ``p_kw`` (one exact solve batch).

    ``dv_per_w`` (V/W of rating, nodes × cols), if given, starts each column at its linear
    prediction, and PV's cloud-step column is solved only where the linear step change
    reaches half the limit (below that the step check passes)."""
    sign = -1.0 if opts.der == "pv" else 1.0
    k = len(cols)
    p_w = p_kw * 1e3
    s = np.repeat(base.s, k, axis=1)
    s[fd.branch[cols], np.arange(k)] = sign * p_w * base.der_pu
    guess = None if dv_per_w is None else base.v[:, None] + dv_per_w * p_w[None, :]
    need = np.zeros(k, bool)
    if opts.der == "pv":
        need = np.ones(k, bool) if dv_per_w is None else _step_needed(fd, base, dv_per_w, p_w, opts)
        j = np.flatnonzero(need)
        s_step = np.repeat(base.s, j.size, axis=1)
        s_step[fd.branch[cols[j]], np.arange(j.size)] = (
            sign * p_w[j] * base.der_pu * opts.cloud_fraction
        )
        s = np.concatenate([s, s_step], axis=1)
        if guess is not None and dv_per_w is not None:  # a guess comes from the sensitivities
            frac = p_w[j] * opts.cloud_fraction
            guess = np.concatenate([guess, base.v[:, None] + dv_per_w[:, j] * frac], axis=1)
    v, bad = solve_columns(fd, s, base.v, guess, base.chord)
    full = fd.measure(v[:, :k])
    step = None
    bad_any = bad[:k].copy()
    if opts.der == "pv":
        v_step = v[:, :k].copy()
        v_step[:, need] = v[:, k:]
        step = fd.measure(v_step)
        bad_any[need] |= bad[k:]
    flags = violations(base.measure, full, step, opts)
    return np.where(bad_any, flags | NO_CONVERGENCE, flags)


def _step_needed(fd: Feeder, base: Base, dv_per_w: np.ndarray, p_w: np.ndarray,
                 opts: HostingOptions) -> np.ndarray:  # fmt: skip
    """Candidates whose linear cloud-step change reaches half the allowed change."""
    v0 = base.v[:, None]
    live = (np.abs(base.v) > 0.05 * fd.twin.net.vbase_v)[:, None]
    proj = np.abs(np.real(dv_per_w * np.conj(v0))) / np.maximum(np.abs(v0), 1e-9)
    worst = np.where(live, proj / fd.twin.net.vbase_v[:, None], 0.0).max(axis=0)
    dv = worst * p_w * (1 - opts.cloud_fraction)
    return dv >= 0.5 * opts.dv_step_pct / 100


def search(fd: Feeder, base: Base, cols: np.ndarray, est_kw: np.ndarray,  # noqa: PLR0913
           opts: HostingOptions, dv_per_w: np.ndarray | None = None,
           cap_kw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Largest passing rating (kW, multiple of ``step_kw``) of each candidate, the flags that
    stop it at one step more (0 if ``max_kw`` passes), and the solve rounds used.

    ``cap_kw`` (per candidate): no rating above it is tried (an earlier critical hour's
    capacity: the smallest over the hours cannot exceed it)."""
    st = opts.step_kw
    top = np.full(len(cols), np.floor(opts.max_kw / st) * st)
    if cap_kw is not None:
        top = np.minimum(top, np.floor(np.minimum(cap_kw, top) / st + 1e-9) * st)
    n = len(cols)
    est = np.where(np.isposinf(est_kw), top, np.nan_to_num(np.asarray(est_kw, float)))
    p0 = np.clip(np.floor(est / st) * st, 0.0, top)
    lo = np.full(n, -1.0)  # largest known passing (-1: none yet; 0 passes by definition)
    hi = np.full(n, np.inf)  # smallest known failing
    hi_flags = np.zeros(n, np.int64)
    delta = np.full(n, st)
    rounds = 0
    trial = p0.copy()
    for _ in range(200):
        todo = np.flatnonzero(~_resolved(lo, hi, st, top))
        if todo.size == 0:
            break
        test = trial[todo]
        zero = test <= 0
        lo[todo[zero]] = np.maximum(lo[todo[zero]], 0.0)
        todo, test = todo[~zero], test[~zero]
        if todo.size:
            dv = None if dv_per_w is None else dv_per_w[:, todo]
            flags = evaluate(fd, base, cols[todo], test, opts, dv)
            rounds += 1
            ok = flags == 0
            lo[todo[ok]] = np.maximum(lo[todo[ok]], test[ok])
            fail = todo[~ok]
            better = test[~ok] < hi[fail]
            hi[fail[better]] = test[~ok][better]
            hi_flags[fail[better]] = flags[~ok][better]
        trial = _next_trial(lo, hi, delta, st, top)
    lo = np.maximum(lo, 0.0)
    return lo, np.where(np.isfinite(hi), hi_flags, 0), rounds


def _resolved(lo: np.ndarray, hi: np.ndarray, st: float, top: np.ndarray) -> np.ndarray:
    return (hi - np.maximum(lo, 0.0) <= st + 1e-9) | (lo >= top - 1e-9) | (hi <= st + 1e-9)


def _next_trial(lo: np.ndarray, hi: np.ndarray, delta: np.ndarray, st: float,
                top: np.ndarray) -> np.ndarray:  # fmt: skip
    """Gallop up from a pass with no failure known, down from a failure with no pass known,
    else bisect (on the ``st`` grid)."""
    up = np.isinf(hi)
    down = (lo < 0) & ~up
    out = np.floor((np.maximum(lo, 0.0) + hi) / 2 / st) * st
    out = np.where(up, np.minimum(lo + delta, top), out)
    out = np.where(down, np.maximum(hi - delta, 0.0), out)
    delta *= np.where(up | down, 2.0, 1.0)
    return out
