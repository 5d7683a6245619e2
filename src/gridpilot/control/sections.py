"""Sections of a grid: the zones that switches bound, and the section graph.

A *section* is a connected piece of the network that no switch divides: buses, lines and
transformers joined where no switch sits between them. Each switch sits at one end of a line
or transformer (or between two buses) and so joins exactly two sections: the one of its bus
and the one of its element. A fault on a line lies in the line's section; isolating it means
opening every switch that bounds that section. (A line with a switch at one end only shares a
section with the bus at its other end: opening the one switch does not isolate it.)

:class:`Sections` is computed once per grid (topology only); :meth:`Sections.state` gives the
section-level supply tree for any switch states in well under a millisecond on 10k-bus grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from gridpilot.model import ElementType, Grid

SMALL_SECTIONS = 400  # up to this many sections the supply tree is searched by a plain BFS (numba)


@dataclass
class SectionState:
    """The section-level supply tree for one set of switch states.

    ``energised``: bool per section; ``parent``: parent section (-1 at sources and dead
    sections); ``parent_switch``: switch position feeding each section (-1 none);
    ``depth``: hops from a source section (-1 dead); ``order``: energised sections,
    breadth-first from the sources.
    """

    energised: np.ndarray
    parent: np.ndarray
    parent_switch: np.ndarray
    depth: np.ndarray
    order: np.ndarray
    looped: bool


class Sections:
    """The sections of a grid and the switches between them (positions, table order).

    Attributes: ``n`` sections; ``of_bus``, ``of_line``, ``of_trafo``: section per element;
    ``sw_a`` (section at the switch's bus) and ``sw_b`` (section at its element);
    ``source``: bool per section holding an in-service source; ``p_mw``, ``weight``
    (priority x p_mw) and ``customers`` of the loads per section; ``buses``/``loads``:
    CSR-style member lists via :meth:`buses_of` and :meth:`loads_of`.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        nb, nl, nt = len(grid.bus), len(grid.line), len(grid.transformer)
        sw = grid.switch
        a, b, sw_bus, sw_elem_node = _element_edges(grid)
        n, lab = _component_labels(a, b, nb + nl + nt)
        self.n = n
        self.of_bus = lab[:nb]
        self.of_line = lab[nb : nb + nl]
        self.of_trafo = lab[nb + nl :]
        self.sw_a = self.of_bus[sw_bus] if len(sw) else np.zeros(0, np.int64)
        self.sw_b = lab[sw_elem_node] if len(sw) else np.zeros(0, np.int64)
        self.sw_bus = sw_bus
        src = grid.source
        self.source = np.zeros(self.n, bool)
        self.source[self.of_bus[grid.bus.position_map(src["bus"][src["in_service"]], "bus")]] = True
        self._load_totals(grid)
        self._bus_order = np.argsort(self.of_bus, kind="stable")
        self._bus_ptr = np.searchsorted(self.of_bus[self._bus_order], np.arange(self.n + 1))
        self._load_order = np.argsort(self.load_section, kind="stable")
        self._load_ptr = np.searchsorted(self.load_section[self._load_order], np.arange(self.n + 1))
        self._line_order = np.argsort(self.of_line, kind="stable")
        self._line_ptr = np.searchsorted(self.of_line[self._line_order], np.arange(self.n + 1))
        # switch lookup by unordered section pair, for parent switches
        lo = np.minimum(self.sw_a, self.sw_b)
        hi = np.maximum(self.sw_a, self.sw_b)
        self._pair_key = lo * self.n + hi
        self.sw_remote = sw["remote"].copy() if len(sw) else np.zeros(0, bool)
        self.sw_kind = sw["kind"].copy() if len(sw) else np.zeros(0, np.int8)
        self.sw_fpi = sw["fpi"].copy() if len(sw) else np.zeros(0, bool)

    def _load_totals(self, grid: Grid) -> None:
        """Section of each load and, per section, in-service load (MW), priority-weighted load
        (MW) and customers."""
        ld = grid.load
        lpos = grid.bus.position_map(ld["bus"], "bus") if len(ld) else np.zeros(0, np.int64)
        on = ld["in_service"] if len(ld) else np.zeros(0, bool)
        self.load_section = self.of_bus[lpos] if len(ld) else np.zeros(0, np.int64)
        self.p_mw = (
            np.bincount(self.load_section, np.where(on, ld["p_mw"], 0.0), self.n)
            if len(ld)
            else np.zeros(self.n)
        )
        self.weight = (
            np.bincount(self.load_section, np.where(on, ld["p_mw"] * ld["priority"], 0.0), self.n)
            if len(ld)
            else np.zeros(self.n)
        )
        self.customers = (
            np.bincount(self.load_section, np.where(on, ld["customers"], 0), self.n).astype(
                np.int64
            )
            if len(ld)
            else np.zeros(self.n, np.int64)
        )

    def _state_small(self, closed: np.ndarray) -> SectionState:
        """Breadth-first search from each source in turn (numba): no sparse-graph set-up."""
        if not hasattr(self, "_adj_ptr"):
            keep = np.flatnonzero(self.sw_a != self.sw_b)
            ends = np.concatenate([self.sw_a[keep], self.sw_b[keep]])
            far = np.concatenate([self.sw_b[keep], self.sw_a[keep]])
            sw = np.concatenate([keep, keep])
            o = np.lexsort((sw, ends))  # per section, its switches in table order (as built lists)
            self._adj_ptr = np.zeros(self.n + 1, np.int64)
            np.cumsum(np.bincount(ends, minlength=self.n), out=self._adj_ptr[1:])
            self._adj_far = far[o].astype(np.int64)
            self._adj_sw = sw[o].astype(np.int64)
            self._src_pos = np.flatnonzero(self.source).astype(np.int64)
        parent, pw, depth, order, n_ord, looped = _bfs_sections(
            self._adj_ptr, self._adj_far, self._adj_sw, np.ascontiguousarray(closed), self._src_pos
        )
        return SectionState(depth >= 0, parent, pw, depth, order[:n_ord], bool(looped))

    # --- members ---------------------------------------------------------------------------------
    def buses_of(self, sections: np.ndarray | list[int] | int) -> np.ndarray:
        """Bus positions of the given sections."""
        return _members(self._bus_order, self._bus_ptr, sections)

    def loads_of(self, sections: np.ndarray | list[int] | int) -> np.ndarray:
        """Load positions (table order) of the given sections."""
        return _members(self._load_order, self._load_ptr, sections)

    def lines_of(self, sections: np.ndarray | list[int] | int) -> np.ndarray:
        """Line positions of the given sections."""
        return _members(self._line_order, self._line_ptr, sections)

    def bounds(self, sections: np.ndarray) -> np.ndarray:
        """Positions of the switches with exactly one side in ``sections`` (bool mask or ids)."""
        inside = np.zeros(self.n, bool)
        inside[np.asarray(sections)] = True
        return np.flatnonzero(inside[self.sw_a] != inside[self.sw_b])

    # --- state -----------------------------------------------------------------------------------
    def state(self, switch_closed: np.ndarray) -> SectionState:
        """Section supply tree for the switch states (bool per switch, table order)."""
        n = self.n
        closed = np.asarray(switch_closed, bool) & (self.sw_a != self.sw_b)
        if n <= SMALL_SECTIONS:
            return self._state_small(closed)
        a, b = self.sw_a[closed], self.sw_b[closed]
        srcs = np.flatnonzero(self.source)
        root = n  # a super root joined to every source section
        ea = np.concatenate([a, np.full(srcs.size, root)])
        eb = np.concatenate([b, srcs])
        g = coo_matrix((np.ones(ea.size), (ea, eb)), shape=(n + 1, n + 1)).tocsr()
        order, pred = breadth_first_order(g, root, directed=False, return_predecessors=True)
        order = order[1:]
        energised = np.zeros(n, bool)
        energised[order] = True
        parent = np.full(n, -1, np.int64)
        parent[order] = pred[order]
        parent[parent == root] = -1
        depth = np.full(n, -1, np.int64)
        pw = np.full(n, -1, np.int64)
        child = order[parent[order] >= 0]
        if child.size:
            key = np.minimum(child, parent[child]) * n + np.maximum(child, parent[child])
            cand = np.flatnonzero(closed)
            ck = self._pair_key[cand]
            srt = np.argsort(ck, kind="stable")
            k = np.searchsorted(ck[srt], key)
            pw[child] = cand[srt[np.clip(k, 0, max(srt.size - 1, 0))]]
        depth[order] = tree_depth(parent)[order]
        live_edges = int(np.sum(energised[a]))
        looped = live_edges + srcs.size > int(energised.sum()) or False
        return SectionState(energised, parent, pw, depth, order, bool(looped))


def _element_edges(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bus-element graph with every switch cut: edges ``a``-``b`` joining each bus to the
    in-service lines (nodes ``nb..``) and transformers (``nb+nl..``) at it, except where a
    switch sits; and per switch its bus position and the node on its element side."""
    nb, nl, nt = len(grid.bus), len(grid.line), len(grid.transformer)
    pm = grid.bus.position_map
    sw = grid.switch
    ln, tr = grid.line, grid.transformer
    et = sw["et"]
    sw_bus = pm(sw["bus"], "bus") if len(sw) else np.zeros(0, np.int64)
    lf, lt = pm(ln["from_bus"], "bus"), pm(ln["to_bus"], "bus")
    th, tl = pm(tr["hv_bus"], "bus"), pm(tr["lv_bus"], "bus")
    cut_lf = np.zeros(nl, bool)
    cut_lt = np.zeros(nl, bool)
    cut_th = np.zeros(nt, bool)
    cut_tl = np.zeros(nt, bool)
    sw_elem_node = np.full(len(sw), -1, np.int64)
    # a switch cuts its element's end at the switch's bus (from/hv end, else to/lv end)
    for kind, table, name, first_bus, cut_first, cut_second, node0 in (
        (ElementType.LINE, ln, "line", lf, cut_lf, cut_lt, nb),
        (ElementType.TRANSFORMER, tr, "transformer", th, cut_th, cut_tl, nb + nl),
    ):
        m = np.flatnonzero(et == kind)
        if m.size:
            pos = table.position_map(sw["element"][m], name)
            at_first = first_bus[pos] == sw_bus[m]
            cut_first[pos[at_first]] = True
            cut_second[pos[~at_first]] = True
            sw_elem_node[m] = node0 + pos
    m = np.flatnonzero(et == ElementType.BUS)
    if m.size:
        sw_elem_node[m] = pm(sw["element"][m], "bus")
    lon, ton = ln["in_service"], tr["in_service"]
    ln_node = nb + np.arange(nl)
    tr_node = nb + nl + np.arange(nt)
    a = np.concatenate([lf[lon & ~cut_lf], lt[lon & ~cut_lt], th[ton & ~cut_th], tl[ton & ~cut_tl]])
    b = np.concatenate(
        [
            ln_node[lon & ~cut_lf],
            ln_node[lon & ~cut_lt],
            tr_node[ton & ~cut_th],
            tr_node[ton & ~cut_tl],
        ]
    )
    return a, b, sw_bus, sw_elem_node


def _component_labels(a: np.ndarray, b: np.ndarray, nn: int) -> tuple[int, np.ndarray]:
    """Number of connected components of ``nn`` nodes joined by edges a-b, and each node's
    component, numbered in order of its first node (so sections holding buses come first)."""
    g = coo_matrix((np.ones(a.size), (a, b)), shape=(nn, nn)).tocsr()
    n, lab = connected_components(g, directed=False)
    first = np.full(n, nn, np.int64)
    np.minimum.at(first, lab, np.arange(nn))
    rank = np.empty(n, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(n)
    return int(n), rank[lab]


@njit(cache=True, nogil=True)
def _bfs_sections(
    ptr: np.ndarray, far: np.ndarray, sw: np.ndarray, closed: np.ndarray, sources: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """Supply tree of sections: parent, parent switch, depth (-1 dead), BFS order, its length, loop flag."""
    n = ptr.size - 1
    parent = np.full(n, -1, np.int64)
    pw = np.full(n, -1, np.int64)
    depth = np.full(n, -1, np.int64)
    order = np.empty(n, np.int64)
    n_ord = 0
    looped = False
    for s0 in sources:
        if depth[s0] >= 0:
            looped = True
            continue
        depth[s0] = 0
        order[n_ord] = s0
        i = n_ord
        n_ord += 1
        while i < n_ord:
            x = order[i]
            i += 1
            for j in range(ptr[x], ptr[x + 1]):
                k = sw[j]
                if not closed[k] or k == pw[x]:
                    continue
                y = far[j]
                if depth[y] >= 0:
                    looped = True
                    continue
                depth[y] = depth[x] + 1
                parent[y] = x
                pw[y] = k
                order[n_ord] = y
                n_ord += 1
    return parent, pw, depth, order, n_ord, looped


def tree_depth(parent: np.ndarray) -> np.ndarray:
    """Hops from the root for every node of a forest given by ``parent`` (-1 at roots)."""
    n = parent.size
    jump = np.where(parent >= 0, parent, np.arange(n))
    d = (parent >= 0).astype(np.int64)
    while True:
        nxt = jump[jump]
        if np.array_equal(nxt, jump):
            return d
        d = d + d[jump]
        jump = nxt


def subtree_mask(parent: np.ndarray, tops: np.ndarray | list[int]) -> np.ndarray:
    """Bool per node: in the subtree of any of ``tops`` (themselves included)."""
    inside = np.zeros(parent.size, np.int8)
    inside[np.asarray(tops, np.int64)] = 1
    return _subtree_kernel(np.ascontiguousarray(parent, np.int64), inside)


@njit(cache=True, nogil=True)
def _subtree_kernel(parent: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """Walk up from every node until a node of known membership (1 in, 2 out; 0 unknown)."""
    n = parent.size
    path = np.empty(n, np.int64)
    for x0 in range(n):
        x = x0
        k = 0
        while mark[x] == 0:
            path[k] = x
            k += 1
            p = parent[x]
            if p < 0:
                mark[x] = 2
                break
            x = p
        m = mark[x]
        for i in range(k):
            mark[path[i]] = m
    return mark == 1


def _members(
    order: np.ndarray, ptr: np.ndarray, sections: np.ndarray | list[int] | int
) -> np.ndarray:
    s = np.atleast_1d(np.asarray(sections, np.int64))
    if s.size == 0:
        return np.zeros(0, np.int64)
    if s.size == 1:
        k = int(s[0])
        return order[ptr[k] : ptr[k + 1]]
    return np.concatenate([order[ptr[k] : ptr[k + 1]] for k in s])
