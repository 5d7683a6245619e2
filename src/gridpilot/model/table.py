"""A column-oriented table of one component type, backed by a numpy structured array."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, UnknownComponentError, ValidationError
from gridpilot.model.schema import REQUIRED, SCHEMAS, dtype_of


class Table:
    """The elements of one component type, one numpy column per field.

    ``table["p_mw"]`` is a writable view of a column, ``table.ids`` the ids, ``len(table)``
    the count; ``table.df()`` a pandas view indexed by id and ``table.row(id)`` one element
    as a dict, for small work.
    """

    __slots__ = ("_index", "component", "data")

    def __init__(self, component: str, data: np.ndarray | None = None) -> None:
        if component not in SCHEMAS:
            raise UnknownComponentError("component type", component, f"known: {', '.join(SCHEMAS)}")
        self.component = component
        self.data: np.ndarray = np.zeros(0, dtype_of(component)) if data is None else data
        self._index: dict[int, int] | None = None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_columns(cls, component: str, columns: Mapping[str, Any]) -> Table:
        """Build a table from a mapping of field name to a sequence of values.

        Missing fields take their default; a missing required field, an unknown field, a
        column of the wrong length or a value that cannot be converted is a
        :class:`ValidationError` naming the component and the field.
        """
        schema = SCHEMAS.get(component)
        if schema is None:
            raise UnknownComponentError("component type", component, f"known: {', '.join(SCHEMAS)}")
        known = {f.name for f in schema}
        unknown = sorted(set(columns) - known)
        if unknown:
            raise ValidationError(
                issues=[
                    Issue(component, name, f"unknown field (known: {', '.join(sorted(known))})")
                    for name in unknown
                ]
            )
        lengths = {k: len(v) for k, v in columns.items() if not np.isscalar(v)}
        n = max(lengths.values(), default=0)
        bad = [k for k, m in lengths.items() if m != n]
        if bad:
            raise ValidationError(
                issues=[
                    Issue(component, k, f"has {lengths[k]} values, other fields have {n}")
                    for k in bad
                ]
            )
        data = np.zeros(n, dtype_of(component))
        issues: list[Issue] = []
        for f in schema:
            if f.name in columns:
                values = columns[f.name]
                try:
                    data[f.name] = _convert(values, f.dtype)
                except (TypeError, ValueError) as exc:
                    sample = _first_bad(values, f.dtype)
                    issues.append(
                        Issue(
                            component,
                            f.name,
                            f"cannot be read as {_kind(f.dtype)} ({exc})",
                            value=sample,
                        )
                    )
            elif f.default is REQUIRED:
                if n:
                    issues.append(Issue(component, f.name, "is required"))
            else:
                data[f.name] = f.default
        if issues:
            raise ValidationError(issues=issues)
        return cls(component, data)

    def append(self, **fields: Any) -> np.ndarray:
        """Append elements (scalars or equal-length sequences per field); returns their ids."""
        if all(np.isscalar(v) for v in fields.values()):
            fields = {k: [v] for k, v in fields.items()}
        new = Table.from_columns(self.component, fields)
        self.data = np.concatenate([self.data, new.data])
        self._index = None
        return new.data["id"].copy()

    def subset(self, mask: np.ndarray) -> Table:
        """A new table with the rows where ``mask`` is True (or at the given positions)."""
        return Table(self.component, self.data[mask].copy())

    def copy(self) -> Table:
        """A deep copy."""
        return Table(self.component, self.data.copy())

    # --- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.data[name]
        except (ValueError, KeyError):
            raise UnknownComponentError(
                f"{self.component} field", name, f"known: {', '.join(self.data.dtype.names or ())}"
            ) from None

    def __setitem__(self, name: str, values: Any) -> None:
        self[name][...] = values

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self.data.dtype.names or ()
        for rec in self.data:
            yield {n: rec[n].item() for n in names}

    def __repr__(self) -> str:
        return f"<Table {self.component}: {len(self)} rows>"

    @property
    def ids(self) -> np.ndarray:
        """The ids, int64, in table order."""
        return self.data["id"]

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names."""
        return tuple(self.data.dtype.names or ())

    def index_of(self, ids: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """Positions (table order) of the given ids; an unknown id is an UnknownComponentError."""
        arr = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if self._index is None or len(self._index) != len(self):
            self._index = {int(i): k for k, i in enumerate(self.data["id"])}
        idx = self._index
        try:
            return np.fromiter((idx[int(i)] for i in arr), np.int64, arr.size)
        except KeyError as exc:
            raise UnknownComponentError(self.component, int(exc.args[0])) from None

    def position_map(self, ids: np.ndarray, component: str | None = None) -> np.ndarray:
        """Vectorised :meth:`index_of` for large id arrays (sorted search)."""
        arr = np.asarray(ids, dtype=np.int64)
        own = self.data["id"]
        order = np.argsort(own, kind="stable")
        pos = np.searchsorted(own, arr, sorter=order)
        pos = np.clip(pos, 0, max(len(own) - 1, 0))
        found = own[order[pos]] == arr if len(own) else np.zeros(arr.shape, bool)
        if not np.all(found):
            bad = arr[~found]
            raise UnknownComponentError(
                component or self.component, int(bad[0]), f"{bad.size} unknown reference(s)"
            )
        return order[pos]

    def row(self, id_: int) -> dict[str, Any]:
        """One element as a dict of plain Python values."""
        rec = self.data[int(self.index_of(id_)[0])]
        return {n: rec[n].item() for n in self.fields}

    def df(self) -> pd.DataFrame:
        """A pandas DataFrame of the table, indexed by id (a copy: edit the table, not this)."""
        frame = pd.DataFrame(self.data)
        return frame.set_index("id")

    def to_columns(self) -> dict[str, list[Any]]:
        """Plain-Python columns (for JSON)."""
        return {n: self.data[n].tolist() for n in self.fields}


def _kind(dtype: str) -> str:
    return {"f": "a number", "i": "an integer", "?": "a boolean"}.get(np.dtype(dtype).kind, dtype)


def _convert(values: Any, dtype: str) -> np.ndarray:
    kind = np.dtype(dtype).kind
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":
        if kind == "?":
            raise ValueError("expected true/false")
        arr = arr.astype(np.float64)  # raises ValueError on text
    if kind == "i":
        if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
            raise ValueError("expected whole numbers")
        return arr.astype(dtype)
    if kind == "?":
        if arr.dtype.kind not in "biu?":
            raise ValueError("expected true/false")
        return arr.astype(bool)
    return arr.astype(dtype)


def _first_bad(values: Any, dtype: str) -> Any:
    for v in np.atleast_1d(np.asarray(values, dtype=object)):
        try:
            _convert([v], dtype)
        except (TypeError, ValueError):
            return v
    return None
