"""Grid awareness for the market: sensitivities, zones, and curtailment of trades.

A trade of ``x`` MW from the seller's bus to the buyer's bus is treated as an extra
injection ``+x`` at the seller and ``-x`` at the buyer on top of a base operating point (the
scheduled-transfer model of network-aware P2P markets). On the radial feeder the change of
branch flows is exact from the tree (PTDF entries 0/-1: an injection below a branch lowers
its flow from the substation) and the change of voltages comes from linearised DistFlow
(``dV_i = sum over the branches shared by the paths of i and j of r_pu * dP_j``). Trades are
curtailed by a small linear programme (HiGHS) over the (seller bus, buyer bus) pairs that keeps
every branch within its thermal rating and every bus inside the voltage band, trades kept as
large as possible; each trade of a pair keeps the same share.

Zones for network fees: ``grid.bus['zone']`` when it has at least two values among the buses,
otherwise contiguous blocks of the feeder's depth-first order (electrically close buses).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.market.clearing import ClearingResult
from gridpilot.model.limits import OperatingLimits

S_BASE_MVA = 1.0


class _Edge(NamedTuple):
    """A conducting branch between bus positions ``a`` and ``b`` (per unit on S_BASE_MVA).

    ``line_k``: the line's table position (-1 for a transformer or switch).
    """

    a: int
    b: int
    name: str
    r_pu: float
    x_pu: float
    s_max_mva: float
    line_k: float


def _edges(grid: Any, pos: dict[int, int]) -> list[_Edge]:
    """The grid's conducting lines, transformers and bus-bus switches as edges."""
    from gridpilot.model import branch_status

    st = branch_status(grid)
    ln, tr, sw = grid.line, grid.transformer, grid.switch
    edges: list[_Edge] = []
    for k in np.flatnonzero(st["line_from"] & st["line_to"]):
        fb, tb = int(ln["from_bus"][k]), int(ln["to_bus"][k])
        vkv = float(grid.bus["v_nom_kv"][pos[fb]])
        zb = vkv**2 / S_BASE_MVA
        r = float(ln["r_ohm_per_km"][k] * ln["length_km"][k]) / zb
        x = float(ln["x_ohm_per_km"][k] * ln["length_km"][k]) / zb
        smax = np.sqrt(3.0) * vkv * float(ln["max_i_ka"][k])
        edges.append(_Edge(pos[fb], pos[tb], f"line {int(ln.ids[k])}", r, x, smax, float(k)))
    for k in np.flatnonzero(st["trafo_hv"] & st["trafo_lv"]):
        sn = float(tr["sn_mva"][k])
        r = float(tr["vkr_percent"][k]) / 100.0 * S_BASE_MVA / sn
        z = float(tr["vk_percent"][k]) / 100.0 * S_BASE_MVA / sn
        x = float(np.sqrt(max(z**2 - r**2, 0.0)))
        hv, lv = pos[int(tr["hv_bus"][k])], pos[int(tr["lv_bus"][k])]
        edges.append(_Edge(hv, lv, f"transformer {int(tr.ids[k])}", r, x, sn, -1.0))
    for k in np.flatnonzero(st["busswitch"]):
        a, b = pos[int(sw["bus"][k])], pos[int(sw["element"][k])]
        edges.append(_Edge(a, b, f"switch {int(sw.ids[k])}", 0.0, 0.0, np.inf, -1.0))
    return edges


@dataclass
class _Tree:
    """The edges oriented away from the source: BFS ``order`` of bus positions, each bus's
    parent edge, each edge's child bus (-1: not in the tree) and each bus's edges."""

    order: list[int]
    parent_edge: np.ndarray
    child_of_edge: np.ndarray
    adj: list[list[int]]


