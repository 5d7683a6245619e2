"""The device side: a field EV charging station as an OCPP charge point (the ``ocpp`` library,
charge-point role), and a host process running many of them.

:class:`StationSpec` describes one station (id, password, rating, V2G, OCPP version);
:class:`StationModel` its physics (the EV's wish, the limit in effect, energy and SoC);
:func:`run_station` connects (basic auth), boots, reports ``StatusNotification``, starts a
transaction and sends ``MeterValues`` every ``meter_s`` seconds, and reconnects after a drop
(with its transaction still running). ``SetChargingProfile`` is accepted when the station can
follow it (unit W, a limit >= 0, a discharge set point only on a V2G station under 2.1) and
``Rejected`` otherwise; a station built with ``refuse=True`` rejects every profile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint as Cp21
from ocpp.v201 import ChargePoint as Cp201
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gridpilot.protocols.ocpp.messages import now_iso, sampled
from gridpilot.protocols.ocpp.responses import ResponseWait

log = logging.getLogger(__name__)


@dataclass
class StationSpec:
    """One charging station: id, basic-auth password, rating (W), V2G capability, OCPP version."""

    station_id: str
    password: str
    p_max_w: float = 22_000.0
    v2g: bool = False
    version: str = "2.0.1"
    refuse: bool = False  # rejects every charging profile (a faulty or locked-down station)
    capacity_wh: float = 60_000.0


@dataclass
class StationModel:
    """The station's physics: the EV wants ``demand_w``; it draws min(demand, limit) (or the set
    point under a 2.1 central set point); energy registers in Wh; SoC in %."""

    spec: StationSpec
    demand_w: float = 0.0
    limit_w: float | None = None
    setpoint_w: float | None = None
    e_import_wh: float = 0.0
    e_export_wh: float = 0.0
    soc_pct: float = 40.0
    profiles: list[dict[str, Any]] = field(default_factory=list)
    meter_sent: int = 0  # MeterValues the CSMS confirmed

    def __post_init__(self) -> None:
        if self.demand_w == 0.0:
            self.demand_w = self.spec.p_max_w

    @property
    def p_w(self) -> float:
        """Power drawn now, W (+ charging, - V2G discharge)."""
        if self.setpoint_w is not None:
            return max(min(self.setpoint_w, self.spec.p_max_w), -self.spec.p_max_w)
        lim = self.spec.p_max_w if self.limit_w is None else min(self.limit_w, self.spec.p_max_w)
        return max(min(self.demand_w, lim), 0.0)

    def advance(self, dt_s: float) -> None:
        """Integrate energy and SoC over ``dt_s`` seconds at the present power."""
        e = self.p_w * dt_s / 3600.0
        if e >= 0:
            self.e_import_wh += e
        else:
            self.e_export_wh -= e
        self.soc_pct = min(max(self.soc_pct + 100.0 * e / self.spec.capacity_wh, 0.0), 100.0)


class _StationHandlers:
    model: StationModel
    _call_result: Any

    def _judge(self, charging_profile: dict[str, Any]) -> tuple[bool, float | None, float | None]:
        """(ok, limit_w, setpoint_w) of a profile this station can follow."""
        spec = self.model.spec
        if spec.refuse:
            return False, None, None
        sch = (charging_profile.get("charging_schedule") or [{}])[0]
        per = (sch.get("charging_schedule_period") or [{}])[0]
        if sch.get("charging_rate_unit") != "W":
            return False, None, None
        if per.get("operation_mode") == "CentralSetpoint":
            sp = float(per.get("setpoint", 0.0))
            if spec.version != "2.1" or (sp < 0 and not spec.v2g):
                return False, None, None
            return True, None, sp
        lim = per.get("limit")
        if lim is None or float(lim) < 0:
            return False, None, None
        return True, float(lim), None

    @on("SetChargingProfile")
    def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        ok, lim, sp = self._judge(charging_profile)
        if ok:
            self.model.limit_w, self.model.setpoint_w = lim, sp
            self.model.profiles.append(charging_profile)
            del self.model.profiles[:-8]
        return self._call_result.SetChargingProfile(status="Accepted" if ok else "Rejected")


class ChargePoint201(_StationHandlers, ResponseWait, Cp201):
    """An OCPP 2.0.1 charging station."""


class ChargePoint21(_StationHandlers, ResponseWait, Cp21):
    """An OCPP 2.1 charging station (V2X central set points)."""


def basic_auth(station_id: str, password: str) -> str:
    """The ``Authorization`` header value of OCPP security profile 1."""
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()


@dataclass
class RunOptions:
    """How a station runs: CSMS base URL (``ws://host:port/ocpp``, or ``wss://`` for security
    profile 2), meter interval (s), reconnect back-off (s), how long to run (s; None = until
    cancelled), and ``ssl``: the ``ssl.SSLContext`` trusting the CSMS's CA (``wss://`` only;
    None = the system's default trust store)."""

    url: str
    meter_s: float = 10.0
    backoff_s: float = 1.0
    run_s: float | None = None
    ssl: Any = None


