"""Small graph helpers of FLISR's restoration search (island-sized; numba where hot).

Islands of dead sections, forest paths, branch exchanges on a local section graph, candidate
de-duplication and ranking, and the order in which closing operations energise.
"""

from __future__ import annotations

import numpy as np

from gridpilot.control.flisr._kernels import components
from gridpilot.control.sections import Sections


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
