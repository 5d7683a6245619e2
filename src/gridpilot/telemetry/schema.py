"""The versioned telemetry wire format: frames, message kinds, quantities and batches.

A **frame** is one signed message from one principal (a device or a gateway)::

    offset  size  field
    0       2     magic b"GT"
    2       1     format version (1)
    3       1     flags (reserved, 0)
    4       4     header_len, uint32 little-endian
    8       4     body_len, uint32 little-endian
    12      hl    header: UTF-8 JSON object (the versioned envelope)
    12+hl   bl    body (see below)
    end-64  64    Ed25519 signature over every byte before it

The signature covers the exact bytes sent, so there is no re-serialisation ambiguity.

Header keys (format 1): ``v`` (1), ``kind`` (``readings`` | ``event`` | ``command`` |
``ack``), ``dev`` (the signing principal's id), ``kid`` (its key id), ``seq`` (strictly
increasing per principal), ``ts_ms`` (send time, ms since the Unix epoch, UTC), ``enc``
(body encoding). Readings add ``n`` (rows), ``q`` (quantity names, see :data:`QUANTITIES`)
and, for a gateway message, ``devs`` (the device ids its rows refer to).

Body encodings:

* ``col1`` (readings): little-endian columns, one after another: ``ts_ms`` int64[n]; then,
  only when ``devs`` is present, ``dev_pos`` uint32[n] (position in ``devs``); then one
  float64[n] column per quantity in ``q`` order. One reading is one (device, ts, quantity)
  value, so a message carries ``n * len(q)`` readings.
* ``json`` (events, commands, acks): a UTF-8 JSON object.

A **batch** packs many frames into one transport payload (one MQTT publish)::

    b"GB", version u8 (1), flags u8 (0), count u32, then per frame: length u32, frame bytes

Each frame is length-prefixed inside the batch, so one corrupt frame never hides the others.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FRAME_MAGIC = b"GT"
BATCH_MAGIC = b"GB"
SIGNATURE_LEN = 64
_FRAME_HEAD = struct.Struct("<2sBBII")  # magic, version, flags, header_len, body_len
_BATCH_HEAD = struct.Struct("<2sBBI")  # magic, version, flags, count
_U32 = struct.Struct("<I")
FRAME_OVERHEAD = _FRAME_HEAD.size + SIGNATURE_LEN
MAX_FRAME_BYTES = 64 * 1024 * 1024


class MessageKind(StrEnum):
    """What a frame carries."""

    READINGS = "readings"
    EVENT = "event"
    COMMAND = "command"
    ACK = "ack"


@dataclass(frozen=True)
class Quantity:
    """A measured quantity: wire name (with unit), code in the store, unit and valid range."""

    code: int
    name: str
    unit: str
    lo: float
    hi: float
    description: str


# Format 1 catalogue. Codes are stored; never renumber, only append.
QUANTITIES: tuple[Quantity, ...] = (
    Quantity(0, "p_kw", "kW", -1e5, 1e5, "active power, + = consumption (import)"),
    Quantity(1, "q_kvar", "kvar", -1e5, 1e5, "reactive power, + = consumption"),
    Quantity(2, "v_pu", "pu", 0.0, 2.0, "voltage magnitude"),
    Quantity(3, "i_a", "A", 0.0, 1e5, "current magnitude"),
    Quantity(4, "e_import_kwh", "kWh", 0.0, 1e12, "energy register, imported"),
    Quantity(5, "e_export_kwh", "kWh", 0.0, 1e12, "energy register, exported"),
    Quantity(6, "soc_pct", "%", 0.0, 100.0, "battery state of charge"),
    Quantity(7, "f_hz", "Hz", 40.0, 70.0, "frequency"),
    Quantity(8, "temp_c", "°C", -60.0, 150.0, "temperature"),
    Quantity(9, "v_kv", "kV", 0.0, 1000.0, "voltage magnitude"),
    Quantity(10, "loading_pct", "%", 0.0, 1000.0, "line or transformer loading"),
    Quantity(11, "switch_closed", "-", 0.0, 1.0, "switch position, 1 = closed"),
    Quantity(12, "p_mw", "MW", -1e4, 1e4, "active power, + = consumption (import)"),
    Quantity(13, "q_mvar", "Mvar", -1e4, 1e4, "reactive power, + = consumption"),
)
"""The format-1 quantity catalogue: code, name, unit, accepted range, meaning."""
QUANTITY_BY_NAME: dict[str, Quantity] = {q.name: q for q in QUANTITIES}
""":data:`QUANTITIES` by name (``"p_kw"`` -> its :class:`Quantity`)."""
QUANTITY_LO = np.array([q.lo for q in QUANTITIES], dtype=np.float64)
QUANTITY_HI = np.array([q.hi for q in QUANTITIES], dtype=np.float64)


def quantity_code(name: str) -> int:
    """Return the store code of quantity ``name``; raises ``KeyError`` if unknown."""
    return QUANTITY_BY_NAME[name].code


class FrameError(ValueError):
    """A frame or batch that cannot be parsed (malformed bytes, header or body)."""


@dataclass(frozen=True)
class Frame:
    """A parsed (not yet verified) frame: its header, body bytes and signature."""

    header: dict[str, Any]
    body: bytes
    signed: bytes  # the bytes the signature covers
    signature: bytes

    @property
    def kind(self) -> str:
        """The message kind (``readings``, ``event``, ``command`` or ``ack``)."""
        return str(self.header.get("kind"))


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as compact, key-sorted UTF-8 JSON (the envelope's canonical form)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def pack_unsigned(header: dict[str, Any], body: bytes) -> bytes:
    """Return the frame bytes before the signature (what gets signed)."""
    h = canonical_json(header)
    return _FRAME_HEAD.pack(FRAME_MAGIC, FORMAT_VERSION, 0, len(h), len(body)) + h + body


def parse_frame(data: bytes | memoryview) -> Frame:
    """Split a frame into header, body and signature; raises :class:`FrameError` if malformed.

    Checks framing, the format version and that the header is a JSON object; it does not
    verify the signature (see :class:`gridpilot.telemetry.Verifier`).
    """
    mv = memoryview(data)
    if len(mv) < FRAME_OVERHEAD:
        raise FrameError(
            f"frame of {len(mv)} bytes is shorter than the {FRAME_OVERHEAD}-byte minimum"
        )
    magic, version, _flags, hl, bl = _FRAME_HEAD.unpack_from(mv, 0)
    if magic != FRAME_MAGIC:
        raise FrameError(f"bad magic {bytes(magic)!r}, expected {FRAME_MAGIC!r}")
    if version != FORMAT_VERSION:
        raise FrameError(
            f"unsupported format version {version} (this reader speaks {FORMAT_VERSION})"
        )
    end = _FRAME_HEAD.size + hl + bl
    if end + SIGNATURE_LEN != len(mv):
        raise FrameError(
            f"length fields say {end + SIGNATURE_LEN} bytes (header {hl}, body {bl}) but frame has {len(mv)}"
        )
    try:
        header = json.loads(bytes(mv[_FRAME_HEAD.size : _FRAME_HEAD.size + hl]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError(f"header must be a JSON object, got {type(header).__name__}")
    return Frame(
        header=header,
        body=bytes(mv[_FRAME_HEAD.size + hl : end]),
        signed=bytes(mv[:end]),
        signature=bytes(mv[end:]),
    )


def encode_col1(
    ts_ms: np.ndarray, values: list[np.ndarray], dev_pos: np.ndarray | None = None
) -> bytes:
    """Encode a ``col1`` readings body: ts_ms int64, optional dev_pos uint32, float64 columns."""
    parts = [np.ascontiguousarray(ts_ms, dtype="<i8").tobytes()]
    if dev_pos is not None:
        parts.append(np.ascontiguousarray(dev_pos, dtype="<u4").tobytes())
    parts.extend(np.ascontiguousarray(v, dtype="<f8").tobytes() for v in values)
    return b"".join(parts)


def decode_col1(
    body: bytes, n: int, n_quantities: int, with_dev_pos: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Decode a ``col1`` body into (ts_ms int64[n], dev_pos uint32[n] | None, values f64[k, n]).

    Raises :class:`FrameError` when the body length does not match ``n`` and the columns.
    """
    expected = n * (8 + (4 if with_dev_pos else 0) + 8 * n_quantities)
    if len(body) != expected:
        raise FrameError(f"col1 body has {len(body)} bytes, expected {expected} for n={n}")
    ts = np.frombuffer(body, dtype="<i8", count=n, offset=0)
    off = 8 * n
    dev_pos = None
    if with_dev_pos:
        dev_pos = np.frombuffer(body, dtype="<u4", count=n, offset=off)
        off += 4 * n
    values = np.frombuffer(body, dtype="<f8", count=n * n_quantities, offset=off).reshape(
        n_quantities, n
    )
    return ts, dev_pos, values


