"""Regulator and capacitor controls in compiled code: stamps, measures and OpenDSS's
time-mode state machines (the same rules as :mod:`.qsts`'s Python ones, array for array).

Stamps: a regulating transformer's ``Yprim`` is ``N·Ycore·N + AF`` with ``N`` the inverse
taps of each conductor's winding (taps scale the winding's turns; the anti-float
susceptances do not move); a capacitor's is its closed kvar times a per-kvar ``Yprim``.
After an action the Schur complement of :mod:`.schur` is updated (K × K).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.schur import SchurLU

CLOSE, OPEN = 1, -1
QMAX = 64  # queued regulator actions per device (OpenDSS keeps a handful)


class Stamps(NamedTuple):
    """Variable elements: transformers (kind 0) and capacitors (kind 1), padded arrays."""

    kind: np.ndarray  # (s,)
    nc: np.ndarray  # conductors
    loc: np.ndarray  # (s, c) position among the Schur nodes, -1 ground/padding
    y: np.ndarray  # (s, c, c) present Yprim
    y0: np.ndarray  # (s, c, c) Yprim the factorisation holds
    core: np.ndarray  # (s, c, c) tap-free Yprim (transformer) / per-kvar Yprim (capacitor)
    af: np.ndarray  # (s, c, c) anti-float part (transformers)
    wind: np.ndarray  # (s, c) winding of each conductor
    taps: np.ndarray  # (s, w) present tap per winding
    kvar: np.ndarray  # (s, steps) capacitor step sizes
    state: np.ndarray  # (s, steps) capacitor step states (int)
    nsteps: np.ndarray  # (s,)


class Regs(NamedTuple):
    """RegControls: settings, sensors and time-mode state (one entry per control)."""

    stamp: np.ndarray
    wind: np.ndarray  # tap winding (0-based)
    hi: np.ndarray
    lo: np.ndarray
    idx: np.ndarray  # (r, c) node ids of the transformer's conductors (-1 ground)
    cond: np.ndarray
    f: np.ndarray  # (r, 13): base_v vreg band ptratio r x ctprim delay tapdelay rev step min max
    armed: np.ndarray
    value: np.ndarray
    handle: np.ndarray
    queue: np.ndarray  # (r, QMAX)
    qlen: np.ndarray
    ops: np.ndarray
    vact: np.ndarray  # scratch: the control voltages of one sample
    due: np.ndarray  # scratch (r, QMAX): the actions due at one sample


class Caps(NamedTuple):
    """CapControls: settings, monitored-line sensors and time-mode state."""

    stamp: np.ndarray
    typ: np.ndarray  # 0 kvar, 1 voltage, 2 current
    f: np.ndarray  # (c, 10): on off vmin vmax override delay delay_off dead ptratio ctratio
    idx: np.ndarray  # (c, k) monitored line's conductors
    ymon: np.ndarray  # (c, r, k) its Yprim rows of the monitored terminal
    rows: np.ndarray  # (c, r) those rows' conductor positions
    nrows: np.ndarray
    v_node: np.ndarray
    i_row: np.ndarray
    armed: np.ndarray
    t_exec: np.ndarray
    value: np.ndarray
    last_open: np.ndarray
    ops: np.ndarray


@njit(cache=True, nogil=True, error_model="numpy")
def _at(v: np.ndarray, i: int) -> complex:
    return v[i] if i >= 0 else 0j


@njit(cache=True, nogil=True, error_model="numpy")
def restamp(st: Stamps, s: int) -> None:
    """Recompute stamp ``s``'s Yprim from its taps or capacitor steps."""
    n = st.nc[s]
    if st.kind[s] == 0:
        for i in range(n):
            ti = st.taps[s, st.wind[s, i]]
            for j in range(n):
                tj = st.taps[s, st.wind[s, j]]
                st.y[s, i, j] = st.core[s, i, j] / (ti * tj) + st.af[s, i, j]
        return
    on = 0.0
    for k in range(st.nsteps[s]):
        if st.state[s, k]:
            on += st.kvar[s, k]
    for i in range(n):
        for j in range(n):
            st.y[s, i, j] = on * st.core[s, i, j]


@njit(cache=True, nogil=True, error_model="numpy")
def restamp_all(st: Stamps) -> None:
    """Recompute every stamp (after taps or states were set from outside)."""
    for s in range(len(st.kind)):
        restamp(st, s)


