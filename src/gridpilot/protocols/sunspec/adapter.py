"""SunSpec devices behind the adapter boundary: a client per device on a background loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from gridpilot.protocols.adapter import CommandResult, DeviceCommand, ReadingSink
from gridpilot.protocols.sunspec.client import SunSpecClient, SunSpecError


class SunSpecAdapter:
    """:class:`~gridpilot.protocols.adapter.ProtocolAdapter` for SunSpec Modbus TCP devices.

    ``SunSpecAdapter({device_id: (host, port)}, sink)``: :meth:`start` connects and scans each
    device; :meth:`poll` reads model 701 (and 713) of all of them into ``sink``; commands:
    ``p_limit_pct`` (704), ``storage_w`` (704 ``WSet``), ``volt_var`` (705), each read back.
    """

    protocol = "sunspec"

    def __init__(
        self,
        devices: dict[str, tuple[str, int]],
        sink: ReadingSink | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.devices = dict(devices)
        self.sink = sink
        self.timeout_s = timeout_s
        self.clients: dict[str, SunSpecClient] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="gridpilot-sunspec", daemon=True
        )
        if sink is not None:
            sink.provision(list(self.devices), kind="der")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)

    def start(self) -> dict[str, str]:
        """Connect to every device; returns device id -> error for those that failed."""
        self._thread.start()

        async def one(dev: str, host: str, port: int) -> tuple[str, str]:
            c = SunSpecClient(host, port, dev)
            try:
                await c.connect()
            except SunSpecError as exc:
                return dev, str(exc)
            self.clients[dev] = c
            return dev, ""

        async def all_() -> list[tuple[str, str]]:
            return list(await asyncio.gather(*(one(d, h, p) for d, (h, p) in self.devices.items())))

        return {d: e for d, e in self._run(all_()) if e}

    def stop(self) -> None:
        """Close the connections and the loop."""
        for c in self.clients.values():
            self.loop.call_soon_threadsafe(c.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def owns(self, device_id: str) -> bool:
        """True for a connected SunSpec device."""
        return device_id in self.clients

    def poll(self, ts_ms: int) -> int:
        """Read every device's measurements into the sink at ``ts_ms``; returns rows accepted."""

        async def one(c: SunSpecClient) -> int:
            try:
                vals = await c.readings()
            except (SunSpecError, OSError, TimeoutError):
                return 0
            return self.sink.add(c.device_id, ts_ms, vals) if self.sink is not None else len(vals)

        async def all_() -> list[int]:
            return list(await asyncio.gather(*(one(c) for c in self.clients.values())))

        return sum(self._run(all_()))

    def send(self, commands: Sequence[DeviceCommand]) -> list[CommandResult]:
        """Each command to its device (concurrently); results in order."""

        async def one(cmd: DeviceCommand) -> CommandResult:
            c = self.clients[cmd.device_id]
            if cmd.kind == "p_limit_pct":
                return await c.set_power_limit(cmd.value)
            if cmd.kind == "storage_w":
                return await c.set_storage_w(cmd.value)
            if cmd.kind == "volt_var":
                return await c.set_volt_var(cmd.curve)
            return CommandResult(cmd.device_id, "sunspec", cmd.kind, False, "unsupported")

        async def all_() -> list[CommandResult]:
            return list(await asyncio.gather(*(one(c) for c in commands)))

        return list(self._run(all_()))
