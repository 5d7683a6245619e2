"""``gridpilot demo --protocols openadr``: demand response to households only through OpenADR 3.

:class:`OpenAdrWorld` wraps the loop's world without changing its interface and makes the
choice explicit: the loop's household DR (``FlexDR``'s events) no longer reaches households
through the field's own command channel. Instead:

1. each DR record of the loop is published as an event on a VTN served on 127.0.0.1
   (:class:`~gridpilot.protocols.openadr.DrPublisher`, targets ``GROUP`` ``bus:<id>``);
2. the field's aggregator gateways, one per bus with enrolled devices, run as ``toadr3``
   VENs (:class:`~gridpilot.protocols.openadr.fieldven.FieldVen`): they poll the events, shed
   on their households' water heaters, EVs and batteries in proportion to the event's level,
   sample their buses' metered load as the field steps, and post (then update) ``BASELINE`` /
   ``DEMAND`` reports;
3. the reports come back as the record's ``reported_reduction_mw`` (delivered vs planned:
   :meth:`OpenAdrWorld.delivery`); when the loop ends an event, the gateways send a last
   report and hand their devices back.

The direct path is off: field commands tagged with a DR event (``dr-<n>:<step>``,
``dr-<n>:release``) are held back and counted (:attr:`OpenAdrWorld.suppressed`); every other
command (the flexibility schedule's, the grid devices') passes. So DR acts once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
from typing import Any

import numpy as np

from gridpilot.protocols.openadr.bridge import DrPublisher
from gridpilot.protocols.openadr.fieldven import FieldVen, GatewayConfig
from gridpilot.protocols.openadr.routes import Vtn, openadr_router

log = logging.getLogger(__name__)
DR_TAG = re.compile(r"^dr-\d+:")


class _Served:
    """An ASGI app served by uvicorn on 127.0.0.1 (free port) in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, name="gridpilot-vtn", daemon=True)

    def start(self, timeout_s: float = 20.0) -> str:
        self.thread.start()
        t_end = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > t_end or not self.thread.is_alive():
                raise TimeoutError("the VTN did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def gateway_buses(world: Any) -> list[int]:
    """Bus ids with at least one enrolled flexible device (water heater, EV, battery; one
    gateway each)."""
    fleet, g = world.devices, world.grid
    meters = np.concatenate([np.asarray(fleet.wh_meter), np.asarray(fleet.ev_meter),
                             np.asarray(fleet.bat_meter)])  # fmt: skip
    pos = np.unique(np.asarray(fleet.meter_bus)[meters.astype(np.int64)])
    return [int(b) for b in g.bus.ids[pos]]


class OpenAdrWorld:
    """The loop's world with household DR only through OpenADR 3 (see the module docstring).

    ``OpenAdrWorld(world, audit=None)``; :meth:`attach` binds the loop (its DR records; done by
    ``build_demo``). Every attribute not defined here is the wrapped world's; :meth:`close`
    stops the VENs' loop and the VTN.
    """

    def __init__(self, world: Any, audit: Any = None, timeout_s: float = 30.0) -> None:
        import aiohttp
        from fastapi import FastAPI

        self.inner = world
        self.audit = audit
        self.timeout_s = timeout_s
        self.vtn = Vtn()
        api = FastAPI(title="gridpilot OpenADR 3.0.1 VTN (field gateways)")
        api.include_router(openadr_router(self.vtn))
        self._http = _Served(api)
        self.url = self._http.start() + "/openadr3"
        self.vens: list[FieldVen] = []
        for b in gateway_buses(world):
            cid, sec = f"gw-bus-{b}", secrets.token_urlsafe(24)
            self.vtn.oauth.add_client(cid, sec, "ven", ven_name=f"gateway-bus-{b}")
            # the gateways act on the field itself (not through this wrapper's filter)
            self.vens.append(
                FieldVen(GatewayConfig(cid, sec, f"gateway-bus-{b}", (b,)), world, self.url)
            )
        self.suppressed = 0
        self.publisher: DrPublisher | None = None
        self._records: Any = lambda: []
        self._status: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gridpilot-vens", daemon=True
        )
        self._thread.start()
        self._session: Any = self._run(self._open(aiohttp))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    async def _open(self, aiohttp: Any) -> Any:
        session = aiohttp.ClientSession()
        await asyncio.gather(*(v.register(session) for v in self.vens))
        return session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def attach(self, orch: Any) -> None:
        """Bind the loop: its DR records are published as events, reports flow back into them."""
        flexdr = getattr(orch, "flexdr", None)
        if flexdr is None:
            return

        def records() -> list[dict[str, Any]]:
            return list(flexdr.events(limit=100))

        def delivered(record_id: str, mw: float) -> None:
            for r in flexdr.records:
                if str(r.id) == record_id:
                    r.reported_reduction_mw = float(mw)

        self._records = records
        self.publisher = DrPublisher(self.vtn.store, records, delivered)

    def apply(self, cmds: list[Any]) -> list[Any]:
        """Field commands, except a DR event's household ones (held back: DR goes by OpenADR)."""
        keep = [c for c in cmds if not DR_TAG.match(str(getattr(c, "cmd_id", "")))]
        self.suppressed += len(cmds) - len(keep)
        return list(self.inner.apply(keep)) if keep else []

    def delivery(self, record_id: str) -> dict[str, Any] | None:
        """Planned vs reported kW per interval of one loop DR record (None if not published)."""
        pub = self.publisher
        eid = pub.published.get(record_id) if pub is not None else None
        return pub.delivery(eid) if pub is not None and eid else None

    async def _gateways(self, ended: list[str], report: bool) -> None:
        s = self._session
        for eid in ended:  # a last report, then the heaters resume
            for v in self.vens:
                if eid in v.active:
                    await v.report(s, eid)
                    v.release(eid)
        if not report:
            await asyncio.gather(*(v.poll(s) for v in self.vens))
            return
        await asyncio.gather(*(v.report(s, e) for v in self.vens for e in v.active))

    def observe(self) -> Any:
        """Publish new DR events, let the gateways act, step the field, let them report."""
        ended: list[str] = []
        if self.publisher is not None:
            self.publisher.sync()
            for rec in self._records():
                rid, st = str(rec.get("id")), str(rec.get("status"))
                eid = self.publisher.published.get(rid)
                if eid and st != "active" and self._status.get(rid) == "active":
                    ended.append(eid)
                self._status[rid] = st
        self._run(self._gateways(ended, report=False))
        obs = self.inner.observe()
        for v in self.vens:
            v.sample()
        self._run(self._gateways([], report=True))
        return obs

    def close(self) -> None:
        """Stop the VENs' session and loop, and the VTN (and the wrapped world's, if any)."""
        try:
            self._run(self._session.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._http.stop()
            inner_close = getattr(self.inner, "close", None)
            if callable(inner_close):
                inner_close()
