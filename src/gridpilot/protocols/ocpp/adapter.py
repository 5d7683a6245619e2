"""The CSMS behind the adapter boundary: a background event loop and a blocking ``send``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from gridpilot.protocols.adapter import CommandResult, DeviceCommand
from gridpilot.protocols.ocpp.csms import Csms


class CsmsThread:
    """Run a :class:`Csms` on its own asyncio loop in a daemon thread (for the synchronous loop).

    ``CsmsThread(csms).start()`` returns the port; :meth:`run` runs a coroutine there and waits
    (``timeout_s``); :meth:`stop` closes the server and the loop.
    """

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="gridpilot-csms", daemon=True
        )

    def start(self) -> int:
        """Start the thread and the server; returns the port."""
        self._thread.start()
        return int(self.run(self.csms.start(), 10.0))

    def run(self, coro: Any, timeout_s: float) -> Any:
        """Run ``coro`` on the CSMS loop; returns its result (raises ``TimeoutError``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        """Stop the server and the loop."""
        try:
            self.run(self.csms.stop(), 10.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10.0)


class OcppAdapter:
    """:class:`~gridpilot.protocols.adapter.ProtocolAdapter` for OCPP stations.

    ``ev_limit_w`` becomes a ``SetChargingProfile`` limit in W, ``ev_setpoint_w`` an OCPP 2.1
    central set point (negative = V2G discharge). Commands to many stations go out at once.
    """

    protocol = "ocpp"

    def __init__(self, server: CsmsThread, timeout_s: float = 30.0) -> None:
        self.server = server
        self.timeout_s = timeout_s

    def owns(self, device_id: str) -> bool:
        """True for a station provisioned on this CSMS."""
        return device_id in self.server.csms.records

    def send(self, commands: Sequence[DeviceCommand]) -> list[CommandResult]:
        """One ``SetChargingProfile`` per command; results in order (``unsupported`` kinds refused)."""
        csms = self.server.csms

        async def one(c: DeviceCommand) -> CommandResult:
            if c.kind not in ("ev_limit_w", "ev_setpoint_w"):
                return CommandResult(c.device_id, "ocpp", c.kind, False, "unsupported")
            return await csms.set_limit(c.device_id, c.value, setpoint=c.kind == "ev_setpoint_w")

        async def all_() -> list[CommandResult]:
            return list(await asyncio.gather(*(one(c) for c in commands)))

        return list(self.server.run(all_(), self.timeout_s))
