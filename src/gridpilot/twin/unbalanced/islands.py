"""Switching on a three-phase feeder for the loop's world: a switching state given as the set of
open branches, and its energised part as a grid the unbalanced twin can solve.

A thin layer over :mod:`gridpilot.twin.unbalanced.topology` (the one dead-section model, per
node-phase, that FLISR uses too): :func:`with_open` sets the state, and
:func:`energised_subgrid` disables whatever touches a dead node-phase
(:func:`~gridpilot.twin.unbalanced.topology.energised_subgrid`) and names the live and dead
buses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from gridpilot.errors import UnknownComponentError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced import topology


@dataclass
class Energised:
    """The energised subgrid (dead elements disabled), its live buses (a node-phase energised)
    and the feeder's de-energised buses."""

    grid: ThreePhaseGrid
    live: set[str]
    dead: set[str]


def with_open(
    grid: ThreePhaseGrid, open_branches: Iterable[str] = (), *, close_switches: bool = False
) -> ThreePhaseGrid:
    """A copy of ``grid`` with ``open_branches`` (branch names, any case) open; with
    ``close_switches`` every other enabled switch closed (the set is then the whole list of
    open switches, normally-open ties included), else the others stay as modelled. An
    unknown branch name is an :class:`UnknownComponentError`."""
    names = {n.lower() for n in open_branches}
    known = {b.name.lower() for b in grid.branches}
    bad = sorted(names - known)
    if bad:
        raise UnknownComponentError("branch", bad[0], f"{grid.name} has {len(known)} branches")

    def closed(b: object) -> bool:
        name = b.name.lower()  # type: ignore[attr-defined]
        if name in names:
            return False
        if close_switches and b.kind == "switch" and b.enabled:  # type: ignore[attr-defined]
            return True
        return bool(b.closed)  # type: ignore[attr-defined]

    branches = [
        b if closed(b) == b.closed else dataclasses.replace(b, closed=closed(b))
        for b in grid.branches
    ]
    return dataclasses.replace(grid, branches=branches)


def energised_subgrid(
    grid: ThreePhaseGrid, open_branches: Iterable[str] = (), *, close_switches: bool = False
) -> Energised:
    """:func:`with_open`, then every element touching a dead node-phase disabled (element
    order kept). Buses are live when one of their node-phases is energised."""
    g = with_open(grid, open_branches, close_switches=close_switches)
    mask = topology.energised_mask(g)
    live = {b for (b, _), m in zip(g.nodes(), mask, strict=True) if m}
    every = {b for b, _ in grid.nodes()} | {grid.source.terminal.bus}
    sub = topology.energised_subgrid(g)
    return Energised(sub, live & every, every - live)


def live_buses(grid: ThreePhaseGrid, open_branches: Iterable[str] = ()) -> set[str]:
    """Buses with an energised node-phase when ``open_branches`` (names) are open."""
    g = with_open(grid, open_branches)
    return {b for (b, _), m in zip(g.nodes(), topology.energised_mask(g), strict=True) if m}


__all__ = ["Energised", "energised_subgrid", "live_buses", "with_open"]
