"""The radial network model of the sweep: branch parameters and the ordered tree (with chords).

:func:`radial_topology` orders the energised network once for given switch states in named
steps: buses joined by closed bus-bus switches become one node and parallel branches of equal
ratio one edge (:func:`_merge_edges`), the nodes are numbered breadth-first from each source
(:func:`_bfs`), every child gets its tree edge (:func:`_tree`), the remaining edges become loop
chords (:func:`_chords`), and the elements become 2-ports between their energised ends
(:func:`_elements`). See :mod:`gridpilot.twin.radial` for the model and the solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.sparse.linalg import spsolve_triangular

from gridpilot.model import Grid
from gridpilot.model.topology_edges import branch_status

MAX_LOOPS = 32  # loops the compensation method takes; more: power-grid-model
SQRT3 = float(np.sqrt(3.0))
BASE_VA = 1e6
NUM_TOL = 1e-8  # power-grid-model's numerical tolerance for a zero shunt


@dataclass
class RadialTopology:
    """A radial network ordered for the sweep. Node arrays have ``n`` entries, in BFS order.

    ``node_of_bus``: node per bus position (-1 not energised); ``node_bus``: one bus position
    per node; ``parent``: parent node (-1 for roots). Edge parameters (per child node):
    ``kp``/``kc`` ideal ratios at the parent/child side, ``z`` series impedance, ``yshp``/``yshc``
    shunts (pu). Roots: ``u_src`` and ``z_src`` of their source, ``root_source`` its position.
    Elements (lines, then transformers): end nodes ``el_f``/``el_t`` (-1 open or dead), the
    2-port admittances ``yff, yft, ytf, ytt`` (pu) and loading scales ``el_sf``/``el_st``.
    Loops (weakly meshed networks): chord ``c`` joins nodes ``ch_a[c]`` and ``ch_b[c]`` through
    ``ch_z[c]`` (its shunts are in ``y_node``); ``ch_y`` is the inverse loop impedance matrix.
    """

    n: int
    node_of_bus: np.ndarray
    node_bus: np.ndarray
    parent: np.ndarray
    kp: np.ndarray
    kc: np.ndarray
    z: np.ndarray
    yshp: np.ndarray
    yshc: np.ndarray
    y_node: np.ndarray
    u_src: np.ndarray
    z_src: np.ndarray
    root_source: np.ndarray
    el_f: np.ndarray
    el_t: np.ndarray
    yff: np.ndarray
    yft: np.ndarray
    ytf: np.ndarray
    ytt: np.ndarray
    el_sf: np.ndarray
    el_st: np.ndarray
    el_trafo: np.ndarray
    base_i_f: np.ndarray  # A per pu current at each element end
    base_i_t: np.ndarray
    n_line: int
    ch_a: np.ndarray
    ch_b: np.ndarray
    ch_z: np.ndarray
    ch_y: np.ndarray

    @property
    def loops(self) -> int:
        """Independent loops of the energised network (0: radial)."""
        return int(self.ch_a.size)

    @property
    def energised(self) -> np.ndarray:
        """Bool per bus (table order): supplied in this topology."""
        return self.node_of_bus >= 0


def _two_port(
    ys: np.ndarray, ysh: np.ndarray, k: np.ndarray, on_f: np.ndarray, on_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """power-grid-model's branch admittances (``calc_param_y_sym``) for the end statuses."""
    tap2 = np.abs(k) ** 2
    both = on_f & on_t
    one = on_f ^ on_t
    with np.errstate(divide="ignore", invalid="ignore"):
        shunt = np.where(np.abs(ysh) < NUM_TOL, 0.0, 0.5 * ysh + 1.0 / (1.0 / ys + 2.0 / ysh))
    ytt_b = ys + 0.5 * ysh
    ytt = np.where(both, ytt_b, np.where(one & on_t, shunt, 0.0)).astype(np.complex128)
    yff = np.where(both, ytt_b / tap2, np.where(one & on_f, shunt / tap2, 0.0)).astype(
        np.complex128
    )
    yft = np.where(both, -ys / np.conj(k), 0.0).astype(np.complex128)
    ytf = np.where(both, -ys / k, 0.0).astype(np.complex128)
    return yff, yft, ytf, ytt


