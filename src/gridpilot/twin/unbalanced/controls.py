"""Regulator (RegControl) and capacitor (CapControl) logic, as OpenDSS applies it.

A regulator reads its winding's voltage on the PT secondary (``V / ptratio``), adds the
line-drop compensator's ``(R + jX)·I / CTprimary`` (current into the terminal, so this is
``V − Z·I_load``) and asks for ``round(boost / step)`` taps when outside ``vreg ± band/2``.
In static (snapshot) mode it moves 70 % of the way, at least one tap and at most
``max_tap_change``; in time series one tap per ``tapdelay`` after ``delay``. A capacitor
control of type kvar, voltage, current, pf or time closes/opens one step past its ON/OFF
settings (with voltage override), after ``delay``/``delay_off``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import UnknownComponentError
from gridpilot.model.threephase import ThreePhaseGrid, branch_yprim
from gridpilot.model.threephase.elements import CapControl, RegControl
from gridpilot.model.threephase.yprim import winding_base_v
from gridpilot.twin.unbalanced.network import Network

CLOSE, OPEN = 1, -1
CAP_TYPES = ("kvar", "voltage", "current", "pf", "time")  # the modelled CapControl types


@dataclass
class RegSensor:
    """Where a regulator measures: winding nodes, its conductor in the Yprim, its base."""

    ctl: RegControl
    xf: str
    hi: int  # node index of the measured phase conductor (-1 ground)
    lo: int  # node index of the winding's other end
    cond: int  # conductor position of the measured phase in the transformer's Yprim
    base_v: float


@dataclass
class CapSensor:
    """Where a capacitor control measures: the monitored element's terminal."""

    ctl: CapControl
    cap: str
    idx: np.ndarray  # node indices of the monitored element's conductors
    rows: np.ndarray  # its Yprim rows of the monitored terminal
    v_node: int  # node measured for voltage (pt_phase of the terminal)
    i_row: int  # row of the ct_phase conductor within ``rows``
    kvar_open: float = 0.0  # pf type: kvar above which an open bank may close
    kvar_more: float = 0.0  # pf type: kvar above which a closed bank adds a step


def reg_sensors(grid: ThreePhaseGrid, net: Network) -> list[RegSensor]:
    """One sensor per enabled regulator control."""
    out = []
    for r in grid.regcontrols:
        if not r.enabled:
            continue
        t = grid.transformer(r.transformer)
        w = r.winding - 1
        p = t.phases
        k = min(max(r.pt_phase, 1), p) - 1
        st = net.xf_stamps[t.name.lower()]
        nc = p + 1
        conn = t.windings[w].conn
        step = 1 if t.lead_lag == "lead" else -1
        lo_c = p if (conn == "wye" or p == 1) else (k + step) % p
        hi_i, lo_i = int(st.idx[w * nc + k]), int(st.idx[w * nc + lo_c])
        out.append(RegSensor(r, t.name.lower(), hi_i, lo_i, w * nc + k, winding_base_v(t, w)))
    return out


def _branch_by_name(grid: ThreePhaseGrid, element: str) -> object:
    cls, _, name = element.partition(".")
    for b in grid.branches:
        if b.name.lower() == name and (cls in ("line", b.kind)):
            return b
    raise UnknownComponentError("capcontrol element", element, "only lines are monitored")


def cap_sensors(grid: ThreePhaseGrid, net: Network) -> list[CapSensor]:
    """One sensor per enabled capacitor control of a modelled type."""
    out = []
    for c in grid.capcontrols:
        if not c.enabled or c.type not in CAP_TYPES:
            continue
        b = _branch_by_name(grid, c.element)
        idx = net.terminal_idx([b.t1, b.t2])  # type: ignore[attr-defined]
        n = b.phases  # type: ignore[attr-defined]
        rows = np.arange(n) + (c.terminal - 1) * n
        pk = min(max(c.pt_phase, 1), n) - 1
        ck = min(max(c.ct_phase, 1), n) - 1
        kv = _bank_kvar(grid, c.capacitor)
        out.append(CapSensor(c, c.capacitor, idx, rows, int(idx[rows[pk]]), ck,
                             sum(kv) * c.pf_min_kvar_pct / 100.0, sum(kv) / len(kv) * 0.5))  # fmt: skip
    return out


def _bank_kvar(grid: ThreePhaseGrid, name: str) -> list[float]:
    for cap in grid.capacitors:
        if cap.name.lower() == name:
            return list(cap.kvar) or [0.0]
    return [0.0]


