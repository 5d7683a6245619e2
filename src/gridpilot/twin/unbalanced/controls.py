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

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model.threephase import ThreePhaseGrid, branch_yprim
from gridpilot.model.threephase.elements import (
    PT_AVG,
    PT_MAX,
    PT_MIN,
    Capacitor,
    CapControl,
    RegControl,
)
from gridpilot.model.threephase.yprim import winding_base_v
from gridpilot.twin.unbalanced.network import Network

CLOSE, OPEN = 1, -1
CAP_TYPES = ("kvar", "voltage", "current", "pf", "time")  # the modelled CapControl types


@dataclass
class RegSensor:
    """Where a regulator measures: per phase the two nodes of its voltage (the winding's,
    or the remote bus's to ground / to the next phase) and its conductor in the Yprim."""

    ctl: RegControl
    xf: str
    his: np.ndarray  # (p,) node index of each phase's measured conductor (-1 ground)
    los: np.ndarray  # (p,) node index of the voltage's other end
    conds: np.ndarray  # (p,) conductor of each phase in the transformer's Yprim
    base_v: float
    select: int = 0  # 0: phase ``his[0]`` only, 1: the highest, 2: the lowest phase voltage
    vratio: float = 60.0  # PT ratio of the measured voltage (remote_ptratio for a remote bus)
    ldc: bool = True  # line-drop compensation (off for a remote bus)
    nph: int = 1  # the transformer's phases
    loc_hi: int = -1  # the regulated winding's phase-1 voltage (VLimit with a remote bus)
    loc_lo: int = -1


@dataclass
class CapSensor:
    """Where a capacitor control measures: the monitored element's terminal."""

    ctl: CapControl
    cap: str
    idx: np.ndarray  # node indices of the monitored element's conductors
    rows: np.ndarray  # its Yprim rows of the monitored terminal
    v_row: int  # position in ``rows`` of the pt_phase conductor
    i_row: int  # position in ``rows`` of the ct_phase conductor
    kvar_open: float = 0.0  # pf type: kvar above which an open bank may close
    kvar_more: float = 0.0  # pf type: kvar above which a closed bank adds a step
    v_mode: int = 0  # 0 the pt phase, 1 mean, 2 highest, 3 lowest of the terminal's phases
    i_mode: int = 0  # the same for the current over the bank's phases
    v_next: int = -1  # delta bank: position of the next phase (line-to-line PT voltage)
    n_ct: int = 1  # phases the current modes look at (the bank's, at most the terminal's)
    vbus: np.ndarray | None = None  # voltage-override bus nodes (the bank's phases), if any


def reg_sensors(grid: ThreePhaseGrid, net: Network) -> list[RegSensor]:
    """One sensor per enabled regulator control."""
    out = []
    for r in grid.regcontrols:
        if not r.enabled:
            continue
        t = grid.transformer(r.transformer)
        w = r.winding - 1
        p, nc = t.phases, t.phases + 1
        st = net.xf_stamps[t.name.lower()]
        conn = t.windings[w].conn
        step = 1 if t.lead_lag == "lead" else -1
        wye = conn == "wye" or p == 1
        other = [p if wye else (k + step) % p for k in range(p)]
        if r.bus:
            nodes = _remote_nodes(r, net, p)
            his = np.array(nodes, np.int64)
            los = np.array([-1 if wye else nodes[other[k]] for k in range(p)], np.int64)
        else:
            his = np.array([st.idx[w * nc + k] for k in range(p)], np.int64)
            los = np.array([st.idx[w * nc + other[k]] for k in range(p)], np.int64)
        conds = np.arange(p, dtype=np.int64) + w * nc
        select = {PT_MAX: 1, PT_MIN: 2}.get(r.pt_phase, 0)
        if select == 0:  # one phase: keep only it
            k = min(max(r.pt_phase, 1), p) - 1
            his, los, conds = his[k : k + 1], los[k : k + 1], conds[k : k + 1]
        vratio = r.remote_ptratio if r.bus else r.ptratio
        loc = (int(st.idx[w * nc]), int(st.idx[w * nc + other[0]]))
        out.append(RegSensor(r, t.name.lower(), his, los, conds, winding_base_v(t, w), select,
                             vratio, not r.bus, p, *loc))  # fmt: skip
    return out


def _remote_nodes(r: RegControl, net: Network, p: int) -> list[int]:
    """Node indices of a remote regulated bus ``name.n1.n2...`` (nodes 1..p by default)."""
    return bus_nodes(r.bus, net, p, f"regcontrol {r.name} bus")


