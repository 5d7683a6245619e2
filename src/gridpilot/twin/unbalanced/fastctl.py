"""Regulator and capacitor controls in compiled code: stamps, measures and OpenDSS's
time-mode state machines (the same rules as :mod:`.qsts`'s Python ones, array for array).

Stamps: a regulating transformer's ``Yprim`` is ``N·Ycore·N + AF`` with ``N`` the inverse
taps of each conductor's winding (taps scale the winding's turns; the anti-float
susceptances do not move); a capacitor's is its closed kvar times a per-kvar ``Yprim``.
After an action the inverse of the Schur complement of :mod:`.schur` is updated
(:mod:`.schur_update`).

The kernels run without numba's runtime (see :mod:`.arrays`), and a regulator sample's
helpers are inlined into :func:`sample_all` (numba's ``inline="always"``): a call passes
the ``Regs`` and ``Stamps`` tuples' ~35 arrays by value (ieee123's sample of seven
regulators 0.96 → 0.76 µs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.twin.unbalanced.arrays import NO_RT

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
    yl: np.ndarray  # (s, c, c) Yprim the present Schur inverse holds (.schur_update)
    node: np.ndarray  # (s, c) node id of each conductor (-1 ground/padding)


class Regs(NamedTuple):
    """RegControls: settings, sensors and time-mode state (one entry per control)."""

    stamp: np.ndarray
    wind: np.ndarray  # tap winding (0-based)
    hi: np.ndarray  # (r, p) per measured phase: node of the voltage (-1 ground)
    lo: np.ndarray  # (r, p) its other end
    idx: np.ndarray  # (r, c) node ids of the transformer's conductors (-1 ground)
    cond: np.ndarray  # (r, p) the phase's conductor in the Yprim
    f: np.ndarray  # (r, 34): base_v vreg band ptratio r x ctprim delay tapdelay other-winding
    #   step min max vratio ldc max_tap_change | reverse: vreg band r x threshold_w delay
    #   on first-conductor conductors (of the regulated winding, for its power) | neutral
    #   cogen | inverse-time ldc_z rev_ldc_z vlimit ldc-active | VLimit winding nodes hi lo
    armed: np.ndarray
    value: np.ndarray
    handle: np.ndarray
    queue: np.ndarray  # (r, QMAX)
    qlen: np.ndarray
    ops: np.ndarray
    vact: np.ndarray  # scratch: the control voltages of one sample
    due: np.ndarray  # scratch (r, QMAX): the actions due at one sample
    nph: np.ndarray  # (r,) measured phases
    sel: np.ndarray  # (r,) 0 one phase, 1 the highest, 2 the lowest voltage
    rev: np.ndarray  # (r,) in reverse mode
    rev_t: np.ndarray  # (r,) time of the queued reverse toggle (nan: none)
    pw: np.ndarray  # scratch (r,): forward power of one sample (W)
    vloc: np.ndarray  # scratch (r,): the VLimit voltage of one sample


class Caps(NamedTuple):
    """CapControls: settings, monitored-line sensors and time-mode state."""

    stamp: np.ndarray
    typ: np.ndarray  # 0 kvar, 1 voltage, 2 current, 3 pf, 4 time
    f: np.ndarray  # (c, 12): on off vmin vmax override delay delay_off dead ptratio ctratio
    #                 kvar_open kvar_more (pf type)
    idx: np.ndarray  # (c, k) monitored line's conductors
    ymon: np.ndarray  # (c, r, k) its Yprim rows of the monitored terminal
    rows: np.ndarray  # (c, r) those rows' conductor positions
    nrows: np.ndarray
    v_node: np.ndarray  # position in the rows of the PT phase
    i_row: np.ndarray  # position in the rows of the CT phase
    armed: np.ndarray
    t_exec: np.ndarray
    value: np.ndarray
    last_open: np.ndarray
    ops: np.ndarray
    vmode: np.ndarray  # 0 the PT phase, 1 mean, 2 max, 3 min (``controls.CapSensor``)
    imode: np.ndarray  # the same for the CT current
    vnext: np.ndarray  # delta bank: row of the next phase (-1 none)
    nct: np.ndarray  # phases of the current modes
    vbus: np.ndarray  # (c, k) voltage-override bus nodes (-1 ground / padding)
    nvb: np.ndarray  # (c,) how many (0: the monitored terminal's PT voltage)


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: no cache of its own
def _at(v: np.ndarray, i: int) -> complex:
    return v[i] if i >= 0 else 0j


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
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


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def restamp_all(st: Stamps) -> None:
    """Recompute every stamp (after taps or states were set from outside)."""
    for s in range(len(st.kind)):
        restamp(st, s)


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: no cache of its own
def _phase(hi: np.ndarray, lo: np.ndarray, nph: int, sel: int, v: np.ndarray) -> int:
    """The measured phase (``hi``/``lo``: one regulator's rows): the PT phase, or the
    highest / lowest voltage."""
    k = 0
    best = abs(_at(v, hi[0]) - _at(v, lo[0]))
    for q in range(1, nph):
        m = abs(_at(v, hi[q]) - _at(v, lo[q]))
        if (sel == 1 and m > best) or (sel == 2 and m < best):
            k, best = q, m
    return k


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def reg_voltages(rg: Regs, st: Stamps, v: np.ndarray) -> None:
    """``rg.vact`` ← |V/ptratio + (R + jX)·I/CT| on the 120 V base of every regulator (LDC
    as OpenDSS; Beckwith's ``|V| − Z·|I|`` with LDC_Z), on the PT phase or the highest /
    lowest phase (see ``controls.reg_control_voltage``); one loop, arrays read once."""
    f, hi, lo, nph, sel, rev = rg.f, rg.hi, rg.lo, rg.nph, rg.sel, rg.rev
    stamp, idx, cond, vact, y, nc = rg.stamp, rg.idx, rg.cond, rg.vact, st.y, st.nc
    for r in range(len(stamp)):
        k = _phase(hi[r], lo[r], nph[r], sel[r], v)
        vc = (_at(v, hi[r, k]) - _at(v, lo[r, k])) / f[r, 13]
        if f[r, 14] != 0.0 and f[r, 31] != 0.0:
            s, c = stamp[r], cond[r, k]
            i_term = 0j
            for j in range(nc[s]):
                node = idx[r, j]
                if node >= 0:
                    i_term += y[s, c, j] * v[node]
            if f[r, 28] == 0.0:
                z = complex(f[r, 18], f[r, 19]) if rev[r] != 0 else complex(f[r, 4], f[r, 5])
                vc += z * i_term / f[r, 6]
            else:
                zm = f[r, 29] if rev[r] != 0 else f[r, 28]
                vc = complex(abs(vc) - abs(i_term / f[r, 6]) * zm, 0.0)
        vact[r] = abs(vc)


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def reg_local(rg: Regs, r: int, v: np.ndarray) -> float:
    """The VLimit voltage (``controls.reg_local_voltage``)."""
    p = rg.f[r]
    if p[14] != 0.0:
        k = _phase(rg.hi[r], rg.lo[r], rg.nph[r], rg.sel[r], v)
        return abs(_at(v, rg.hi[r, k]) - _at(v, rg.lo[r, k])) / p[13]
    return abs(_at(v, int(p[32])) - _at(v, int(p[33]))) / p[3]


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def reg_power(rg: Regs, st: Stamps, r: int, v: np.ndarray) -> float:
    """Forward power (W) out of the regulated winding's terminal (``controls.reg_measure``)."""
    s, p = rg.stamp[r], rg.f[r]
    c0 = int(p[23])
    pw = 0.0
    for c in range(c0, c0 + int(p[24])):
        i = 0j
        for j in range(st.nc[s]):
            node = rg.idx[r, j]
            if node >= 0:
                i += st.y[s, c, j] * v[node]
        pw += (_at(v, rg.idx[r, c]) * np.conj(i)).real
    return -pw


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _rev_sample(rg: Regs, r: int, t_s: float) -> None:
    """OpenDSS's reverse detection (see ``timectl.reverse_sample``)."""
    p = rg.f[r]
    fw = rg.pw[r]
    flip = fw < -p[20] if rg.rev[r] == 0 else fw > p[20]
    if flip and np.isnan(rg.rev_t[r]):
        rg.rev_t[r] = t_s + p[21]
    elif not flip:
        rg.rev_t[r] = np.nan


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _rev_due(rg: Regs, r: int, t: float) -> bool:
    """Toggle reverse mode if its queued action is due by ``t``; whether it was."""
    if not np.isnan(rg.rev_t[r]) and rg.rev_t[r] <= t:
        rg.rev[r] = 1 - rg.rev[r]
        rg.rev_t[r] = np.nan
        return True
    return False


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _pending(rg: Regs, r: int, vact: float, tap: float) -> tuple[int, bool]:
    """(taps, needed) of one sample (``controls.reg_wants``; VLimit on ``rg.vloc``)."""
    p = rg.f[r]
    rev_set = rg.rev[r] != 0
    vreg, band = (p[16], p[17]) if rev_set else (p[1], p[2])
    rev = rev_set and p[26] == 0.0  # reverse mode proper (cogen regulates forward)
    if rev:
        vact = vact / tap
    over = p[30] > 0.0 and rg.vloc[r] > p[30]
    if abs(vreg - vact) <= band / 2.0 and not over:
        return 0, False
    boost = (p[30] - rg.vloc[r]) if over else (vreg - vact)
    n = int(np.rint(boost * p[3] / p[0] / p[10]))
    return (-n if (p[9] != 0.0 or rev) else n), True


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _delay(rg: Regs, r: int, vact: float, tap: float) -> float:
    """Delay before the first tap, inverse-time or not (``controls.reg_delay``)."""
    p = rg.f[r]
    if p[27] == 0.0:
        return p[7]
    if rg.rev[r] != 0 and p[26] == 0.0:
        vact = vact / tap
    x = 2.0 * abs(p[1] - vact) / p[2]
    return p[7] / min(10.0, x) if x > 0.0 else np.inf


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
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


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
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


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _qpush(rg: Regs, r: int, t: float) -> None:
    if rg.qlen[r] < QMAX:
        rg.queue[r, rg.qlen[r]] = t
        rg.qlen[r] += 1


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _to_neutral(tap: float, step: float) -> int:
    """Signed taps to the neutral tap 1.0 (``controls.neutral_taps``)."""
    if abs(tap - 1.0) <= 1e-9:
        return 0
    return int(np.rint((1.0 - tap) / step))


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def _reg_arm(rg: Regs, r: int, t_s: float, tap: float, vact: float) -> None:
    """The sample proper: the pending change, arming or cancelling the first action."""
    p = rg.f[r]
    if p[15] == 0.0:  # max_tap_change 0: no sample (OpenDSS exits with nothing pending)
        rg.value[r] = 0
        return
    if p[25] != 0.0 and p[22] != 0.0 and rg.rev[r] != 0:
        # reverse neutral: head for tap 1.0 unless armed, no band check
        if not rg.armed[r]:
            rg.value[r] = _to_neutral(tap, p[10])
            if rg.value[r] != 0:
                _qpush(rg, r, t_s + p[8])
                rg.armed[r] = 1
        return
    n, needed = _pending(rg, r, vact, tap)
    rg.value[r] = n
    if not needed:
        if rg.armed[r]:
            _qremove(rg, r, rg.handle[r])
        rg.armed[r] = 0
        return
    movable = (n > 0 and tap < p[12] - 1e-9) or (n < 0 and tap > p[11] + 1e-9)
    if movable and not rg.armed[r]:
        rg.handle[r] = t_s + _delay(rg, r, vact, tap)
        _qpush(rg, r, rg.handle[r])
        rg.armed[r] = 1


@njit(nogil=True, error_model="numpy", inline="always", **NO_RT)  # inlined: no cache
def reg_sample(rg: Regs, st: Stamps, r: int, t_s: float, vact: float) -> bool:
    """One time-mode sample of RegControl ``r`` then its due actions; True if a tap moved.
    (Rules: see ``TimeControls._reg`` in :mod:`.timectl`.)"""
    p = rg.f[r]
    s, w = rg.stamp[r], rg.wind[r]
    if p[22] != 0.0:
        _rev_sample(rg, r, t_s)
    _reg_arm(rg, r, t_s, st.taps[s, w], vact)
    acted = False
    for q in range(_due(rg, r, t_s)):
        t = rg.due[r, q]
        if _rev_due(rg, r, t):  # the reverse action comes first
            acted = True
        _qremove(rg, r, t)
        if rg.value[r] == 0:
            rg.armed[r] = 0
            continue
        step = 1 if rg.value[r] > 0 else -1
        old = st.taps[s, w]
        new = min(max(old + step * p[10], p[11]), p[12])
        if abs(new - old) > 1e-9:  # not a rounding move at a limit (no new tap)
            st.taps[s, w] = new
            restamp(st, s)
            rg.ops[r] += 1
            acted = True
        rg.value[r] -= step
        if rg.value[r] != 0:
            _qpush(rg, r, t_s + p[8])
        else:
            rg.armed[r] = 0
    if _rev_due(rg, r, t_s + 1e-6):
        acted = True
    return acted


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def cap_measure(cp: Caps, c: int, v: np.ndarray) -> tuple[float, float, float, float, float]:
    """kvar through the monitored terminal, PT voltage, CT current, pf (0..2 scale) and the
    voltage-override voltage (the VBus's, else the PT voltage)."""
    k = cp.idx.shape[1]
    idx = cp.idx[c]
    s_va = 0j
    i_ct = 0.0
    i_sum, i_max, i_min = 0.0, 0.0, 1e300
    v_sum, v_max, v_min = 0.0, 0.0, 1e300
    for q in range(cp.nrows[c]):
        i = 0j
        for j in range(k):
            i += cp.ymon[c, q, j] * _at(v, idx[j])
        vq = _at(v, idx[cp.rows[c, q]])
        s_va += vq * np.conj(i)
        if q == cp.i_row[c]:
            i_ct = abs(i)
        if q < cp.nct[c]:
            i_sum, i_max, i_min = i_sum + abs(i), max(i_max, abs(i)), min(i_min, abs(i))
        v_sum, v_max, v_min = v_sum + abs(vq), max(v_max, abs(vq)), min(v_min, abs(vq))
    p = cp.f[c]
    volt = _pick(cp.vmode[c], v_sum / cp.nrows[c], v_max, v_min, 0.0)
    if cp.vmode[c] == 0:
        vk = _at(v, idx[cp.rows[c, cp.v_node[c]]])
        nx = cp.vnext[c]
        volt = abs(vk - _at(v, idx[cp.rows[c, nx]])) if nx >= 0 else abs(vk)
    i_ct = _pick(cp.imode[c], i_sum / max(cp.nct[c], 1), i_max, i_min, i_ct)
    mag = abs(s_va)
    pf = abs(s_va.real) / mag if mag != 0.0 else 1.0
    if s_va.imag < 0.0:
        pf = 2.0 - pf
    vover = _vbus_voltage(cp, c, v) if cp.nvb[c] > 0 else volt
    return s_va.imag / 1e3, volt / p[8], i_ct / p[9], pf, vover / p[8]


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _vbus_voltage(cp: Caps, c: int, v: np.ndarray) -> float:
    """The PT voltage read on the voltage-override bus (``controls._pt_voltage``)."""
    n = cp.nvb[c]
    v_sum, v_max, v_min = 0.0, 0.0, 1e300
    for q in range(n):
        a = abs(_at(v, cp.vbus[c, q]))
        v_sum, v_max, v_min = v_sum + a, max(v_max, a), min(v_min, a)
    if cp.vmode[c] != 0:
        return _pick(cp.vmode[c], v_sum / n, v_max, v_min, 0.0)
    vk = _at(v, cp.vbus[c, min(cp.v_node[c], n - 1)])
    nx = cp.vnext[c]
    return abs(vk - _at(v, cp.vbus[c, nx])) if nx >= 0 else abs(vk)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _pick(mode: int, mean: float, hi: float, lo: float, one: float) -> float:
    if mode == 1:
        return mean
    if mode == 2:
        return hi
    if mode == 3:
        return lo
    return one


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def time_of_day(t_s: float) -> float:
    """OpenDSS's time of day (h) of ``t_s`` (see ``controls.time_of_day``)."""
    h = int(np.floor(t_s / 3600.0 + 1e-9))
    sec = max(t_s - h * 3600.0, 0.0)
    if h > 24:
        h -= ((h - 1) // 24) * 24
    tod = h + sec / 3600.0
    return tod - 24.0 if tod - 24.0 > 1e-9 else tod


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _thresholds(cp: Caps, c: int, m: tuple[float, float, float, float, float],
                tod: float) -> tuple[bool, bool, bool]:  # fmt: skip
    """(on, off, more) of one sample (see ``controls.cap_thresholds``)."""
    p, typ = cp.f[c], cp.typ[c]
    lo, hi = p[0], p[1]
    if typ == 4:
        if hi > lo:
            on, off = lo <= tod < hi, tod >= hi or tod < lo
        else:
            on, off = lo <= tod < 24.0, hi <= tod < lo
        return on, off, on
    x = m[typ]
    if typ == 1:
        return x < lo, x > hi, x < lo
    if typ == 3:
        return x < lo and m[0] > p[10], x > hi, x < lo and m[0] > p[11]
    return x > lo, x < hi, x > lo


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _cap_decide(cp: Caps, c: int, m: tuple[float, float, float, float, float], closed: bool,
                avail: int, tod: float) -> tuple[int, bool]:  # fmt: skip
    """OpenDSS CapControl sample (see ``controls.cap_sample``)."""
    p, typ = cp.f[c], cp.typ[c]
    vv = m[4]
    if p[4] != 0.0 and typ != 1:
        if not closed and vv < p[2]:
            return CLOSE, True
        if closed and vv > p[3]:
            return OPEN, True
    on, off, more = _thresholds(cp, c, m, tod)
    if not closed:
        return (CLOSE, True) if on else (0, False)
    pending = 0 if typ == 1 else cp.value[c]
    if off:
        return OPEN, True
    if avail > 0:
        return (CLOSE, True) if more else (pending, False)
    return 0, False


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
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


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def cap_sample(cp: Caps, st: Stamps, c: int, t_s: float, v: np.ndarray) -> bool:
    """One time-mode sample of CapControl ``c`` then its armed action if due."""
    s = cp.stamp[c]
    p, armed, state, ns = cp.f[c], cp.armed, st.state, st.nsteps[s]
    n_on = 0
    for k in range(ns):
        n_on += state[s, k]
    closed, avail = n_on > 0, ns - n_on
    value, should = _cap_decide(cp, c, cap_measure(cp, c, v), closed, avail, time_of_day(t_s))
    cp.value[c] = value
    if should and not armed[c]:
        delay = p[6]
        if value == CLOSE:
            since = t_s - cp.last_open[c]
            delay = p[5]
            if since < p[7]:
                delay = max(p[5], p[7] + p[5] - since)
        armed[c], cp.t_exec[c] = 1, t_s + delay
    if armed[c] and value == 0:
        armed[c] = 0
    if not (armed[c] and cp.t_exec[c] <= t_s + 1e-6):
        return False
    armed[c] = 0
    return _cap_act(cp, st, c, t_s)


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: no cache of its own
def _idle(f: np.ndarray, qlen: np.ndarray, armed: np.ndarray, rev: np.ndarray,
          rev_t: np.ndarray, r: int) -> bool:  # fmt: skip
    """Whether a sample of regulator ``r`` can only find it in or out of band: no queued
    or armed action, no reverse detection or pending toggle, no VLimit, forward mode."""
    return (
        qlen[r] == 0 and armed[r] == 0 and rev[r] == 0 and f[r, 22] == 0.0
        and f[r, 15] != 0.0 and f[r, 30] <= 0.0 and np.isnan(rev_t[r])
    )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def sample_all(rg: Regs, cp: Caps, st: Stamps, t_s: float, v: np.ndarray) -> bool:
    """Sample every control at ``t_s`` (regulators first, as the Python runner)."""
    acted = False
    f, vact, value = rg.f, rg.vact, rg.value
    qlen, armed, rev, rev_t = rg.qlen, rg.armed, rg.rev, rg.rev_t
    reg_voltages(rg, st, v)
    nr, nc = len(rg.stamp), len(cp.stamp)
    for r in range(nr):
        rg.pw[r] = reg_power(rg, st, r, v) if f[r, 22] != 0.0 else 0.0
        rg.vloc[r] = reg_local(rg, r, v) if f[r, 30] > 0.0 else 0.0
    for r in range(nr):
        if _idle(f, qlen, armed, rev, rev_t, r) and abs(f[r, 1] - vact[r]) <= f[r, 2] / 2.0:
            value[r] = 0  # in band, nothing queued or armed: reg_sample would only do this
        elif reg_sample(rg, st, r, t_s, vact[r]):
            acted = True
    for c in range(nc):
        if cap_sample(cp, st, c, t_s, v):
            acted = True
    return acted