def branch_parameters(grid: Grid) -> dict[str, np.ndarray]:
    """Per-unit series/shunt admittance and complex ratio of every line, then transformer.

    Returns ``f``, ``t`` (bus positions), ``ys``, ``ysh`` (total shunt, split half per end),
    ``k`` (complex ratio at the from side), ``trafo`` (bool), ``base_i_f``/``base_i_t`` (A per
    pu), ``rating`` (line: A, transformer: VA).
    """
    pm = grid.bus.position_map
    vn = grid.bus["v_nom_kv"] * 1e3
    ln, tr = grid.line, grid.transformer
    lf, lt = pm(ln["from_bus"], "bus"), pm(ln["to_bus"], "bus")
    u = vn[lf]
    base_y = BASE_VA / u**2
    ys_l = 1.0 / ((ln["r_ohm_per_km"] + 1j * ln["x_ohm_per_km"]) * ln["length_km"]) / base_y
    ysh_l = 1j * 2.0 * np.pi * grid.f_hz * ln["c_nf_per_km"] * 1e-9 * ln["length_km"] / base_y
    bi_l = BASE_VA / (SQRT3 * u)
    nt = len(tr)
    hf, ht = pm(tr["hv_bus"], "bus"), pm(tr["lv_bus"], "bus")
    if nt:
        u1r, u2r = vn[hf], vn[ht]
        sn = tr["sn_mva"] * 1e6
        tmin, tmax = tr["tap_min"].astype(np.int64), tr["tap_max"].astype(np.int64)
        tpos = np.clip(
            tr["tap_pos"].astype(np.int64), np.minimum(tmin, tmax), np.maximum(tmin, tmax)
        )
        direction = np.where(tmax > tmin, 1.0, -1.0)
        side_kv = np.where(tr["tap_side"] == 0, tr["vn_hv_kv"], tr["vn_lv_kv"])
        adj = (
            direction * (tpos - tr["tap_neutral"]) * tr["tap_step_percent"] / 100.0 * side_kv * 1e3
        )
        u1 = tr["vn_hv_kv"] * 1e3 + np.where(tr["tap_side"] == 0, adj, 0.0)
        u2 = tr["vn_lv_kv"] * 1e3 + np.where(tr["tap_side"] == 0, 0.0, adj)
        clock = np.round(tr["shift_degree"] / 30.0).astype(np.int64) % 12
        k_t = (u1 / u2) / (u1r / u2r) * np.exp(1j * clock * np.pi / 6.0)
        uk = tr["vk_percent"] / 100.0
        pk = tr["vkr_percent"] / 100.0 * sn
        zabs = uk * u2 * u2 / sn
        zr = pk * u2 * u2 / sn / sn
        zx = np.sqrt(np.maximum(zabs * zabs - zr * zr, 0.0))
        base_y_to = (BASE_VA / SQRT3 / u2r) ** 2 / (BASE_VA / 3.0)
        ys_t = 1.0 / (zr + 1j * zx) / base_y_to
        p0 = tr["pfe_kw"] * 1e3
        i0 = np.maximum(tr["i0_percent"] / 100.0, p0 / sn)
        yabs = i0 * sn / u2 / u2
        g0 = p0 / u2 / u2
        ysh_t = (g0 - 1j * np.sqrt(np.maximum(yabs * yabs - g0 * g0, 0.0))) / base_y_to
        bi_f, bi_t = BASE_VA / (SQRT3 * u1r), BASE_VA / (SQRT3 * u2r)
    else:
        ys_t = ysh_t = k_t = np.zeros(0, np.complex128)
        sn = bi_f = bi_t = np.zeros(0)
    return {
        "f": np.concatenate([lf, hf]).astype(np.int64),
        "t": np.concatenate([lt, ht]).astype(np.int64),
        "ys": np.concatenate([ys_l, ys_t]).astype(np.complex128),
        "ysh": np.concatenate([ysh_l, ysh_t]).astype(np.complex128),
        "k": np.concatenate([np.ones(len(ln), np.complex128), k_t]).astype(np.complex128),
        "trafo": np.concatenate([np.zeros(len(ln), bool), np.ones(nt, bool)]),
        "base_i_f": np.concatenate([bi_l, bi_f]),
        "base_i_t": np.concatenate([bi_l, bi_t]),
        "rating": np.concatenate([ln["max_i_ka"] * 1e3, sn]),
    }


