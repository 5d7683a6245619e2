"""SunSpec Modbus TCP: field inverters and batteries as IEEE 1547 devices (device side, pymodbus
server) and gridpilot's client (701 telemetry, 704/705 controls with read-back).

>>> host = DerHost([Der(DerSpec("pv-1"))]); ports = await host.start()
>>> c = SunSpecClient("127.0.0.1", ports["pv-1"], "pv-1"); await c.connect()
>>> await c.readings(); await c.set_power_limit(50.0)
"""

from gridpilot.protocols.sunspec.adapter import SunSpecAdapter
from gridpilot.protocols.sunspec.client import SunSpecClient, SunSpecError
from gridpilot.protocols.sunspec.device import Der, DerHost, DerSpec

__all__ = ["Der", "DerHost", "DerSpec", "SunSpecAdapter", "SunSpecClient", "SunSpecError"]
