"""gridpilot.field: the simulated physical world — grid, devices, faults, protection, attacks.

>>> from gridpilot.model import load_grid
>>> from gridpilot.field import FieldSimulator, FleetConfig, Command
>>> sim = FieldSimulator(load_grid("case33bw"), FleetConfig(n_devices=10_000))
>>> sim.step(60)                       # one simulated minute: devices, then one power flow
>>> batch = sim.readings(meters=True)  # FieldReadings: meter rows, grid sensors, events
>>> sim.inject_line_fault(7)           # breaker trips, FPIs pick up, meters lose voltage
>>> sim.apply(Command("water_heater_pause", target=[0, 1, 2]))

State is numpy arrays per device kind (:class:`DeviceFleet`), so a million devices step in
milliseconds; device powers are summed per grid load with ``np.bincount`` for the twin.
:class:`FieldTelemetry` signs and publishes readings through :mod:`gridpilot.telemetry`;
:class:`FieldCommandReceiver` verifies signed commands from the control side, applies them and
acknowledges them.
"""

from gridpilot.field.fleet import KINDS, DeviceFleet, FleetConfig, build_fleet
from gridpilot.field.protection import FaultIndications, fault_indications, reported_pickups
from gridpilot.field.publish import (
    METER_QUANTITIES,
    CommandOutcome,
    FieldCommandReceiver,
    FieldTelemetry,
    PublishStats,
)
from gridpilot.field.simulator import (
    COMMANDS,
    Command,
    FaultState,
    FieldEvent,
    FieldReadings,
    FieldSimulator,
    MeterReadings,
    StepStats,
)

__all__ = [
    "COMMANDS",
    "KINDS",
    "METER_QUANTITIES",
    "Command",
    "CommandOutcome",
    "DeviceFleet",
    "FaultIndications",
    "FaultState",
    "FieldCommandReceiver",
    "FieldEvent",
    "FieldReadings",
    "FieldSimulator",
    "FieldTelemetry",
    "FleetConfig",
    "MeterReadings",
    "PublishStats",
    "StepStats",
    "build_fleet",
    "fault_indications",
    "reported_pickups",
]