async def _session(cp: Any, model: StationModel, tx: str, seq: list[int], meter_s: float) -> None:
    """Boot, status, (resume the) transaction, then meter values until the connection drops."""
    boot = cp._call.BootNotification(
        charging_station={"model": "gridpilot-sim", "vendor_name": "gridpilot"}, reason="PowerUp"
    )
    await cp.call(boot)
    await cp.call(
        cp._call.StatusNotification(
            timestamp=now_iso(), connector_status="Occupied", evse_id=1, connector_id=1
        )
    )
    seq[0] += 1
    await cp.call(
        cp._call.TransactionEvent(
            event_type="Started" if seq[0] == 1 else "Updated",
            timestamp=now_iso(),
            trigger_reason="CablePluggedIn" if seq[0] == 1 else "Trigger",
            seq_no=seq[0],
            transaction_info={"transaction_id": tx, "charging_state": "Charging"},
            evse={"id": 1, "connector_id": 1},
            offline=seq[0] > 1,
        )
    )
    last = time.monotonic()
    while True:
        await asyncio.sleep(meter_s)
        now = time.monotonic()
        model.advance(now - last)
        last = now
        m = model
        sv = sampled(m.p_w, m.e_import_wh, m.e_export_wh, m.soc_pct, m.limit_w)
        ok = await cp.call(
            cp._call.MeterValues(
                evse_id=1, meter_value=[{"timestamp": now_iso(), "sampled_value": sv}]
            )
        )
        if ok is not None:  # a CALLRESULT (a CALLERROR comes back as None)
            model.meter_sent += 1


async def run_station(
    spec: StationSpec,
    opts: RunOptions,
    model: StationModel | None = None,
    connected: asyncio.Event | None = None,
) -> StationModel:
    """Run one station against the CSMS at ``opts.url`` until ``opts.run_s`` passes (or it is
    cancelled); reconnects after a drop. Returns its model (the physics it ended with)."""
    model = model or StationModel(spec)
    tx, seq = str(uuid.uuid4()), [0]
    sub = "ocpp2.1" if spec.version == "2.1" else "ocpp2.0.1"
    cls = ChargePoint21 if spec.version == "2.1" else ChargePoint201
    deadline = None if opts.run_s is None else time.monotonic() + opts.run_s

    async def loop() -> None:
        while True:
            try:
                async with websockets.connect(
                    f"{opts.url}/{spec.station_id}",
                    subprotocols=[sub],  # type: ignore[list-item]
                    additional_headers={
                        "Authorization": basic_auth(spec.station_id, spec.password)
                    },
                    open_timeout=30,
                    ping_interval=None,
                    **({"ssl": opts.ssl} if opts.url.startswith("wss://") else {}),
                ) as ws:
                    cp = cls(spec.station_id, ws, response_timeout=30)
                    cp.model = model
                    reader = asyncio.create_task(cp.start())
                    if connected is not None:
                        connected.set()
                    try:
                        await _session(cp, model, tx, seq, opts.meter_s)
                    finally:
                        reader.cancel()
            except InvalidStatus:
                raise
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                log.info("station %s: connection lost (%s); reconnecting", spec.station_id, exc)
            await asyncio.sleep(opts.backoff_s)

    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (responses.py)
    left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(left):
            await loop()
    return model
