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

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "fleet": ("DeviceFleet", "FleetConfig"),
    "protection": ("fault_indications", "reported_pickups"),
    "publish": ("FieldCommandReceiver", "FieldTelemetry"),
    "simulator": ("Command", "FieldEvent", "FieldSimulator"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.field.fleet import DeviceFleet, FleetConfig
    from gridpilot.field.protection import fault_indications, reported_pickups
    from gridpilot.field.publish import FieldCommandReceiver, FieldTelemetry
    from gridpilot.field.simulator import Command, FieldEvent, FieldSimulator
