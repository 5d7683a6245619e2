"""Compile a :class:`ThreePhaseGrid` into node-indexed sparse admittance data.

Nodes are the grid's non-ground node-phases (``grid.nodes()`` order). Elements whose
admittance changes in a run (regulating transformers, switched capacitors) are kept apart
from the fixed part so that a tap or a capacitor step costs a small restamp and one
refactorisation, not a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gridpilot.model.threephase import (
    ThreePhaseGrid,
    branch_yprim,
    capacitor_yprim,
    source_yprim,
    transformer_yprim,
)
from gridpilot.model.threephase.elements import Terminal


@dataclass
class Stamp:
    """An element's primitive Y placed on node indices (-1 = ground, dropped)."""

    idx: np.ndarray
    y: np.ndarray

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and values of the non-ground entries."""
        ii, jj = np.meshgrid(self.idx, self.idx, indexing="ij")
        keep = (ii >= 0) & (jj >= 0)
        return ii[keep], jj[keep], self.y[keep]


@dataclass
class Network:
    """Node index, voltage bases and the admittance parts of a grid."""

    grid: ThreePhaseGrid
    nodes: list[tuple[str, int]]
    index: dict[tuple[str, int], int]
    vbase_v: np.ndarray  # per node, line-to-neutral (V)
    y_fixed: sp.csc_matrix
    i_source: np.ndarray  # Norton currents of the source (A), per node
    src_stamp: Stamp
    xf_index: dict[str, int] = field(default_factory=dict)  # transformer name -> position
    xf_stamps: dict[str, Stamp] = field(default_factory=dict)  # variable transformers
    cap_stamps: dict[str, Stamp] = field(default_factory=dict)
    branch_rows: sp.csr_matrix | None = None  # current into terminal 1 of each branch conductor
    branch_meta: list[tuple[str, int, int, float]] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of node-phases."""
        return len(self.nodes)

    def terminal_idx(self, terms: list[Terminal]) -> np.ndarray:
        """Node indices of the conductors of ``terms`` in order (-1 for ground)."""
        return np.array(
            [self.index[(t.bus, k)] if k > 0 else -1 for t in terms for k in t.nodes], np.int64
        )


def _assemble(n: int, stamps: list[Stamp]) -> sp.csc_matrix:
    rows, cols, vals = [], [], []
    for s in stamps:
        r, c, v = s.coo()
        rows.append(r)
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csc_matrix((n, n), dtype=complex)
    return sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsc()


def _branch_and_shunt_stamps(net: Network, grid: ThreePhaseGrid) -> list[Stamp]:
    """Stamps of the closed branches and the shunt elements (fixed admittances)."""
    out = [Stamp(net.terminal_idx([b.t1, b.t2]), branch_yprim(b))
           for b in grid.branches if b.enabled and b.closed]  # fmt: skip
    out += [Stamp(net.terminal_idx(sh.terminals), sh.y_prim) for sh in grid.shunts if sh.enabled]
    return out


def compile_network(grid: ThreePhaseGrid) -> Network:
    """Index the nodes and stamp every element's primitive Y (see module docstring)."""
    nodes = grid.nodes()
    index = {nd: i for i, nd in enumerate(nodes)}
    vb = np.array([grid.bus_kv_ln.get(b, 0.0) * 1e3 for b, _ in nodes])
    if np.any(vb <= 0):
        src_vln = grid.source.kv_ll * 1e3 / np.sqrt(3.0)
        vb = np.where(vb > 0, vb, src_vln)
    net = Network(grid, nodes, index, vb, sp.csc_matrix((len(nodes), len(nodes))), np.zeros(0),
                  Stamp(np.zeros(0, np.int64), np.zeros((0, 0))))  # fmt: skip
    src = grid.source
    ys, isrc = source_yprim(src)
    n1 = len(src.terminal.nodes)
    gnd = Terminal(src.terminal.bus, (0,) * n1)
    net.src_stamp = Stamp(net.terminal_idx([src.terminal, gnd]), ys)
    i_source = np.zeros(net.n, complex)
    for k, node_i in enumerate(net.terminal_idx([src.terminal])[: len(isrc)]):
        if node_i >= 0:
            i_source[node_i] += isrc[k]
    net.i_source = i_source
    fixed = [net.src_stamp, *_branch_and_shunt_stamps(net, grid)]
    regulated = {r.transformer for r in grid.regcontrols if r.enabled}
    for i, t in enumerate(grid.transformers):
        net.xf_index[t.name.lower()] = i
        if not t.enabled:
            continue
        st = Stamp(net.terminal_idx([w.terminal for w in t.windings]), transformer_yprim(t))
        if t.name.lower() in regulated:
            net.xf_stamps[t.name.lower()] = st
        else:
            fixed.append(st)
    for c in grid.capacitors:
        if c.enabled:
            net.cap_stamps[c.name.lower()] = Stamp(
                net.terminal_idx([c.t1, c.t2]), capacitor_yprim(c)
            )
    net.y_fixed = _assemble(net.n, fixed)
    _branch_current_rows(net)
    return net


def variable_y(net: Network) -> sp.csc_matrix:
    """The admittance of the regulating transformers and capacitors at their present state."""
    return _assemble(net.n, [*net.xf_stamps.values(), *net.cap_stamps.values()])


def restamp_transformer(net: Network, name: str) -> None:
    """Recompute a regulating transformer's stamp after a tap change."""
    t = net.grid.transformers[net.xf_index[name]]
    net.xf_stamps[name].y = transformer_yprim(t)


def restamp_capacitor(net: Network, name: str) -> None:
    """Recompute a capacitor's stamp after a step change."""
    for c in net.grid.capacitors:
        if c.name.lower() == name:
            net.cap_stamps[name].y = capacitor_yprim(c)
            return


def _branch_current_rows(net: Network) -> None:
    """Rows mapping node voltages to each branch conductor's current into terminal 1."""
    rows, cols, vals = [], [], []
    meta: list[tuple[str, int, int, float]] = []
    r = 0
    for b in net.grid.branches:
        if not (b.enabled and b.closed):
            continue
        idx = net.terminal_idx([b.t1, b.t2])
        yp = branch_yprim(b)
        for k in range(b.phases):
            keep = idx >= 0
            rows.append(np.full(int(keep.sum()), r))
            cols.append(idx[keep])
            vals.append(yp[k][keep])
            meta.append((b.name, k, int(b.t1.nodes[k]), b.norm_amps))
            r += 1
    if r:
        net.branch_rows = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, net.n)
        )
    net.branch_meta = meta
