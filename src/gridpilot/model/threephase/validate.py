"""Validation of an unbalanced grid: every bad entry named with element, phase and value."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridpilot.errors import Issue, ValidationError
from gridpilot.model.threephase.grid import ThreePhaseGrid


def _branch_issues(grid: ThreePhaseGrid) -> list[Issue]:
    out: list[Issue] = []
    for b in grid.branches:
        what = f"{b.kind}.{b.name}"
        n = b.phases
        if len(b.t1.nodes) < n or len(b.t2.nodes) < n:
            out.append(
                Issue(
                    what,
                    "nodes",
                    f"needs {n} conductors per end",
                    (b.name,),
                    (b.t1.nodes, b.t2.nodes),
                )
            )
            continue
        if not np.all(np.isfinite(b.z_ohm)):
            out.append(Issue(what, "z_ohm", "impedance is not finite", (b.name,), b.z_ohm.tolist()))
            continue
        cond = np.linalg.cond(b.z_ohm) if np.any(b.z_ohm) else np.inf
        if not np.isfinite(cond) or cond > 1e12:
            out.append(
                Issue(what, "z_ohm", "singular impedance matrix (zero-impedance branch)", (b.name,),
                      np.round(b.z_ohm, 9).tolist())
            )  # fmt: skip
    for t in grid.transformers:
        for i, w in enumerate(t.windings):
            if w.kv <= 0 or w.kva <= 0:
                out.append(Issue(f"transformer.{t.name}", f"winding {i + 1} kv/kva", "must be > 0",
                                 (t.name,), (w.kv, w.kva)))  # fmt: skip
    for ld in grid.loads:
        if ld.kv <= 0:
            out.append(Issue(f"{ld.kind}.{ld.name}", "kv", "must be > 0", (ld.name,), ld.kv))
        if ld.model not in (1, 2, 4, 5, 8):
            out.append(Issue(f"{ld.kind}.{ld.name}", "model", "supported load models: 1, 2, 4, 5, 8",
                             (ld.name,), ld.model))  # fmt: skip
        if ld.model == 8 and not (0 < len(ld.zipv) <= 7 and np.all(np.isfinite(ld.zipv))):
            out.append(Issue(f"{ld.kind}.{ld.name}", "zipv",
                             "model 8 needs up to 7 finite values (Z, I, P shares of kW, of "
                             "kvar, cutoff pu; missing ones 0, as OpenDSS)", (ld.name,),
                             list(ld.zipv)))  # fmt: skip
    return out


def _edges(grid: ThreePhaseGrid, index: dict[tuple[str, int], int]) -> tuple[list[int], list[int]]:
    """Node-level edges: conductors of closed branches, all nodes of each transformer."""
    a: list[int] = []
    b: list[int] = []
    for br in grid.branches:
        if not (br.enabled and br.closed):
            continue
        for n1, n2 in zip(br.t1.nodes, br.t2.nodes, strict=False):
            if n1 > 0 and n2 > 0:
                a.append(index[(br.t1.bus, n1)])
                b.append(index[(br.t2.bus, n2)])
    for t in grid.transformers:
        if not t.enabled:
            continue
        ns = [index[(w.terminal.bus, n)] for w in t.windings for n in w.terminal.nodes if n > 0]
        a += ns[:1] * (len(ns) - 1)
        b += ns[1:]
    return a, b


def _island_issues(grid: ThreePhaseGrid) -> list[Issue]:
    nodes = grid.nodes()
    index = {nd: i for i, nd in enumerate(nodes)}
    a, b = _edges(grid, index)
    n = len(nodes)
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    src = {lab[index[(grid.source.terminal.bus, k)]] for k in grid.source.terminal.nodes if k > 0}
    dead = [nodes[i] for i in range(n) if lab[i] not in src]
    if not dead:
        return []
    users: dict[tuple[str, int], str] = {}
    for what, term in grid.terminals():
        for k in term.nodes:
            if k > 0 and (term.bus, k) not in users:
                users[(term.bus, k)] = what
    out = []
    for bus, k in dead[:10]:
        what = users.get((bus, k), "node")
        out.append(Issue(what, f"bus {bus} phase {k}", "node-phase not connected to the source: "
                         "its lines do not bring this phase, or it is an island", (f"{bus}.{k}",),
                         f"{bus}.{k}"))  # fmt: skip
    return out


def validate(grid: ThreePhaseGrid) -> None:
    """Raise :class:`ValidationError` listing every problem (element, phase and value)."""
    issues = _branch_issues(grid)
    if not issues:
        issues += _island_issues(grid)
    if issues:
        raise ValidationError(issues=issues)
