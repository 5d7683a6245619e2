"""OCPP 2.0.1 / 2.1 payloads gridpilot builds and reads (pure functions, no I/O).

* :func:`charging_profile` - the ``chargingProfile`` of a ``SetChargingProfile`` request: a
  ``TxDefaultProfile`` (stack level 0, relative) with one period: ``limit`` in W, or under OCPP
  2.1 a ``CentralSetpoint`` period with ``setpoint`` in W (negative = V2G discharge) and a
  ``dischargeLimit``.
* :func:`meter_readings` - ``meterValue`` entries (``MeterValues`` and ``TransactionEvent``)
  as telemetry rows: ``p_kw`` (import - export), ``e_import_kwh``, ``e_export_kwh``,
  ``soc_pct``. Values with other measurands, units or phases are left out and counted.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

SUBPROTOCOLS = {"ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
MAX_METER_VALUES = 64  # meterValue entries read per message
MAX_SAMPLED = 32  # sampledValue entries read per meterValue

# measurand -> (quantity, factor to the quantity's unit per base unit, base unit)
_MEASURANDS: dict[str, tuple[str, dict[str, float]]] = {
    "Power.Active.Import": ("p_import", {"W": 1e-3, "kW": 1.0}),
    "Power.Active.Export": ("p_export", {"W": 1e-3, "kW": 1.0}),
    "Energy.Active.Import.Register": ("e_import_kwh", {"Wh": 1e-3, "kWh": 1.0}),
    "Energy.Active.Export.Register": ("e_export_kwh", {"Wh": 1e-3, "kWh": 1.0}),
    "SoC": ("soc_pct", {"Percent": 1.0}),
    "Power.Offered": ("offered_kw", {"W": 1e-3, "kW": 1.0}),
}
_DEFAULT_UNIT = {
    "SoC": "Percent",
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Register": "Wh",
}


def charging_profile(
    profile_id: int, watts: float, version: str, setpoint: bool = False
) -> dict[str, Any]:
    """The ``chargingProfile`` object (camelCase, ready for the wire) for a limit in W.

    ``setpoint`` (OCPP 2.1 only) makes it a central set point: ``watts`` < 0 discharges (V2G).
    Raises ``ValueError`` for a set point under 2.0.1 or a negative limit.
    """
    if setpoint and version != "2.1":
        raise ValueError(f"setpoint: a central set point needs OCPP 2.1, station speaks {version}")
    if not setpoint and watts < 0:
        raise ValueError(f"limit: must be >= 0 W, got {watts}")
    w = round(float(watts), 1)
    if setpoint:
        period: dict[str, Any] = {
            "startPeriod": 0,
            "operationMode": "CentralSetpoint",
            "setpoint": w,
            "limit": max(w, 0.0),
            "dischargeLimit": min(w, 0.0),
        }
    else:
        period = {"startPeriod": 0, "limit": w}
    return {
        "id": int(profile_id),
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": int(profile_id), "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
        ],
    }


def parse_time_ms(value: Any) -> int | None:
    """An OCPP ``dateTime`` (RFC 3339) as ms since the Unix epoch, UTC; None if unreadable."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def now_iso() -> str:
    """The present UTC time as an OCPP ``dateTime``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample(sv: Any) -> tuple[str, float] | None:
    """One sampledValue as (quantity, value in its unit), None when not read."""
    if not isinstance(sv, dict) or sv.get("phase") not in (None, ""):
        return None
    meas = sv.get("measurand", "Energy.Active.Import.Register")
    if meas not in _MEASURANDS:
        return None
    name, units = _MEASURANDS[meas]
    uom = sv.get("unitOfMeasure", sv.get("unit_of_measure")) or {}
    unit = uom.get("unit", _DEFAULT_UNIT.get(meas, "W")) if isinstance(uom, dict) else None
    mult = uom.get("multiplier", 0) if isinstance(uom, dict) else 0
    val = sv.get("value")
    if unit not in units or not isinstance(mult, int) or abs(mult) > 9:
        return None
    if not isinstance(val, int | float) or isinstance(val, bool) or not math.isfinite(val):
        return None
    return name, float(val) * 10.0**mult * units[unit]


def meter_readings(meter_value: Any) -> tuple[list[tuple[int, dict[str, float]]], int]:
    """``meterValue`` entries as ``[(ts_ms, {quantity: value})]`` and the count of values skipped.

    ``p_kw`` = import - export (kW, + = consumption, the loop's sign); energies in kWh;
    ``soc_pct`` in %. Keys may be camelCase (the wire) or snake_case (the ``ocpp`` library's
    handler arguments). At most :data:`MAX_METER_VALUES` entries and :data:`MAX_SAMPLED` values
    each are read; an entry without a readable timestamp is skipped whole.
    """
    out: list[tuple[int, dict[str, float]]] = []
    skipped = 0
    if not isinstance(meter_value, list):
        return out, 1
    skipped += max(len(meter_value) - MAX_METER_VALUES, 0)
    for mv in meter_value[:MAX_METER_VALUES]:
        ts = parse_time_ms(mv.get("timestamp")) if isinstance(mv, dict) else None
        svs = mv.get("sampledValue", mv.get("sampled_value")) if isinstance(mv, dict) else None
        if ts is None or not isinstance(svs, list):
            skipped += 1
            continue
        vals: dict[str, float] = {}
        for sv in svs[:MAX_SAMPLED]:
            got = _sample(sv)
            if got is None:
                skipped += 1
            else:
                vals[got[0]] = got[1]
        skipped += max(len(svs) - MAX_SAMPLED, 0)
        if "p_import" in vals or "p_export" in vals:
            vals["p_kw"] = vals.pop("p_import", 0.0) - vals.pop("p_export", 0.0)
        vals.pop("offered_kw", None)
        if vals:
            out.append((ts, vals))
    return out, skipped


def sampled(
    p_w: float,
    e_import_wh: float,
    e_export_wh: float,
    soc_pct: float | None,
    offered_w: float | None = None,
) -> list[dict[str, Any]]:
    """The sampledValue list a charging station sends for power (W, + import), energies (Wh), SoC."""
    out: list[dict[str, Any]] = [
        {
            "value": round(max(p_w, 0.0), 1),
            "measurand": "Power.Active.Import",
            "unitOfMeasure": {"unit": "W"},
        },
        {
            "value": round(max(-p_w, 0.0), 1),
            "measurand": "Power.Active.Export",
            "unitOfMeasure": {"unit": "W"},
        },
        {
            "value": round(e_import_wh, 1),
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        },
        {
            "value": round(e_export_wh, 1),
            "measurand": "Energy.Active.Export.Register",
            "unitOfMeasure": {"unit": "Wh"},
        },
    ]
    if soc_pct is not None:
        out.append(
            {"value": round(soc_pct, 1), "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}
        )
    if offered_w is not None:
        out.append(
            {
                "value": round(offered_w, 1),
                "measurand": "Power.Offered",
                "unitOfMeasure": {"unit": "W"},
            }
        )
    return out
