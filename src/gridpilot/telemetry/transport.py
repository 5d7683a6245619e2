"""Transports: an in-process bus (default) and MQTT (paho-mqtt), with one interface.

Payloads are opaque bytes (frames or batches, see :mod:`gridpilot.telemetry.schema`).
Topics follow :class:`Topics`; subscriptions use MQTT wildcards (``+`` one level, ``#`` the rest).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from gridpilot.errors import GridpilotError, Issue, ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
_TOPIC_PART = re.compile(r"^[^/+#\x00]+$")


@dataclass(frozen=True)
class Topics:
    """The topic layout under ``prefix`` (default ``gridpilot/v1``).

    ``<prefix>/tm/<sender>``: readings, events and acks a device or gateway sends;
    ``<prefix>/cmd/<device>``: commands to a device.
    """

    prefix: str = "gridpilot/v1"

    def telemetry(self, sender: str) -> str:
        """Return the topic ``sender`` publishes telemetry on."""
        return f"{self.prefix}/tm/{_part(sender)}"

    def commands(self, device: str) -> str:
        """Return the topic on which ``device`` receives commands."""
        return f"{self.prefix}/cmd/{_part(device)}"

    def sender_of(self, topic: str) -> str:
        """Return the sender a telemetry topic names (what follows ``<prefix>/tm/``).

        A topic that is not ``<prefix>/tm/<sender>`` gives the whole topic back, which no
        sender id can equal (ids hold no '/'), so nothing arriving on it is accepted.
        """
        head = f"{self.prefix}/tm/"
        return topic[len(head) :] if topic.startswith(head) else topic

    @property
    def all_telemetry(self) -> str:
        """Return the wildcard matching every sender's telemetry topic."""
        return f"{self.prefix}/tm/#"

    @property
    def all_commands(self) -> str:
        """Return the wildcard matching every device's command topic."""
        return f"{self.prefix}/cmd/#"


def _part(name: str) -> str:
    if not _TOPIC_PART.match(name):
        raise ValidationError(
            issues=[
                Issue("topic", "device_id", "must not contain '/', '+', '#' or NUL", value=name)
            ]
        )
    return name


def topic_matches(pattern: str, topic: str) -> bool:
    """Return True if ``topic`` matches the MQTT subscription ``pattern``."""
    p = pattern.split("/")
    t = topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(p) == len(t)


