"""Topology from switch states: energised islands, supply paths, radiality, lost buses.

All functions take the grid and optional switch states (bool per switch, table order;
default the present ``closed`` column) and work on bus positions with scipy's sparse graph
routines, so they stay fast on 100k-bus grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from gridpilot.model import Grid
from gridpilot.model.topology_edges import branch_edges


def _graph(grid: Grid, switch_closed: np.ndarray | None) -> tuple[coo_matrix, int]:
    a, b = branch_edges(grid, True, switch_closed)
    n = len(grid.bus)
    return coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)).tocsr(), int(a.size)


def islands(grid: Grid, switch_closed: np.ndarray | None = None) -> np.ndarray:
    """Island label per bus (table order) for the given switch states."""
    g, _ = _graph(grid, switch_closed)
    return connected_components(g, directed=False)[1]


def energised(grid: Grid, switch_closed: np.ndarray | None = None) -> np.ndarray:
    """Bool per bus: connected to an in-service source through closed switches."""
    lab = islands(grid, switch_closed)
    src = grid.bus.position_map(grid.source["bus"][grid.source["in_service"]])
    return np.isin(lab, lab[src]) & grid.bus["in_service"]


def buses_lost_if_open(
    grid: Grid, switch_ids: int | list[int] | np.ndarray, switch_closed: np.ndarray | None = None
) -> np.ndarray:
    """Ids of buses that lose supply when the given switches open (from the given states)."""
    closed = (
        grid.switch["closed"].copy()
        if switch_closed is None
        else np.asarray(switch_closed, bool).copy()
    )
    before = energised(grid, closed)
    closed[grid.switch.index_of(switch_ids)] = False
    after = energised(grid, closed)
    return grid.bus.ids[before & ~after]


def meshes(grid: Grid, switch_closed: np.ndarray | None = None) -> int:
    """How far the energised network is from radial: its independent loops (edges beyond a
    spanning forest of its islands) plus the sources in parallel (beyond one per island)."""
    g, _m = _graph(grid, switch_closed)
    _ncomp, lab = connected_components(g, directed=False)
    on = energised(grid, switch_closed)
    a, _b = branch_edges(grid, True, switch_closed)
    loops = int(np.sum(on[a])) - (int(on.sum()) - np.unique(lab[on]).size)
    src_lab = lab[grid.bus.position_map(grid.source["bus"][grid.source["in_service"]])]
    return loops + src_lab.size - np.unique(src_lab).size


def is_radial(grid: Grid, switch_closed: np.ndarray | None = None) -> bool:
    """True if the energised network has no loops (and no two sources in one island)."""
    return meshes(grid, switch_closed) == 0


@dataclass
class Tree:
    """A radial supply tree: buses in breadth-first order from the sources and their parents.

    ``order``: bus positions, sources first; ``parent``: parent bus position (-1 at roots and
    unsupplied buses); ``depth``: hops from the source; ``supplied``: bool per bus.
    """

    order: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    supplied: np.ndarray


def supply_tree(grid: Grid, switch_closed: np.ndarray | None = None) -> Tree:
    """Breadth-first supply tree from every in-service source (meshes are cut arbitrarily)."""
    g, _ = _graph(grid, switch_closed)
    g = g + g.T
    n = len(grid.bus)
    parent = np.full(n, -1, np.int64)
    depth = np.full(n, -1, np.int64)
    orders = []
    seen = np.zeros(n, bool)
    for s in grid.bus.position_map(grid.source["bus"][grid.source["in_service"]]):
        if seen[s]:
            continue
        order, pred = breadth_first_order(g, int(s), directed=False, return_predecessors=True)
        order = order[~seen[order]]
        seen[order] = True
        parent[order] = np.where(pred[order] >= 0, pred[order], -1)
        parent[s] = -1
        depth[s] = 0
        for v in order[1:]:
            depth[v] = depth[parent[v]] + 1
        orders.append(order)
    order = np.concatenate(orders) if orders else np.zeros(0, np.int64)
    return Tree(order, parent, depth, seen)
