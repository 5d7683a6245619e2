"""gridpilot.telemetry: signed, versioned telemetry from the field into a store.

The path of a reading::

    DeviceSigner.readings(...)  ->  frame bytes (signed once per message, columnar body)
    encode_batch([...])         ->  one payload per publish (many frames)
    Transport.publish(topic, payload)          InProcessBus (default) | MqttTransport
    Receiver(transport, Ingestor(registry, store), pattern).pump()
        Verifier: signature, key, seq, clock skew, ranges  ->  ReadingBatch (numpy columns)
        TelemetryStore.write(...)                          DuckDBStore (default) | PostgresStore

Quick start (device side and receiving side in one process)::

    from gridpilot.telemetry import (DeviceRegistry, DeviceSigner, DuckDBStore, Ingestor,
                                     generate_key)
    reg = DeviceRegistry()
    key = generate_key()
    reg.register("meter-1", key, feeder="F1", bus=7)
    signer = DeviceSigner("meter-1", key)
    frame = signer.readings(ts_ms=[1_700_000_000_000], values={"p_kw": [3.2], "v_pu": [1.01]})
    ing = Ingestor(reg, DuckDBStore())          # or PostgresStore(dsn); open_store(url)
    report = ing.ingest([frame])                # IngestReport: accepted, stored, refused by reason
    ing.store.latest()                          # DataFrame device_id, quantity, ts, value

Or in one call: ``link = connect(reg, transport="mqtt://127.0.0.1:1883",
store="postgresql://..."); link.send("meter-1", [frame]); link.drain()``.

Every refused message has a :class:`RejectReason` (``malformed``, ``unknown_device``,
``bad_signature``, ``replayed_seq``, ``clock_skew``, ``future_timestamp``, ``out_of_range``
…); it is counted, logged on the ``gridpilot.telemetry`` logger and written to the store's
rejections table (within :class:`RefusalLimits`), and never stored as data. Text from the
wire is escaped with :func:`wire_text` before it is stored or logged (reuse it wherever wire
data is logged). See ``docs/telemetry.md`` for the wire format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "ingest": ("Ingestor", "Receiver"),
    "link": ("connect",),
    "refusals": ("RefusalLimits", "RejectReason"),
    "registry": ("DeviceRegistry", "generate_key", "keys_from_seeds"),
    "safe_text": ("wire_text",),
    "schema": ("QUANTITIES", "QUANTITY_BY_NAME", "decode_readings", "encode_batch"),
    "signer": ("DeviceSigner",),
    "store": ("DuckDBStore", "PostgresStore", "TelemetryStore", "open_store"),
    "transport": ("InProcessBus", "MqttTransport", "Topics", "Transport", "open_transport"),
    "verify": ("ReadingBatch", "Verifier"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.telemetry.ingest import Ingestor, Receiver
    from gridpilot.telemetry.link import connect
    from gridpilot.telemetry.refusals import RefusalLimits, RejectReason
    from gridpilot.telemetry.registry import DeviceRegistry, generate_key, keys_from_seeds
    from gridpilot.telemetry.safe_text import wire_text
    from gridpilot.telemetry.schema import (
        QUANTITIES,
        QUANTITY_BY_NAME,
        decode_readings,
        encode_batch,
    )
    from gridpilot.telemetry.signer import DeviceSigner
    from gridpilot.telemetry.store import DuckDBStore, PostgresStore, TelemetryStore, open_store
    from gridpilot.telemetry.transport import (
        InProcessBus,
        MqttTransport,
        Topics,
        Transport,
        open_transport,
    )
    from gridpilot.telemetry.verify import ReadingBatch, Verifier
