"""``gridpilot demo --pv-protocol sunspec``: the grid's PV inverters and batteries as SunSpec
Modbus TCP devices.

:class:`SunSpecWorld` wraps the loop's world (a :class:`~gridpilot.agent.FieldWorld`, or an
:class:`~gridpilot.protocols.ocpp.fieldlink.OcppWorld` around one) without changing its
interface. Device side: each grid battery (``der-storage-<id>``) and each PV generator
(``der-pv-<id>``) is a :class:`~gridpilot.protocols.sunspec.Der` served on 127.0.0.1 (one port
each, on a background event loop). Grid side: a :class:`SunSpecAdapter` behind an
:class:`~gridpilot.protocols.AdapterRegistry`:

* the loop's battery set points (``set_storage``, from the volt/var, renewable-drop and
  frequency policies and the flexibility schedule) become 704 ``WSet`` writes, read back; the
  field's battery then follows the set point the inverter holds;
* the PV inverters get a volt-var curve (705, ``CurveConfig``) at start and on
  :meth:`SunSpecWorld.set_volt_var`, and an active-power limit (704 ``WMaxLimPct``) on
  :meth:`SunSpecWorld.set_pv_limit`; their 701 readings (P, Q, V) are telemetry;
* a device that refuses (a Modbus exception, a read-back mismatch, a curve it does not adopt)
  raises the registry's alarm ``command_rejected:<device>`` and a ``command_rejected`` field
  event naming what is in effect, on which the loop re-plans.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.protocols.adapter import AdapterRegistry, CommandResult, DeviceCommand, ReadingSink
from gridpilot.protocols.sunspec.adapter import SunSpecAdapter
from gridpilot.protocols.sunspec.device import DEFAULT_CURVE, Der, DerHost, DerSpec

log = logging.getLogger(__name__)
PV_KIND = 0  # gridpilot.model.GenKind.PV


@dataclass(frozen=True)
class CurveConfig:
    """The PV inverters' volt-var curve: (V % of nominal, var % of rating) points, 2-4,
    increasing in V (default: an IEEE 1547 category B-like curve)."""

    points: tuple[tuple[float, float], ...] = DEFAULT_CURVE


@dataclass
class DerWorldConfig:
    """Options of :class:`SunSpecWorld`: ``derate`` (device id -> fraction of the grid's rating
    the inverter's nameplate has: a derated inverter refuses set points beyond it, for drills
    and tests), the volt-var ``curve``, ``timeout_s`` per command batch."""

    derate: dict[str, float] = field(default_factory=dict)
    curve: CurveConfig = field(default_factory=CurveConfig)
    timeout_s: float = 30.0


class _Loop:
    """An asyncio loop in a daemon thread: :meth:`run` a coroutine there and wait."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def grid_ders(grid: Any, derate: dict[str, float]) -> list[Der]:
    """The grid's batteries and PV generators as SunSpec devices (W, var, Wh from MW, MVA, MWh)."""
    ders: list[Der] = []
    st = grid.storage
    for sid, p, e in zip(st.ids, st["p_max_mw"], st["e_mwh"], strict=True):
        dev = f"der-storage-{int(sid)}"
        w = float(p) * 1e6 * derate.get(dev, 1.0)
        ders.append(Der(DerSpec(dev, "battery", w, 0.44 * w, float(e) * 1e6)))
    gen = grid.generator
    for gid, kind, sn, p in zip(gen.ids, gen["kind"], gen["sn_mva"], gen["p_mw"], strict=True):
        if int(kind) == PV_KIND:
            dev = f"der-pv-{int(gid)}"
            w = float(max(sn, p)) * 1e6 * derate.get(dev, 1.0)
            ders.append(Der(DerSpec(dev, "pv", w, 0.44 * w)))
    return ders


