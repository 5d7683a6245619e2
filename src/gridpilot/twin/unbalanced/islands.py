"""Switching on a three-phase feeder: the energised part of a :class:`ThreePhaseGrid` with some
branches open, as a grid the unbalanced twin can solve (de-energised sections removed).

The unbalanced power flow needs every node connected to the source; a section cut off by an
open switch or a faulted line has no voltage. :func:`energised_subgrid` opens the named
branches and keeps only the elements reachable from the source through closed branches and
transformers; the removed buses are the de-energised ones.

(A minimal helper for the three-phase world and the N-1 sweep; a fuller switching model for
FLISR may live beside it.)
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gridpilot.errors import UnknownComponentError
from gridpilot.model.threephase import ThreePhaseGrid


@dataclass
class Energised:
    """The energised subgrid, its live buses and the feeder's de-energised buses."""

    grid: ThreePhaseGrid
    live: set[str]
    dead: set[str]


def _adjacency(grid: ThreePhaseGrid, open_names: set[str]) -> dict[str, list[str]]:
    adj: dict[str, list[str]] = {}

    def link(a: str, b: str) -> None:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)

    for b in grid.branches:
        if b.enabled and b.closed and b.name.lower() not in open_names:
            link(b.t1.bus, b.t2.bus)
    for t in grid.transformers:
        if t.enabled:
            buses = [w.terminal.bus for w in t.windings]
            for x in buses[1:]:
                link(buses[0], x)
    return adj


def live_buses(grid: ThreePhaseGrid, open_branches: Iterable[str] = ()) -> set[str]:
    """Buses connected to the source with ``open_branches`` (names) open."""
    open_names = {n.lower() for n in open_branches}
    adj = _adjacency(grid, open_names)
    start = grid.source.terminal.bus
    seen = {start}
    q = deque([start])
    while q:
        u = q.popleft()
        for v in adj.get(u, ()):
            if v not in seen:
                seen.add(v)
                q.append(v)
    return seen


def energised_subgrid(grid: ThreePhaseGrid, open_branches: Iterable[str] = ()) -> Energised:
    """``grid`` with ``open_branches`` (branch names, any case) open and every element outside
    the source's island removed. An unknown branch name is an :class:`UnknownComponentError`."""
    names = {n.lower() for n in open_branches}
    known = {b.name.lower() for b in grid.branches}
    bad = sorted(names - known)
    if bad:
        raise UnknownComponentError("branch", bad[0], f"{grid.name} has {len(known)} branches")
    live = live_buses(grid, names)

    def on(bus: str) -> bool:
        return bus in live

    branches = [
        b for b in grid.branches if b.name.lower() not in names and on(b.t1.bus) and on(b.t2.bus)
    ]
    xfs = [t for t in grid.transformers if all(on(w.terminal.bus) for w in t.windings)]
    xf_names = {t.name.lower() for t in xfs}
    caps = [c for c in grid.capacitors if on(c.t1.bus) and on(c.t2.bus)]
    cap_names = {c.name.lower() for c in caps}
    br_names = {b.name.lower() for b in branches}
    sub = dataclasses.replace(
        grid,
        branches=branches,
        transformers=xfs,
        regcontrols=[r for r in grid.regcontrols if r.transformer.lower() in xf_names],
        capacitors=caps,
        capcontrols=[
            c
            for c in grid.capcontrols
            if c.capacitor.lower() in cap_names and c.element.partition(".")[2].lower() in br_names
        ],
        loads=[ld for ld in grid.loads if on(ld.terminal.bus)],
        fuses=[f for f in grid.fuses if f.branch.lower() in br_names],
    )
    every = {b for b, _ in grid.nodes()} | {grid.source.terminal.bus}
    return Energised(sub, live & every, every - live)


__all__ = ["Energised", "energised_subgrid", "live_buses"]
