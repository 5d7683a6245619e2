"""Ingest: verify payloads and store what is valid, counting and logging what is refused."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.telemetry.registry import DeviceRegistry
from gridpilot.telemetry.store import TelemetryStore
from gridpilot.telemetry.transport import Topics, Transport
from gridpilot.telemetry.verify import Rejection, VerifiedBatch, Verifier


@dataclass
class IngestReport:
    """The outcome of one :meth:`Ingestor.ingest` call (or running totals)."""

    payloads: int = 0
    messages_accepted: int = 0
    readings_stored: int = 0
    records_stored: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def rejected(self) -> int:
        """Number of refused messages."""
        return sum(self.rejected_by_reason.values())

    def add(self, other: IngestReport, keep_rejections: int = 1000) -> None:
        """Add ``other``'s counts to this report (keeps at most ``keep_rejections`` rejections)."""
        self.payloads += other.payloads
        self.messages_accepted += other.messages_accepted
        self.readings_stored += other.readings_stored
        self.records_stored += other.records_stored
        for k, v in other.rejected_by_reason.items():
            self.rejected_by_reason[k] = self.rejected_by_reason.get(k, 0) + v
        self.rejections = (self.rejections + other.rejections)[-keep_rejections:]
        self.elapsed_s += other.elapsed_s

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-able dict."""
        return {
            "payloads": self.payloads,
            "messages_accepted": self.messages_accepted,
            "readings_stored": self.readings_stored,
            "records_stored": self.records_stored,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "elapsed_s": self.elapsed_s,
        }


class Ingestor:
    """Verifies payloads against a registry and writes the accepted part to a store.

    Sequence numbers are committed only after the store has the data, so a failed write can
    be retried; on start they are raised to the highest ones already stored
    (:meth:`restore_seqs`), so a restarted receiver still refuses replays. ``totals`` accumulates every call's :class:`IngestReport`. Keyword arguments
    go to :class:`Verifier` (``max_skew_s``, ``max_delay_s``, ``max_age_s``, ``clock``).
    """

    def __init__(
        self,
        registry: DeviceRegistry,
        store: TelemetryStore,
        *,
        verifier: Verifier | None = None,
        sync_devices: bool = True,
        **verifier_kw: Any,
    ) -> None:
        self.registry = registry
        self.store = store
        self.verifier = verifier or Verifier(registry, **verifier_kw)
        self.totals = IngestReport()
        self._synced = 0
        self._sync = sync_devices
        if sync_devices:
            self.sync()
            self.restore_seqs()

    def restore_seqs(self) -> int:
        """Raise the registry's last sequence numbers to those already in the store.

        A receiver restarted on an existing store then still refuses replays of messages it
        accepted before. Returns the number of devices found in the store.
        """
        idx, seq = self.store.last_seqs()
        if len(idx):
            last = self.registry.last_seq
            ok = idx < len(last)
            last[idx[ok]] = np.maximum(last[idx[ok]], seq[ok])
        return len(idx)

    def sync(self) -> None:
        """Copy newly registered devices into the store's devices table."""
        self.store.sync_devices(self.registry)
        self._synced = len(self.registry)

    def ingest(
        self, payloads: Iterable[bytes], senders: Sequence[str | None] | None = None
    ) -> IngestReport:
        """Verify and store ``payloads`` (frames or batches); returns this call's report.

        ``senders``: per payload, the sender whose telemetry topic it came on (frames signed
        by anyone else are refused as ``wrong_topic``); None where not known.
        """
        t0 = time.perf_counter()
        if self._sync and self._synced != len(self.registry):
            self.sync()
        plist = list(payloads)
        vb: VerifiedBatch = self.verifier.verify(plist, commit=False, senders=senders)
        n = self.store.write(vb)
        self.verifier.commit(vb)
        rep = IngestReport(
            payloads=len(plist),
            messages_accepted=vb.accepted,
            readings_stored=n,
            records_stored=len(vb.records),
            rejected_by_reason=vb.rejected_by_reason(),
            rejections=list(vb.rejections),
            elapsed_s=time.perf_counter() - t0,
        )
        self.totals.add(rep)
        return rep


class Receiver:
    """Subscribes an :class:`Ingestor` to a transport; payloads queue until :meth:`pump`.

    Transport handlers only append to a queue (cheap, thread-safe), so MQTT's network thread
    never waits on verification or the store; :meth:`pump` ingests everything queued in one
    batch. The topic binds the signer: a frame is accepted only from the sender whose
    telemetry topic (``topics.telemetry(sender)``) it arrived on (``bind_topics=False``
    turns that off, for a trusted channel that multiplexes senders on one topic).
    ``topics`` defaults to the layout whose ``all_telemetry`` is ``pattern``.
    """

    def __init__(
        self,
        transport: Transport,
        ingestor: Ingestor,
        pattern: str,
        *,
        topics: Topics | None = None,
        bind_topics: bool = True,
    ) -> None:
        self.transport = transport
        self.ingestor = ingestor
        if topics is None:  # the layout of ``pattern`` if it is ``<prefix>/tm/#``
            tail = "/tm/#"
            topics = Topics(pattern[: -len(tail)]) if pattern.endswith(tail) else Topics()
        self.topics = topics
        self.bind_topics = bind_topics
        self._queue: collections.deque[tuple[str | None, bytes]] = collections.deque()
        self.received = 0
        transport.subscribe(pattern, self._on_payload)

    def _on_payload(self, topic: str, payload: bytes) -> None:
        sender = self.topics.sender_of(topic) if self.bind_topics else None
        self._queue.append((sender, payload))
        self.received += 1

    @property
    def pending(self) -> int:
        """Payloads received but not yet ingested."""
        return len(self._queue)

    def pump(self, max_payloads: int | None = None) -> IngestReport:
        """Ingest up to ``max_payloads`` queued payloads (all by default); returns the report."""
        q = self._queue
        n = len(q) if max_payloads is None else min(max_payloads, len(q))
        batch = [q.popleft() for _ in range(n)]
        try:
            return self.ingestor.ingest([p for _s, p in batch], [s for s, _p in batch])
        except Exception:
            q.extendleft(reversed(batch))  # keep them for a retry
            raise

    def run(
        self,
        *,
        until: Callable[[], bool] | None = None,
        duration_s: float | None = None,
        poll_s: float = 0.02,
        max_payloads: int | None = 2000,
    ) -> IngestReport:
        """Pump until ``until()`` is true or ``duration_s`` passes; returns the summed report."""
        total = IngestReport()
        end = None if duration_s is None else time.monotonic() + duration_s
        while True:
            if self._queue:
                total.add(self.pump(max_payloads))
            else:
                if (until is not None and until()) or (end is not None and time.monotonic() >= end):
                    break
                time.sleep(poll_s)
            if end is not None and time.monotonic() >= end and not self._queue:
                break
        return total
