"""``gridpilot demo --ev-protocol ocpp``: the field's EV charging stations as OCPP charge points.

:class:`OcppWorld` wraps the loop's world (a :class:`~gridpilot.agent.FieldWorld`) without
changing its interface. On the grid side, a :class:`~gridpilot.protocols.ocpp.Csms` runs in a
background thread and the loop's EV smart-charging factor (``set_ev_factor``) becomes one
``SetChargingProfile`` per station (limit = factor x rating, W) through an
:class:`~gridpilot.protocols.AdapterRegistry` (audited with the OCPP message id; a
``Rejected`` raises an alarm and a ``command_rejected`` field event). The loop's EV
measurements (``Observation.ev_p_mw``) are the stations' ``MeterValues``.

On the device side, the grid's EV stations run as ``ocpp`` charge points in a separate
process; each step the field tells each station what its car would draw (W) and the station
answers what it delivers under its limit, which the field's physics then uses.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import secrets
from typing import Any

import numpy as np

from gridpilot.protocols.adapter import AdapterRegistry, DeviceCommand, ReadingSink
from gridpilot.protocols.ocpp.adapter import CsmsThread, OcppAdapter
from gridpilot.protocols.ocpp.csms import Csms, CsmsConfig
from gridpilot.protocols.ocpp.homeev import held_command, home_ids, home_specs, split_ev_limits
from gridpilot.protocols.ocpp.station import RunOptions, StationModel, StationSpec, run_station

log = logging.getLogger(__name__)


def _host(url: str, specs: list[StationSpec], meter_s: float, inbox: Any, outbox: Any) -> None:
    """The device-side process: run ``specs`` and answer demand with delivered power."""
    logging.getLogger("ocpp").setLevel(logging.ERROR)

    async def go() -> None:
        models = {s.station_id: StationModel(s) for s in specs}
        opts = RunOptions(url, meter_s=meter_s, backoff_s=0.5)
        tasks = [asyncio.create_task(run_station(m.spec, opts, m)) for m in models.values()]
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, inbox.get)
            if msg is None:
                break
            for sid, w in msg.items():
                if sid in models:
                    models[sid].demand_w = max(float(w), 0.0)
            # each station: (power drawn W, what it holds: the set point or limit it accepted)
            outbox.put({sid: (m.p_w, _held(m)) for sid, m in models.items()})
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())


def _held(m: StationModel) -> float | None:
    """What a station holds: its central set point, else its limit (W); None before any profile."""
    return m.setpoint_w if m.setpoint_w is not None else m.limit_w


def _rejected(r: Any, command: str, value: float, in_effect: float | None) -> dict[str, Any]:
    """The ``command_rejected`` field event of a refused command (the loop re-plans on it)."""
    return {
        "kind": "command_rejected",
        "device": r.device_id,
        "protocol": r.protocol,
        "message_id": r.message_id,
        "status": r.status,
        "command": command,
        "value": value,
        "in_effect": in_effect,
    }


class OcppWorld:
    """The loop's world with its EV stations behind OCPP (see the module docstring).

    ``OcppWorld(world, audit=None, refuse=(), meter_s=0.5, store=None)``: ``refuse`` lists
    station positions built to reject every profile (a faulty station, for drills and tests);
    the stations' readings go to ``store`` (a telemetry store; default an in-memory DuckDB),
    flushed at each step.
    Every attribute not defined here is the wrapped world's. :meth:`close` stops it all.
    """

    def __init__(
        self,
        world: Any,
        audit: Any = None,
        refuse: tuple[int, ...] = (),
        meter_s: float = 0.5,
        timeout_s: float = 30.0,
        store: Any = None,
    ) -> None:
        self.inner = world
        g = world.grid
        self.station_ids = [f"ev-station-{int(i)}" for i in g.ev_charger.ids]
        self.p_max_w = np.asarray(g.ev_charger["p_max_mw"], np.float64) * 1e6
        self.v2g = np.asarray(g.ev_charger["v2g"], bool)
        from gridpilot.telemetry import DuckDBStore

        self.sink = ReadingSink(store=store if store is not None else DuckDBStore())
        self.csms = Csms(CsmsConfig(port=0), self.sink)
        specs = []
        for k, sid in enumerate(self.station_ids):
            pw = secrets.token_urlsafe(18)[:24]
            self.csms.provision(sid, pw)
            specs.append(
                StationSpec(
                    sid,
                    pw,
                    float(self.p_max_w[k]),
                    bool(self.v2g[k]),
                    "2.1" if self.v2g[k] else "2.0.1",
                    refuse=k in refuse,
                )
            )
        self.fleet: Any = getattr(world, "devices", None)  # household EVs: home charge points
        self.home_ids = home_ids(self.fleet) if self.fleet is not None else []
        if self.home_ids:
            specs += home_specs(self.fleet, self._provision)
        self.server = CsmsThread(self.csms)
        port = self.server.start()
        self.registry = AdapterRegistry(audit)
        self.registry.register(OcppAdapter(self.server, timeout_s))
        ctx = mp.get_context("spawn")
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(
            target=_host,
            daemon=True,
            args=(f"ws://127.0.0.1:{port}/ocpp", specs, meter_s, self._inbox, self._outbox),
        )
        self._proc.start()
        self.server.run(self._wait_connected(timeout_s), timeout_s + 5)
        self.ev_cmd_factor = 1.0
        self.effective = np.ones(len(self.station_ids))  # factor each station accepted
        self._events: list[dict[str, Any]] = []
        self.reported_mw = np.full(len(self.station_ids), np.nan)
        self.held_w: dict[str, float | None] = {}  # what each charge point holds (W), per step

    def _provision(self, station_id: str) -> str:
        pw = secrets.token_urlsafe(18)[:24]
        self.csms.provision(station_id, pw)
        return pw

    async def _wait_connected(self, timeout_s: float) -> None:
        for _ in range(int(timeout_s / 0.05)):
            if len(self.csms.sessions) == len(self.station_ids) + len(self.home_ids):
                return
            await asyncio.sleep(0.05)
        n = len(self.station_ids) + len(self.home_ids)
        raise TimeoutError(f"{len(self.csms.sessions)} of {n} stations connected")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        """Active protocol alarms (a device that refused its last command), the wrapped world's too."""
        out = dict(getattr(self.inner, "alarms", None) or {})
        out.update(self.registry.alarms)
        return out

    def set_ev_factor(self, factor: float) -> None:
        """The EV smart-charging factor 0..1 as one ``SetChargingProfile`` limit per station (W)."""
        f = float(factor)
        cmds = [
            DeviceCommand(sid, "ev_limit_w", round(f * w, 1))
            for sid, w in zip(self.station_ids, self.p_max_w, strict=True)
        ]
        res = self.registry.send(cmds, sim_time=str(self.inner.time))
        for k, r in enumerate(res):
            if r.accepted:
                self.effective[k] = f
        mean = float(np.mean(self.effective)) if len(res) else f
        for r in res:
            if not r.accepted:  # the loop re-plans on what is in effect (the fleet's mean factor)
                self._events.append(_rejected(r, "ev", f, mean))
        self.ev_cmd_factor = mean
        self.inner.ev_cmd_factor = self.ev_cmd_factor

    def apply(self, cmds: list[Any]) -> list[Any]:
        """Field commands, the household EVs' ``ev_limit`` ones over OCPP to their home charge
        points (limit >= 0: ``SetChargingProfile`` limit, W; < 0: a 2.1 central set point),
        audited with their message ids; a refusal raises the device's alarm and a
        ``command_rejected`` field event (the EV keeps what its charge point holds). The other
        commands go the field's own way; returns their acknowledgements."""
        rest, ocpp_cmds = split_ev_limits(cmds, len(self.home_ids))
        acks = self.inner.apply(rest) if rest else []
        if ocpp_cmds:
            res = self.registry.send(ocpp_cmds, sim_time=str(self.inner.time))
            for c, r in zip(ocpp_cmds, res, strict=True):
                if not r.accepted:
                    held = self.held_w.get(c.device_id)
                    self._events.append(_rejected(r, "ev_limit", c.value / 1e3, held))
        return list(acks)

    def _field_side(self) -> None:
        """Device side: tell each station its car's demand; the field's physics uses what it
        delivers, and each household EV follows what its home charge point holds."""
        sim = self.inner.sim
        want = np.asarray(sim.grid_demand_mw.get("ev_p_mw", self.p_max_w / 1e6), np.float64) * 1e6
        if want.size != len(self.station_ids):
            want = self.p_max_w.copy()
        msg = {sid: float(w) for sid, w in zip(self.station_ids, want, strict=True)}
        if self.home_ids:  # a home charge point's car wants its charger's rating while plugged in
            f = self.fleet
            home_w = np.asarray(f.ev_charger_kw, np.float64) * 1e3 * np.asarray(f.ev_plugged)
            msg.update(zip(self.home_ids, home_w.tolist(), strict=True))
        self._inbox.put(msg)
        got = self._outbox.get(timeout=30)
        deliv = np.array([got.get(sid, (0.0, None))[0] for sid in self.station_ids])
        sim.grid_devices.ev_cmd_factor = np.where(
            want > 0, np.clip(deliv / np.maximum(want, 1e-9), 0, 1), 1.0
        )
        self.held_w = {sid: got[sid][1] for sid in self.home_ids if sid in got}
        cmd = held_command(self.held_w, self.fleet) if self.home_ids else None
        if cmd is not None:
            self.inner.apply([cmd])

    def observe(self) -> Any:
        """The field's observation, EV station power as the stations report it over OCPP (MW)."""
        self._field_side()
        obs = self.inner.observe()
        rep = [self.sink.latest(sid, "p_kw") for sid in self.station_ids]
        ev = np.array([np.nan if r is None else r[1] / 1e3 for r in rep])
        self.reported_mw = ev  # the stations' latest MeterValues, MW (NaN: none yet)
        self.sink.flush()
        obs.ev_p_mw = np.where(np.isfinite(ev), ev, obs.ev_p_mw)
        obs.events = list(obs.events) + self._events
        self._events = []
        return obs

    def close(self) -> None:
        """Stop the stations' process and the CSMS (and the wrapped world's, if it has any)."""
        try:
            self._inbox.put(None)
            self._proc.join(10)
        finally:
            if self._proc.is_alive():
                self._proc.terminate()
            self.server.stop()
            inner_close = getattr(self.inner, "close", None)
            if callable(inner_close):
                inner_close()
