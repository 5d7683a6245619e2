"""Protection in the field: which breaker trips for a line fault and which FPIs pick up.

A fault on a line is *fed* when either of its ends is connected to an in-service source
through closed switches (the faulted line itself counted as conducting up to its switches).
Fault current then flows from the source along the supply path to the fault. Every switch
with a fault-passage indicator (``fpi``) on that path picks up, including the switch of the
faulted line at its fed end; the breaker (``kind`` 0) on the path nearest to the fault trips
(if the path has no breaker, the switch nearest the source stands in for the feeder's
protection). Buses that lose supply when it opens are reported as lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import UnknownComponentError
from gridpilot.model import ElementType, Grid, SwitchKind
from gridpilot.twin.topology import energised, supply_tree


@dataclass
class FaultIndications:
    """Protection's response to one fault.

    ``fed``: the fault was connected to a source; ``trip_switch``: id of the switch that
    opens (-1: none); ``fpi_switches``: ids of the switches whose indicators picked up, from the
    source towards the fault; ``lost_buses``: ids of buses de-energised by the trip.
    """

    line_id: int
    fed: bool
    trip_switch: int
    fpi_switches: np.ndarray
    lost_buses: np.ndarray


def fault_indications(
    grid: Grid, line_id: int, switch_closed: np.ndarray | None = None
) -> FaultIndications:
    """Protection indications for a fault on line ``line_id`` with the given switch states.

    Returns :class:`FaultIndications`; raises :class:`~gridpilot.errors.UnknownComponentError`
    for an unknown line.
    """
    ln, sw = grid.line, grid.switch
    if line_id not in set(ln.ids.tolist()):
        raise UnknownComponentError("line", line_id)
    closed = (
        grid.switch["closed"].copy()
        if switch_closed is None
        else np.asarray(switch_closed, bool).copy()
    )
    lpos = int(ln.index_of(line_id)[0])
    bus_pm = grid.bus.position_map
    fb, tb = (
        int(bus_pm(ln["from_bus"][lpos : lpos + 1])[0]),
        int(bus_pm(ln["to_bus"][lpos : lpos + 1])[0]),
    )
    on_line = np.flatnonzero((sw["et"] == ElementType.LINE) & (sw["element"] == line_id))
    sw_bus_pos = bus_pm(sw["bus"][on_line]) if on_line.size else np.zeros(0, np.int64)
    # the line up to its switches: an end is reachable from its bus unless an open switch sits there
    live = energised(grid, closed)
    tree = supply_tree(grid, closed)
    ends = []
    for end in (fb, tb):
        blocked = bool(np.any(~closed[on_line[sw_bus_pos == end]])) if on_line.size else False
        if live[end] and not blocked:
            ends.append(end)
    if not ends:
        return FaultIndications(line_id, False, -1, np.zeros(0, np.int64), np.zeros(0, np.int64))
    feed = min(ends, key=lambda b: tree.depth[b])
    # switches on the supply path: walk from the feeding end to the root
    path_sw: list[int] = [
        int(s) for s in on_line[sw_bus_pos == feed]
    ]  # the faulted line's own switch
    edge_sw = _edge_switches(grid, closed)
    v = feed
    while tree.parent[v] >= 0:
        p = int(tree.parent[v])
        path_sw.extend(edge_sw.get((min(v, p), max(v, p)), []))
        v = p
    path_sw = path_sw[::-1]  # source first
    path = np.asarray(path_sw, np.int64)
    fpi = path[sw["fpi"][path]] if path.size else path
    breakers = path[sw["kind"][path] == SwitchKind.BREAKER] if path.size else path
    trip = int(breakers[-1]) if breakers.size else (int(path[0]) if path.size else -1)
    lost = np.zeros(0, np.int64)
    if trip >= 0:
        after = closed.copy()
        after[trip] = False
        lost = grid.bus.ids[live & ~energised(grid, after)]
    return FaultIndications(
        line_id, True, int(sw.ids[trip]) if trip >= 0 else -1, sw.ids[fpi], lost
    )


def reported_pickups(
    grid: Grid, fpi_switches: np.ndarray, failed: np.ndarray, false: np.ndarray
) -> np.ndarray:
    """Switch ids (table order) whose indicators report a pickup for a fault whose current
    passes ``fpi_switches``: those, less the ``failed`` ones (mask, table order: they never
    pick up), plus the mis-set ``false`` ones (mask: they pick up at every fault)."""
    sw = grid.switch
    picked = false.copy()
    if fpi_switches.size:
        picked[sw.index_of(fpi_switches)] = True
    return sw.ids[picked & ~failed].astype(np.int64)


def _edge_switches(grid: Grid, closed: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """Closed switch positions on each conducting branch, keyed by (bus position a, b), a < b."""
    sw = grid.switch
    pm = grid.bus.position_map
    out: dict[tuple[int, int], list[int]] = {}
    for et, tbl, fa, fb in (
        (ElementType.LINE, grid.line, "from_bus", "to_bus"),
        (ElementType.TRANSFORMER, grid.transformer, "hv_bus", "lv_bus"),
    ):
        m = np.flatnonzero((sw["et"] == et) & closed)
        if m.size == 0 or len(tbl) == 0:
            continue
        pos = tbl.position_map(sw["element"][m])
        a = pm(tbl[fa][pos])
        b = pm(tbl[fb][pos])
        for s, x, y in zip(m.tolist(), a.tolist(), b.tolist(), strict=True):
            out.setdefault((min(x, y), max(x, y)), []).append(s)
    m = np.flatnonzero((sw["et"] == ElementType.BUS) & closed)
    if m.size:
        a = pm(sw["bus"][m])
        b = pm(sw["element"][m])
        for s, x, y in zip(m.tolist(), a.tolist(), b.tolist(), strict=True):
            out.setdefault((min(x, y), max(x, y)), []).append(s)
    return out