def _orient(edges: list[_Edge], n: int, root: int) -> _Tree:
    """BFS once over the buses from ``root``; raises :class:`ValidationError` on a loop."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for e, edge in enumerate(edges):
        adj[edge.a].append(e)
        adj[edge.b].append(e)
    parent_edge = np.full(n, -1, np.int64)
    child_of_edge = np.full(len(edges), -1, np.int64)
    seen = np.zeros(n, bool)
    seen[root] = True
    order: list[int] = []
    dq: deque[int] = deque([root])
    while dq:
        u = dq.popleft()
        order.append(u)
        for e in adj[u]:
            a, b = edges[e].a, edges[e].b
            v = b if a == u else a
            if seen[v]:
                if parent_edge[u] != e and child_of_edge[e] < 0:
                    raise ValidationError(
                        issues=[
                            Issue(
                                "grid",
                                "topology",
                                "market sensitivities need a radial grid; "
                                f"{edges[e].name} closes a loop",
                            )
                        ]
                    )
                continue
            seen[v] = True
            parent_edge[v] = e
            child_of_edge[e] = v
            dq.append(v)
    return _Tree(order, parent_edge, child_of_edge, adj)


def _subtree_matrix(edges: list[_Edge], t: _Tree) -> tuple[np.ndarray, np.ndarray]:
    """The tree's edges (indices into ``edges``) and M (n_used, n_bus): M[e, j] = 1 when bus j lies below edge e."""
    used = np.flatnonzero(t.child_of_edge >= 0)
    eidx = np.full(len(edges), -1, np.int64)
    eidx[used] = np.arange(len(used))
    in_sub = np.zeros((len(used), t.parent_edge.size))
    for v in reversed(t.order[1:]):
        e = eidx[t.parent_edge[v]]
        in_sub[e, v] = 1.0
        # add the subtree of v, which is complete since we walk the BFS order backwards
        for ce in t.adj[v]:
            if t.child_of_edge[ce] >= 0 and t.child_of_edge[ce] != v:
                in_sub[e] += in_sub[eidx[ce]]
    return used, in_sub


