"""One connected charging station on the CSMS side: OCPP handlers and hostile-input guards.

A session is the ``ocpp`` library's ``ChargePoint`` (2.0.1 or 2.1, from the negotiated
subprotocol) plus gridpilot's guards: every incoming frame is unpacked and schema-validated
once (the library's own JSON schemas); a malformed frame gets a ``CALLERROR``
(``RpcFrameworkError``/``FormatViolation``) and is counted, never logged raw; a station sending
more than its rate (token bucket) gets ``CALLERROR`` ``SecurityError`` and is disconnected
after a sustained flood. Reports land in the :class:`~gridpilot.protocols.adapter.ReadingSink`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, unpack, validate_payload
from ocpp.routing import on
from ocpp.v21 import ChargePoint as Cp21
from ocpp.v201 import ChargePoint as Cp201

from gridpilot.protocols.ocpp.messages import meter_readings, now_iso, parse_time_ms
from gridpilot.protocols.ocpp.responses import ResponseWait

log = logging.getLogger(__name__)


@dataclass
class StationRecord:
    """What the CSMS keeps of a station across connections (so a reconnect resumes)."""

    station_id: str
    connected: bool = False
    connections: int = 0
    boot: dict[str, Any] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)  # evse id -> connector status
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # active ones
    last_seq: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        self.counters[key] = self.counters.get(key, 0) + n


class _Handlers:
    """Handlers shared by the 2.0.1 and 2.1 sessions (payloads are alike for these actions)."""

    record: StationRecord
    sink: Any
    _call_result: Any

    def _readings(self, evse_id: Any, meter_value: Any) -> None:
        rows, skipped = meter_readings(meter_value)
        if skipped:
            self.record.count("values_skipped", skipped)
        for ts, vals in rows:
            self.record.count("meter_values")
            if self.sink is not None:
                self.sink.add(self.record.station_id, ts, vals)

    @on("BootNotification", skip_schema_validation=True)
    def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.record.boot = {k: str(v)[:50] for k, v in charging_station.items() if k != "modem"}
        return self._call_result.BootNotification(
            current_time=now_iso(), interval=300, status="Accepted"
        )

    @on("Heartbeat", skip_schema_validation=True)
    def on_heartbeat(self, **_: Any) -> Any:
        return self._call_result.Heartbeat(current_time=now_iso())

    @on("StatusNotification", skip_schema_validation=True)
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> Any:
        if len(self.record.status) < 64 or evse_id in self.record.status:
            self.record.status[int(evse_id)] = connector_status
        return self._call_result.StatusNotification()

    @on("MeterValues", skip_schema_validation=True)
    def on_meter_values(self, evse_id: int, meter_value: list[Any], **_: Any) -> Any:
        self._readings(evse_id, meter_value)
        return self._call_result.MeterValues()

    @on("TransactionEvent", skip_schema_validation=True)
    def on_transaction(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **kw: Any,
    ) -> Any:
        rec = self.record
        tx = str(transaction_info["transaction_id"])[:36]
        if event_type == "Ended":
            rec.transactions.pop(tx, None)
            rec.last_seq.pop(tx, None)
        elif tx in rec.transactions or len(rec.transactions) < 16:
            evse = kw.get("evse") or {}
            rec.transactions[tx] = {
                "evse_id": int(evse.get("id", 0)) or rec.transactions.get(tx, {}).get("evse_id", 1),
                "state": transaction_info.get("charging_state", ""),
                "since_ms": parse_time_ms(timestamp),
            }
            rec.last_seq[tx] = int(seq_no)
        if kw.get("meter_value"):
            self._readings((kw.get("evse") or {}).get("id"), kw["meter_value"])
        return self._call_result.TransactionEvent()

    @on("Authorize", skip_schema_validation=True)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return self._call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("NotifyReport", skip_schema_validation=True)
    def on_notify_report(self, **_: Any) -> Any:
        return self._call_result.NotifyReport()


class _Guarded:
    """Rate limit, single parse, schema validation and CALLERRORs for hostile input."""

    record: StationRecord
    _ocpp_version: str
    rate_per_s: float = 50.0
    burst: float = 100.0
    flood_close_after: int = 200
    version: str = ""  # the negotiated OCPP version

    def _init_guard(self) -> None:
        self._tokens = self.burst
        self._t_tokens = time.monotonic()
        self._over = 0

    def _allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._t_tokens) * self.rate_per_s)
        self._t_tokens = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._over = 0
            return True
        self._over += 1
        return False

    async def _error(self, unique_id: str, code: str, text: str) -> None:
        await self._send(json.dumps([4, unique_id, code, text, {}]))  # type: ignore[attr-defined]

    async def route_message(self, raw_msg: str | bytes) -> None:
        rec = self.record
        if not self._allow():
            rec.count("flood_refused")
            if self._over >= self.flood_close_after:
                rec.count("flood_closed")
                log.warning("station %s flooding: disconnected", rec.station_id)
                await self._connection.close(1008, "rate limit")  # type: ignore[attr-defined]
                return
            await self._error("-1", "SecurityError", "rate limit exceeded")
            return
        try:
            msg = unpack(raw_msg)
        except (OCPPError, ValueError, TypeError, AttributeError, KeyError, IndexError):
            rec.count("malformed")
            await self._error("-1", "RpcFrameworkError", "malformed message")
            return
        if isinstance(msg, Call):
            try:
                await validate_payload(msg, self._ocpp_version)
            except OCPPError as exc:
                rec.count("schema_invalid")
                await self._error(str(msg.unique_id)[:36], exc.code, "payload fails the schema")
                return
            except Exception:  # an action the version does not know, a bad schema lookup
                rec.count("schema_invalid")
                await self._error(str(msg.unique_id)[:36], "NotSupported", "unknown action")
                return
        if isinstance(msg, Call):
            try:
                await self._handle_call(msg)  # type: ignore[attr-defined]
            except OCPPError as exc:
                await self._send(msg.create_call_error(exc).to_json())  # type: ignore[attr-defined]
        else:  # a CALLRESULT or CALLERROR: to the waiting call()
            self._response_queue.put_nowait(msg)  # type: ignore[attr-defined]


class Session201(_Guarded, _Handlers, ResponseWait, Cp201):
    """A station speaking OCPP 2.0.1."""

    def __init__(self, record: StationRecord, connection: Any, sink: Any, timeout_s: float) -> None:
        super().__init__(record.station_id, connection, response_timeout=timeout_s)
        self.record, self.sink = record, sink
        self._init_guard()


class Session21(_Guarded, _Handlers, ResponseWait, Cp21):
    """A station speaking OCPP 2.1."""

    def __init__(self, record: StationRecord, connection: Any, sink: Any, timeout_s: float) -> None:
        super().__init__(record.station_id, connection, response_timeout=timeout_s)
        self.record, self.sink = record, sink
        self._init_guard()


SESSIONS: dict[str, Any] = {"2.0.1": Session201, "2.1": Session21}
