"""gridpilot's OCPP CSMS: ``ws://HOST:PORT/ocpp/<station-id>``, OCPP 2.0.1 and 2.1.

Security profile 1 (HTTP basic authentication, no TLS): each station is provisioned with a
password (16-40 characters, stored as a SHA-256 digest); the upgrade request must carry
``Authorization: Basic base64(<station-id>:<password>)`` with the user equal to the path's
station id, else it gets ``401`` (unknown station or wrong password alike); another path gets
``404``; no OCPP subprotocol, ``400``. Profile 2 is the same over TLS (``wss://``, a server
certificate the stations trust): pass an ``ssl.SSLContext`` as ``CsmsConfig.ssl``.

A station that reconnects replaces its old connection; its record (transactions, last
sequence numbers, connector status) stays, so a transaction resumes where it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import logging
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gridpilot.errors import ValidationError
from gridpilot.protocols.adapter import CommandResult, ReadingSink, clean_id
from gridpilot.protocols.ocpp.messages import SUBPROTOCOLS, charging_profile
from gridpilot.protocols.ocpp.session import SESSIONS, StationRecord

log = logging.getLogger(__name__)
_PATH = re.compile(r"^/ocpp/([A-Za-z0-9_.:-]{1,48})$")


@dataclass
class CsmsConfig:
    """Where and how the CSMS listens.

    ``port`` 0 picks a free port; ``max_message_bytes`` bounds one frame; ``rate_per_s`` /
    ``burst`` each station's message budget; ``response_timeout_s`` how long a command waits
    for its ``CALLRESULT``; ``ssl`` an ``ssl.SSLContext`` for security profile 2 (``wss``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = 65536
    rate_per_s: float = 50.0
    burst: float = 100.0
    response_timeout_s: float = 10.0
    ssl: Any = None


@dataclass
class CsmsStats:
    """Server-wide counters (refused upgrades by status, sessions opened)."""

    refused: dict[str, int] = field(default_factory=dict)
    sessions: int = 0


class Csms:
    """The CSMS (runs on the caller's asyncio loop; see :class:`CsmsThread` for a sync loop).

    ``Csms(config, sink=None)``; :meth:`provision` stations, ``await start()`` (returns the
    port), :meth:`set_limit` sends ``SetChargingProfile``; :attr:`records` per station.
    """

    def __init__(self, config: CsmsConfig | None = None, sink: ReadingSink | None = None) -> None:
        self.config = config or CsmsConfig()
        self.sink = sink
        self.records: dict[str, StationRecord] = {}
        self.sessions: dict[str, Any] = {}
        self.stats = CsmsStats()
        self._secrets: dict[str, bytes] = {}
        self._server: Server | None = None
        self._profile_ids = itertools.count(1)
        self.port = 0

    def provision(self, station_id: str, password: str) -> None:
        """Allow ``station_id`` to connect with ``password`` (OCPP: 16-40 characters)."""
        sid = clean_id(station_id, "station_id")
        if not isinstance(password, str) or not 16 <= len(password) <= 40:
            raise ValidationError(
                f"password of {sid}: must be 16-40 characters (OCPP BasicAuthPassword)"
            )
        self._secrets[sid] = hashlib.sha256(password.encode()).digest()
        self.records.setdefault(sid, StationRecord(sid))
        if self.sink is not None:
            self.sink.provision([sid], kind="ev_station")

    def _refuse(self, conn: ServerConnection, status: HTTPStatus, why: str) -> Response:
        self.stats.refused[why] = self.stats.refused.get(why, 0) + 1
        resp = conn.respond(status, f"{why}\n")
        if status == HTTPStatus.UNAUTHORIZED:
            resp.headers["WWW-Authenticate"] = 'Basic realm="gridpilot-ocpp"'
        return resp

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        """The upgrade request's path and basic credentials (None = let it through)."""
        m = _PATH.match(request.path)
        if m is None:
            return self._refuse(conn, HTTPStatus.NOT_FOUND, "unknown path")
        sid = m.group(1)
        auth = request.headers.get("Authorization", "")
        user, pw = "", ""
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                user, _, pw = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        want = self._secrets.get(sid)
        got = hashlib.sha256(pw.encode()).digest()
        if want is None or user != sid or not hmac.compare_digest(want, got):
            log.info("ocpp: refused station %s (credentials)", sid)
            return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "unauthorized")
        return None

    async def start(self) -> int:
        """Listen; returns the port."""
        c = self.config
        self._server = await serve(
            self._handler,
            c.host,
            c.port,
            process_request=self._check,
            subprotocols=[Subprotocol(x) for x in SUBPROTOCOLS],
            max_size=c.max_message_bytes,
            ssl=c.ssl,
            ping_interval=30,
            ping_timeout=30,
            max_queue=32,
            close_timeout=1,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handler(self, conn: ServerConnection) -> None:
        m = _PATH.match(conn.request.path if conn.request else "")
        version = SUBPROTOCOLS.get(conn.subprotocol or "")
        if m is None or version is None:
            await conn.close(1002, "an OCPP 2.0.1 or 2.1 subprotocol is required")
            return
        sid = m.group(1)
        rec = self.records[sid]
        old = self.sessions.get(sid)
        if old is not None:  # a reconnect: the new connection wins
            await old._connection.close(1000, "replaced by a new connection")
        sess = SESSIONS[version](rec, conn, self.sink, self.config.response_timeout_s)
        sess.rate_per_s, sess.burst = self.config.rate_per_s, self.config.burst
        sess._tokens = sess.burst
        sess.version = version
        self.sessions[sid] = sess
        rec.connected, rec.connections = True, rec.connections + 1
        self.stats.sessions += 1
        try:
            await sess.start()
        except ConnectionClosed:
            pass
        finally:
            if self.sessions.get(sid) is sess:
                del self.sessions[sid]
                rec.connected = False

    async def set_limit(
        self, station_id: str, watts: float, *, evse_id: int = 1, setpoint: bool = False
    ) -> CommandResult:
        """Send ``SetChargingProfile`` (limit in W, or a 2.1 central set point); returns the answer.

        ``accepted`` only on ``Accepted``; ``status`` ``Rejected``, ``not_connected``,
        ``timeout``, ``CallError:<code>`` or ``invalid`` otherwise; ``message_id`` is the
        OCPP unique id of the request.
        """
        kind = "ev_setpoint_w" if setpoint else "ev_limit_w"
        sess = self.sessions.get(station_id)
        if sess is None:
            return CommandResult(station_id, "ocpp", kind, False, "not_connected")
        proto = f"ocpp{sess.version}"
        try:
            prof = charging_profile(next(self._profile_ids), watts, sess.version, setpoint)
        except ValueError as exc:
            return CommandResult(station_id, proto, kind, False, "invalid", reason=str(exc))
        uid = f"gp-{next(self._profile_ids)}-{int(time.time() * 1000) % 10**9}"
        req = sess._call.SetChargingProfile(evse_id=int(evse_id), charging_profile=prof)
        t0 = time.perf_counter()
        try:
            resp = await sess.call(req, suppress=False, unique_id=uid)
            status = str(resp.status)
            reason = (
                str((resp.status_info or {}).get("reason_code", ""))[:40]
                if resp.status_info
                else ""
            )
        except TimeoutError:
            status, reason = "timeout", f"no answer in {self.config.response_timeout_s} s"
        except ConnectionClosed:
            status, reason = "not_connected", "connection closed"
        except Exception as exc:  # an OCPP CALLERROR from the station
            status, reason = f"CallError:{getattr(exc, 'code', type(exc).__name__)}", str(exc)[:120]
        ms = (time.perf_counter() - t0) * 1e3
        return CommandResult(station_id, proto, kind, status == "Accepted", status, uid, reason, ms)


async def gather_limits(
    csms: Csms, limits: dict[str, float], setpoint: bool = False
) -> list[CommandResult]:
    """Send many limits at once (one task per station); results in ``limits``' order."""
    return list(
        await asyncio.gather(*(csms.set_limit(s, w, setpoint=setpoint) for s, w in limits.items()))
    )
