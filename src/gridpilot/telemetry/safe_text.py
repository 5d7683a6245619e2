"""Text from the wire made safe to store and to log: one line, printable, bounded.

Anything a sender chose (device ids, event names, error details quoting them) may hold a NUL
byte (PostgreSQL refuses it in ``TEXT``), a lone surrogate such as ``\\ud800`` (not encodable
as UTF-8: both stores refuse it) or a newline (which would let a sender forge log lines).
:func:`wire_text` escapes every such character, so the result is plain printable text; use it
before a wire value is stored or logged. :func:`wire_int` does the same for integers that go
into a ``BIGINT`` column.

Example: ``log.warning("refused from %s", wire_text(dev_id))``.
"""

from __future__ import annotations

from typing import Any

MAX_TEXT = 200
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _escape(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def wire_text(value: Any, max_len: int = MAX_TEXT) -> str:
    """Return ``value`` as one printable line of at most about ``max_len`` characters.

    Every character that is not printable (``str.isprintable``: control characters such as
    NUL, CR and LF, line and paragraph separators, lone surrogates, unassigned code points)
    is replaced by its ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN`` escape. Longer text is cut at
    ``max_len`` characters and marked with ``...(+N chars)``. Non-strings are formatted with
    ``str`` first (bytes with ``repr``). The result is valid UTF-8 and safe in a log line or a
    ``TEXT``/``VARCHAR`` column.
    """
    s = repr(value) if isinstance(value, bytes | bytearray | memoryview) else value
    if not isinstance(s, str):
        try:
            s = str(s)
        except Exception:  # a hostile __str__ must not sink the caller
            s = f"<unprintable {type(value).__name__}>"
    extra = len(s) - max_len
    if extra > 0:
        s = s[:max_len]
    if not s.isprintable():
        s = "".join(c if c.isprintable() else _escape(c) for c in s)
    return f"{s}...(+{extra} chars)" if extra > 0 else s


def wire_text_or_none(value: Any, max_len: int = MAX_TEXT) -> str | None:
    """Return ``None`` for ``None``, else :func:`wire_text` of ``value``."""
    return None if value is None else wire_text(value, max_len)


def wire_int(value: Any) -> int | None:
    """Return ``value`` if it is an int (not a bool) that fits a signed 64-bit column, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None
