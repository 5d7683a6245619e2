"""What the field simulator exchanges: commands (:class:`Command`, :data:`COMMANDS`), events
(:class:`FieldEvent`), meter rows and readings (:class:`MeterReadings`, :class:`FieldReadings`),
step figures (:class:`StepStats`) and fault records (:class:`FaultState`). All importable from
:mod:`gridpilot.field.simulator` too."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from gridpilot.field.conditions import GRID_COMMANDS
from gridpilot.field.protection import FaultIndications

COMMANDS = (
    "switch",
    "battery_setpoint",
    "battery_auto",
    "ev_limit",
    "pv_limit",
    "water_heater_pause",
    "water_heater_resume",
    "pause",
    "resume",
    *GRID_COMMANDS,
)


@dataclass
class Command:
    """A command to the field.

    ``name`` (see :data:`COMMANDS`): ``switch`` (``target`` switch id, ``value`` True closes),
    ``battery_setpoint`` (kW, + charging), ``battery_auto`` (back to self-consumption),
    ``ev_limit`` (kW charging limit, negative = V2G discharge where the charger allows),
    ``pv_limit`` (fraction 0..1 of kWp), ``water_heater_pause`` / ``water_heater_resume``,
    ``pause`` / ``resume`` (the whole simulation). Device ``target`` is a position or an array
    of positions within that kind (``None`` = all of them); ``value`` a scalar or one per target.
    Grid-level devices (the grid's tables): ``grid_storage_setpoint`` (``target`` storage id,
    ``value`` MW, + charging, clipped to the rating), ``ev_charging_factor`` (``value`` 0..1 on
    the EV charging stations), ``flex_load_level`` (``value`` 0..1 of the flexible loads
    curtailed), ``fpi_reset`` (every fault-passage indicator reset).
    """

    name: str
    target: Any = None
    value: Any = None
    cmd_id: str = ""


@dataclass
class FieldEvent:
    """Something the field reports as an event (protection, outages, acknowledgements)."""

    ts_ms: int
    name: str
    severity: str
    data: dict[str, Any]


@dataclass
class MeterReadings:
    """Smart-meter rows (one per meter message delivered now), columnar.

    ``ts_ms`` when measured; ``meter`` position in the fleet; ``bus_id`` its bus; ``p_kw`` mean
    net power over the reporting interval (+ import); ``q_kvar``; ``v_pu`` voltage at the end of
    the interval; ``e_import_kwh`` / ``e_export_kwh`` the registers. Values are what the meter
    *reports* (after tampering and false data), not the truth.
    """

    ts_ms: np.ndarray
    meter: np.ndarray
    bus_id: np.ndarray
    p_kw: np.ndarray
    q_kvar: np.ndarray
    v_pu: np.ndarray
    e_import_kwh: np.ndarray
    e_export_kwh: np.ndarray

    def __len__(self) -> int:
        return int(self.meter.size)

    @staticmethod
    def concat(parts: list[MeterReadings]) -> MeterReadings:
        """One batch from several (in order)."""
        names = _METER_COLUMNS
        if not parts:
            return MeterReadings(
                *(
                    np.zeros(0, np.int64 if n in ("ts_ms", "meter", "bus_id") else np.float64)
                    for n in names
                )
            )
        return MeterReadings(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def take(self, mask: np.ndarray) -> MeterReadings:
        """The rows where ``mask`` is True."""
        return MeterReadings(*(getattr(self, n)[mask] for n in _METER_COLUMNS))


_METER_COLUMNS = tuple(f.name for f in fields(MeterReadings))  # in constructor order


@dataclass
class FieldReadings:
    """What the field sends at one instant: meter rows, grid sensors, events.

    ``sensors``: ``source_p_mw``, ``source_q_mvar``, ``source_v_pu`` (per source), ``line_p_mw``,
    ``line_q_mvar`` and ``line_loading_pct`` (at the from end of ``sensor_line_ids``),
    ``bus_v_pu`` (at ``sensor_bus_ids``), ``switch_closed`` and ``fpi`` (per switch, 1.0 closed /
    picked up), the grid devices' own metering (``gen_p_mw``, ``storage_p_mw``, ``storage_soc``,
    ``ev_p_mw``, ``flex_p_mw``, table order, 0 where de-energised) and, with
    ``substation_meters``, ``load_p_mw`` / ``load_q_mvar`` per grid load (secondary-substation
    metering, every step); false data on sensors is already applied.
    """

    ts_ms: int
    meters: MeterReadings
    sensors: dict[str, np.ndarray]
    events: list[FieldEvent]


@dataclass
class StepStats:
    """Timing and the true state's summary of one :meth:`FieldSimulator.step`."""

    t_s: float
    devices_ms: float
    powerflow_ms: float
    converged: bool
    total_p_mw: float
    vmin_pu: float


@dataclass
class _Pending:
    release_s: float
    rows: MeterReadings


@dataclass
class FaultState:
    """A present line fault and the protection's response."""

    line_id: int
    indications: FaultIndications
    since_s: float


__all__ = [
    "COMMANDS",
    "Command",
    "FaultState",
    "FieldEvent",
    "FieldReadings",
    "MeterReadings",
    "StepStats",
]