@dataclass
class _Edges:
    """The conducting branches merged into unique edges between electrical nodes (bus labels).

    ``label`` per bus, ``nlab`` labels; per unique edge (sorted by ``ukey``): ``ref`` a
    representative element, ``k_ref`` its ratio, ``ys`` the summed series admittance, shunt
    halves at the representative's from (``ysh_f``) and to (``ysh_t``) side, its end labels
    ``ef``/``et``.
    """

    label: np.ndarray
    nlab: int
    ukey: np.ndarray
    ref: np.ndarray
    k_ref: np.ndarray
    ys: np.ndarray
    ysh_f: np.ndarray
    ysh_t: np.ndarray
    ef: np.ndarray
    et: np.ndarray


def _merge_edges(
    grid: Grid, params: dict[str, np.ndarray], st: dict[str, np.ndarray], cond: np.ndarray
) -> tuple[_Edges | None, str]:
    """Buses joined by closed bus-bus switches become one node; parallel conducting (``cond``)
    branches of equal ratio one edge. ``(None, reason)`` when a branch closes on itself or
    runs parallel to one of another ratio."""
    nb = len(grid.bus)
    sw = grid.switch
    bsw = st["busswitch"]
    pm = grid.bus.position_map
    sa, sb = pm(sw["bus"][bsw], "bus"), pm(sw["element"][bsw], "bus")
    g = coo_matrix((np.ones(sa.size), (sa, sb)), shape=(nb, nb)).tocsr()
    _, label = connected_components(g, directed=False)  # electrical node per bus
    nlab = int(label.max()) + 1 if nb else 0
    lf, lt = label[params["f"]], label[params["t"]]
    selfloop = cond & (lf == lt)
    if np.any(selfloop):
        e = int(np.flatnonzero(selfloop)[0])
        return None, f"branch {e} joins buses already joined by a closed bus switch"
    ce = np.flatnonzero(cond)
    a, b = np.minimum(lf[ce], lt[ce]), np.maximum(lf[ce], lt[ce])
    ukey, first, inv = np.unique(a * nlab + b, return_index=True, return_inverse=True)
    ne_u = ukey.size
    ref = ce[first]  # a representative element per unique edge
    k_ref = params["k"][ref]
    # parallel elements must share the ratio and the orientation of the representative
    same_dir = lf[ce] == lf[ref][inv]
    k_ok = np.where(
        same_dir,
        np.abs(params["k"][ce] - k_ref[inv]) < 1e-12,
        (np.abs(params["k"][ce] - 1.0) < 1e-12) & (np.abs(k_ref[inv] - 1.0) < 1e-12),
    )
    if not np.all(k_ok):
        e = int(ce[np.flatnonzero(~k_ok)[0]])
        return None, f"branch {e} is parallel to a branch of another ratio"
    ys_u = np.zeros(ne_u, np.complex128)
    np.add.at(ys_u, inv, params["ys"][ce])
    # shunt halves at the representative's from (inner) side and to side
    ysh_f_u = np.zeros(ne_u, np.complex128)
    ysh_t_u = np.zeros(ne_u, np.complex128)
    half = 0.5 * params["ysh"][ce]
    np.add.at(ysh_f_u, inv, half)
    np.add.at(ysh_t_u, inv, half)
    return _Edges(label, nlab, ukey, ref, k_ref, ys_u, ysh_f_u, ysh_t_u, lf[ref], lt[ref]), ""


@dataclass
class _Order:
    """Breadth-first order of the energised nodes from each in-service source.

    ``spos`` in-service source positions, ``slab`` their labels, ``order`` labels in BFS order,
    ``pred`` predecessor label (-1 root), ``seen`` per label, ``new`` node number per label
    (-1 not energised), ``n_loops`` independent loops.
    """

    spos: np.ndarray
    slab: np.ndarray
    order: np.ndarray
    pred: np.ndarray
    seen: np.ndarray
    new: np.ndarray
    n_loops: int