def encode_batch(frames: list[bytes]) -> bytes:
    """Pack frames into one batch payload (see the module docstring for the layout)."""
    parts = [_BATCH_HEAD.pack(BATCH_MAGIC, FORMAT_VERSION, 0, len(frames))]
    for f in frames:
        parts.append(_U32.pack(len(f)))
        parts.append(f)
    return b"".join(parts)


def decode_batch(
    payload: bytes | memoryview, max_frames: int | None = None
) -> tuple[list[memoryview], list[str]]:
    """Split a payload into frames; returns (frames, problems).

    A payload that starts with the frame magic is a single frame. Problems (a truncated
    batch) are described in words; frames before the damage are still returned. A batch
    whose count exceeds ``max_frames`` or cannot fit in the payload is refused whole (no
    frames, one problem), without a loop over its claimed entries.
    """
    mv = memoryview(payload)
    if len(mv) >= 2 and mv[:2] == FRAME_MAGIC:
        return [mv], []
    if len(mv) < _BATCH_HEAD.size or mv[:2] != BATCH_MAGIC:
        return [], [f"payload of {len(mv)} bytes is neither a frame nor a batch (bad magic)"]
    _magic, version, _flags, count = _BATCH_HEAD.unpack_from(mv, 0)
    if version != FORMAT_VERSION:
        return [], [f"unsupported batch version {version}"]
    if max_frames is not None and count > max_frames:
        return [], [f"batch claims {count} frames, more than the {max_frames} allowed per payload"]
    if count * 4 > len(mv) - _BATCH_HEAD.size:
        return [], [f"batch claims {count} frames but has only {len(mv)} bytes"]
    frames: list[memoryview] = []
    off = _BATCH_HEAD.size
    for i in range(count):
        if off + 4 > len(mv):
            return frames, [f"batch truncated before frame {i} of {count}"]
        (length,) = _U32.unpack_from(mv, off)
        off += 4
        if length > MAX_FRAME_BYTES or off + length > len(mv):
            return frames, [f"batch truncated inside frame {i} of {count} (length {length})"]
        frames.append(mv[off : off + length])
        off += length
    if off != len(mv):
        return frames, [f"{len(mv) - off} trailing bytes after {count} frames"]
    return frames, []