def bus_nodes(bus: str, net: Network, p: int, what: str) -> list[int]:
    """Node indices of the first ``p`` nodes of ``name.n1.n2...`` (nodes 1..p by default)."""
    name, *spec = bus.split(".")
    nodes = [int(x) for x in spec if x.isdigit()] or list(range(1, p + 1))
    out = []
    for n in nodes[:p]:
        if (name, n) not in net.index:
            raise UnknownComponentError(what, f"{name}.{n}", "no such node")
        out.append(int(net.index[(name, n)]))
    if len(out) < p:
        raise ValidationError(f"{what}: {bus!r} has fewer than {p} nodes")
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
        cap = _bank(grid, c.capacitor)
        kv = list(cap.kvar) or [0.0] if cap else [0.0]
        nb = min(cap.phases if cap else n, n)
        delta = cap is not None and cap.conn == "delta" and c.pt_phase > 0
        vbus = None
        if c.vbus:
            what = f"capcontrol {c.name} vbus"
            vbus = np.array(bus_nodes(c.vbus, net, cap.phases if cap else n, what), np.int64)
        out.append(CapSensor(c, c.capacitor, idx, rows, pk, ck,
                             sum(kv) * c.pf_min_kvar_pct / 100.0, sum(kv) / len(kv) * 0.5,
                             _MODES.get(c.pt_phase, 0), _MODES.get(c.ct_phase, 0),
                             (pk + 1) % nb if delta else -1, nb, vbus))  # fmt: skip
    return out


_MODES = {PT_AVG: 1, PT_MAX: 2, PT_MIN: 3}


def _bank(grid: ThreePhaseGrid, name: str) -> Capacitor | None:
    return next((c for c in grid.capacitors if c.name.lower() == name), None)


def _phase_pick(x: np.ndarray, mode: int, k: int) -> np.ndarray:
    """Row ``k`` of ``x`` (phases × steps), or the mean / max / min over the phases."""
    if mode == 1:
        return np.asarray(x.mean(axis=0))
    if mode == 2:
        return np.asarray(x.max(axis=0))
    if mode == 3:
        return np.asarray(x.min(axis=0))
    return np.asarray(x[k])


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