def _bfs(grid: Grid, e: _Edges) -> tuple[_Order | None, str]:
    """Number the nodes breadth-first from the sources; ``(None, reason)`` for two sources in one
    island or more than :data:`MAX_LOOPS` loops."""
    src = grid.source
    nlab = e.nlab
    spos = np.flatnonzero(src["in_service"])
    slab = e.label[grid.bus.position_map(src["bus"][spos], "bus")]
    if np.unique(slab).size != slab.size:
        return None, "two sources feed the same bus"
    ug = coo_matrix((np.ones(e.ukey.size), (e.ef, e.et)), shape=(nlab, nlab)).tocsr()
    ug = ug + ug.T
    pred = np.full(nlab, -9999, np.int64)
    orders = []
    seen = np.zeros(nlab, bool)
    for s in slab:
        if seen[s]:
            return None, "two sources in one island"
        order, pr = breadth_first_order(ug, int(s), directed=False, return_predecessors=True)
        seen[order] = True
        pred[order] = pr[order]
        pred[s] = -1
        orders.append(order)
    order = np.concatenate(orders).astype(np.int64) if orders else np.zeros(0, np.int64)
    n = order.size
    n_loops = int(np.sum(seen[e.ef])) - (n - slab.size)
    if n_loops > MAX_LOOPS:
        return None, f"the energised network has {n_loops} loops (more than {MAX_LOOPS})"
    new = np.full(nlab, -1, np.int64)
    new[order] = np.arange(n)
    return _Order(spos, slab, order, pred, seen, new, n_loops), ""


@dataclass
class _Tree:
    """Per node (BFS order): parent, ideal ratios at the parent/child side, series impedance,
    shunts at the parent/child side (pu); ``in_tree`` per unique edge."""

    parent: np.ndarray
    kp: np.ndarray
    kc: np.ndarray
    z: np.ndarray
    yshp: np.ndarray
    yshc: np.ndarray
    in_tree: np.ndarray


def _tree(e: _Edges, o: _Order) -> _Tree:
    """The spanning tree's edge of each child node: the unique edge to its parent's label."""
    order, new = o.order, o.new
    n = order.size
    parent = np.where(o.pred[order] >= 0, new[np.maximum(o.pred[order], 0)], -1)
    kp = np.ones(n, np.complex128)
    kc = np.ones(n, np.complex128)
    z = np.zeros(n, np.complex128)
    yshp = np.zeros(n, np.complex128)
    yshc = np.zeros(n, np.complex128)
    in_tree = np.zeros(e.ukey.size, bool)
    ch = np.flatnonzero(parent >= 0)
    if ch.size:
        cl, pl = order[ch], order[parent[ch]]
        eidx = np.searchsorted(e.ukey, np.minimum(cl, pl) * e.nlab + np.maximum(cl, pl))
        parent_is_from = e.ef[eidx] == pl
        ke = e.k_ref[eidx]
        kp[ch] = np.where(parent_is_from, ke, 1.0)
        kc[ch] = np.where(parent_is_from, 1.0, ke)
        z[ch] = 1.0 / e.ys[eidx]
        yshp[ch] = np.where(parent_is_from, e.ysh_f[eidx], e.ysh_t[eidx])
        yshc[ch] = np.where(parent_is_from, e.ysh_t[eidx], e.ysh_f[eidx])
        in_tree[eidx] = True
    return _Tree(parent, kp, kc, z, yshp, yshc, in_tree)


@dataclass
class _Chords:
    """The loops' chords: unique edge numbers, end nodes, impedance and inverse loop impedance matrix."""

    edge: np.ndarray
    a: np.ndarray
    b: np.ndarray
    z: np.ndarray
    y: np.ndarray


