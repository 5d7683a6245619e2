"""Switch-bounded sections of a grid, fault location from fault-passage indicators, loops of ties.

A *section* is what stays connected when every switch is open: buses joined by branches
without switches. A switched line belongs to the section on its switchless end; opening all
switches on a section's boundary isolates it. These are the building blocks of FLISR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridpilot.model import ElementType, Grid
from gridpilot.twin import supply_tree


@dataclass
class Sections:
    """Section labels of a grid.

    ``label[node]``: section of each node; nodes are bus positions ``0..nb-1`` followed by one
    virtual node per switched branch. ``sw_a``/``sw_b``: the two nodes each switch joins.
    """

    grid: Grid
    label: np.ndarray
    sw_a: np.ndarray
    sw_b: np.ndarray
    line_node: np.ndarray  # node of each line (its virtual node, or its from bus if unswitched)

    @classmethod
    def build(cls, grid: Grid) -> Sections:
        """Compute the sections of ``grid`` (switch states do not matter)."""
        nb = len(grid.bus)
        sw, ln, tr = grid.switch, grid.line, grid.transformer
        pm = grid.bus.position_map
        lf, lt = pm(ln["from_bus"]), pm(ln["to_bus"])
        tf, tt = (pm(tr["hv_bus"]), pm(tr["lv_bus"])) if len(tr) else (np.zeros(0, np.int64),) * 2
        line_v = np.full(len(ln), -1, np.int64)
        trafo_v = np.full(len(tr), -1, np.int64)
        nxt = nb
        a_list: list[int] = []
        b_list: list[int] = []
        sw_a = np.zeros(len(sw), np.int64)
        sw_b = np.zeros(len(sw), np.int64)
        line_sw_ends: dict[int, set[int]] = {}
        trafo_sw_ends: dict[int, set[int]] = {}
        for k in range(len(sw)):
            et, bus = int(sw["et"][k]), int(pm(sw["bus"][k : k + 1])[0])
            if et == ElementType.LINE:
                p = int(ln.index_of(sw["element"][k])[0])
                if line_v[p] < 0:
                    line_v[p] = nxt
                    nxt += 1
                sw_a[k], sw_b[k] = bus, line_v[p]
                line_sw_ends.setdefault(p, set()).add(bus)
            elif et == ElementType.TRANSFORMER:
                p = int(tr.index_of(sw["element"][k])[0])
                if trafo_v[p] < 0:
                    trafo_v[p] = nxt
                    nxt += 1
                sw_a[k], sw_b[k] = bus, trafo_v[p]
                trafo_sw_ends.setdefault(p, set()).add(bus)
            else:
                sw_a[k], sw_b[k] = bus, int(pm(sw["element"][k : k + 1])[0])
        for p in range(len(ln)):
            ends = (int(lf[p]), int(lt[p]))
            if line_v[p] < 0:
                a_list.append(ends[0])
                b_list.append(ends[1])
            else:
                for e in ends:
                    if e not in line_sw_ends.get(p, set()):
                        a_list.append(e)
                        b_list.append(int(line_v[p]))
        for p in range(len(tr)):
            ends = (int(tf[p]), int(tt[p]))
            if trafo_v[p] < 0:
                a_list.append(ends[0])
                b_list.append(ends[1])
            else:
                for e in ends:
                    if e not in trafo_sw_ends.get(p, set()):
                        a_list.append(e)
                        b_list.append(int(trafo_v[p]))
        n = nxt
        g = coo_matrix((np.ones(len(a_list)), (a_list, b_list)), shape=(n, n)).tocsr()
        label = connected_components(g, directed=False)[1]
        line_node = np.where(line_v >= 0, line_v, lf)
        return cls(grid, label, sw_a, sw_b, line_node)

    def section_buses(self, section: int) -> np.ndarray:
        """Bus ids in ``section``."""
        nb = len(self.grid.bus)
        return self.grid.bus.ids[np.flatnonzero(self.label[:nb] == section)]

    def section_lines(self, section: int) -> np.ndarray:
        """Line ids belonging to ``section``."""
        return self.grid.line.ids[self.label[self.line_node] == section]

    def boundary(self, section: int) -> np.ndarray:
        """Switch positions on the boundary of ``section``."""
        la, lb = self.label[self.sw_a], self.label[self.sw_b]
        return np.flatnonzero((la == section) ^ (lb == section))

    def downstream_section(self, k: int, depth: np.ndarray) -> int:
        """Section on the far side (from the source) of switch position ``k``, given bus depths."""
        nb = len(self.grid.bus)
        a, b = int(self.sw_a[k]), int(self.sw_b[k])
        if b >= nb:  # line/transformer switch: compare the switch bus with the branch's other end
            other = [x for x in np.flatnonzero(self.label[:nb] == self.label[b]) if x != a]
            d_other = min((depth[x] for x in other if depth[x] >= 0), default=-1)
            if depth[a] >= 0 and (d_other < 0 or d_other > depth[a]):
                return int(self.label[b])
            return int(self.label[a])
        return int(self.label[b] if depth[b] > depth[a] else self.label[a])


@dataclass
class FaultLocation:
    """Where the fault is: the section, its buses and lines, the switches that isolate it."""

    section: int
    buses: list[int]
    lines: list[int]
    boundary_switches: list[int]  # ids
    via_switch: int  # id of the deepest switch whose FPI picked up


def locate_fault(
    grid: Grid, sections: Sections, fpi: np.ndarray, pre_fault_closed: np.ndarray
) -> FaultLocation | None:
    """Locate a fault from FPI flags (bool per switch) on the pre-fault topology.

    The fault lies in the section downstream of the deepest switch whose indicator picked up
    (no indicator downstream of it did). Returns None without any flag.
    """
    flagged = np.flatnonzero(fpi)
    if flagged.size == 0:
        return None
    tree = supply_tree(grid, pre_fault_closed)
    best, best_depth = -1, -1
    for k in flagged:
        sec = sections.downstream_section(int(k), tree.depth)
        buses = (
            grid.bus.position_map(sections.section_buses(sec))
            if sections.section_buses(sec).size
            else np.zeros(0, np.int64)
        )
        d = int(tree.depth[buses].max()) if buses.size else -1
        if d > best_depth:
            best, best_depth = int(k), d
    sec = sections.downstream_section(best, tree.depth)
    return FaultLocation(
        sec,
        sections.section_buses(sec).tolist(),
        sections.section_lines(sec).tolist(),
        grid.switch.ids[sections.boundary(sec)].tolist(),
        int(grid.switch.ids[best]),
    )


def loop_switches(grid: Grid, closed: np.ndarray, tie: int) -> list[int]:
    """Positions of closed switches on the loop that closing switch position ``tie`` would form."""
    sw, ln = grid.switch, grid.line
    if sw["et"][tie] != ElementType.LINE:
        return []
    p = int(ln.index_of(sw["element"][tie])[0])
    pm = grid.bus.position_map
    a, b = int(pm(ln["from_bus"][p : p + 1])[0]), int(pm(ln["to_bus"][p : p + 1])[0])
    tree = supply_tree(grid, closed)
    if not (tree.supplied[a] and tree.supplied[b]):
        return []

    def path(x: int) -> list[int]:
        out = [x]
        while tree.parent[x] >= 0:
            x = int(tree.parent[x])
            out.append(x)
        return out

    pa, pb = path(a), path(b)
    common = set(pa) & set(pb)
    loop_nodes = [x for x in pa if x not in common] + [x for x in pb if x not in common]
    loop_nodes += [next(x for x in pa if x in common)]
    node_set = set(loop_nodes)
    lf, lt = pm(ln["from_bus"]), pm(ln["to_bus"])
    out = []
    line_sw = np.flatnonzero((sw["et"] == ElementType.LINE) & closed)
    for k in line_sw:
        q = int(ln.index_of(sw["element"][k])[0])
        if q == p:
            continue
        f, t = int(lf[q]), int(lt[q])
        if f in node_set and t in node_set and (tree.parent[f] == t or tree.parent[t] == f):
            out.append(int(k))
    return out
