"""The batch radial power flow: a backward/forward sweep over the feeder tree, numba, all steps at once.

:func:`radial_topology` orders the energised network once for given switch states: buses
joined by closed bus-bus switches become one electrical node, parallel branches with the same
ratio are merged, and the nodes are numbered breadth-first from each source. Weakly meshed
networks (up to :data:`MAX_LOOPS` loops, each closed by a line or a branch without ratio) keep
a spanning tree and one *chord* per loop, solved by the compensation method (the chord replaced
by its current, corrected through the loop impedance matrix). Other meshes (more loops, two
sources in one island, a loop closed by a transformer with ratio, parallel transformers of
different ratio) get ``None`` and a reason: the twin then uses power-grid-model.

:class:`RadialEngine` solves many load states of one topology with
:func:`~gridpilot.twin.radial_kernel.solve_batch`: per step, injections are summed per node,
then iterations of backward current summation and forward voltage update run until the
largest voltage change is below ``tolerance`` (pu). Steps run in parallel (numba ``prange``
over blocks of consecutive steps; each block warm-starts from its previous step).

The model is power-grid-model's, term by term (1 MVA base, nominal bus voltages): lines as
pi sections (series r + jx, half the charging at each end), transformers with the off-nominal
ratio from their rated voltages and tap, the clock phase shift, series impedance from vk/vkr and
magnetising admittance from i0/pfe split over both ends, branches open at one end as shunts,
loads as constant power, current or impedance (by their ``i_share``/``z_share``), generators as
negative loads, storage/EV/flexible loads as loads, and each source behind its short-circuit
impedance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.sparse.linalg import spsolve_triangular

from gridpilot.errors import ValidationError
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


def radial_topology(
    grid: Grid, switch_closed: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None
) -> tuple[RadialTopology | None, str]:
    """Order the energised network of ``grid`` for the sweep, for the given switch states.

    Returns ``(topology, "")`` when the energised network is radial (after merging buses joined
    by closed bus-bus switches and parallel branches of equal ratio), else ``(None, reason)``.
    """
    if params is None:
        params = branch_parameters(grid)
    nb = len(grid.bus)
    nl = len(grid.line)
    st = branch_status(grid, switch_closed)
    on_f = np.concatenate([st["line_from"], st["trafo_hv"]])
    on_t = np.concatenate([st["line_to"], st["trafo_lv"]])
    sw = grid.switch
    bsw = st["busswitch"]
    pm = grid.bus.position_map
    sa, sb = pm(sw["bus"][bsw], "bus"), pm(sw["element"][bsw], "bus")
    g = coo_matrix((np.ones(sa.size), (sa, sb)), shape=(nb, nb)).tocsr()
    _, label = connected_components(g, directed=False)  # electrical node per bus
    nlab = int(label.max()) + 1 if nb else 0
    f, t = params["f"], params["t"]
    lf, lt = label[f], label[t]
    cond = on_f & on_t
    selfloop = cond & (lf == lt)
    if np.any(selfloop):
        e = int(np.flatnonzero(selfloop)[0])
        return None, f"branch {e} joins buses already joined by a closed bus switch"
    ce = np.flatnonzero(cond)
    a, b = np.minimum(lf[ce], lt[ce]), np.maximum(lf[ce], lt[ce])
    key = a * nlab + b
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
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
    ef, et_ = lf[ref], lt[ref]

    # sources and breadth-first order
    src = grid.source
    spos = np.flatnonzero(src["in_service"])
    slab = label[pm(src["bus"][spos], "bus")]
    if np.unique(slab).size != slab.size:
        return None, "two sources feed the same bus"
    ug = coo_matrix((np.ones(ne_u), (ef, et_)), shape=(nlab, nlab)).tocsr()
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
    live_edges = int(np.sum(seen[ef]))
    n_loops = live_edges - (n - slab.size)
    if n_loops > MAX_LOOPS:
        return None, f"the energised network has {n_loops} loops (more than {MAX_LOOPS})"
    new = np.full(nlab, -1, np.int64)
    new[order] = np.arange(n)
    node_of_bus = new[label]
    node_bus = np.zeros(n, np.int64)
    has = node_of_bus >= 0
    node_bus[node_of_bus[has][::-1]] = np.flatnonzero(has)[::-1]  # first bus of each node
    parent = np.where(pred[order] >= 0, new[np.maximum(pred[order], 0)], -1)
    # edge of each child: the unique edge between the child's and the parent's label
    kp = np.ones(n, np.complex128)
    kc = np.ones(n, np.complex128)
    z = np.zeros(n, np.complex128)
    yshp = np.zeros(n, np.complex128)
    yshc = np.zeros(n, np.complex128)
    ch = np.flatnonzero(parent >= 0)
    if ch.size:
        cl, pl = order[ch], order[parent[ch]]
        eidx = np.searchsorted(ukey, np.minimum(cl, pl) * nlab + np.maximum(cl, pl))
        parent_is_from = ef[eidx] == pl
        ke = k_ref[eidx]
        kp[ch] = np.where(parent_is_from, ke, 1.0)
        kc[ch] = np.where(parent_is_from, 1.0, ke)
        z[ch] = 1.0 / ys_u[eidx]
        yshp[ch] = np.where(parent_is_from, ysh_f_u[eidx], ysh_t_u[eidx])
        yshc[ch] = np.where(parent_is_from, ysh_t_u[eidx], ysh_f_u[eidx])
    # loops: the live unique edges the spanning tree does not use
    in_tree = np.zeros(ne_u, bool)
    if ch.size:
        in_tree[eidx] = True
    chord = np.flatnonzero(seen[ef] & ~in_tree)
    if chord.size != n_loops:  # pragma: no cover - a broken invariant, not an input error
        raise RuntimeError(f"radial topology: {chord.size} chords for {n_loops} loops")
    if chord.size and np.any(np.abs(k_ref[chord] - 1.0) > 1e-12):
        e = int(ref[chord[np.flatnonzero(np.abs(k_ref[chord] - 1.0) > 1e-12)[0]]])
        return None, f"the energised network has a loop closed by branch {e}, which has a ratio"
    ch_a, ch_b = new[ef[chord]], new[et_[chord]]
    ch_z = 1.0 / ys_u[chord]
    ch_y = _loop_admittance(parent, z, ch_a, ch_b, ch_z)

    # element 2-ports with the energised ends only
    nf, nt_ = node_of_bus[f], node_of_bus[t]
    live_f = on_f & (nf >= 0)
    live_t = on_t & (nt_ >= 0)
    yff, yft, ytf, ytt = _two_port(params["ys"], params["ysh"], params["k"], live_f, live_t)
    el_f = np.where(live_f, nf, -1)
    el_t = np.where(live_t, nt_, -1)
    y_node = np.zeros(n, np.complex128)
    np.add.at(y_node, ch_a, ysh_f_u[chord])  # a chord's shunt halves stay at its ends
    np.add.at(y_node, ch_b, ysh_t_u[chord])
    dang_f = live_f & ~live_t
    dang_t = live_t & ~live_f
    np.add.at(y_node, nf[dang_f], yff[dang_f])
    np.add.at(y_node, nt_[dang_t], ytt[dang_t])
    trafo = params["trafo"]
    rating = params["rating"]
    el_sf = np.where(trafo, BASE_VA / rating, params["base_i_f"] / rating)
    el_st = np.where(trafo, BASE_VA / rating, params["base_i_t"] / rating)

    u_src = np.zeros(n, np.complex128)
    z_src = np.zeros(n, np.complex128)
    root_source = np.full(n, -1, np.int64)
    rn = new[slab]
    u_src[rn] = src["vm_pu"][spos] * np.exp(1j * np.deg2rad(src["va_deg"][spos]))
    zabs = 1.0 / src["sk_mva"][spos]
    rx = src["rx_ratio"][spos]
    x = zabs / np.sqrt(1.0 + rx * rx)
    z_src[rn] = x * rx + 1j * x
    root_source[rn] = spos
    topo = RadialTopology(
        n=n,
        node_of_bus=node_of_bus,
        node_bus=node_bus,
        parent=parent.astype(np.int64),
        kp=kp,
        kc=kc,
        z=z,
        yshp=yshp,
        yshc=yshc,
        y_node=y_node,
        u_src=u_src,
        z_src=z_src,
        root_source=root_source,
        el_f=el_f.astype(np.int64),
        el_t=el_t.astype(np.int64),
        yff=yff,
        yft=yft,
        ytf=ytf,
        ytt=ytt,
        el_sf=el_sf,
        el_st=el_st,
        el_trafo=trafo.copy(),
        base_i_f=params["base_i_f"],
        base_i_t=params["base_i_t"],
        n_line=nl,
        ch_a=ch_a.astype(np.int64),
        ch_b=ch_b.astype(np.int64),
        ch_z=ch_z.astype(np.complex128),
        ch_y=ch_y,
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


@dataclass
class RadialSolution:
    """Raw results of :meth:`RadialEngine.solve` (one row per step; node order of the topology)."""

    converged: np.ndarray
    iterations: np.ndarray
    vmin_pu: np.ndarray
    vmin_node: np.ndarray
    vmax_pu: np.ndarray
    vmax_node: np.ndarray
    losses_mw: np.ndarray
    source_p_mw: np.ndarray
    max_loading: np.ndarray
    v: np.ndarray | None
    v_abs: np.ndarray | None
    loading: np.ndarray | None
    calc_s: float


class RadialEngine:
    """The radial kernel on one grid: topologies cached per switch state, batch solves.

    ``name`` is ``"radial"``. :meth:`topology` returns the ordered tree (or ``None`` and why
    when meshed); :meth:`solve` runs a batch of injections on a topology.
    """

    name = "radial"

    def __init__(self, grid: Grid, threads: int | None = None) -> None:
        self.grid = grid
        self.params = branch_parameters(grid)
        self.threads = threads
        self._topos: dict[bytes, tuple[RadialTopology | None, str]] = {}
        self._rows = self._row_layout()
        # each component's rows are one contiguous range (see _row_layout)
        comp = self._rows["comp"]
        self._span: dict[str, slice] = {}
        for c in ("load", "generator", "storage", "ev_charger", "flex_load"):
            idx = np.flatnonzero(comp == c)
            if idx.size:
                assert idx[-1] - idx[0] + 1 == idx.size
                self._span[c] = slice(int(idx[0]), int(idx[-1]) + 1)
        ld = self._span.get("load")
        self._load_plain = ld is not None and bool(
            np.array_equal(self._rows["pos"][ld], np.arange(len(grid.load)))
            and np.all(self._rows["share"][ld] == 1.0)
        )

    def topology(
        self, switch_closed: np.ndarray | None = None
    ) -> tuple[RadialTopology | None, str]:
        """The radial topology for the switch states (cached), or ``(None, reason)`` if meshed."""
        sc = (
            self.grid.switch["closed"] if switch_closed is None else np.asarray(switch_closed, bool)
        )
        if sc.shape != (len(self.grid.switch),):
            raise ValidationError(
                f"switch_closed: expected {len(self.grid.switch)} values, got shape {sc.shape}"
            )
        key = np.packbits(sc).tobytes()
        hit = self._topos.get(key)
        if hit is None:
            if len(self._topos) > 256:
                self._topos.clear()
            hit = radial_topology(self.grid, sc, self.params)
            self._topos[key] = hit
        return hit

    def _row_layout(self) -> dict[str, np.ndarray]:
        """Injection rows: load behaviour blocks, generators, storage, EV chargers, flexible loads."""
        g = self.grid
        ld = g.load
        comp, pos, share, typ, sign = [], [], [], [], []
        if len(ld):
            i_sh, z_sh = ld["i_share"], ld["z_share"]
            for ty, sh in enumerate((1.0 - i_sh - z_sh, i_sh, z_sh)):
                p = np.flatnonzero(sh > 0)
                comp += ["load"] * p.size
                pos.append(p)
                share.append(sh[p])
                typ.append(np.full(p.size, ty))
                sign.append(np.ones(p.size))
        for c, sg in (
            ("generator", -1.0),
            ("storage", 1.0),
            ("ev_charger", 1.0),
            ("flex_load", 1.0),
        ):
            n = len(g[c])
            comp += [c] * n
            pos.append(np.arange(n))
            share.append(np.ones(n))
            typ.append(np.zeros(n))
            sign.append(np.full(n, sg))
        cat = np.array(comp, dtype=object)
        return {
            "comp": cat,
            "pos": np.concatenate(pos).astype(np.int64) if pos else np.zeros(0, np.int64),
            "share": np.concatenate(share) if share else np.zeros(0),
            "type": np.concatenate(typ).astype(np.int8) if typ else np.zeros(0, np.int8),
            "sign": np.concatenate(sign) if sign else np.zeros(0),
        }

    def row_nodes(self, topo: RadialTopology) -> np.ndarray:
        """Node of every injection row in ``topo`` (-1: out of service or not energised)."""
        g = self.grid
        r = self._rows
        out = np.full(r["pos"].size, -1, np.int64)
        for c in ("load", "generator", "storage", "ev_charger", "flex_load"):
            m = r["comp"] == c
            if not np.any(m):
                continue
            tb = g[c]
            p = r["pos"][m]
            node = topo.node_of_bus[g.bus.position_map(tb["bus"][p], "bus")]
            out[m] = np.where(tb["in_service"][p], node, -1)
        return out

    def injections(
        self, t: int, inj: Mapping[str, np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, rows) active and reactive power of every injection row, MW and Mvar.

        ``inj`` holds (T, n) or (n,) arrays by key (``load_p_mw`` ...); missing ones take the
        grid's values (flexible loads 0, as in the power-grid-model adapter).
        """
        g = self.grid
        r = self._rows
        m = r["pos"].size
        p_out = np.empty((t, m))
        q_out = np.zeros((t, m))

        def arr(key: str, comp_name: str, field: str | None) -> np.ndarray:
            n = len(g[comp_name])
            v = inj.get(key)
            if v is None:
                base = g[comp_name][field] if field is not None else np.zeros(n)
                return np.broadcast_to(base, (t, n))
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 1:
                a = a[None, :]
            if a.shape[1] != n or a.shape[0] not in (1, t):
                raise ValidationError(
                    f"{key}: expected shape ({n},) or ({t}, {n}), got {np.shape(v)}"
                )
            if not np.all(np.isfinite(a)):
                raise ValidationError(f"{key}: contains NaN or infinite values")
            return np.broadcast_to(a, (t, n))

        sl = self._span.get("load")
        if sl is not None:
            lp, lq = arr("load_p_mw", "load", "p_mw"), arr("load_q_mvar", "load", "q_mvar")
            if self._load_plain:  # one constant-power row per load, in table order
                p_out[:, sl] = lp
                q_out[:, sl] = lq
            else:
                pos, sh = r["pos"][sl], r["share"][sl]
                np.multiply(np.take(lp, pos, axis=1), sh, out=p_out[:, sl])
                np.multiply(np.take(lq, pos, axis=1), sh, out=q_out[:, sl])
        for c, pk, qk, pf, qf in (
            ("generator", "gen_p_mw", "gen_q_mvar", "p_mw", "q_mvar"),
            ("storage", "storage_p_mw", None, "p_mw", "q_mvar"),
            ("ev_charger", "ev_p_mw", None, "p_mw", None),
            ("flex_load", "flex_p_mw", None, None, None),
        ):
            s = self._span.get(c)
            if s is None:
                continue
            p_out[:, s] = arr(pk, c, pf)
            if qk is not None:
                q_out[:, s] = arr(qk, c, qf)
            elif qf is not None:
                q_out[:, s] = g[c][qf]
        return p_out, q_out

    def solve(
        self,
        topo: RadialTopology,
        p_mw: np.ndarray,
        q_mvar: np.ndarray,
        *,
        complex_v: bool = False,
        v_abs: bool = False,
        loading: bool = False,
        tolerance: float = 1e-8,
        max_iterations: int = 50,
        threads: int | None = None,
        extrapolate: bool = False,
    ) -> RadialSolution:
        """Solve every row of ``p_mw``/``q_mvar`` (from :meth:`injections`) on ``topo``.

        Optional outputs: complex node voltages (``complex_v``), float32 node voltage magnitudes
        (``v_abs``), float32 element loading as a fraction (``loading``). ``threads``: numba
        threads for this call (default: the engine's, else all). A step stops when no node
        voltage changed by more than ``tolerance`` pu (power-grid-model's rule); each lane starts
        from its previous step (``extrapolate``: from the straight line through the last two).
        Returns a
        :class:`RadialSolution`; non-converged steps have ``converged`` False and NaN values.
        """
        import numba

        from gridpilot.twin.radial_kernel import solve_batch

        t = p_mw.shape[0]
        n, ne = topo.n, topo.el_f.size
        nodes = self.row_nodes(topo)
        typ = self._rows["type"]
        has_iz = bool(np.any((typ > 0) & (nodes >= 0)))
        before = numba.get_num_threads()
        threads = max(
            1,
            min(
                threads or self.threads or numba.config.NUMBA_NUM_THREADS,
                numba.config.NUMBA_NUM_THREADS,
            ),
        )
        n_blocks = threads * 4 if t >= 1024 * threads else threads
        vc = np.empty((t if complex_v else 0, n if complex_v else 0), np.complex128)
        va = np.empty((t if v_abs else 0, n if v_abs else 0), np.float32)
        el = np.empty((t if loading else 0, ne if loading else 0), np.float32)
        conv = np.zeros(t, np.bool_)
        its = np.zeros(t, np.int64)
        vmin, vmax = np.empty(t), np.empty(t)
        kmin, kmax = np.empty(t, np.int64), np.empty(t, np.int64)
        loss, psrc, mx = np.empty(t), np.empty(t), np.empty(t)
        t0 = time.perf_counter()
        if n:
            numba.set_num_threads(threads)
            try:
                solve_batch(
                    np.ascontiguousarray(p_mw, np.float64),
                    np.ascontiguousarray(q_mvar, np.float64),
                    nodes,
                    typ,
                    self._rows["sign"],
                    has_iz,
                    topo.parent,
                    topo.kp,
                    topo.kc,
                    topo.z,
                    topo.yshp,
                    topo.yshc,
                    topo.y_node,
                    topo.u_src,
                    topo.z_src,
                    topo.el_f,
                    topo.el_t,
                    topo.yff,
                    topo.yft,
                    topo.ytf,
                    topo.ytt,
                    topo.el_sf,
                    topo.el_st,
                    topo.el_trafo,
                    float(tolerance),
                    int(max_iterations),
                    int(n_blocks),
                    bool(extrapolate),
                    topo.ch_a,
                    topo.ch_b,
                    topo.ch_z,
                    topo.ch_y,
                    vc,
                    va,
                    el,
                    conv,
                    its,
                    vmin,
                    kmin,
                    vmax,
                    kmax,
                    loss,
                    psrc,
                    mx,
                )
            finally:
                numba.set_num_threads(before)
        else:  # nothing energised
            conv[:] = True
            vmin[:] = vmax[:] = np.nan
            kmin[:] = kmax[:] = -1
            loss[:] = psrc[:] = mx[:] = 0.0
        secs = time.perf_counter() - t0
        return RadialSolution(
            conv,
            its,
            vmin,
            kmin,
            vmax,
            kmax,
            loss,
            psrc,
            mx,
            vc if complex_v else None,
            va if v_abs else None,
            el if loading else None,
            secs,
        )

    def branch_flows(
        self, topo: RadialTopology, v: np.ndarray, p_mw: np.ndarray, q_mvar: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Element flows and source powers of one solved step (``v`` complex per node).

        Returns per element (lines then transformers) ``p_from_mw``, ``q_from_mvar``,
        ``p_to_mw``, ``i_ka`` (larger end), ``loading`` (fraction), and per source
        ``source_p_mw``/``source_q_mvar``.
        """
        vf = (
            np.where(topo.el_f >= 0, v[np.maximum(topo.el_f, 0)], 0.0)
            if v.size
            else np.zeros(topo.el_f.size)
        )
        vt = (
            np.where(topo.el_t >= 0, v[np.maximum(topo.el_t, 0)], 0.0)
            if v.size
            else np.zeros(topo.el_t.size)
        )
        i_f = topo.yff * vf + topo.yft * vt
        i_t = topo.ytf * vf + topo.ytt * vt
        s_f = vf * np.conj(i_f)
        s_t = vt * np.conj(i_t)
        amp_f, amp_t = np.abs(i_f) * topo.base_i_f, np.abs(i_t) * topo.base_i_t
        ld = np.where(
            topo.el_trafo,
            np.maximum(np.abs(s_f) * topo.el_sf, np.abs(s_t) * topo.el_st),
            np.maximum(np.abs(i_f) * topo.el_sf, np.abs(i_t) * topo.el_st),
        )
        # current drawn from each node: branches, dangling shunts (in yff/ytt) and injections
        drawn = np.zeros(topo.n, np.complex128)
        np.add.at(drawn, topo.el_f[topo.el_f >= 0], i_f[topo.el_f >= 0])
        np.add.at(drawn, topo.el_t[topo.el_t >= 0], i_t[topo.el_t >= 0])
        nodes = self.row_nodes(topo)
        ok = nodes >= 0
        s = self._rows["sign"][ok] * (p_mw[ok] + 1j * q_mvar[ok])
        vn = v[nodes[ok]]
        typ = self._rows["type"][ok]
        s_act = s * np.where(typ == 0, 1.0, np.where(typ == 1, np.abs(vn), np.abs(vn) ** 2))
        np.add.at(drawn, nodes[ok], np.conj(s_act / vn))
        ns = len(self.grid.source)
        sp = np.zeros(ns)
        sq = np.zeros(ns)
        roots = np.flatnonzero(topo.root_source >= 0)
        s_src = v[roots] * np.conj(drawn[roots])
        sp[topo.root_source[roots]] = s_src.real
        sq[topo.root_source[roots]] = s_src.imag
        return {
            "p_from_mw": s_f.real,
            "q_from_mvar": s_f.imag,
            "p_to_mw": s_t.real,
            "i_ka": np.maximum(amp_f, amp_t) / 1e3,
            "loading": ld,
            "source_p_mw": sp,
            "source_q_mvar": sq,
        }
