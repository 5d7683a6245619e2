"""gridpilot.protocols: the field's standards at the edge of the loop (issue #18).

* :mod:`~gridpilot.protocols.ocpp` - OCPP 2.0.1 / 2.1 CSMS and charge points (EV stations);
* :mod:`~gridpilot.protocols.openadr` - an OpenADR 3.0.1 VTN in the FastAPI app (DR);
* :mod:`~gridpilot.protocols.sunspec` - SunSpec Modbus TCP (inverters, batteries).

The loop reaches them only through :class:`AdapterRegistry` (commands in, results audited,
rejections as alarms) and :class:`ReadingSink` (reports as telemetry rows). Nothing in the loop
imports this package except through that registration (docs/architecture.md).
"""

from gridpilot.protocols.adapter import (
    COMMAND_KINDS,
    AdapterRegistry,
    CommandResult,
    DeviceCommand,
    ProtocolAdapter,
    ReadingSink,
    SinkStats,
)

__all__ = [
    "COMMAND_KINDS",
    "AdapterRegistry",
    "CommandResult",
    "DeviceCommand",
    "ProtocolAdapter",
    "ReadingSink",
    "SinkStats",
]
