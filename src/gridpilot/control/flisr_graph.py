"""Small graph helpers of FLISR's restoration search (island-sized; numba where hot).

Islands of dead sections, union-find components, forest paths, CSR adjacency and batched
reachability of switch configurations, branch exchanges on a local section graph, candidate
de-duplication and ranking, and the order in which closing operations energise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gridpilot.control.radialpf import warm_radial_kernel
from gridpilot.control.sections import Sections, subtree_mask


def dead_islands(sec: Sections, closed: np.ndarray, dead: np.ndarray) -> list[np.ndarray]:
    """Connected groups of dead sections joined by closed switches."""
    m = closed & dead[sec.sw_a] & dead[sec.sw_b]
    lab = components(sec.n, sec.sw_a[m], sec.sw_b[m])
    idx = np.flatnonzero(dead)
    out: list[np.ndarray] = []
    if idx.size == 0:
        return out
    order = np.argsort(lab[idx], kind="stable")
    labs = lab[idx][order]
    cuts = np.flatnonzero(np.diff(labs)) + 1
    for grp in np.split(idx[order], cuts):
        out.append(grp)
    return out


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


def adjacency(k: int, u: np.ndarray, v: np.ndarray) -> list[list[tuple[int, int]]]:
    """Adjacency lists of ``k + 1`` nodes joined by edges u-v: (far node, edge index) per node."""
    adj: list[list[tuple[int, int]]] = [[] for _ in range(k + 1)]
    for e, (x, y) in enumerate(zip(u.tolist(), v.tolist(), strict=True)):
        adj[x].append((y, e))
        adj[y].append((x, e))
    return adj


def forest_path(adj: list[list[tuple[int, int]]], s: int, t: int) -> list[int]:
    """Edge indices on the path from s to t in a forest (empty if not connected)."""
    if s == t:
        return []
    prev: dict[int, tuple[int, int]] = {s: (-1, -1)}
    stack = [s]
    while stack:
        x = stack.pop()
        if x == t:
            break
        for y, e in adj[x]:
            if y not in prev:
                prev[y] = (x, e)
                stack.append(y)
    if t not in prev:
        return []
    path = []
    x = t
    while x != s:
        p, e = prev[x]
        path.append(e)
        x = p
    return path


def warm_kernels() -> None:
    """Compile (or load from numba's cache) the search kernels once, at engine construction."""
    e = np.zeros(1, np.int64)
    components(2, e, e + 1)
    ptr, adj_e, adj_o = csr(2, e, e + 1)
    reach_batch(np.ones((1, 1), bool), ptr, adj_e, adj_o, 1)
    subtree_mask(np.array([-1, 0]), [0])
    warm_radial_kernel()


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


def exchanges(
    k: int, u: np.ndarray, v: np.ndarray, on: np.ndarray, cuttable: np.ndarray
) -> np.ndarray:
    """Branch exchanges: close one open edge, open one cuttable edge on the loop it makes.

    The loop of an open edge is found from parent pointers of one breadth-first forest of the
    closed edges (no search per edge); rows come in the order of the open edges, and along
    each loop from the edge's second end to its first.
    """
    idx_on = np.flatnonzero(on).tolist()
    adj = adjacency(k, u[on], v[on])
    par = [-1] * (k + 1)
    pe = [-1] * (k + 1)
    dep = [-1] * (k + 1)
    comp = [-1] * (k + 1)
    for r in [k, *range(k)]:
        if dep[r] >= 0:
            continue
        dep[r] = 0
        comp[r] = r
        queue = [r]
        for x in queue:
            for y, e in adj[x]:
                if dep[y] < 0:
                    dep[y] = dep[x] + 1
                    par[y] = x
                    pe[y] = idx_on[e]
                    comp[y] = r
                    queue.append(y)
    cut = cuttable.tolist()
    rows: list[tuple[int, int]] = []
    for f in np.flatnonzero(~on).tolist():
        s_, t_ = int(u[f]), int(v[f])
        if s_ == t_ or comp[s_] != comp[t_]:
            continue
        up_t: list[int] = []
        up_s: list[int] = []
        x, y = t_, s_
        while x != y:
            if dep[x] >= dep[y]:
                up_t.append(pe[x])
                x = par[x]
            else:
                up_s.append(pe[y])
                y = par[y]
        rows += [(f, e) for e in up_t + up_s[::-1] if cut[e]]
    out = np.repeat(on[None, :], len(rows), axis=0)
    if rows:
        fe = np.array(rows, np.int64)
        out[np.arange(len(rows)), fe[:, 0]] = True
        out[np.arange(len(rows)), fe[:, 1]] = False
    return out


def unique_rows(configs: np.ndarray) -> np.ndarray:
    """Distinct rows of a (N, E) bool array, in order of first occurrence."""
    if configs.shape[0] < 2:
        return configs
    first: dict[bytes, int] = {}
    for i, row in enumerate(np.packbits(configs, axis=1)):
        first.setdefault(row.tobytes(), i)
    return configs[np.fromiter(first.values(), np.int64, len(first))]


def pick_best(
    configs: np.ndarray, viol: np.ndarray, vmin: np.ndarray, base: np.ndarray, weight: np.ndarray
) -> int:
    """Feasible first, then most weighted load served, fewest switch operations, highest vmin."""
    ops = (configs != base[None, :]).sum(axis=1)
    w = np.round(weight, 9)
    if np.any(viol <= 0):
        return int(np.lexsort((-vmin, ops, -w, viol > 0))[0])
    return int(np.lexsort((ops, viol))[0])


def close_order(closes: list[int], sec: Sections, state: np.ndarray, live: np.ndarray) -> list[int]:
    """Order closing operations so that each one energises from already live sections."""
    live = live.copy()
    todo = list(closes)
    pending = np.zeros(state.size, bool)
    pending[todo] = True
    out: list[int] = []
    while todo:
        nxt = [s for s in todo if live[sec.sw_a[s]] or live[sec.sw_b[s]]]
        if not nxt:
            out += todo
            break
        for s in nxt:
            out.append(s)
            todo.remove(s)
            pending[s] = False
        # sections now live: everything joined to them by closed switches of the final state
        m = state & ~pending
        lab = components(sec.n, sec.sw_a[m], sec.sw_b[m])
        hit = np.zeros(sec.n, bool)
        hit[lab[live]] = True
        live = hit[lab]
    return out
