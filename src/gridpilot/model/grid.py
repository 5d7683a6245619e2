"""The :class:`Grid`: one typed, column-oriented model of a distribution network."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model.profiles import Profiles
from gridpilot.model.schema import COMPONENTS
from gridpilot.model.table import Table


@dataclass
class Grid:
    """A distribution grid: one :class:`Table` per component type, plus time-varying profiles.

    Static data lives in the tables (``grid.bus``, ``grid.line``, ``grid.transformer``,
    ``grid.switch``, ``grid.source``, ``grid.load``, ``grid.generator``, ``grid.storage``,
    ``grid.ev_charger``, ``grid.flex_load``); time series in ``grid.profiles``. Results of
    calculations are returned by the twin, never written into the grid.
    """

    name: str = "grid"
    f_hz: float = 50.0
    tables: dict[str, Table] = field(default_factory=dict)
    profiles: Profiles | None = None
    labels: dict[str, dict[int, str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in COMPONENTS:
            self.tables.setdefault(c, Table(c))

    # typed accessors ---------------------------------------------------------------------
    @property
    def bus(self) -> Table:
        """Buses (nodes)."""
        return self.tables["bus"]

    @property
    def line(self) -> Table:
        """Lines and cables."""
        return self.tables["line"]

    @property
    def transformer(self) -> Table:
        """Two-winding transformers."""
        return self.tables["transformer"]

    @property
    def switch(self) -> Table:
        """Breakers, load-break switches, sectionalisers, disconnectors."""
        return self.tables["switch"]

    @property
    def source(self) -> Table:
        """External grid connections (slack)."""
        return self.tables["source"]

    @property
    def load(self) -> Table:
        """Consumers (load convention)."""
        return self.tables["load"]

    @property
    def generator(self) -> Table:
        """PV, wind and other generators (generator convention)."""
        return self.tables["generator"]

    @property
    def storage(self) -> Table:
        """Batteries (load convention: + charging)."""
        return self.tables["storage"]

    @property
    def ev_charger(self) -> Table:
        """EV chargers (load convention; V2G discharge negative)."""
        return self.tables["ev_charger"]

    @property
    def flex_load(self) -> Table:
        """Flexible loads such as water heaters (load convention)."""
        return self.tables["flex_load"]

    def __getitem__(self, component: str) -> Table:
        try:
            return self.tables[component]
        except KeyError:
            from gridpilot.errors import UnknownComponentError

            raise UnknownComponentError(
                "component type", component, f"known: {', '.join(COMPONENTS)}"
            ) from None

    # building ----------------------------------------------------------------------------
    def add(self, component: str, **fields: Any) -> np.ndarray:
        """Append elements to ``component``; fields as scalars or sequences. Returns the ids."""
        return self[component].append(**fields)

    def copy(self) -> Grid:
        """A deep copy (tables, profiles, labels)."""
        return Grid(
            self.name,
            self.f_hz,
            {k: t.copy() for k, t in self.tables.items()},
            copy.deepcopy(self.profiles),
            copy.deepcopy(self.labels),
            copy.deepcopy(self.meta),
        )

    def label(self, component: str, id_: int) -> str:
        """A human label of an element (its name if it has one, else ``component id``)."""
        return self.labels.get(component, {}).get(int(id_), f"{component} {id_}")

    # checks ------------------------------------------------------------------------------
    def validate(self, raise_on_error: bool = True) -> list[Issue]:
        """Check the grid; returns every issue found (errors and warnings).

        With ``raise_on_error`` a :class:`ValidationError` listing all errors is raised when
        there is any. See :func:`gridpilot.model.validate.validate_grid` for the checks.
        """
        from gridpilot.model.validate import validate_grid

        issues = validate_grid(self)
        if raise_on_error and any(i.severity == "error" for i in issues):
            raise ValidationError(issues=issues)
        return issues

    def summary(self) -> dict[str, int]:
        """Element counts per component type."""
        return {c: len(t) for c, t in self.tables.items() if len(t)}

    def __repr__(self) -> str:
        parts = ", ".join(f"{c}={n}" for c, n in self.summary().items())
        return f"<Grid {self.name!r}: {parts}>"
