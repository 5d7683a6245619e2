"""OpenDSS ``InvControl`` → :class:`InverterControl` (volt-var, volt-watt and both).

Read: the mode (``Mode`` VOLTVAR/VOLTWATT or ``CombiMode`` VV_VW), the curves (``XYcurve``
by name), ``DERList`` (empty: every PVSystem and Storage, as OpenDSS does), the damping
factors (``DeltaQ_Factor``/``DeltaP_Factor``; -1, OpenDSS's automatic factor, becomes 0.7
with the twin's own halving on oscillation), the tolerances, and each DER's ``kVA``,
``kvarMax`` and ``Pmpp``/``kWrated``. Not modelled, and each said in the grid's warnings:
other modes (DRC, watt-pf, watt-var, AVR), ``RefReactivePower=VARAVAL`` (taken as VARMAX),
a curve x-reference other than rated, hysteresis. OpenDSS extrapolates a curve linearly
beyond its end points; ours stays flat there (IEEE 1547) — add end points to match.
"""

from __future__ import annotations

from typing import Any

from gridpilot.errors import ValidationError
from gridpilot.model.threephase.inverters import (
    Curve,
    InverterControl,
    InverterRating,
    voltvar_curve,
    voltwatt_curve,
)

_MODES = {"voltvar": "voltvar", "voltwatt": "voltwatt", "vv_vw": "vv_vw"}


def _num(v: Any, default: float) -> float:
    return default if v is None else float(v)


def _curve(curves: dict[str, Curve], name: Any, default: Curve) -> Curve:
    if not name:
        return default
    c = curves.get(str(name).lower())
    if c is None:
        raise ValidationError(f"invcontrol: unknown xycurve {name!r}")
    return c


def _ratings(data: dict[str, Any], ders: list[str]) -> list[InverterRating]:
    els = {f"pvsystem.{e['Name'].lower()}": e for e in data.get("PVSystem") or []}
    els.update({f"storage.{e['Name'].lower()}": e for e in data.get("Storage") or []})
    names = [d.lower() for d in ders] or list(els)
    out = []
    for n in names:
        e = els.get(n)
        if e is None:
            raise ValidationError(f"invcontrol: DER {n!r} is not a PVSystem or Storage")
        pmpp = _num(e.get("Pmpp"), 0.0) or _num(e.get("kWrated"), 0.0)
        kva = _num(e.get("kVA"), 0.0) or pmpp
        out.append(InverterRating(e["Name"], kva, _num(e.get("kvarMax"), kva), pmpp))
    return out


def invcontrols(data: dict[str, Any], warn: list[str]) -> list[InverterControl]:
    """The modelled InvControls of OpenDSS's JSON export (``warn`` gets what is not)."""
    curves = {
        c["Name"].lower(): Curve(tuple(float(x) for x in c["XArray"]),
                                 tuple(float(y) for y in c["YArray"]))
        for c in data.get("XYcurve") or data.get("XYCurve") or []
    }  # fmt: skip
    out = []
    for e in data.get("InvControl") or []:
        what = f"invcontrol.{e['Name']}"
        mode = _MODES.get(str(e.get("CombiMode") or "").lower()) or _MODES.get(
            str(e.get("Mode") or "").lower()
        )
        if mode is None:
            warn.append(f"{what}: mode {e.get('Mode')!r}/{e.get('CombiMode')!r} not modelled")
            continue
        if str(e.get("RefReactivePower") or "VARAVAL").upper() != "VARMAX":
            warn.append(f"{what}: RefReactivePower VARAVAL modelled as VARMAX (pu of kvarMax)")
        if str(e.get("Voltage_CurveX_Ref") or "rated").lower() != "rated":
            warn.append(f"{what}: voltage_curvex_ref {e.get('Voltage_CurveX_Ref')!r} read as rated")
        if _num(e.get("Hysteresis_Offset"), 0.0) != 0.0:
            warn.append(f"{what}: hysteresis not modelled")
        dq, dp = _num(e.get("DeltaQ_Factor"), -1.0), _num(e.get("DeltaP_Factor"), -1.0)
        out.append(InverterControl(
            name=e["Name"],
            inverters=_ratings(data, list(e.get("DERList") or e.get("PVSystemList") or [])),
            mode=mode,
            voltvar=_curve(curves, e.get("VVC_Curve1"), voltvar_curve()),
            voltwatt=_curve(curves, e.get("VoltWatt_Curve"), voltwatt_curve()),
            delta_q=dq if 0 < dq <= 1 else 0.7,
            delta_p=dp if 0 < dp <= 1 else 0.7,
            var_tol=_num(e.get("VarChangeTolerance"), 0.025),
            v_tol=_num(e.get("VoltageChangeTolerance"), 1e-4),
            enabled=bool(e.get("Enabled", True)),
        ))  # fmt: skip
    return out