@njit(cache=True, nogil=True, error_model="numpy")
def update_schur(st: Stamps, f: SchurLU) -> None:
    """``f.sinv ← (S₀ + Σ (Y − Y₀) on K)⁻¹`` after control actions."""
    s = f.s0.copy()
    for e in range(len(st.kind)):
        for i in range(st.nc[e]):
            li = st.loc[e, i]
            if li < 0:
                continue
            for j in range(st.nc[e]):
                lj = st.loc[e, j]
                if lj >= 0:
                    s[li, lj] += st.y[e, i, j] - st.y0[e, i, j]
    if s.shape[0]:
        f.sinv[:, :] = np.linalg.inv(s)


@njit(cache=True, nogil=True, error_model="numpy")
def reg_voltage(rg: Regs, st: Stamps, r: int, v: np.ndarray) -> float:
    """|V/ptratio + (R + jX)·I/CT| on the 120 V base (LDC as OpenDSS)."""
    p = rg.f[r]
    vc = (_at(v, rg.hi[r]) - _at(v, rg.lo[r])) / p[3]
    if p[4] != 0.0 or p[5] != 0.0:
        s = rg.stamp[r]
        i_term = 0j
        for j in range(st.nc[s]):
            node = rg.idx[r, j]
            if node >= 0:
                i_term += st.y[s, rg.cond[r], j] * v[node]
        vc += complex(p[4], p[5]) * i_term / p[6]
    return abs(vc)


@njit(cache=True, nogil=True, error_model="numpy")
def _pending(rg: Regs, r: int, vact: float) -> int:
    p = rg.f[r]
    if abs(p[1] - vact) <= p[2] / 2.0:
        return 0
    n = int(np.rint((p[1] - vact) * p[3] / p[0] / p[10]))
    return -n if p[9] != 0.0 else n


@njit(cache=True, nogil=True, error_model="numpy")
def _qremove(rg: Regs, r: int, t: float) -> bool:
    """Remove the first queued action at time ``t``; whether there was one."""
    n = rg.qlen[r]
    for q in range(n):
        if rg.queue[r, q] == t:
            for z in range(q, n - 1):
                rg.queue[r, z] = rg.queue[r, z + 1]
            rg.qlen[r] = n - 1
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy")
def _due(rg: Regs, r: int, t_s: float) -> int:
    """Copy the queued times due at ``t_s`` into ``rg.due[r]``, sorted; how many."""
    n = 0
    for q in range(rg.qlen[r]):
        t = rg.queue[r, q]
        if t <= t_s + 1e-6:
            j = n
            while j > 0 and rg.due[r, j - 1] > t:
                rg.due[r, j] = rg.due[r, j - 1]
                j -= 1
            rg.due[r, j] = t
            n += 1
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def _qpush(rg: Regs, r: int, t: float) -> None:
    if rg.qlen[r] < QMAX:
        rg.queue[r, rg.qlen[r]] = t
        rg.qlen[r] += 1


@njit(cache=True, nogil=True, error_model="numpy")
def reg_sample(rg: Regs, st: Stamps, r: int, t_s: float, vact: float) -> bool:
    """One time-mode sample of RegControl ``r`` then its due actions; True if a tap moved.
    (Rules: see ``_Runner._reg`` in :mod:`.qsts`.)"""
    p = rg.f[r]
    s, w = rg.stamp[r], rg.wind[r]
    n = _pending(rg, r, vact)
    rg.value[r] = n
    tap = st.taps[s, w]
    if n == 0:
        if rg.armed[r]:
            _qremove(rg, r, rg.handle[r])
        rg.armed[r] = 0
    else:
        movable = (n > 0 and tap < p[12] - 1e-9) or (n < 0 and tap > p[11] + 1e-9)
        if movable and not rg.armed[r]:
            rg.handle[r] = t_s + p[7]
            _qpush(rg, r, rg.handle[r])
            rg.armed[r] = 1
    acted = False
    for q in range(_due(rg, r, t_s)):
        t = rg.due[r, q]
        _qremove(rg, r, t)
        if rg.value[r] == 0:
            rg.armed[r] = 0
            continue
        step = 1 if rg.value[r] > 0 else -1
        old = st.taps[s, w]
        new = min(max(old + step * p[10], p[11]), p[12])
        if new != old:
            st.taps[s, w] = new
            restamp(st, s)
            rg.ops[r] += 1
            acted = True
        rg.value[r] -= step
        if rg.value[r] != 0:
            _qpush(rg, r, t_s + p[8])
        else:
            rg.armed[r] = 0
    return acted


