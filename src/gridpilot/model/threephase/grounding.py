"""Which buses of an unbalanced feeder have a ground reference (an effectively grounded system).

A three-wire feeder fed by delta windings (IEEE 37: a delta-delta substation transformer,
open-delta regulators, delta loads) has no path to ground but the lines' capacitance: its
node-to-ground voltages float, and a device connected phase to ground there drives the
zero sequence through megohms (the power flow diverges; the IEEE 37 script warns of "line-
neutral connected loads or other devices on this circuit"). Such devices belong phase to
phase.

A bus is *grounded* when the part of the feeder it is on (the buses joined by lines,
switches and series reactors, transformers apart) holds a grounding source: the Thevenin
source (wye-grounded, as OpenDSS's Vsource), a wye transformer winding with its neutral to
ground (a node 0 on its terminal), or a shunt reactor to ground. Capacitor banks do not
count: they give no low-impedance reference.
"""

from __future__ import annotations

from gridpilot.model.threephase.grid import ThreePhaseGrid


def _root(parent: dict[str, str], b: str) -> str:
    """The representative of ``b``'s part (path halving)."""
    parent.setdefault(b, b)
    while parent[b] != b:
        parent[b] = parent[parent[b]]
        b = parent[b]
    return b


def _grounding_buses(grid: ThreePhaseGrid) -> list[str]:
    """The buses where a grounding source connects (see the module docstring)."""
    out = [grid.source.terminal.bus]
    for t in grid.transformers:
        if not t.enabled:
            continue
        out += [w.terminal.bus for w in t.windings if w.conn == "wye" and 0 in w.terminal.nodes]
    for sh in grid.shunts:
        if sh.enabled and sh.kind == "reactor":
            out += [tm.bus for tm in sh.terminals if 0 in tm.nodes]
    return out


def grounded_buses(grid: ThreePhaseGrid) -> frozenset[str]:
    """The buses of ``grid`` on a part of the feeder with a grounding source (every bus the
    branches join, whether a switch is open or not: the part's design, not its state)."""
    parent: dict[str, str] = {}
    for br in grid.branches:
        a, b = _root(parent, br.t1.bus), _root(parent, br.t2.bus)
        if a != b:
            parent[a] = b
    roots = {_root(parent, b) for b in _grounding_buses(grid)}
    buses = set(grid.bus_nodes()) | set(parent)
    return frozenset(b for b in buses if _root(parent, b) in roots)


__all__ = ["grounded_buses"]
