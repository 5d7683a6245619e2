"""The :class:`Injections` a twin calculation takes: powers and switch states over the grid's.

One parameter object instead of eight keyword arguments on :meth:`gridpilot.twin.Twin.powerflow`
and :meth:`gridpilot.twin.Twin.timeseries`. Every array is in table order; a 1-D array is one
value per element (a snapshot, or the same value at every step of a time series), a 2-D array
one row per step. Arrays not given keep the grid's values (its profiles in a time series).

>>> import numpy as np
>>> from gridpilot.model import load_grid
>>> from gridpilot.twin import Injections, Twin
>>> g = load_grid("case33bw")
>>> Twin(g).powerflow(Injections(load_p_mw=g.load["p_mw"] * 0.5)).converged
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin.inputs import INJECTION_KEYS

# the grid table each field has one value per element of (its last axis)
TABLE_OF: dict[str, str] = {
    "load_p_mw": "load",
    "load_q_mvar": "load",
    "gen_p_mw": "generator",
    "gen_q_mvar": "generator",
    "storage_p_mw": "storage",
    "ev_p_mw": "ev_charger",
    "flex_p_mw": "flex_load",
    "switch_closed": "switch",
}


def _checked(name: str, value: Any) -> np.ndarray:
    """``value`` as the field's array (float64 powers, bool switch states); a
    :class:`ValidationError` naming the field when it is not 1-D/2-D or not finite."""
    try:
        arr = np.asarray(value, dtype=bool if name == "switch_closed" else np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected an array of numbers, got {value!r:.80}") from exc
    if arr.ndim not in (1, 2):
        raise ValidationError(
            f"{name}: expected a 1-D (elements) or 2-D (steps, elements) array, "
            f"got shape {arr.shape}"
        )
    if name != "switch_closed":
        bad = ~np.isfinite(arr)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            where = at[0] if arr.ndim == 1 else at
            raise ValidationError(
                f"{name}: values must be finite (no NaN or infinite values), "
                f"got {arr[at]} at index {where} ({int(bad.sum())} such values)"
            )
    return arr


@dataclass(frozen=True)
class Injections:
    """Powers and switch states that override the grid's for one calculation of the twin.

    Each field is optional (None: the grid's values, or its profiles in a time series). The
    arrays are checked on construction (1-D or 2-D, finite; ``switch_closed`` becomes bool) and
    against a grid's tables by :meth:`check`; errors name the field and the bad shape or value.
    Use :func:`dataclasses.replace` to change some fields of an existing one. Float64 arrays
    are kept as they are, not copied: the twin only reads them.
    """

    load_p_mw: np.ndarray | None = None
    """Active power of each load, MW (consumption positive)."""
    load_q_mvar: np.ndarray | None = None
    """Reactive power of each load, Mvar (inductive positive)."""
    gen_p_mw: np.ndarray | None = None
    """Active power of each generator, MW (generation positive)."""
    gen_q_mvar: np.ndarray | None = None
    """Reactive power of each generator, Mvar (export positive)."""
    storage_p_mw: np.ndarray | None = None
    """Active power of each storage unit, MW (charging positive, discharging negative)."""
    ev_p_mw: np.ndarray | None = None
    """Charging power of each EV charger, MW."""
    flex_p_mw: np.ndarray | None = None
    """Active power of each flexible load, MW (the grid's value is 0)."""
    switch_closed: np.ndarray | None = None
    """Whether each switch is closed (bool; an open switch opens its end of the element)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _checked(f.name, value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> Injections:
        """Injections from arrays by field name (e.g. what
        :func:`~gridpilot.twin.inputs.step_injections` returns), with the ``overrides`` that are
        not None on top (``switch_closed=...``); an unknown name is a :class:`ValidationError`
        that names it."""
        kw = dict(values) | {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(kw) - set(TABLE_OF))
        if unknown:
            raise ValidationError(
                f"injections: unknown names {unknown}; choose from {list(TABLE_OF)}"
            )
        return cls(**kw)

    def powers(self) -> dict[str, np.ndarray | None]:
        """The power arrays by key (every key of :data:`INJECTION_KEYS`, None where not given)."""
        return {k: getattr(self, k) for k in INJECTION_KEYS}

    def given(self) -> dict[str, np.ndarray]:
        """Every array that is set, by field name (switch states included)."""
        return {k: v for k in TABLE_OF if (v := getattr(self, k)) is not None}

    def rows(self) -> dict[str, int]:
        """The number of rows (steps) of each 2-D array, by field name."""
        return {k: v.shape[0] for k, v in self.given().items() if v.ndim == 2}

    def check(self, grid: Grid, steps: int | None = None) -> Injections:
        """``self`` after checking each array's length against ``grid``'s table (and the rows of
        2-D arrays against ``steps``, when given); a :class:`ValidationError` naming the field
        and the shape otherwise."""
        for name, arr in self.given().items():
            table = TABLE_OF[name]
            n = len(grid[table])
            if arr.shape[-1] != n:
                raise ValidationError(
                    f"{name}: expected shape ({n},) or (steps, {n}), one value per {table}, "
                    f"got shape {arr.shape}"
                )
            if steps is not None and arr.ndim == 2 and arr.shape[0] != steps:
                raise ValidationError(
                    f"{name}: expected {steps} rows (steps), got shape {arr.shape}"
                )
        return self
