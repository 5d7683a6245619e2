"""Kept import path: FLISR's graph helpers live in :mod:`gridpilot.control.flisr.graph` and its
numba kernels in :mod:`gridpilot.control.flisr._kernels`."""

from gridpilot.control.flisr._kernels import components, csr, reach_batch, warm_kernels
from gridpilot.control.flisr.graph import (
    adjacency,
    close_order,
    dead_islands,
    exchanges,
    forest_path,
    pick_best,
    unique_rows,
)

__all__ = [
    "adjacency",
    "close_order",
    "components",
    "csr",
    "dead_islands",
    "exchanges",
    "forest_path",
    "pick_best",
    "reach_batch",
    "unique_rows",
    "warm_kernels",
]
