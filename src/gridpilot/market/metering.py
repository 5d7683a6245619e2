"""Meter readings for settlement from telemetry energy registers.

gridpilot's telemetry verifies every device frame (Ed25519, sequence numbers, clock skew)
before it stores a value, and meters report cumulative energy registers
``e_import_kwh``/``e_export_kwh``. :func:`readings_from_registers` turns such stored rows
(a DataFrame with columns ``device_id``, ``quantity``, ``ts``, ``value``, the shape the
telemetry store returns) into per-interval :class:`MeterReading` objects. Those readings
carry no signature of their own: their authenticity was checked at ingest, so settle them
with :func:`verified_at_ingest` as the verifier. Nothing here imports the telemetry package.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.market.orders import MeterReading, Participant

REGISTERS = {"e_export_kwh": "export", "e_import_kwh": "import"}


def verified_at_ingest(reading: MeterReading, participant: Participant) -> bool:
    """Verifier for readings derived from a store that accepts only verified frames: always
    True (the device signature was checked when the frame was ingested)."""
    return True


def _seconds(ts: pd.Series, ts_unit: str) -> np.ndarray:
    if np.issubdtype(ts.dtype, np.datetime64) or isinstance(ts.dtype, pd.DatetimeTZDtype):
        return (pd.to_datetime(ts, utc=True).astype("int64") // 10**9).to_numpy(np.int64)
    scale = {"ms": 1000, "s": 1}.get(ts_unit)
    if scale is None:
        raise ValidationError(
            issues=[Issue("readings", "ts_unit", "must be 'ms' or 's'", value=ts_unit)]
        )
    return (ts.to_numpy(np.int64) // scale).astype(np.int64)


def readings_from_registers(
    frame: pd.DataFrame,
    device_to_participant: Mapping[str, str],
    interval_s: int = 900,
    ts_unit: str = "ms",
) -> list[MeterReading]:
    """Per-interval readings from cumulative energy registers.

    ``frame``: rows ``device_id, quantity, ts, value`` (kWh registers; other quantities are
    ignored; ``ts`` datetime64 or integers in ``ts_unit``); ``device_to_participant`` maps
    meter device ids to participant ids (unmapped devices are ignored). The energy of
    interval ``t`` is the register at its end minus the register at its start (the last
    value at or before each boundary); intervals without a value at both boundaries are
    left out, so a missing reading counts as no export in settlement. Returns readings in
    integer Wh, sorted by interval and participant. A register that runs backwards is a
    :class:`ValidationError` naming the device.
    """
    need = {"device_id", "quantity", "ts", "value"}
    if not need <= set(frame.columns):
        raise ValidationError(
            issues=[
                Issue(
                    "readings",
                    "columns",
                    f"need {sorted(need)}",
                    value=sorted(map(str, frame.columns)),
                )
            ]
        )
    f = frame[
        frame["quantity"].isin(list(REGISTERS))
        & frame["device_id"].isin(list(device_to_participant))
    ]
    if f.empty:
        return []
    sec = _seconds(f["ts"], ts_unit)
    f = f.assign(_s=sec).sort_values(["device_id", "quantity", "_s"])
    energy: dict[tuple[str, int], dict[str, int]] = {}
    for (dev, qty), g in f.groupby(["device_id", "quantity"], sort=False):
        s = g["_s"].to_numpy(np.int64)
        v = g["value"].to_numpy(np.float64)
        if np.any(np.diff(v) < -1e-9):
            raise ValidationError(
                issues=[Issue("readings", str(qty), "energy register runs backwards", ids=(dev,))]
            )
        first, last = -(-s[0] // interval_s), s[-1] // interval_s  # boundaries inside the data
        if last - first < 1:
            continue
        bounds = np.arange(first, last + 1) * interval_s
        reg = v[np.searchsorted(s, bounds, side="right") - 1]
        wh = np.rint(np.diff(reg) * 1000.0).astype(np.int64)
        pid = device_to_participant[str(dev)]
        for t, e in zip(range(int(first), int(last)), wh.tolist(), strict=True):
            energy.setdefault((pid, t), {"export": 0, "import": 0})[REGISTERS[str(qty)]] += e
    return [
        MeterReading(pid, t, d["export"], d["import"])
        for (pid, t), d in sorted(energy.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