def _picked(s: RegSensor, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The measured phase's voltage over the PT ratio per step, and which phase it is."""
    vw = np.stack([_v(v, h) - _v(v, lo) for h, lo in zip(s.his, s.los, strict=True)])
    cols = np.arange(v.shape[1])
    pick = np.zeros(v.shape[1], np.int64)
    if s.select == 1:
        pick = np.argmax(np.abs(vw), axis=0)
    elif s.select == 2:
        pick = np.argmin(np.abs(vw), axis=0)
    return vw[pick, cols] / s.vratio, pick


def ldc_active(c: RegControl) -> bool:
    """OpenDSS's LDCActive: forward R or X set, or a positive LDC_Z."""
    return bool(c.r_v or c.x_v or c.ldc_z_v > 0)


def reg_control_voltage(
    s: RegSensor, net: Network, v: np.ndarray, reverse: bool = False
) -> np.ndarray:
    """The regulator's control voltage |V/ptratio + Z·I/CT| (V on the 120 V base), per step:
    its PT phase, or the highest / lowest phase (whose current then feeds the LDC);
    ``reverse``: with the reverse LDC settings. With LDC_Z set, Beckwith's magnitude form
    ``|V/ptratio| − Z·|I/CT|`` instead."""
    vc, pick = _picked(s, v)
    c = s.ctl
    if s.ldc and ldc_active(c):
        st = net.xf_stamps[s.xf]
        keep = st.idx >= 0
        i_term = st.y[np.ix_(s.conds, keep)] @ v[st.idx[keep]]
        i_ct = i_term[pick, np.arange(v.shape[1])] / c.ctprim_a
        if c.ldc_z_v == 0.0:
            z = complex(c.rev_r_v, c.rev_x_v) if reverse else complex(c.r_v, c.x_v)
            vc = vc + z * i_ct
        else:
            vc = np.abs(vc) - np.abs(i_ct) * (c.rev_ldc_z_v if reverse else c.ldc_z_v)
    return np.abs(vc)


def reg_local_voltage(s: RegSensor, v: np.ndarray) -> np.ndarray:
    """The voltage VLimit compares (120 V base): the measured phase without LDC, or for a
    remote bus the regulated winding's phase 1 over ``ptratio`` (OpenDSS)."""
    if s.ldc:
        return np.abs(_picked(s, v)[0])
    return np.abs(_v(v, s.loc_hi) - _v(v, s.loc_lo)) / s.ctl.ptratio


def reg_measure(s: RegSensor, net: Network, v: np.ndarray) -> np.ndarray:
    """(4, steps): forward control voltage, reverse control voltage, the forward power
    (W, out of the regulated winding's terminal: OpenDSS's ``−Power[terminal].re``) and the
    VLimit voltage."""
    fwd = reg_control_voltage(s, net, v)
    loc = reg_local_voltage(s, v)
    if not watches_reverse(s):
        return np.stack([fwd, fwd, np.zeros_like(fwd), loc])
    st = net.xf_stamps[s.xf]
    keep = st.idx >= 0
    rows = _winding_rows(s)
    i = st.y[np.ix_(rows, keep)] @ v[st.idx[keep]]
    vt = np.stack([_v(v, int(st.idx[c])) for c in rows])
    p = -np.sum(vt * np.conj(i), axis=0).real
    return np.stack([fwd, reg_control_voltage(s, net, v, True), p, loc])


def watches_reverse(s: RegSensor) -> bool:
    """Whether the regulator watches for reverse power (reversible or cogen, not on a
    remote bus, as OpenDSS)."""
    return (s.ctl.reversible or s.ctl.cogen) and s.ldc


def neutral_taps(tap: float, step: float) -> int:
    """Signed taps from ``tap`` to the neutral tap 1.0 (OpenDSS's reverse-neutral move)."""
    if abs(tap - 1.0) <= 1e-9:
        return 0
    return round((1.0 - tap) / step)


def _winding_rows(s: RegSensor) -> np.ndarray:
    """Yprim rows of the regulated winding's conductors (phases and its neutral)."""
    nc = s.nph + 1
    w = s.ctl.winding - 1
    return np.arange(w * nc, (w + 1) * nc)


def reg_pending_taps(
    s: RegSensor, tap: float, step: float, vact: float, reverse: bool = False, cogen: bool = False
) -> int:
    """Signed number of taps OpenDSS's RegControl asks for (0 inside the band); in reverse
    mode on the reverse settings, ``vact`` over the tap, and the other way; in cogen mode on
    the reverse settings, the usual way (VLimit not applied: see :func:`reg_wants`)."""
    return reg_wants(s, tap, step, vact, 0.0, reverse, cogen)[0]


def reg_wants(  # noqa: PLR0913
    s: RegSensor,
    tap: float,
    step: float,
    vact: float,
    vlocal: float,
    reverse: bool = False,
    cogen: bool = False,
) -> tuple[int, bool]:
    """(signed taps, whether a change is needed) of one OpenDSS RegControl sample: needed
    outside the band, or with ``vlocal`` above a VLimit (then the boost is ``vlimit −
    vlocal``); the taps may round to 0 while needed (OpenDSS then keeps an armed action)."""
    c = s.ctl
    rev_set = reverse or cogen
    vreg, band = (c.rev_vreg_v, c.rev_band_v) if rev_set else (c.vreg_v, c.band_v)
    if reverse:
        vact = vact / tap
    over = c.vlimit_v > 0.0 and vlocal > c.vlimit_v
    if abs(vreg - vact) <= band / 2.0 and not over:
        return 0, False
    boost = (c.vlimit_v - vlocal) if over else (vreg - vact)
    n = round(boost * c.ptratio / s.base_v / step)
    if c.tap_winding != c.winding or reverse:
        n = -n
    return int(n), True


def reg_delay(s: RegSensor, vact: float, tap: float, reverse: bool = False) -> float:
    """Delay (s) before the first tap: ``delay_s``, or with inverse time ``delay_s`` over
    ``min(10, 2·|vreg − V|/band)`` on the forward settings (OpenDSS's ComputeTimeDelay; V
    over the tap in reverse mode)."""
    c = s.ctl
    if not c.inverse_time:
        return c.delay_s
    x = 2.0 * abs(c.vreg_v - (vact / tap if reverse else vact)) / c.band_v
    return c.delay_s / min(10.0, x) if x > 0.0 else math.inf


def static_tap_move(pending: int, max_change: int) -> int:
    """Taps moved in one static-mode action: 70 % of the way, at least one, at most max."""
    if pending == 0:
        return 0
    k = min(max(math.trunc(0.7 * abs(pending)), 1), max_change)
    return k if pending > 0 else -k


def _pt_voltage(s: CapSensor, vr: np.ndarray) -> np.ndarray:
    """The PT voltage of phases ``vr`` (phases × steps): the PT phase (line to line for a
    delta bank), or the mean / max / min."""
    if s.v_mode == 0 and s.v_next >= 0:
        return np.asarray(np.abs(vr[s.v_row] - vr[s.v_next]))
    return _phase_pick(np.abs(vr), s.v_mode, min(s.v_row, len(vr) - 1))


def cap_measure(s: CapSensor, net: Network, v: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """kvar through the monitored terminal, the PT voltage, the CT current and the
    voltage-override voltage (the VBus's, else the PT voltage), per step."""
    vt = np.where((s.idx >= 0)[:, None], v[np.maximum(s.idx, 0)], 0.0)
    i = y[s.rows] @ vt
    s_va = np.sum(vt[s.rows] * np.conj(i), axis=0)
    volt = _pt_voltage(s, vt[s.rows]) / s.ctl.ptratio
    vover = volt
    if s.vbus is not None:
        n = min(len(s.vbus), len(s.rows))
        vover = _pt_voltage(s, np.stack([_v(v, int(k)) for k in s.vbus[:n]])) / s.ctl.ptratio
    return {
        "kvar": s_va.imag / 1e3,
        "pf": pf_1to2(s_va),
        "voltage": volt,
        "current": _phase_pick(np.abs(i[: s.n_ct] if s.i_mode else i), s.i_mode, s.i_row)
        / s.ctl.ctratio,
        "vover": vover,
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
    v = m.get("vover", m["voltage"])
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
