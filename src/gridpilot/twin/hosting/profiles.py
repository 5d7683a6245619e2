"""Profiles of a hosting study: the feeder's own load shapes over a year, and the map."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from gridpilot.model.threephase import ThreePhaseGrid


def feeder_load_profile(
    grid: ThreePhaseGrid, steps: int = 35040, resolution_s: float = 900.0
) -> np.ndarray:
    """The feeder's load multiplier per step (kW-weighted mean over its loads of each
    load's yearly, else daily, else the ``default`` shape; 1 where a load has none)."""
    t_h = (np.arange(steps) + 1) * resolution_s / 3600.0
    default = "default" if "default" in grid.loadshapes else None
    weights: dict[str | None, float] = {}
    for ld in grid.loads:
        if not ld.enabled or ld.kind != "load":
            continue
        name = None if ld.status == "fixed" else (ld.yearly or ld.daily or default)
        weights[name] = weights.get(name, 0.0) + abs(ld.kw)
    total = sum(weights.values())
    if total <= 0:
        return np.ones(steps)
    out = np.zeros(steps)
    for name, w in weights.items():
        shape = grid.loadshapes.get(name) if name else None
        out += w * (shape.at(t_h) if shape is not None else 1.0)
    return out / total


def bus_xy(grid: ThreePhaseGrid) -> dict[str, tuple[float, float]]:
    """Bus coordinates: the grid's own where it has them for every bus, else a tree layout
    (depth from the source along x, leaves spread along y)."""
    buses = list(dict.fromkeys(b for b, _ in grid.nodes()))
    if grid.buscoords and all(b in grid.buscoords for b in buses):
        return {b: grid.buscoords[b] for b in buses}
    adj: dict[str, list[str]] = {b: [] for b in buses}
    links = [(x.t1.bus, x.t2.bus) for x in grid.branches if x.enabled and x.closed]
    for t in grid.transformers:
        ws = [w.terminal.bus for w in t.windings]
        links += list(itertools.pairwise(ws))
    for a, b in links:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    root = grid.source.terminal.bus
    xy: dict[str, tuple[float, float]] = {}
    leaf = [0]

    def place(b: str, depth: int, seen: set[str]) -> float:
        seen.add(b)
        kids = [k for k in adj.get(b, []) if k not in seen]
        ys = [place(k, depth + 1, seen) for k in kids if k not in seen]
        y = float(np.mean(ys)) if ys else float(leaf[0])
        if not ys:
            leaf[0] += 1
        xy[b] = (float(depth), y)
        return y

    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * len(buses) + 100))
    place(root, 0, set())
    for b in buses:
        xy.setdefault(b, (0.0, float(leaf[0])))
    return xy


def plot_map(grid: ThreePhaseGrid, table: object, path: Path, der: str) -> Path:
    """A PNG map of each bus's smallest hosting capacity over its phases (kW); returns
    ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = table.groupby("bus", sort=False)["hc_kw"].min()  # type: ignore[attr-defined]
    xy = bus_xy(grid)
    x = np.array([xy[b][0] for b in df.index])
    y = np.array([xy[b][1] for b in df.index])
    fig, ax = plt.subplots(figsize=(8, 6), dpi=110)
    sc = ax.scatter(x, y, c=df.to_numpy(), s=12 if len(df) < 500 else 3, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=f"{der.upper()} hosting capacity (kW, smallest phase)")
    ax.set_title(f"{grid.name}: {der.upper()} hosting capacity per bus")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
