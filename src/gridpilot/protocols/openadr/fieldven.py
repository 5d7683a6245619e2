"""The device side of OpenADR: an aggregator gateway of the field simulator as a VEN.

:class:`FieldVen` speaks to a VTN with ``toadr3`` (an independent VEN library) on behalf of the
households on some buses of a :class:`~gridpilot.agent.FieldWorld`: it registers its ``ven``
object with targets ``GROUP`` = ``bus:<id>`` (so it sees the DR events for its buses), polls
``GET /events``, and on an event with a ``SIMPLE`` level L >= 1 sheds on its households' devices
in the field in proportion to L/3: water heaters paused (``water_heater_pause``), EV charging
limited to (1 - L/3) of the charger (``ev_limit``), batteries discharging at L/3 of their
rating (``battery_setpoint``), noting its buses' metered load as the baseline (a flat baseline:
it does not follow the load's own trend over the event);
:meth:`FieldVen.sample` records the metered load per event interval as the field steps; it
reports ``BASELINE`` and ``DEMAND`` (kW) per interval, and hands the devices back on release
(heaters resumed, EVs at their charger's rating, batteries on their own control).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    """A gateway's OAuth2 client, VEN name and the buses (ids) whose households it serves."""

    client_id: str
    secret: str
    ven_name: str
    bus_ids: tuple[int, ...]


@dataclass
class _Active:
    event: Any  # toadr3.models.Event
    baseline_kw: float
    samples: dict[int, list[float]] = field(default_factory=dict)
    report_id: str | None = None  # the VTN's id of this gateway's report on the event


