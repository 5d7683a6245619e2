"""The unbalanced grid: buses with their phases, and the element lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridpilot.model.threephase.elements import (
    Branch,
    Capacitor,
    CapControl,
    Counts,
    Fuse,
    Load,
    LoadShape,
    RegControl,
    Shunt,
    Source,
    Terminal,
    Transformer,
)
from gridpilot.model.threephase.inverters import InverterControl


@dataclass
class ThreePhaseGrid:
    """An unbalanced multi-phase grid (the typed model behind the IEEE feeders).

    ``bus_kv_ln`` is each bus's voltage base (kV line-to-neutral) for per-unit results.
    ``warnings`` lists what an importer could not model (never silently dropped).
    """

    name: str
    source: Source
    branches: list[Branch] = field(default_factory=list)
    transformers: list[Transformer] = field(default_factory=list)
    regcontrols: list[RegControl] = field(default_factory=list)
    capacitors: list[Capacitor] = field(default_factory=list)
    capcontrols: list[CapControl] = field(default_factory=list)
    shunts: list[Shunt] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    fuses: list[Fuse] = field(default_factory=list)
    invcontrols: list[InverterControl] = field(default_factory=list)
    loadshapes: dict[str, LoadShape] = field(default_factory=dict)
    bus_kv_ln: dict[str, float] = field(default_factory=dict)
    buscoords: dict[str, tuple[float, float]] = field(default_factory=dict)
    frequency_hz: float = 60.0
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def terminals(self) -> list[tuple[str, Terminal]]:
        """Every (element name, terminal) pair of the enabled power-delivery elements."""
        out: list[tuple[str, Terminal]] = [(f"vsource.{self.source.name}", self.source.terminal)]
        for b in self.branches:
            if b.enabled:
                out += [(f"{b.kind}.{b.name}", b.t1), (f"{b.kind}.{b.name}", b.t2)]
        for t in self.transformers:
            if t.enabled:
                out += [(f"transformer.{t.name}", w.terminal) for w in t.windings]
        for c in self.capacitors:
            if c.enabled:
                out += [(f"capacitor.{c.name}", c.t1), (f"capacitor.{c.name}", c.t2)]
        for sh in self.shunts:
            if sh.enabled:
                out += [(f"{sh.kind}.{sh.name}", t) for t in sh.terminals]
        for ld in self.loads:
            if ld.enabled:
                out.append((f"{ld.kind}.{ld.name}", ld.terminal))
        return out

    def bus_nodes(self) -> dict[str, set[int]]:
        """Each bus's non-ground nodes (conductors 1, 2, 3 and any neutral), buses in
        first-seen order."""
        seen: dict[str, set[int]] = {}
        for _, term in self.terminals():
            s = seen.setdefault(term.bus, set())
            s.update(n for n in term.nodes if n > 0)
        return seen

    def nodes(self) -> list[tuple[str, int]]:
        """The non-ground node-phases (bus, node), buses in first-seen order, nodes sorted."""
        return [(b, n) for b, ns in self.bus_nodes().items() for n in sorted(ns)]

    def counts(self) -> Counts:
        """Bus, node and element counts."""
        nodes = self.nodes()
        by = {
            "branch": len(self.branches),
            "transformer": len(self.transformers),
            "regcontrol": len(self.regcontrols),
            "capacitor": len(self.capacitors),
            "capcontrol": len(self.capcontrols),
            "fuse": len(self.fuses),
            "loadshape": len(self.loadshapes),
        }
        if self.shunts:
            by["shunt"] = len(self.shunts)
        for ld in self.loads:
            by[ld.kind] = by.get(ld.kind, 0) + 1
        return Counts(buses=len({b for b, _ in nodes}), nodes=len(nodes), by_type=by)

    def transformer(self, name: str) -> Transformer:
        """The transformer called ``name`` (case-insensitive)."""
        from gridpilot.errors import UnknownComponentError

        key = name.lower()
        cache = self.__dict__.get("_xf_cache")
        if cache is None or len(cache) != len(self.transformers):
            cache = {t.name.lower(): t for t in self.transformers}
            self.__dict__["_xf_cache"] = cache
        t = cache.get(key)
        if t is None or t.name.lower() != key:
            raise UnknownComponentError("transformer", name)
        return t

    def validate(self) -> None:
        """Raise :class:`ValidationError` listing every bad entry (see ``validate.py``)."""
        from gridpilot.model.threephase.validate import validate

        validate(self)
