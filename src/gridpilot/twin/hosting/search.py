"""Exact checks near the estimate: every unresolved candidate is one column (two for PV's
cloud step) of one batch solve per round; brackets gallop from the estimate then bisect
down to ``step_kw``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ConvergenceError
from gridpilot.twin.hosting.checks import NO_CONVERGENCE, violations
from gridpilot.twin.hosting.feeder import Feeder, Measure
from gridpilot.twin.hosting.options import HostingOptions

log = logging.getLogger(__name__)


@dataclass
class Base:
    """The operating point of one critical hour (controls settled, then frozen)."""

    s: np.ndarray  # load-branch powers (VA), one column
    v: np.ndarray  # node voltages (V)
    measure: Measure
    der_pu: float


def solve_columns(fd: Feeder, s: np.ndarray, v0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voltages for the columns of ``s`` and a mask of columns that did not converge. A
    failed batch is split in halves until the divergent columns stand alone, so that one
    divergent size never takes the others down."""
    k = s.shape[1]
    v = np.repeat(v0[:, None], k, axis=1)
    bad = np.zeros(k, bool)
    stack = [np.arange(k)]
    while stack:
        cols = stack.pop()
        try:
            with np.errstate(all="ignore"):
                v[:, cols], _ = fd.twin.solve(s[:, cols], v[:, cols])
        except ConvergenceError:
            if cols.size == 1:
                bad[cols] = True
                v[:, cols] = v0[:, None]
            else:
                h = cols.size // 2
                stack += [cols[:h], cols[h:]]
    return v, bad


def evaluate(fd: Feeder, base: Base, cols: np.ndarray, p_kw: np.ndarray,
             opts: HostingOptions) -> np.ndarray:  # fmt: skip
    """Violation flags of candidates ``cols`` at ratings ``p_kw`` (one exact solve batch)."""
    sign = -1.0 if opts.der == "pv" else 1.0
    k = len(cols)
    s = np.repeat(base.s, k, axis=1)
    p_w = p_kw * 1e3 * base.der_pu
    s[fd.branch[cols], np.arange(k)] = sign * p_w
    if opts.der == "pv":
        s_step = np.repeat(base.s, k, axis=1)
        s_step[fd.branch[cols], np.arange(k)] = sign * p_w * opts.cloud_fraction
        s = np.concatenate([s, s_step], axis=1)
    v, bad = solve_columns(fd, s, base.v)
    full = fd.measure(v[:, :k])
    step = fd.measure(v[:, k:]) if opts.der == "pv" else None
    flags = violations(base.measure, full, step, opts)
    bad_any = bad[:k] | (bad[k:] if opts.der == "pv" else False)
    return np.where(bad_any, flags | NO_CONVERGENCE, flags)


def search(fd: Feeder, base: Base, cols: np.ndarray, est_kw: np.ndarray,
           opts: HostingOptions) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Largest passing rating (kW, multiple of ``step_kw``) of each candidate, the flags that
    stop it at one step more (0 if ``max_kw`` passes), and the solve rounds used."""
    st = opts.step_kw
    top = np.floor(opts.max_kw / st) * st
    n = len(cols)
    p0 = np.clip(np.floor(np.nan_to_num(est_kw, posinf=top) / st) * st, 0.0, top)
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
            flags = evaluate(fd, base, cols[todo], test, opts)
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


def _resolved(lo: np.ndarray, hi: np.ndarray, st: float, top: float) -> np.ndarray:
    return (hi - np.maximum(lo, 0.0) <= st + 1e-9) | (lo >= top - 1e-9) | (hi <= st + 1e-9)


def _next_trial(lo: np.ndarray, hi: np.ndarray, delta: np.ndarray, st: float,
                top: float) -> np.ndarray:  # fmt: skip
    """Gallop up from a pass with no failure known, down from a failure with no pass known,
    else bisect (on the ``st`` grid)."""
    up = np.isinf(hi)
    down = (lo < 0) & ~up
    out = np.floor((np.maximum(lo, 0.0) + hi) / 2 / st) * st
    out = np.where(up, np.minimum(lo + delta, top), out)
    out = np.where(down, np.maximum(hi - delta, 0.0), out)
    delta *= np.where(up | down, 2.0, 1.0)
    return out
