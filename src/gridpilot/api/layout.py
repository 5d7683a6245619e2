"""Diagram coordinates for the dashboard: the grid's own x/y, or a tree layout when it has none."""

from __future__ import annotations

import numpy as np

from gridpilot.model import Grid
from gridpilot.twin import supply_tree


def diagram_xy(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Bus coordinates (table order) for drawing, scaled to [0, 1].

    Uses the buses' ``x``/``y`` when they are spread out; otherwise a tree layout of the normal
    switch states: depth from the source across, leaves stacked down.
    """
    x = np.asarray(grid.bus["x"], np.float64)
    y = np.asarray(grid.bus["y"], np.float64)
    n = len(grid.bus)
    if n and not has_coordinates(grid):
        tree = supply_tree(grid)
        children: dict[int, list[int]] = {}
        for v in tree.order:
            p = int(tree.parent[v])
            if p >= 0:
                children.setdefault(p, []).append(int(v))
        x = np.where(tree.depth >= 0, tree.depth, 0).astype(np.float64)
        y = np.zeros(n)
        nxt = 0.0
        roots = [int(v) for v in tree.order if tree.parent[v] < 0]
        # iterative post-order: leaves get consecutive rows, parents the mean of their children
        for r in roots:
            stack: list[tuple[int, bool]] = [(r, False)]
            while stack:
                v, done = stack.pop()
                kids = children.get(v, [])
                if done or not kids:
                    if kids:
                        y[v] = min(y[k] for k in kids)
                    else:
                        y[v] = nxt
                        nxt += 1.0
                    continue
                stack.append((v, True))
                stack.extend((k, False) for k in reversed(kids))
        unplaced = tree.depth < 0
        y[unplaced] = nxt + np.arange(int(unplaced.sum()))
    return _span(x), _span(y)


def has_coordinates(grid: Grid) -> bool:
    """Whether the buses' ``x``/``y`` are spread out enough to draw from (80 % distinct)."""
    xy = np.column_stack([grid.bus["x"], grid.bus["y"]]).astype(np.float64)
    n = len(grid.bus)
    return n > 0 and np.unique(np.round(xy, 6), axis=0).shape[0] >= max(2, int(0.8 * n))


def _span(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to [0, 1] (zeros if constant)."""
    if a.size and a.max() > a.min():
        return (a - a.min()) / (a.max() - a.min())
    return np.zeros_like(a)


def distance_km(grid: Grid) -> np.ndarray:
    """Each bus's distance from its source along the supply tree of the normal switch states, km
    (table order; lines by ``length_km``, transformers 0; NaN for buses no source reaches)."""
    tree = supply_tree(grid)
    n = len(grid.bus)
    pos = grid.bus.position_map
    length: dict[tuple[int, int], float] = {}
    if len(grid.line):
        a, b = pos(grid.line["from_bus"]), pos(grid.line["to_bus"])
        for i, j, km in zip(a, b, grid.line["length_km"], strict=True):
            key = (int(min(i, j)), int(max(i, j)))
            length[key] = min(length.get(key, np.inf), float(km))
    out = np.full(n, np.nan)
    for v in tree.order:
        p = int(tree.parent[v])
        out[v] = 0.0 if p < 0 else out[p] + length.get((min(p, int(v)), max(p, int(v))), 0.0)
    return out
