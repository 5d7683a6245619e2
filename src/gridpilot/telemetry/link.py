"""One call to wire a registry, a transport and a store together (what a field run needs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gridpilot.telemetry.ingest import Ingestor, IngestReport, Receiver
from gridpilot.telemetry.registry import DeviceRegistry
from gridpilot.telemetry.schema import encode_batch
from gridpilot.telemetry.store import TelemetryStore, open_store
from gridpilot.telemetry.transport import Topics, Transport, open_transport


@dataclass
class TelemetryLink:
    """A transport with a receiver that verifies and stores everything sent on it.

    ``send(sender, frames)`` publishes frames (batched into one payload) on the sender's
    telemetry topic; ``drain()`` ingests what has arrived. Build it with :func:`connect`.
    """

    registry: DeviceRegistry
    transport: Transport
    store: TelemetryStore
    ingestor: Ingestor
    receiver: Receiver
    topics: Topics = field(default_factory=Topics)
    sent_payloads: int = 0

    def send(self, sender: str, frames: list[bytes], *, max_frames_per_payload: int = 500) -> None:
        """Publish ``frames`` from ``sender`` in batches of at most ``max_frames_per_payload``."""
        topic = self.topics.telemetry(sender)
        for i in range(0, len(frames), max_frames_per_payload):
            self.transport.publish(topic, encode_batch(frames[i : i + max_frames_per_payload]))
            self.sent_payloads += 1

    def drain(self, timeout_s: float = 10.0) -> IngestReport:
        """Wait until every payload sent through this link has arrived, ingest it; returns the report.

        Over MQTT, payloads lost by the broker are waited for until ``timeout_s`` passes.
        """
        self.transport.flush(timeout_s)
        deadline = time.monotonic() + timeout_s
        total = IngestReport()
        while True:
            if self.receiver.pending:
                total.add(self.receiver.pump())
            elif self.receiver.received >= self.sent_payloads or time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.005)
        return total

    def close(self) -> None:
        """Close the transport and the store."""
        self.transport.close()
        self.store.close()

    def __enter__(self) -> TelemetryLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    registry: DeviceRegistry,
    *,
    transport: str = "inproc",
    store: str = "duckdb::memory:",
    prefix: str = "tm",
    topics: Topics | None = None,
    **verifier_kw: Any,
) -> TelemetryLink:
    """Return a :class:`TelemetryLink`: ``transport`` is ``inproc`` or ``mqtt://host:port``,
    ``store`` a URL for :func:`open_store`; ``verifier_kw`` go to the :class:`Verifier`
    (``clock``, ``max_skew_s``, ``keep_frames`` …). Raises ``GridpilotError`` if a service
    cannot be reached.
    """
    tp = topics or Topics()
    st = open_store(store, prefix=prefix)
    try:
        tr = open_transport(transport)
    except Exception:
        st.close()
        raise
    ing = Ingestor(registry, st, **verifier_kw)
    rx = Receiver(tr, ing, tp.all_telemetry, topics=tp)
    return TelemetryLink(registry, tr, st, ing, rx, tp)