class Transport(ABC):
    """Publish bytes on topics; deliver matching messages to handlers."""

    @abstractmethod
    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` on ``topic``."""

    @abstractmethod
    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for every message matching ``pattern``."""

    def flush(self, timeout_s: float = 30.0) -> None:  # noqa: B027 - optional hook
        """Wait until everything published so far has left this process."""

    @abstractmethod
    def close(self) -> None:
        """Stop the transport."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessBus(Transport):
    """The default transport: synchronous delivery inside this process (no server)."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        self.published = 0

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver ``payload`` to every matching handler now, in this thread."""
        with self._lock:
            subs = list(self._subs)
            self.published += 1
        for pattern, handler in subs:
            if topic_matches(pattern, topic):
                handler(topic, payload)

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``pattern``."""
        with self._lock:
            self._subs.append((pattern, handler))

    def close(self) -> None:
        """Drop all subscriptions."""
        with self._lock:
            self._subs.clear()


class MqttTransport(Transport):
    """MQTT via paho-mqtt (network loop in a background thread).

    ``url``: ``mqtt://host:port`` (default 127.0.0.1:1883). ``qos``: 1 (at least once,
    default) or 0. Raises ``GridpilotError`` if the broker cannot be reached.
    Handlers run in paho's network thread: keep them short (e.g. append to a queue).

    Broker loss: the client reconnects by itself (back-off 1 to 4 s) and subscribes again;
    QoS 1 messages published meanwhile wait in a buffer of at most ``max_buffered``
    messages and go out after the reconnect. If the broker stays away longer than
    ``reconnect_timeout_s``, or the buffer is full, :meth:`publish` and :meth:`flush` raise
    a ``GridpilotError`` saying so (no raw paho error codes).
    """

    def __init__(  # noqa: PLR0913
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        client_id: str | None = None,
        qos: int = 1,
        connect_timeout_s: float = 5.0,
        max_inflight: int = 1000,
        max_buffered: int = 10_000,
        reconnect_timeout_s: float = 30.0,
    ) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp"):
            raise ValidationError(
                issues=[Issue("transport", "url", "expected mqtt://host:port", value=url)]
            )
        self.url = url
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 1883
        self.qos = int(qos)
        self.max_buffered = int(max_buffered)
        self.reconnect_timeout_s = float(reconnect_timeout_s)
        self._lost_at: float | None = None  # monotonic time the connection was lost
        self._closing = False
        self._subs: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._sub_done: dict[int, threading.Event] = {}
        self._outstanding: list[mqtt.MQTTMessageInfo] = []
        self.received = 0
        cid = client_id or f"gridpilot-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(self.max_buffered)
        self.client.reconnect_delay_set(1, 4)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        try:
            self.client.connect(self.host, self.port, keepalive=60)
        except OSError as exc:
            raise GridpilotError(f"cannot reach MQTT broker at {url}: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            self.client.loop_stop()
            raise GridpilotError(f"MQTT broker at {url} did not accept the connection")

    def _on_connect(
        self, client: object, userdata: object, flags: object, rc: object, props: object = None
    ) -> None:
        if getattr(rc, "is_failure", False):
            return
        if self._connected.is_set():  # a reconnect: the broker forgot our subscriptions
            for pattern, _h in list(self._subs):
                self.client.subscribe(pattern, qos=self.qos)
            log.warning("MQTT broker at %s is back; subscriptions renewed", self.url)
        self._lost_at = None
        self._connected.set()

    def _on_disconnect(self, client: object, userdata: object, *args: object) -> None:
        if self._lost_at is None and not self._closing:
            self._lost_at = time.monotonic()
            log.warning("lost the MQTT broker at %s; reconnecting", self.url)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set() and self._lost_at is None

    def _check_lost(self) -> None:
        """Raise ``GridpilotError`` if the broker has been away for too long."""
        lost = self._lost_at
        if lost is not None and time.monotonic() - lost > self.reconnect_timeout_s:
            raise GridpilotError(
                f"lost the MQTT broker at {self.url} and could not reconnect within "
                f"{self.reconnect_timeout_s:g} s ({self.buffered} messages not delivered)"
            )

    @property
    def buffered(self) -> int:
        """Messages published but not yet acknowledged by the broker."""
        with self._lock:
            return sum(1 for i in self._outstanding if not _is_published(i))

    def _on_subscribe(
        self, client: object, userdata: object, mid: int, rcs: object, props: object = None
    ) -> None:
        with self._lock:  # the SUBACK may arrive before subscribe() has stored its event
            ev = self._sub_done.setdefault(mid, threading.Event())
        ev.set()

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        topic: str = msg.topic  # type: ignore[attr-defined]
        payload: bytes = msg.payload  # type: ignore[attr-defined]
        self.received += 1
        for pattern, handler in self._subs:
            if topic_matches(pattern, topic):
                handler(topic, payload)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue ``payload`` for ``topic`` (returns at once; see :meth:`flush`).

        While the broker is away (QoS 1) the message waits in the bounded buffer; raises
        ``GridpilotError`` when the buffer is full or the broker stayed away too long.
        """
        import paho.mqtt.client as mqtt

        self._check_lost()
        info = self.client.publish(topic, payload, qos=self.qos)
        rc = info.rc
        if rc == mqtt.MQTT_ERR_NO_CONN and self.qos > 0:
            info.rc = mqtt.MQTT_ERR_SUCCESS  # kept by the client, sent after the reconnect
        elif rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise GridpilotError(
                f"MQTT broker at {self.url} unreachable: {self.max_buffered} messages buffered "
                "(the limit); giving up"
            )
        elif rc != mqtt.MQTT_ERR_SUCCESS:
            raise GridpilotError(
                f"MQTT publish to {topic!r} at {self.url} failed: {mqtt.error_string(rc)}"
            )
        with self._lock:
            self._outstanding.append(info)
            if len(self._outstanding) > 10_000:
                self._outstanding = [i for i in self._outstanding if not _is_published(i)]

    def subscribe(self, pattern: str, handler: Handler, timeout_s: float = 5.0) -> None:
        """Subscribe to ``pattern`` and wait for the broker's acknowledgement."""
        with self._lock:
            self._subs.append((pattern, handler))
        rc, mid = self.client.subscribe(pattern, qos=self.qos)
        if rc != 0 or mid is None:  # paho gives a message id whenever rc is 0
            raise GridpilotError(f"MQTT subscribe to {pattern!r} failed with code {rc}")
        with self._lock:
            ev = self._sub_done.setdefault(mid, threading.Event())
        if not ev.wait(timeout_s):
            raise GridpilotError(f"MQTT broker did not acknowledge subscription {pattern!r}")

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every message published so far is acknowledged (QoS 1) or sent (QoS 0).

        Waits through a broker outage up to ``reconnect_timeout_s``; raises ``GridpilotError``
        (how many messages are undelivered, whether the broker is away) when time runs out.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            pending = [i for i in self._outstanding if not _is_published(i)]
        for k, info in enumerate(pending):
            while not _is_published(info):
                self._check_lost()
                if time.monotonic() >= deadline:
                    undelivered = sum(1 for i in pending[k:] if not _is_published(i))
                    state = "connected" if self.connected else "disconnected"
                    raise GridpilotError(
                        f"MQTT broker at {self.url} ({state}) did not acknowledge "
                        f"{undelivered} messages within {timeout_s:g} s"
                    )
                _wait(info, min(0.2, max(0.0, deadline - time.monotonic())))
        with self._lock:
            self._outstanding = [i for i in self._outstanding if not _is_published(i)]

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._closing = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def _is_published(info: Any) -> bool:
    """True once the broker acknowledged ``info``'s message (False, not an error, before)."""
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return False


def _wait(info: object, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``info``'s acknowledgement; True once it is published."""
    try:
        info.wait_for_publish(timeout_s)  # type: ignore[attr-defined]
    except (RuntimeError, ValueError):  # publish was queued while disconnected: poll
        time.sleep(timeout_s)
    return _is_published(info)


def open_transport(url: str = "inproc") -> Transport:
    """Return a transport for ``url``: ``inproc`` (default) or ``mqtt://host:port``."""
    if url in ("inproc", "memory", ""):
        return InProcessBus()
    if url.startswith(("mqtt://", "tcp://")):
        return MqttTransport(url)
    raise ValidationError(
        issues=[Issue("transport", "url", "expected inproc or mqtt://host:port", value=url)]
    )