@dataclass(frozen=True)
class FrameReadings:
    """The readings of one frame, decoded (no signature check: see ``Verifier.audit``).

    ``ts_ms``: int64[n] ms since epoch; ``values``: quantity name -> float64[n] in the
    quantity's unit; for a gateway frame ``devices`` and ``dev_pos`` (per row, the position
    in ``devices``), else None (all rows belong to ``sender``).
    """

    sender: str
    seq: int
    sent_ms: int
    ts_ms: np.ndarray
    values: dict[str, np.ndarray]
    devices: list[str] | None
    dev_pos: np.ndarray | None


def decode_readings(frame: bytes | memoryview) -> FrameReadings:
    """Decode a ``readings`` frame; raises :class:`FrameError` if it is not a well-formed one."""
    f = parse_frame(frame)
    h = f.header
    if h.get("kind") != MessageKind.READINGS or h.get("enc") != "col1":
        raise FrameError(f"not a col1 readings frame (kind {h.get('kind')!r})")
    n, q, devs = h.get("n"), h.get("q"), h.get("devs")
    if not isinstance(n, int) or not isinstance(q, list):
        raise FrameError("readings header needs integer 'n' and list 'q'")
    ts, pos, vals = decode_col1(f.body, n, len(q), devs is not None)
    return FrameReadings(
        sender=str(h.get("dev")),
        seq=int(h.get("seq", 0)),
        sent_ms=int(h.get("ts_ms", 0)),
        ts_ms=ts,
        values={str(name): vals[i] for i, name in enumerate(q)},
        devices=None if devs is None else [str(d) for d in devs],
        dev_pos=pos,
    )