class SunSpecWorld:
    """The loop's world with its batteries and PV inverters behind SunSpec Modbus TCP (see the
    module docstring). ``SunSpecWorld(world, audit=None, config=None, store=None)``; every
    attribute not defined here is the wrapped world's. :meth:`close` stops it all."""

    def __init__(
        self, world: Any, audit: Any = None, config: DerWorldConfig | None = None, store: Any = None
    ) -> None:
        self.inner = world
        self.config = config or DerWorldConfig()
        g = world.grid
        from gridpilot.telemetry import DuckDBStore

        self.sink = ReadingSink(store=store if store is not None else DuckDBStore())
        self.ders = {d.spec.device_id: d for d in grid_ders(g, self.config.derate)}
        self.storage_ids = [int(i) for i in g.storage.ids]
        self._dev_loop = _Loop("gridpilot-der-devices")
        self._host = DerHost(list(self.ders.values()))
        ports = self._dev_loop.run(self._host.start())
        self.adapter = SunSpecAdapter(
            {d: ("127.0.0.1", p) for d, p in ports.items()}, self.sink, self.config.timeout_s
        )
        failed = self.adapter.start()
        if failed:
            self.close()
            raise ConnectionError(f"SunSpec devices not reachable: {failed}")
        self.registry = AdapterRegistry(audit)
        self.registry.register(self.adapter)
        self._events: list[dict[str, Any]] = []
        self.pv_ids = [d for d, x in self.ders.items() if x.spec.kind == "pv"]
        self.curve_results = self.set_volt_var(self.config.curve.points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        """Active protocol alarms: the wrapped world's and the SunSpec devices' refusals."""
        out = dict(getattr(self.inner, "alarms", None) or {})
        out.update(self.registry.alarms)
        return out

    def _send(
        self, cmds: Sequence[DeviceCommand], command: str, in_effect: Any
    ) -> list[CommandResult]:
        res = self.registry.send(cmds, sim_time=str(self.inner.time))
        for c, r in zip(cmds, res, strict=True):
            if not r.accepted:
                self._events.append(
                    {
                        "kind": "command_rejected",
                        "device": r.device_id,
                        "protocol": r.protocol,
                        "message_id": r.message_id,
                        "status": r.status,
                        "reason": r.reason,
                        "command": command,
                        "value": c.value,
                        "in_effect": in_effect(c),
                        **(
                            {"target": int(c.device_id.rsplit("-", 1)[1])}
                            if command == "storage"
                            else {}
                        ),
                    }
                )
        return res

    def held_storage_mw(self, storage_id: int) -> float:
        """The set point battery ``storage_id``'s inverter holds, MW (+ charging; 0 if not enabled)."""
        c704 = self.ders[f"der-storage-{int(storage_id)}"].image.model(704)
        return -float(c704.WSet.cvalue or 0.0) / 1e6 if c704.WSetEna.value == 1 else 0.0

    def set_storage(self, storage_id: int, p_mw: float) -> None:
        """A battery set point (MW, + charging) as 704 ``WSet`` over Modbus, read back; the
        field's battery follows what the inverter then holds (a refusal leaves the old one)."""
        dev = f"der-storage-{int(storage_id)}"
        cmd = DeviceCommand(dev, "storage_w", round(float(p_mw) * 1e6, 1))
        self._send([cmd], "storage", lambda _c: self._dev_loop.run(self._held(storage_id)))
        self.inner.set_storage(storage_id, self._dev_loop.run(self._held(storage_id)))

    async def _held(self, storage_id: int) -> float:
        return self.held_storage_mw(storage_id)

    def set_pv_limit(self, pct: float) -> list[CommandResult]:
        """An active-power limit on every PV inverter, % of its rating (704 ``WMaxLimPct``)."""
        cmds = [DeviceCommand(d, "p_limit_pct", float(pct)) for d in self.pv_ids]
        return self._send(cmds, "p_limit", lambda _c: None)

    def set_volt_var(self, curve: Sequence[tuple[float, float]]) -> list[CommandResult]:
        """A volt-var curve on every PV inverter (705: written, adopted, read back, enabled)."""
        pts = tuple((float(v), float(q)) for v, q in curve)
        cmds = [DeviceCommand(d, "volt_var", curve=pts) for d in self.pv_ids]
        return self._send(cmds, "volt_var", lambda c: self._dev_loop.run(self._curve(c.device_id)))

    async def _curve(self, device_id: str) -> list[list[float]]:
        return [list(p) for p in self.ders[device_id].vv_points]

    async def _device_side(self, obs: Any, dt_s: float) -> None:
        """The field's state into the devices: PV available power and terminal voltage."""
        g = self.inner.grid
        bus_pos = g.bus.position_map(g.generator["bus"])
        for k, gid in enumerate(g.generator.ids):
            d = self.ders.get(f"der-pv-{int(gid)}")
            if d is not None and obs is not None:
                d.avail_w = float(max(obs.gen_p_mw[k], 0.0)) * 1e6
                d.v_v = float(obs.v_pu[bus_pos[k]]) * d.spec.v_nom or d.spec.v_nom
        for d in self.ders.values():
            d.advance(dt_s)

    def observe(self) -> Any:
        """The field's observation; the devices follow the field and report over Modbus."""
        for sid in self.storage_ids:  # the field's batteries follow what their inverters hold
            held = self._dev_loop.run(self._held(sid))
            k = int(self.inner.grid.storage.index_of(sid)[0])
            if abs(float(self.inner.storage_cmd_mw[k]) - held) > 1e-6:
                self.inner.set_storage(sid, held)
        obs = self.inner.observe()
        self._dev_loop.run(self._device_side(obs, float(self.inner.step_s)))
        ts_ms = int(np.datetime64(obs.time, "ms").astype(np.int64))
        self.adapter.poll(ts_ms)
        self.sink.flush()
        obs.events = list(obs.events) + self._events
        self._events = []
        return obs

    def close(self) -> None:
        """Stop the clients, the devices and their loop (and the wrapped world's, if it has any)."""
        try:
            if self.adapter._thread.is_alive():
                self.adapter.stop()
            self._dev_loop.run(self._host.stop(), 10)
        finally:
            self._dev_loop.stop()
            inner_close = getattr(self.inner, "close", None)
            if callable(inner_close):
                inner_close()
