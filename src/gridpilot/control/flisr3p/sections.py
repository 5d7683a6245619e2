"""Sections of an unbalanced feeder: the buses between switches, and how switches join them.

A section is a connected group of buses once every switch is taken out (lines, fuses and
transformers stay inside sections). In the normal (radial) state each closed switch has an
upstream and a downstream section (seen from the source); normally-open switches are ties.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from gridpilot.model.threephase import ThreePhaseGrid


@dataclass
class Sections3p:
    """Section of every bus, the two sections of every switch, section loads and the
    normal-state orientation (``up[s]``/``down[s]`` for closed switches ``s``)."""

    of_bus: dict[str, int]
    ends: dict[str, tuple[int, int]]
    normal: dict[str, bool]
    source: int
    load_kw: np.ndarray
    up: dict[str, int]
    down: dict[str, int]
    count: int

    @classmethod
    def build(cls, grid: ThreePhaseGrid) -> Sections3p:
        """Sections of ``grid`` (switches are the enabled branches of kind ``switch``)."""
        buses = sorted({b for b, _ in grid.nodes()} | {grid.source.terminal.bus})
        pos = {b: i for i, b in enumerate(buses)}
        a: list[int] = []
        b: list[int] = []
        for br in grid.branches:
            if br.enabled and br.kind != "switch":
                a.append(pos[br.t1.bus])
                b.append(pos[br.t2.bus])
        for t in grid.transformers:
            if t.enabled:
                ws = [pos[w.terminal.bus] for w in t.windings]
                a += ws[:1] * (len(ws) - 1)
                b += ws[1:]
        n = len(buses)
        _, lab = connected_components(
            sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False
        )
        of_bus = {x: int(lab[pos[x]]) for x in buses}
        sws = [br for br in grid.branches if br.enabled and br.kind == "switch"]
        ends = {br.name.lower(): (of_bus[br.t1.bus], of_bus[br.t2.bus]) for br in sws}
        normal = {br.name.lower(): br.closed for br in sws}
        count = int(lab.max()) + 1
        load = np.zeros(count)
        for ld in grid.loads:
            if ld.enabled and ld.kind == "load":
                load[of_bus[ld.terminal.bus]] += ld.kw
        src = of_bus[grid.source.terminal.bus]
        up, down = _orient(ends, normal, src)
        return cls(of_bus, ends, normal, src, load, up, down, count)

    def bounds(self, section: int, closed: dict[str, bool] | None = None) -> list[str]:
        """Switches closed in ``closed`` (default: the normal state) touching ``section``."""
        st = closed or self.normal
        return [s for s, (x, y) in self.ends.items() if st[s] and section in (x, y) and x != y]

    def radial(self, state: dict[str, bool]) -> bool:
        """No loop among sections joined by the switches closed in ``state``."""
        parent = list(range(self.count))

        def root(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for s, (a, b) in self.ends.items():
            if state[s] and a != b:
                ra, rb = root(a), root(b)
                if ra == rb:
                    return False
                parent[ra] = rb
        return True

    def ties(self) -> list[str]:
        """The normally-open switches."""
        return [s for s, on in self.normal.items() if not on]

    def sections_of(self, mask_buses: dict[str, bool]) -> set[int]:
        """Sections any of whose buses is True in ``mask_buses``."""
        return {self.of_bus[b] for b, on in mask_buses.items() if on and b in self.of_bus}


def _orient(
    ends: dict[str, tuple[int, int]], normal: dict[str, bool], src: int
) -> tuple[dict[str, int], dict[str, int]]:
    adj: dict[int, list[tuple[int, str]]] = {}
    for s, (x, y) in ends.items():
        if normal[s]:
            adj.setdefault(x, []).append((y, s))
            adj.setdefault(y, []).append((x, s))
    up: dict[str, int] = {}
    down: dict[str, int] = {}
    seen = {src}
    q = deque([src])
    while q:
        u = q.popleft()
        for v, s in adj.get(u, []):
            if v not in seen:
                seen.add(v)
                up[s], down[s] = u, v
                q.append(v)
    return up, down