def _chords(e: _Edges, o: _Order, tr: _Tree) -> tuple[_Chords | None, str]:
    """The live unique edges the spanning tree does not use; ``(None, reason)`` when one has a ratio."""
    chord = np.flatnonzero(o.seen[e.ef] & ~tr.in_tree)
    if chord.size != o.n_loops:  # pragma: no cover - a broken invariant, not an input error
        raise RuntimeError(f"radial topology: {chord.size} chords for {o.n_loops} loops")
    if chord.size and np.any(np.abs(e.k_ref[chord] - 1.0) > 1e-12):
        k = int(e.ref[chord[np.flatnonzero(np.abs(e.k_ref[chord] - 1.0) > 1e-12)[0]]])
        return None, f"the energised network has a loop closed by branch {k}, which has a ratio"
    ch_a, ch_b = o.new[e.ef[chord]], o.new[e.et[chord]]
    ch_z = 1.0 / e.ys[chord]
    return _Chords(chord, ch_a, ch_b, ch_z, _loop_admittance(tr.parent, tr.z, ch_a, ch_b, ch_z)), ""


@dataclass
class _Elements:
    """Element 2-ports with their energised ends (-1 open or dead), loading scales, node shunts."""

    el_f: np.ndarray
    el_t: np.ndarray
    yff: np.ndarray
    yft: np.ndarray
    ytf: np.ndarray
    ytt: np.ndarray
    el_sf: np.ndarray
    el_st: np.ndarray
    y_node: np.ndarray


def _elements(
    params: dict[str, np.ndarray],
    ends_on: tuple[np.ndarray, np.ndarray],
    node_of_bus: np.ndarray,
    n: int,
    e: _Edges,
    c: _Chords,
) -> _Elements:
    """Every line and transformer as a 2-port between its energised ends; dangling ends and the
    chords' shunt halves as node shunts (``n`` nodes)."""
    on_f, on_t = ends_on
    nf, nt_ = node_of_bus[params["f"]], node_of_bus[params["t"]]
    live_f = on_f & (nf >= 0)
    live_t = on_t & (nt_ >= 0)
    yff, yft, ytf, ytt = _two_port(params["ys"], params["ysh"], params["k"], live_f, live_t)
    y_node = np.zeros(n, np.complex128)
    np.add.at(y_node, c.a, e.ysh_f[c.edge])  # a chord's shunt halves stay at its ends
    np.add.at(y_node, c.b, e.ysh_t[c.edge])
    dang_f = live_f & ~live_t
    dang_t = live_t & ~live_f
    np.add.at(y_node, nf[dang_f], yff[dang_f])
    np.add.at(y_node, nt_[dang_t], ytt[dang_t])
    trafo = params["trafo"]
    rating = params["rating"]
    el_sf = np.where(trafo, BASE_VA / rating, params["base_i_f"] / rating)
    el_st = np.where(trafo, BASE_VA / rating, params["base_i_t"] / rating)
    el_f = np.where(live_f, nf, -1).astype(np.int64)
    el_t = np.where(live_t, nt_, -1).astype(np.int64)
    return _Elements(el_f, el_t, yff, yft, ytf, ytt, el_sf, el_st, y_node)


def _source_terms(grid: Grid, o: _Order) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: source voltage and impedance (pu; roots only) and the source's position (-1)."""
    src = grid.source
    n = o.order.size
    spos = o.spos
    u_src = np.zeros(n, np.complex128)
    z_src = np.zeros(n, np.complex128)
    root_source = np.full(n, -1, np.int64)
    rn = o.new[o.slab]
    u_src[rn] = src["vm_pu"][spos] * np.exp(1j * np.deg2rad(src["va_deg"][spos]))
    zabs = 1.0 / src["sk_mva"][spos]
    rx = src["rx_ratio"][spos]
    x = zabs / np.sqrt(1.0 + rx * rx)
    z_src[rn] = x * rx + 1j * x
    root_source[rn] = spos
    return u_src, z_src, root_source


