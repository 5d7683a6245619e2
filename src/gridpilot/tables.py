"""Human-readable CLI output: one Rich table for a mapping or rows, numbers formatted for people.

Sits beside ``errors.py`` below every package, so each package's CLI prints the same way:
thousands separators, no scientific notation for money or energy, a fixed number of decimals.
``--json`` output never goes through here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_value(value: Any) -> str:
    """``value`` as text: ints with separators, floats by magnitude (52210.4 -> '52,210',
    0.4096 -> '0.410', 0.00123 -> '0.00123'), mappings as 'k v, ...', sequences comma-joined."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        mag = abs(value)
        if mag == 0:
            return "0"
        if mag >= 1000:
            return f"{value:,.0f}"
        if mag >= 0.01:
            return f"{value:,.3f}"
        return f"{value:.3g}"
    if isinstance(value, (Mapping, list, tuple)) and len(value) == 0:
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def kv_table(title: str, values: Mapping[str, Any]) -> Any:
    """A two-column Rich table (field, value) of ``values``."""
    from rich.table import Table

    t = Table(title=title, show_header=True)
    t.add_column("field")
    t.add_column("value", justify="right")
    for k, v in values.items():
        t.add_row(str(k), format_value(v))
    return t


def rows_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Any:
    """A Rich table with ``columns`` (numbers right-aligned) and one row per mapping."""
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        numeric = any(isinstance(r.get(c), (int, float)) for r in rows)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*(format_value(r.get(c, "")) for c in columns))
    return t


def print_table(table: Any) -> None:
    """Print a table built by this module on the console."""
    from rich.console import Console

    Console().print(table)
