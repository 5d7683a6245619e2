"""gridpilot.protocols: the field's standards at the edge of the loop (issue #18).

* :mod:`~gridpilot.protocols.ocpp` - OCPP 2.0.1 / 2.1 CSMS and charge points (EV stations);
* :mod:`~gridpilot.protocols.openadr` - an OpenADR 3.0.1 VTN in the FastAPI app (DR);
* :mod:`~gridpilot.protocols.sunspec` - SunSpec Modbus TCP (inverters, batteries).

The loop reaches them only through :class:`AdapterRegistry` (commands in, results audited,
rejections as alarms) and :class:`ReadingSink` (reports as telemetry rows). Nothing in the loop
imports this package except through that registration (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "adapter": (
        "AdapterRegistry",
        "CommandResult",
        "DeviceCommand",
        "ProtocolAdapter",
        "ReadingSink",
    ),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.protocols.adapter import (
        AdapterRegistry,
        CommandResult,
        DeviceCommand,
        ProtocolAdapter,
        ReadingSink,
    )