def radial_topology(
    grid: Grid, switch_closed: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None
) -> tuple[RadialTopology | None, str]:
    """Order the energised network of ``grid`` for the sweep, for the given switch states.

    Returns ``(topology, "")`` when the energised network is radial (after merging buses joined
    by closed bus-bus switches and parallel branches of equal ratio), else ``(None, reason)``.
    """
    if params is None:
        params = branch_parameters(grid)
    st = branch_status(grid, switch_closed)
    on_f = np.concatenate([st["line_from"], st["trafo_hv"]])
    on_t = np.concatenate([st["line_to"], st["trafo_lv"]])
    e, why = _merge_edges(grid, params, st, on_f & on_t)
    if e is None:
        return None, why
    o, why = _bfs(grid, e)
    if o is None:
        return None, why
    n = o.order.size
    node_of_bus = o.new[e.label]
    node_bus = np.zeros(n, np.int64)
    has = node_of_bus >= 0
    node_bus[node_of_bus[has][::-1]] = np.flatnonzero(has)[::-1]  # first bus of each node
    tr = _tree(e, o)
    c, why = _chords(e, o, tr)
    if c is None:
        return None, why
    el = _elements(params, (on_f, on_t), node_of_bus, n, e, c)
    u_src, z_src, root_source = _source_terms(grid, o)
    topo = RadialTopology(
        n=n,
        node_of_bus=node_of_bus,
        node_bus=node_bus,
        parent=tr.parent.astype(np.int64),
        kp=tr.kp,
        kc=tr.kc,
        z=tr.z,
        yshp=tr.yshp,
        yshc=tr.yshc,
        y_node=el.y_node,
        u_src=u_src,
        z_src=z_src,
        root_source=root_source,
        el_f=el.el_f,
        el_t=el.el_t,
        yff=el.yff,
        yft=el.yft,
        ytf=el.ytf,
        ytt=el.ytt,
        el_sf=el.el_sf,
        el_st=el.el_st,
        el_trafo=params["trafo"].copy(),
        base_i_f=params["base_i_f"],
        base_i_t=params["base_i_t"],
        n_line=len(grid.line),
        ch_a=c.a.astype(np.int64),
        ch_b=c.b.astype(np.int64),
        ch_z=c.z.astype(np.complex128),
        ch_y=c.y,
    )
    return topo, ""


def _loop_admittance(
    parent: np.ndarray, z: np.ndarray, ch_a: np.ndarray, ch_b: np.ndarray, ch_z: np.ndarray
) -> np.ndarray:
    """Inverse of the loop impedance matrix of the chords (their Newton step).

    Entry (c, d): how the voltage across cut ``c`` changes per unit of chord current ``d``: the
    tree impedance the two loops share (with sign), plus the chord's own on the diagonal. Tree
    impedances are summed in per unit without the transformers' ratios: the matrix only sets
    the step size of the correction, not the solution (the mismatch is computed exactly).
    """
    nc = ch_a.size
    if nc == 0:
        return np.zeros((0, 0), np.complex128)
    # impedance from the root to every node (parents come first in BFS order)
    n = parent.size
    child = np.flatnonzero(parent >= 0)
    a = coo_matrix(
        (
            np.r_[np.ones(n), -np.ones(child.size)],  # I - P
            (np.r_[np.arange(n), child], np.r_[np.arange(n), parent[child]]),
        ),
        shape=(n, n),
    ).tocsr()
    zz = z.copy()
    zz[parent < 0] = 0.0
    zcum = spsolve_triangular(a, zz.real, lower=True) + 1j * spsolve_triangular(
        a, zz.imag, lower=True
    )
    ends = np.r_[ch_a, ch_b]

    def chain(x: int) -> np.ndarray:
        out = [x]
        while parent[out[-1]] >= 0:
            out.append(int(parent[out[-1]]))
        return np.array(out, np.int64)

    chains = [chain(int(x)) for x in ends]
    m = ends.size
    d = np.zeros((m, m), np.complex128)  # shared impedance to the root of two ends
    for i in range(m):
        for j in range(i, m):
            common = np.intersect1d(chains[i], chains[j], assume_unique=True)
            d[i, j] = d[j, i] = zcum[common.max()] if common.size else 0.0
    za, zb = slice(0, nc), slice(nc, m)
    zl = d[za, za] - d[za, zb] - d[zb, za] + d[zb, zb] + np.diag(ch_z)
    return np.linalg.inv(zl)
