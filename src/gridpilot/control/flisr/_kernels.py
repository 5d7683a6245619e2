"""FLISR's numba kernels: union-find components and batched reachability of switch
configurations (the hot inner loops of the restoration search), and their warm-up."""

from __future__ import annotations

import numpy as np
from numba import njit

from gridpilot.control.radial_sweep import warm_radial_kernel
from gridpilot.control.sections import subtree_mask


@njit(cache=True, nogil=True)
def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected-component label (smallest member) of each of ``n`` nodes joined by edges u-v."""
    root = np.arange(n)
    for e in range(u.size):
        x, y = u[e], v[e]
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        while root[y] != y:
            root[y] = root[root[y]]
            y = root[y]
        if x < y:
            root[y] = x
        elif y < x:
            root[x] = y
    for i in range(n):
        root[i] = root[root[i]]
    return root


def csr(n: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacency of an edge list as CSR: row pointers, edge index and far node per incidence."""
    ends = np.concatenate([u, v]).astype(np.int64)
    order = np.argsort(ends, kind="stable")
    ne = u.size
    adj_e = np.concatenate([np.arange(ne), np.arange(ne)])[order]
    adj_o = np.concatenate([v, u]).astype(np.int64)[order]
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(ends, minlength=n), out=ptr[1:])
    return ptr, adj_e, adj_o


@njit(cache=True, nogil=True)
def reach_batch(
    on: np.ndarray, ptr: np.ndarray, adj_e: np.ndarray, adj_o: np.ndarray, start: int
) -> np.ndarray:
    """(N, n) bool: the nodes joined to ``start`` through the edges switched on in each row."""
    t_n = on.shape[0]
    n = ptr.size - 1
    out = np.zeros((t_n, n), np.bool_)
    stack = np.empty(n, np.int64)
    for t in range(t_n):
        out[t, start] = True
        stack[0] = start
        top = 1
        while top:
            top -= 1
            x = stack[top]
            for j in range(ptr[x], ptr[x + 1]):
                y = adj_o[j]
                if on[t, adj_e[j]] and not out[t, y]:
                    out[t, y] = True
                    stack[top] = y
                    top += 1
    return out


def warm_kernels() -> None:
    """Compile (or load from numba's cache) the search kernels once, at engine construction."""
    e = np.zeros(1, np.int64)
    components(2, e, e + 1)
    ptr, adj_e, adj_o = csr(2, e, e + 1)
    reach_batch(np.ones((1, 1), bool), ptr, adj_e, adj_o, 1)
    subtree_mask(np.array([-1, 0]), [0])
    warm_radial_kernel()