def _injections(
    grid: Any,
    pos: dict[int, int],
    load_p_mw: np.ndarray | None,
    load_q_mvar: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Net injections per bus (MW, Mvar): generators less loads (the given loads in table order, or the grid's)."""
    n = len(pos)
    inj_p = np.zeros(n)
    inj_q = np.zeros(n)
    lpos = np.array([pos[int(b)] for b in grid.load["bus"]], np.int64)
    lpw = grid.load["p_mw"] if load_p_mw is None else np.asarray(load_p_mw, float)
    lqw = grid.load["q_mvar"] if load_q_mvar is None else np.asarray(load_q_mvar, float)
    live = grid.load["in_service"]
    np.add.at(inj_p, lpos[live], -lpw[live])
    np.add.at(inj_q, lpos[live], -lqw[live])
    if len(grid.generator):
        gpos = np.array([pos[int(b)] for b in grid.generator["bus"]], np.int64)
        glive = grid.generator["in_service"]
        np.add.at(inj_p, gpos[glive], grid.generator["p_mw"][glive])
    return inj_p, inj_q


@dataclass
class GridSensitivity:
    """Linear sensitivities of a radial grid around a base point.

    ``bus_id`` (n_bus,); ``branch`` names (``line <id>``/``transformer <id>``); ``ptdf``
    (n_branch, n_bus): MW change of each branch's flow (parent to child) per MW injected at
    a bus; ``dv_dp`` (n_bus, n_bus): pu voltage change per MW injected; ``p_max_mw``
    (n_branch,): active-power headroom of the rating given the base reactive flow;
    ``p0_mw``/``v0_pu``: the base point; ``zone`` (n_bus,): fee zone of each bus;
    ``r_path_pu`` (n_bus,): resistance from the source, the electrical distance.
    """

    bus_id: np.ndarray
    branch: list[str]
    ptdf: np.ndarray
    dv_dp: np.ndarray
    p_max_mw: np.ndarray
    p0_mw: np.ndarray
    v0_pu: np.ndarray
    zone: np.ndarray
    r_path_pu: np.ndarray
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    _s_max: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _line_k: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _sign: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _dv_raw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    @classmethod
    def from_grid(  # noqa: PLR0913
        cls,
        grid: Any,
        base: Any = None,
        n_zones: int = 4,
        v_min_pu: float = 0.95,
        v_max_pu: float = 1.05,
        load_p_mw: np.ndarray | None = None,
        load_q_mvar: np.ndarray | None = None,
        limits: OperatingLimits | None = None,
    ) -> GridSensitivity:
        """Sensitivities of ``grid`` (a :class:`gridpilot.model.Grid`).

        ``base``: a twin power-flow result (``v_pu``, ``line_p_from_mw``,
        ``line_q_from_mvar``) used as the base point; without it the base comes from
        linearised DistFlow at ``load_p_mw``/``load_q_mvar`` (table order; default the
        grid's own loads less its generators). Raises :class:`ValidationError` for a grid
        without a source or with a meshed (non-radial) conducting topology. ``limits``: the
        shared :class:`OperatingLimits`; when given, its voltage band replaces
        ``v_min_pu``/``v_max_pu`` and each branch's rating is scaled by ``loading_max_pct``.
        """
        if limits is not None:
            v_min_pu, v_max_pu = limits.v_min_pu, limits.v_max_pu
        bus_ids = np.asarray(grid.bus.ids, np.int64)
        n = bus_ids.size
        pos = {int(b): i for i, b in enumerate(bus_ids)}
        if len(grid.source) == 0:
            raise ValidationError(issues=[Issue("source", "bus", "grid has no source (slack) bus")])
        edges = _edges(grid, pos)
        tree = _orient(edges, n, pos[int(grid.source["bus"][0])])
        used, in_sub = _subtree_matrix(edges, tree)
        m = len(used)
        r = np.array([edges[e].r_pu for e in used])
        smax = np.array([edges[e].s_max_mva for e in used])
        if limits is not None and limits.loading_max_pct != 100.0:
            smax = smax * (limits.loading_max_pct / 100.0)
        ptdf = -in_sub
        dv_dp = in_sub.T @ (r[:, None] * in_sub) / S_BASE_MVA
        out = cls(
            bus_ids,
            [edges[e].name for e in used],
            ptdf,
            dv_dp,
            smax.copy(),
            np.zeros(m),
            np.ones(n),
            _zones(grid, bus_ids, tree.order, n_zones),
            in_sub.T @ r,
            v_min_pu,
            v_max_pu,
            smax,
            np.array([int(edges[e].line_k) for e in used], np.int64),
            np.array([1.0 if tree.child_of_edge[e] == edges[e].b else -1.0 for e in used]),
            dv_dp,
        )
        if base is not None:
            return out.rebase(base)
        x = np.array([edges[e].x_pu for e in used])
        inj_p, inj_q = _injections(grid, pos, load_p_mw, load_q_mvar)
        q0 = ptdf @ inj_q
        vs = float(grid.source["vm_pu"][0])
        out.p0_mw = ptdf @ inj_p
        out.v0_pu = vs + dv_dp @ inj_p + (in_sub.T @ (x[:, None] * in_sub)) @ inj_q
        out.p_max_mw = np.sqrt(np.maximum(smax**2 - q0**2, 0.0))
        return out

    def rebase(self, base: Any) -> GridSensitivity:
        """A copy around a new base point: a twin power-flow result with ``v_pu``,
        ``line_p_from_mw`` and ``line_q_from_mvar`` (grid table order). Voltage
        sensitivities are divided by the base voltage (``dV = r dP / V``)."""
        v0 = np.asarray(base.v_pu, float).copy()
        lp = np.asarray(base.line_p_from_mw, float)
        lq = np.asarray(base.line_q_from_mvar, float)
        is_line = self._line_k >= 0
        p0 = np.zeros(len(self.branch))
        q0 = np.zeros(len(self.branch))
        p0[is_line] = self._sign[is_line] * lp[self._line_k[is_line]]
        q0[is_line] = self._sign[is_line] * lq[self._line_k[is_line]]
        pmax = np.sqrt(np.maximum(self._s_max**2 - q0**2, 0.0))
        dv = self._dv_raw / np.maximum(v0, 0.5)[:, None]
        return GridSensitivity(
            self.bus_id,
            self.branch,
            self.ptdf,
            dv,
            pmax,
            p0,
            v0,
            self.zone,
            self.r_path_pu,
            self.v_min_pu,
            self.v_max_pu,
            self._s_max,
            self._line_k,
            self._sign,
            self._dv_raw,
        )

    def bus_positions(self, bus_ids: np.ndarray) -> np.ndarray:
        """Positions of bus ids in ``bus_id`` (-1 where unknown)."""
        order = np.argsort(self.bus_id)
        ids = np.asarray(bus_ids, np.int64)
        k = np.clip(np.searchsorted(self.bus_id[order], ids), 0, self.bus_id.size - 1)
        hit = self.bus_id[order][k] == ids
        return np.where(hit, order[k], -1)

    def curtail(
        self,
        trades: ClearingResult,
        seller_pos: np.ndarray,
        buyer_pos: np.ndarray,
        interval_s: float = 900.0,
    ) -> tuple[ClearingResult, dict[str, Any]]:
        """Scale trades down so that the implied transfers keep every branch within rating and
        every bus voltage in ``[v_min_pu, v_max_pu]``.

        ``seller_pos``/``buyer_pos``: bus positions of each trade's two sides (-1: no bus,
        the trade is not constrained). Returns the curtailed trades and a report (curtailed
        Wh, binding constraints, whether an LP was needed).
        """
        n_tr = len(trades)
        if n_tr == 0:
            return trades, {"curtailed_wh": 0, "binding": [], "lp": False}
        mw = trades.qty_wh / 1e6 / (interval_s / 3600.0)
        on = (seller_pos >= 0) & (buyer_pos >= 0) & (seller_pos != buyer_pos)
        nb = self.bus_id.size
        key = np.where(on, seller_pos * nb + buyer_pos, -1)
        pairs, inv = np.unique(key[on], return_inverse=True)
        if pairs.size == 0:
            return trades, {"curtailed_wh": 0, "binding": [], "lp": False}
        cap = np.bincount(inv, weights=mw[on], minlength=pairs.size)
        s, b = pairs // nb, pairs % nb
        a_flow = self.ptdf[:, s] - self.ptdf[:, b]  # (n_branch, n_pair)
        a_v = self.dv_dp[:, s] - self.dv_dp[:, b]  # (n_bus, n_pair)
        f_hi = np.maximum(self.p_max_mw - self.p0_mw, 0.0)
        f_lo = np.minimum(-self.p_max_mw - self.p0_mw, 0.0)
        v_hi = np.maximum(self.v_max_pu - self.v0_pu, 0.0)
        v_lo = np.minimum(self.v_min_pu - self.v0_pu, 0.0)
        flow = a_flow @ cap
        dv = a_v @ cap
        tol = 1e-9
        if (
            np.all(flow <= f_hi + tol)
            and np.all(flow >= f_lo - tol)
            and np.all(dv <= v_hi + tol)
            and np.all(dv >= v_lo - tol)
        ):
            return trades, {"curtailed_wh": 0, "binding": [], "lp": False}
        from scipy.optimize import linprog

        a_ub = np.vstack([a_flow, -a_flow, a_v, -a_v])
        b_ub = np.concatenate([f_hi, -f_lo, v_hi, -v_lo])
        res = linprog(
            -np.ones(pairs.size),
            A_ub=a_ub,
            b_ub=b_ub,
            bounds=np.column_stack([np.zeros(pairs.size), cap]),
            method="highs",
        )
        xs = res.x if res.status == 0 else np.zeros(pairs.size)
        share = np.divide(xs, cap, out=np.zeros_like(cap), where=cap > 0)
        factor = np.ones(n_tr)
        factor[on] = share[inv]
        out = trades.scaled(factor * (1 - 1e-9))
        # binding: at its limit and moved by the requested trades (rows the trades do not touch
        # can sit at a zero headroom without constraining anything)
        touched_f = np.abs(a_flow) @ cap > 1e-9
        touched_v = np.abs(a_v) @ cap > 1e-12
        slack_f = np.minimum(f_hi - a_flow @ xs, a_flow @ xs - f_lo)
        slack_v = np.minimum(v_hi - a_v @ xs, a_v @ xs - v_lo)
        binding = [self.branch[i] for i in np.flatnonzero(touched_f & (slack_f < 1e-6))]
        binding += [
            f"bus {int(self.bus_id[i])} voltage"
            for i in np.flatnonzero(touched_v & (slack_v < 1e-9))
        ]
        return out, {
            "curtailed_wh": int(trades.volume_wh - out.volume_wh),
            "binding": sorted(set(binding)),
            "lp": True,
        }


def _zones(grid: Any, bus_ids: np.ndarray, order: list[int], n_zones: int) -> np.ndarray:
    """Fee zone per bus position: the grid's own zones when given, else blocks of DFS order."""
    given = np.asarray(grid.bus["zone"], np.int64)
    if np.unique(given).size >= 2:
        return given.copy()
    n = bus_ids.size
    # depth-first order keeps subtrees contiguous; rebuild it from the BFS parents
    children: list[list[int]] = [[] for _ in range(n)]
    seen = set(order)
    # parents from BFS order: the first earlier neighbour; recompute cheaply via adjacency of order
    from gridpilot.model import branch_edges

    a, b = branch_edges(grid)
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        adj[u].append(v)
        adj[v].append(u)
    root = order[0]
    visited = np.zeros(n, bool)
    visited[root] = True
    dq: deque[int] = deque([root])
    while dq:
        u = dq.popleft()
        for v in adj[u]:
            if not visited[v]:
                visited[v] = True
                children[u].append(v)
                dq.append(v)
    dfs: list[int] = []
    stack = [root]
    while stack:
        u = stack.pop()
        dfs.append(u)
        stack.extend(reversed(children[u]))
    zone = np.zeros(n, np.int64)
    k = max(1, min(int(n_zones), len(dfs)))
    block = int(np.ceil(len(dfs) / k))
    for i, u in enumerate(dfs):
        zone[u] = i // block
    unreached = [u for u in range(n) if u not in seen]
    zone[unreached] = -1
    return zone