class FieldVen:
    """One gateway (see the module docstring); ``vtn_url`` is the VTN base URL (``.../openadr3``)."""

    def __init__(self, cfg: GatewayConfig, world: Any, vtn_url: str) -> None:
        self.cfg, self.world, self.url = cfg, world, vtn_url.rstrip("/")
        g, fleet = world.grid, world.devices
        bus_pos = g.bus.index_of(np.asarray(cfg.bus_ids, np.int64))
        self.water_heaters = np.flatnonzero(np.isin(fleet.meter_bus[fleet.wh_meter], bus_pos))
        self.evs = np.flatnonzero(np.isin(fleet.meter_bus[fleet.ev_meter], bus_pos))
        self.batteries = np.flatnonzero(np.isin(fleet.meter_bus[fleet.bat_meter], bus_pos))
        self.loads = np.flatnonzero(np.isin(g.load["bus"], np.asarray(cfg.bus_ids)))
        self.active: dict[str, _Active] = {}
        self.done: set[str] = set()  # events followed and released (not followed again)
        self._token: Any = None

    def demand_kw(self) -> float:
        """Its buses' metered load now (the field's substation metering), kW."""
        r = self.world.readings_last
        if r is None:
            return 0.0
        return float(np.asarray(r.sensors["load_p_mw"], np.float64)[self.loads].sum() * 1e3)

    async def register(self, session: Any) -> None:
        """Take a token and register the ``ven`` object (an existing one is kept)."""
        import toadr3

        c = self.cfg
        self._token = await toadr3.acquire_access_token(
            session, f"{self.url}/auth/token", "client_credentials",
            {"scope": "read_all write_reports write_vens"}, c.client_id, c.secret,
        )  # fmt: skip
        body = {"venName": c.ven_name,
                "targets": [{"type": "GROUP", "values": [f"bus:{b}" for b in c.bus_ids]}]}  # fmt: skip
        hdr = {"Authorization": f"Bearer {self._token.token}"}
        async with session.post(f"{self.url}/vens", json=body, headers=hdr) as r:
            if r.status not in (201, 409):
                raise RuntimeError(f"VEN {c.ven_name} not registered: HTTP {r.status}")

    async def poll(self, session: Any) -> list[str]:
        """Read the events; follow each new one with a SIMPLE level >= 1. Returns their ids."""
        import toadr3

        new = []
        for ev in await toadr3.get_events(session, self.url, self._token):
            if ev.id in self.active or ev.id in self.done or not ev.intervals:
                continue
            level = next((p.values[0] for p in ev.intervals[0].payloads if p.type == "SIMPLE"), 0)
            if not isinstance(level, int | float) or level < 1:
                continue
            self.active[str(ev.id)] = _Active(ev, self.demand_kw())
            cmds = self._shed(min(float(level), 3.0) / 3.0)
            if cmds:
                self.world.apply(cmds)
            new.append(str(ev.id))
        return new

    def _shed(self, share: float) -> list[Any]:
        """Field commands shedding ``share`` (0..1) of its households' flexible devices."""
        f = self.world.devices
        cmds = []
        if self.water_heaters.size:
            cmds.append(_command("water_heater_pause", self.water_heaters))
        if self.evs.size:
            kw = np.asarray(f.ev_charger_kw[self.evs], np.float64) * (1.0 - share)
            cmds.append(_command("ev_limit", self.evs, kw))
        if self.batteries.size:
            kw = -np.asarray(f.bat_kw[self.batteries], np.float64) * share
            cmds.append(_command("battery_setpoint", self.batteries, kw))
        return cmds

    def sample(self) -> None:
        """Record the metered load into the current interval of every followed event."""
        now = np.datetime64(self.world.time, "s")
        for a in self.active.values():
            ip = a.event.interval_period
            step_s = int(ip.duration.total_seconds()) if ip is not None else 0
            if ip is None or isinstance(ip.start, str) or step_s <= 0:
                continue
            t0 = ip.start.astimezone(UTC).replace(tzinfo=None) if ip.start.tzinfo else ip.start
            k = int((now - np.datetime64(t0, "s")) / np.timedelta64(step_s, "s"))
            if 0 <= k < len(a.event.intervals):
                a.samples.setdefault(k, []).append(self.demand_kw())

    async def report(self, session: Any, event_id: str) -> Any:
        """Post ``BASELINE`` and ``DEMAND`` (kW) for the sampled intervals (the first time;
        afterwards the same report is updated in place with ``PUT``, so that each interval is
        counted once); returns the report (a toadr3 ``Report``, or the VTN's JSON on update)."""
        import toadr3
        from toadr3.models import Interval, Report, ReportData, ValuesMap

        a = self.active[event_id]
        ivs = [Interval(id=k, payloads=[ValuesMap(type="BASELINE", values=[round(a.baseline_kw, 3)]),
                                        ValuesMap(type="DEMAND", values=[round(float(np.mean(v)), 3)])])
               for k, v in sorted(a.samples.items())]  # fmt: skip
        rep = Report(programID=a.event.program_id, eventID=event_id, clientName=self.cfg.ven_name,
                     resources=[ReportData(resource_name=self.cfg.ven_name, intervals=ivs)])  # fmt: skip
        if a.report_id is None:
            out = await toadr3.post_report(session, self.url, self._token, rep)
            a.report_id = str(getattr(out, "id", "") or "") or None
            return out
        body = rep.model_dump(mode="json", by_alias=True, exclude_none=True)
        hdr = {"Authorization": f"Bearer {self._token.token}"}
        async with session.put(f"{self.url}/reports/{a.report_id}", json=body, headers=hdr) as r:
            if r.status != 200:
                raise RuntimeError(f"VEN {self.cfg.ven_name}: report update HTTP {r.status}")
            return await r.json()

    def release(self, event_id: str) -> None:
        """Stop following an event: its devices back to their own control."""
        self.done.add(event_id)
        if self.active.pop(event_id, None) is None:
            return
        f, cmds = self.world.devices, []
        if self.water_heaters.size:
            cmds.append(_command("water_heater_resume", self.water_heaters))
        if self.evs.size:
            kw = np.asarray(f.ev_charger_kw[self.evs], np.float64)
            cmds.append(_command("ev_limit", self.evs, kw))
        if self.batteries.size:
            cmds.append(_command("battery_auto", self.batteries))
        if cmds:
            self.world.apply(cmds)


def _command(name: str, positions: np.ndarray, value: Any = None) -> Any:
    from gridpilot.field import Command

    return Command(name, target=positions, value=value, cmd_id="openadr")