@njit(cache=True, nogil=True, error_model="numpy")
def cap_measure(cp: Caps, c: int, v: np.ndarray) -> tuple[float, float, float]:
    """kvar through the monitored terminal, PT voltage and CT current."""
    k = cp.idx.shape[1]
    vt = np.zeros(k, np.complex128)
    for j in range(k):
        vt[j] = _at(v, cp.idx[c, j])
    s_va = 0j
    i_ct = 0.0
    for q in range(cp.nrows[c]):
        i = 0j
        for j in range(k):
            i += cp.ymon[c, q, j] * vt[j]
        s_va += vt[cp.rows[c, q]] * np.conj(i)
        if q == cp.i_row[c]:
            i_ct = abs(i)
    p = cp.f[c]
    return s_va.imag / 1e3, abs(_at(v, cp.v_node[c])) / p[8], i_ct / p[9]


@njit(cache=True, nogil=True, error_model="numpy")
def _cap_decide(cp: Caps, c: int, m: tuple[float, float, float], closed: bool,
                avail: int) -> tuple[int, bool]:  # fmt: skip
    """OpenDSS CapControl sample (see ``controls.cap_sample``)."""
    p, typ = cp.f[c], cp.typ[c]
    vv = m[1]
    if p[4] != 0.0 and typ != 1:
        if not closed and vv < p[2]:
            return CLOSE, True
        if closed and vv > p[3]:
            return OPEN, True
    x = m[typ]
    if typ == 1:
        on, off = x < p[0], x > p[1]
    else:
        on, off = x > p[0], x < p[1]
    if not closed:
        return (CLOSE, True) if on else (0, False)
    pending = 0 if typ == 1 else cp.value[c]
    if off:
        return OPEN, True
    if avail > 0:
        return (CLOSE, True) if on else (pending, False)
    return 0, False


@njit(cache=True, nogil=True, error_model="numpy")
def _cap_act(cp: Caps, st: Stamps, c: int, t_s: float) -> bool:
    """Carry out CapControl ``c``'s armed change (one step closed or opened)."""
    s = cp.stamp[c]
    n = st.nsteps[s]
    if cp.value[c] == CLOSE:
        for k in range(n):
            if st.state[s, k] == 0:
                st.state[s, k] = 1
                restamp(st, s)
                cp.ops[c] += 1
                return True
        return False
    if cp.value[c] == OPEN:
        for k in range(n - 1, -1, -1):
            if st.state[s, k] == 1:
                st.state[s, k] = 0
                cp.last_open[c] = t_s
                restamp(st, s)
                cp.ops[c] += 1
                return True
    return False


@njit(cache=True, nogil=True, error_model="numpy")
def cap_sample(cp: Caps, st: Stamps, c: int, t_s: float, v: np.ndarray) -> bool:
    """One time-mode sample of CapControl ``c`` then its armed action if due."""
    s = cp.stamp[c]
    p = cp.f[c]
    n_on = 0
    for k in range(st.nsteps[s]):
        n_on += st.state[s, k]
    closed, avail = n_on > 0, st.nsteps[s] - n_on
    value, should = _cap_decide(cp, c, cap_measure(cp, c, v), closed, avail)
    cp.value[c] = value
    if should and not cp.armed[c]:
        delay = p[6]
        if value == CLOSE:
            since = t_s - cp.last_open[c]
            delay = p[5]
            if since < p[7]:
                delay = max(p[5], p[7] + p[5] - since)
        cp.armed[c], cp.t_exec[c] = 1, t_s + delay
    if cp.armed[c] and value == 0:
        cp.armed[c] = 0
    if not (cp.armed[c] and cp.t_exec[c] <= t_s + 1e-6):
        return False
    cp.armed[c] = 0
    return _cap_act(cp, st, c, t_s)


@njit(cache=True, nogil=True, error_model="numpy")
def sample_all(rg: Regs, cp: Caps, st: Stamps, t_s: float, v: np.ndarray) -> bool:
    """Sample every control at ``t_s`` (regulators first, as the Python runner)."""
    acted = False
    for r in range(len(rg.stamp)):
        rg.vact[r] = reg_voltage(rg, st, r, v)
    for r in range(len(rg.stamp)):
        if reg_sample(rg, st, r, t_s, rg.vact[r]):
            acted = True
    for c in range(len(cp.stamp)):
        if cap_sample(cp, st, c, t_s, v):
            acted = True
    return acted