def time_of_day(t_s: float) -> float:
    """OpenDSS's time of day (h) of ``t_s`` seconds since the start (``NormalizeToTOD``):
    hours past 24 fold to 1..24, then a time just above 24:00 wraps to 0:00."""
    h = math.floor(t_s / 3600.0 + 1e-9)
    sec = max(t_s - h * 3600.0, 0.0)
    if h > 24:
        h -= ((h - 1) // 24) * 24
    tod = h + sec / 3600.0
    return tod - 24.0 if tod - 24.0 > 1e-9 else tod


def pf_1to2(s_va: np.ndarray) -> np.ndarray:
    """OpenDSS's power factor on its 0..2 scale: |P|/|S|, ``2 − pf`` when Q < 0 (leading);
    1 for no flow."""
    mag = np.abs(s_va)
    pf = np.where(mag != 0.0, np.abs(s_va.real) / np.where(mag != 0.0, mag, 1.0), 1.0)
    return np.where(s_va.imag < 0.0, 2.0 - pf, pf)


def _v(v: np.ndarray, i: int) -> np.ndarray:
    return v[i] if i >= 0 else np.zeros(v.shape[1:], complex)


def reg_control_voltage(s: RegSensor, net: Network, v: np.ndarray) -> np.ndarray:
    """The regulator's control voltage |V/ptratio + Z·I/CT| (V on the 120 V base), per step."""
    vw = _v(v, s.hi) - _v(v, s.lo)
    vc = vw / s.ctl.ptratio
    if s.ctl.r_v or s.ctl.x_v:
        st = net.xf_stamps[s.xf]
        keep = st.idx >= 0
        i_term = st.y[s.cond, keep] @ v[st.idx[keep]]
        vc = vc + complex(s.ctl.r_v, s.ctl.x_v) * i_term / s.ctl.ctprim_a
    return np.abs(vc)


def reg_pending_taps(s: RegSensor, tap: float, step: float, vact: float) -> int:
    """Signed number of taps OpenDSS's RegControl asks for (0 inside the band)."""
    if abs(s.ctl.vreg_v - vact) <= s.ctl.band_v / 2.0:
        return 0
    boost = (s.ctl.vreg_v - vact) * s.ctl.ptratio / s.base_v
    n = round(boost / step)
    if s.ctl.tap_winding != s.ctl.winding:
        n = -n
    return int(n)


def static_tap_move(pending: int, max_change: int) -> int:
    """Taps moved in one static-mode action: 70 % of the way, at least one, at most max."""
    if pending == 0:
        return 0
    k = min(max(math.trunc(0.7 * abs(pending)), 1), max_change)
    return k if pending > 0 else -k


def cap_measure(s: CapSensor, net: Network, v: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """kvar through the monitored terminal, the PT voltage and the CT current, per step."""
    vt = np.where((s.idx >= 0)[:, None], v[np.maximum(s.idx, 0)], 0.0)
    i = y[s.rows] @ vt
    s_va = np.sum(vt[s.rows] * np.conj(i), axis=0)
    return {
        "kvar": s_va.imag / 1e3,
        "pf": pf_1to2(s_va),
        "voltage": np.abs(_v(v, s.v_node)) / s.ctl.ptratio,
        "current": np.abs(i[s.i_row]) / s.ctl.ctratio,
    }


def cap_thresholds(s: CapSensor, m: dict[str, float]) -> tuple[bool, bool, bool]:
    """(on, off, more) of one sample: close an open bank, open a closed one, add a step to
    a closed one. ``m``: the measures, with ``tod`` (time of day, h) for the time type."""
    ctl, typ = s.ctl, s.ctl.type
    lo, hi = ctl.on_setting, ctl.off_setting
    if typ == "time":
        t = m.get("tod", 0.0)
        if hi > lo:
            on, off = lo <= t < hi, t >= hi or t < lo
        else:  # OFF time is the next day
            on, off = lo <= t < 24.0, hi <= t < lo
        return on, off, on
    x = m[typ]
    if typ == "voltage":
        return x < lo, x > hi, x < lo
    if typ == "pf":
        q = m["kvar"]
        return x < lo and q > s.kvar_open, x > hi, x < lo and q > s.kvar_more
    return x > lo, x < hi, x > lo


def cap_sample(
    s: CapSensor, m: dict[str, float], closed: bool, available: int, pending: int
) -> tuple[int, bool]:
    """One OpenDSS CapControl sample: the pending change (CLOSE, OPEN or 0) and whether the
    control should switch. ``m``: kvar, pf, voltage, current as measured (and ``tod``);
    ``pending`` the change left from the last sample (kept where OpenDSS keeps it)."""
    ctl = s.ctl
    v = m["voltage"]
    if ctl.volt_override and ctl.type != "voltage":
        if not closed and v < ctl.vmin_v:
            return CLOSE, True
        if closed and v > ctl.vmax_v:
            return OPEN, True
    on, off, more = cap_thresholds(s, m)
    if not closed:
        return (CLOSE, True) if on else (0, False)
    if ctl.type == "voltage":
        pending = 0
    if off:
        return OPEN, True
    if available > 0:
        return (CLOSE, True) if more else (pending, False)
    return 0, False


def monitored_yprim(grid: ThreePhaseGrid, s: CapSensor) -> np.ndarray:
    """The monitored line's primitive Y."""
    return branch_yprim(_branch_by_name(grid, s.ctl.element))  # type: ignore[arg-type]
