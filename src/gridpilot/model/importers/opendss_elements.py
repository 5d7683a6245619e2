"""Turn OpenDSS's resolved element properties into our typed unbalanced elements."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss_invcontrol import invcontrols
from gridpilot.model.threephase.elements import (
    PT_AVG,
    PT_MAX,
    PT_MIN,
    Branch,
    Capacitor,
    CapControl,
    Fuse,
    Load,
    LoadShape,
    RegControl,
    Shunt,
    Source,
    Terminal,
    Transformer,
    Winding,
)
from gridpilot.model.threephase.grid import ThreePhaseGrid

# classes that only define data used by other elements (consumed, nothing to model)
_DEFINITIONS = {
    "linecode", "linegeometry", "linespacing", "wiredata", "cndata", "tsdata", "xfmrcode",
    "loadshape", "growthshape", "tshape", "priceshape", "spectrum", "tcc_curve", "xycurve",
}  # fmt: skip
_HANDLED = {
    "vsource", "line", "reactor", "transformer", "regcontrol", "capacitor", "capcontrol",
    "load", "generator", "pvsystem", "storage", "fuse", "recloser", "relay", "swtcontrol",
    "invcontrol",
}  # fmt: skip
_METERS = {"energymeter", "monitor", "sensor"}


def _bus(spec: str) -> str:
    return str(spec).split(".", 1)[0].lower()


def _f(v: Any, default: float = 0.0) -> float:
    return default if v is None else float(v)


def _spec_nodes(spec: str, n: int) -> list[int]:
    """Nodes written in a bus spec (``bus.1.2``), else 1..n (a disabled element's ends)."""
    parts = str(spec).split(".")[1:]
    return [int(x) for x in parts if x.isdigit()] or list(range(1, n + 1))


def _terms(
    orders: dict[str, list[list[int]]], key: str, buses: list[str], n: int = 3
) -> list[Terminal]:
    nodes = orders.get(key)
    if nodes is None:
        nodes = [_spec_nodes(b, n) for b in buses]
    return [
        Terminal(_bus(b), tuple(int(n) for n in ns)) for b, ns in zip(buses, nodes, strict=False)
    ]


def _matrix(rows: Any, n: int) -> np.ndarray:
    if not rows:
        return np.zeros((n, n))
    return np.asarray(rows, float).reshape(n, n)


def _source(e: dict[str, Any], orders: dict[str, list[list[int]]]) -> Source:
    key = f"vsource.{e['Name'].lower()}"
    z1, z0 = e.get("Z1") or [0.0, 1e-6], e.get("Z0") or [0.0, 1e-6]
    return Source(
        name=e["Name"],
        terminal=_terms(orders, key, [e["Bus1"]])[0],
        kv_ll=_f(e["BasekV"]),
        pu=_f(e["pu"], 1.0),
        angle_deg=_f(e.get("Angle")),
        z1_ohm=complex(z1[0], z1[1]),
        z0_ohm=complex(z0[0], z0[1]),
        phases=int(e.get("Phases") or 3),
    )


def _line(e: dict[str, Any], orders: dict[str, list[list[int]]], f_hz: float) -> Branch:
    key = f"line.{e['Name'].lower()}"
    n = int(e["Phases"])
    length = _f(e.get("Length"), 1.0)
    z = (_matrix(e.get("RMatrix"), n) + 1j * _matrix(e.get("XMatrix"), n)) * length
    c_nf = _matrix(e.get("CMatrix"), n) * length
    t1, t2 = _terms(orders, key, [e["Bus1"], e["Bus2"]], n)
    return Branch(
        name=e["Name"],
        kind="switch" if e.get("Switch") else "line",
        t1=t1,
        t2=t2,
        z_ohm=z,
        y_shunt_s=1j * 2 * math.pi * f_hz * c_nf * 1e-9,
        norm_amps=_f(e.get("NormAmps")),
        emerg_amps=_f(e.get("EmergAmps")),
        enabled=bool(e.get("Enabled", True)),
        closed=not orders.get(key + "#open", [[0]])[0][0],
        length=length,
        length_unit=str(e.get("Units") or "none").lower(),
    )


def _reactor(
    e: dict[str, Any], orders: dict[str, list[list[int]]], yprims: dict[str, np.ndarray]
) -> Branch | Shunt | None:
    """A series reactor (a branch), or a shunt one (bus2 on bus1, or delta): a
    :class:`Shunt` with OpenDSS's own Yprim; None when OpenDSS gave none (warned)."""
    key = f"reactor.{e['Name'].lower()}"
    n = int(e.get("Phases") or 3)
    terms = _terms(orders, key, [e["Bus1"], e.get("Bus2") or e["Bus1"]])
    t1 = terms[0]  # a delta bank has one terminal in OpenDSS: its bus2 side is unused
    t2 = terms[1] if len(terms) > 1 else Terminal(t1.bus, (0,) * len(t1.nodes))
    if len(terms) == 1 or t2.bus == t1.bus:
        y = yprims.get(key)
        if y is None or y.shape[0] != sum(len(t.nodes) for t in terms):
            return None
        return Shunt(e["Name"], "reactor", terms, y, bool(e.get("Enabled", True)))
    z = complex(_f(e.get("R")), _f(e.get("X")))
    return Branch(
        name=e["Name"],
        kind="reactor",
        t1=t1,
        t2=t2,
        z_ohm=np.eye(n) * z,
        y_shunt_s=np.zeros((n, n), complex),
        norm_amps=_f(e.get("NormAmps")),
        emerg_amps=_f(e.get("EmergAmps")),
        enabled=bool(e.get("Enabled", True)),
    )


def _transformer(e: dict[str, Any], orders: dict[str, list[list[int]]]) -> Transformer:
    key = f"transformer.{e['Name'].lower()}"
    buses = e.get("Buses") or e.get("Bus")
    if buses is None:
        raise ValidationError(f"{key}: Buses: no buses given, got {buses!r}")
    terms = _terms(orders, key, buses)
    nw = len(buses)

    def col(k: str, default: float) -> list[float]:
        v = e.get(k) or [default] * nw
        return [float(x) for x in v]

    kvs, kvas, rs, taps = (
        col("kVs", 12.47),
        col("kVAs", 1000.0),
        col("pctRs", 0.0),
        col("Taps", 1.0),
    )
    mins, maxs, nts = col("MinTap", 0.9), col("MaxTap", 1.1), col("NumTaps", 32)
    conns = e.get("Conns") or ["wye"] * nw
    ws = [
        Winding(
            terms[i],
            str(conns[i]).lower(),
            kvs[i],
            kvas[i],
            rs[i],
            taps[i],
            mins[i],
            maxs[i],
            int(nts[i]),
        )
        for i in range(nw)
    ]
    return Transformer(
        name=e["Name"],
        phases=int(e["Phases"]),
        windings=ws,
        xsc_pct=[float(x) for x in (e.get("XSCArray") or [e.get("XHL", 7.0)])],
        imag_pct=_f(e.get("pctIMag")),
        noloadloss_pct=_f(e.get("pctNoLoadLoss")),
        ppm_antifloat=_f(e.get("ppm_Antifloat"), 1.0),
        norm_hkva=_f(e.get("NormHkVA")),
        lead_lag=str(e.get("LeadLag") or "lag").lower(),
        enabled=bool(e.get("Enabled", True)),
    )


def _phase(v: Any, what: str, warn: list[str]) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        warn.append(f"{what}: phase selection {v!r} is modelled as phase 1")
        return 1


def _pt_phase(v: Any, what: str, warn: list[str], avg: bool = False) -> int:
    """A phase number, or max/min (and avg for capacitor controls)."""
    key = str(v).lower()
    modes = {"max": PT_MAX, "min": PT_MIN, **({"avg": PT_AVG} if avg else {})}
    return modes[key] if key in modes else _phase(v, what, warn)


def _regcontrol(e: dict[str, Any], warn: list[str]) -> RegControl:
    what = f"regcontrol.{e['Name']}"
    mtc = e.get("MaxTapChange")
    return RegControl(
        name=e["Name"],
        transformer=str(e["Transformer"]).lower(),
        winding=int(e.get("Winding") or 1),
        vreg_v=_f(e.get("VReg"), 120.0),
        band_v=_f(e.get("Band"), 3.0),
        ptratio=_f(e.get("PTRatio"), 60.0),
        ctprim_a=_f(e.get("CTPrim"), 300.0),
        r_v=_f(e.get("R")),
        x_v=_f(e.get("X")),
        delay_s=_f(e.get("Delay"), 15.0),
        tapdelay_s=_f(e.get("TapDelay"), 2.0),
        max_tap_change=16 if mtc is None else int(mtc),
        pt_phase=_pt_phase(e.get("PTPhase", 1), what, warn),
        tap_winding=int(e.get("TapWinding") or e.get("Winding") or 1),
        bus=str(e.get("Bus") or "").lower(),
        remote_ptratio=_f(e.get("RemotePTRatio"), _f(e.get("PTRatio"), 60.0)),
        reversible=bool(e.get("Reversible")),
        rev_vreg_v=_f(e.get("RevVReg"), 120.0),
        rev_band_v=_f(e.get("RevBand"), 3.0),
        rev_r_v=_f(e.get("RevR")),
        rev_x_v=_f(e.get("RevX")),
        rev_threshold_kw=_f(e.get("RevThreshold"), 100.0),
        rev_delay_s=_f(e.get("RevDelay"), 60.0),
        rev_neutral=bool(e.get("RevNeutral")),
        cogen=bool(e.get("Cogen")),
        inverse_time=bool(e.get("InverseTime")),
        ldc_z_v=_f(e.get("LDC_Z")),
        rev_ldc_z_v=_f(e.get("Rev_Z") or e.get("rev_Z")),
        vlimit_v=_f(e.get("VLimit")),
        enabled=bool(e.get("Enabled", True)),
    )


def _capacitor(e: dict[str, Any], orders: dict[str, list[list[int]]]) -> Capacitor:
    key = f"capacitor.{e['Name'].lower()}"
    terms = _terms(orders, key, [e["Bus1"], e.get("Bus2") or e["Bus1"]])
    t1 = terms[0]  # a delta bank has one terminal in OpenDSS: its bus2 side is unused
    t2 = terms[1] if len(terms) > 1 else Terminal(t1.bus, (0,) * len(t1.nodes))
    kvar = [float(x) for x in (e.get("kvar") or [0.0])]
    states = [int(x) for x in (e.get("States") or [1] * len(kvar))]
    return Capacitor(
        name=e["Name"],
        t1=t1,
        t2=t2,
        conn=str(e.get("Conn") or "wye").lower(),
        kv=_f(e.get("kV"), 12.47),
        kvar=kvar,
        states=states,
        phases=int(e.get("Phases") or 3),
        enabled=bool(e.get("Enabled", True)),
    )


_CAP_TYPES = {"kvar": "kvar", "voltage": "voltage", "current": "current", "time": "time",
              "pf": "pf", "powerfactor": "pf"}  # fmt: skip


def _pf_range2(v: float) -> float:
    """OpenDSS's PF setting on its 0..2 scale: a negative (leading) pf becomes ``2 + pf``."""
    return 2.0 + v if v < 0 else v


def _vbus(e: dict[str, Any], orders: dict[str, list[list[int]]], what: str, warn: list[str]) -> str:
    """The voltage-override bus as ``name.n1.n2...`` in OpenDSS's node order of the bus (a
    bus OpenDSS does not find: none, the terminal is used, as OpenDSS reverts)."""
    name = str(e.get("VBus") or "").lower()
    if not name:
        return ""
    nodes = orders.get(f"bus:{name}")
    if not nodes or not nodes[0]:
        warn.append(f"{what}: voltage-override bus {name!r} not found (terminal used)")
        return ""
    return ".".join([name, *(str(k) for k in nodes[0])])


def _capcontrol(
    e: dict[str, Any], orders: dict[str, list[list[int]]], warn: list[str]
) -> CapControl:
    what = f"capcontrol.{e['Name']}"
    raw = str(e.get("Type") or "current").lower()
    typ = _CAP_TYPES.get(raw, raw)
    if typ not in _CAP_TYPES.values():
        warn.append(f"{what}: control type {raw!r} is not modelled (the bank keeps its state)")
    on, off = _f(e.get("OnSetting")), _f(e.get("OffSetting"))
    if typ == "pf":
        on, off = _pf_range2(on), _pf_range2(off)
    return CapControl(
        name=e["Name"],
        capacitor=str(e["Capacitor"]).lower(),
        element=str(e["Element"]).lower(),
        terminal=int(e.get("Terminal") or 1),
        type=typ,
        on_setting=on,
        off_setting=off,
        delay_s=_f(e.get("Delay"), 15.0),
        delay_off_s=_f(e.get("DelayOff"), 15.0),
        dead_time_s=_f(e.get("DeadTime"), 300.0),
        ptratio=_f(e.get("PTRatio"), 60.0),
        ctratio=_f(e.get("CTRatio"), 60.0),
        volt_override=bool(e.get("VoltOverride")),
        vmin_v=_f(e.get("VMin"), 115.0),
        vmax_v=_f(e.get("VMax"), 126.0),
        pt_phase=_pt_phase(e.get("PTPhase", 1), what, warn, avg=True),
        ct_phase=_pt_phase(e.get("CTPhase", 1), what, warn, avg=True),
        pf_min_kvar_pct=_f(e.get("pctMinkvar"), 50.0),
        vbus=_vbus(e, orders, what, warn),
        enabled=bool(e.get("Enabled", True)),
    )


def _shape(v: Any) -> str | None:
    return str(v).lower() if v else None


def _load(e: dict[str, Any], orders: dict[str, list[list[int]]], cls: str, warn: list[str]) -> Load:
    key = f"{cls}.{e['Name'].lower()}"
    kind = {"load": "load", "generator": "generator", "pvsystem": "pv", "storage": "storage"}[cls]
    kw, kvar = _f(e.get("kW")), _f(e.get("kvar"))
    model = int(e.get("Model") or 1)
    if cls == "pvsystem":
        kw = _f(e.get("Pmpp")) * _f(e.get("Irradiance"), 1.0)
        pf = _f(e.get("PF"), 1.0)
        kvar = kw * math.tan(math.acos(min(abs(pf), 1.0))) * (1 if pf >= 0 else -1)
        model = 1
        warn.append(f"pvsystem.{e['Name']}: modelled as constant P/Q at Pmpp × irradiance")
    if cls == "storage":  # OpenDSS's present output (kW > 0 discharging, idling losses < 0)
        kw, kvar, model = _f(e.get("kW")), _f(e.get("kvar")), 1
    # OpenDSS gives a NaN entry as None: kept as NaN for validation to name
    zipv = tuple(math.nan if x is None else float(x) for x in (e.get("ZIPV") or ()))
    sign = -1.0 if kind != "load" else 1.0
    return Load(
        name=e["Name"],
        terminal=_terms(orders, key, [e["Bus1"]])[0],
        phases=int(e.get("Phases") or 3),
        conn=str(e.get("Conn") or "wye").lower(),
        kv=_f(e.get("kV"), 12.47),
        kw=sign * kw,
        kvar=sign * kvar,
        model=model,
        vminpu=_f(e.get("VMinpu"), 0.95 if kind == "load" else 0.9),
        vmaxpu=_f(e.get("VMaxpu"), 1.05 if kind == "load" else 1.1),
        zipv=zipv,
        cvr_watts=_f(e.get("CVRWatts"), 1.0),
        cvr_vars=_f(e.get("CVRVars"), 2.0),
        daily=_shape(e.get("Daily")),
        yearly=_shape(e.get("Yearly")),
        duty=_shape(e.get("Duty")),
        kind=kind,
        status=str(e.get("Status") or "variable").lower(),
        enabled=bool(e.get("Enabled", True)),
    )


def _fuse(e: dict[str, Any], cls: str) -> Fuse:
    obj = str(e.get("MonitoredObj") or e.get("SwitchedObj") or "").lower()
    return Fuse(
        e["Name"],
        obj.split(".", 1)[-1],
        _f(e.get("RatedCurrent")),
        cls,
        bool(e.get("Enabled", True)),
    )


def build_elements(
    name: str,
    data: dict[str, Any],
    orders: dict[str, list[list[int]]],
    shapes: dict[str, dict[str, Any]],
    source: str,
    yprims: dict[str, np.ndarray] | None = None,
) -> ThreePhaseGrid:
    """Assemble a :class:`ThreePhaseGrid` from OpenDSS's JSON export and conductor maps
    (``yprims``: ``reactor.name`` → OpenDSS's Yprim, for the shunt reactors)."""
    f_hz = _f(data.get("DefaultBaseFreq"), 60.0)
    warn: list[str] = []
    vs = data.get("Vsource") or []
    if not vs:
        raise ValidationError(f"{source or name}: no Vsource (the circuit has no source)")
    if len(vs) > 1:
        warn.append(
            f"{len(vs) - 1} extra vsource(s) not modelled: {', '.join(v['Name'] for v in vs[1:5])}"
        )
    grid = ThreePhaseGrid(name=name, source=_source(vs[0], orders), frequency_hz=f_hz)
    _fill(grid, data, orders, f_hz, warn, yprims or {})
    grid.invcontrols = invcontrols(data, warn)
    for b in data.get("Bus") or []:
        grid.bus_kv_ln[b["Name"].lower()] = _f(b.get("kVLN"))
        if b.get("X") is not None and b.get("Y") is not None:
            grid.buscoords[b["Name"].lower()] = (float(b["X"]), float(b["Y"]))
    for k, s in shapes.items():
        grid.loadshapes[k] = LoadShape(k, s["mult"], s["hours"], s["qmult"], s["interval_h"])
    unmodelled = _unmodelled(data)
    if unmodelled:
        warn.insert(0, "elements not modelled: " + ", ".join(unmodelled))
    grid.warnings = warn
    return grid


def _fill(
    grid: ThreePhaseGrid,
    data: dict[str, Any],
    orders: dict[str, Any],
    f_hz: float,
    warn: list[str],
    yprims: dict[str, np.ndarray],
) -> None:
    def each(cls: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        for e in data.get(cls) or []:
            fn(e)

    each("Line", lambda e: grid.branches.append(_line(e, orders, f_hz)))
    for e in data.get("Reactor") or []:
        r = _reactor(e, orders, yprims)
        if r is None:
            warn.append(f"reactor.{e['Name']}: shunt reactor without a Yprim: not modelled")
        elif isinstance(r, Shunt):
            grid.shunts.append(r)
        else:
            grid.branches.append(r)
    each("Transformer", lambda e: grid.transformers.append(_transformer(e, orders)))
    each("RegControl", lambda e: grid.regcontrols.append(_regcontrol(e, warn)))
    each("Capacitor", lambda e: grid.capacitors.append(_capacitor(e, orders)))
    each("CapControl", lambda e: grid.capcontrols.append(_capcontrol(e, orders, warn)))
    for cls in ("Load", "Generator", "PVSystem", "Storage"):
        for e in data.get(cls) or []:
            grid.loads.append(_load(e, orders, cls.lower(), warn))
    for cls in ("Fuse", "Recloser", "Relay", "SwtControl"):
        for e in data.get(cls) or []:
            grid.fuses.append(_fuse(e, cls.lower()))


def _unmodelled(data: dict[str, Any]) -> list[str]:
    out = []
    for cls, items in data.items():
        if not isinstance(items, list) or cls in ("Bus", "PreCommands", "PostCommands"):
            continue
        low = cls.lower()
        if low in _DEFINITIONS or low in _HANDLED or not items:
            continue
        kind = "meters" if low in _METERS else "elements"
        out.append(
            f"{len(items)} {cls} ({kind}: {', '.join(e['Name'] for e in items[:3])}{'...' if len(items) > 3 else ''})"
        )
    return out
