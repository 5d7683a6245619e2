"""The three-phase feeder for the dashboard: geometry, per-phase snapshot, voltage profile
against distance from the substation, in compact column arrays (one array per field, in the
order of the geometry's buses and branches; never one object per bus), so that ``ieee8500``'s
~4,900 buses travel in one small payload.

Where the values come from (:class:`FeederSource`): a loop whose world is a
:class:`PhaseAwareWorld` (its own three-phase grid and last unbalanced result), or, without a
loop, one snapshot of :class:`~gridpilot.twin.unbalanced.UnbalancedTwin` for the grid.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gridpilot.errors import UnknownComponentError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.results import UnbalancedResult

log = logging.getLogger(__name__)

PHASES = (1, 2, 3)


@runtime_checkable
class PhaseAwareWorld(Protocol):
    """A world that runs a three-phase feeder: its grid and its last unbalanced result.

    The loop's own definition belongs in ``gridpilot.agent.worldtypes`` (same members); this
    one is what the API checks against, so that it needs nothing else of the world.
    """

    grid3p: ThreePhaseGrid

    def phase_result(self) -> UnbalancedResult | None:
        """The last solved snapshot (``None`` before the first)."""
        ...


def _r(a: np.ndarray, digits: int) -> list[float | None]:
    """``a`` rounded, NaN as ``None`` (JSON null)."""
    a = np.round(np.asarray(a, float), digits)
    return [None if not np.isfinite(x) else float(x) for x in a]


@dataclass
class Geometry:
    """Buses (name, x, y, phase mask, kV base, distance) and branches (lines, switches,
    reactors and transformers as from/to bus indices) of a feeder, with its devices."""

    buses: list[str]
    index: dict[str, int]
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    kv_ln: np.ndarray
    layout: str
    br_name: list[str]
    br_kind: list[str]
    br_from: np.ndarray
    br_to: np.ndarray
    br_mask: np.ndarray
    br_len_km: np.ndarray
    split: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distance_unit: str = "km"
    devices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _mask(nodes: tuple[int, ...]) -> int:
    return sum(1 << (k - 1) for k in set(nodes) if k in PHASES)


def split_phase(grid: ThreePhaseGrid, index: dict[str, int]) -> np.ndarray:
    """Per bus, the primary phase (0-2) of the centre-tapped service transformer that feeds
    it, for the split-phase secondaries (their nodes 1 and 2 are the two 120 V legs, not
    phases A and B); -1 elsewhere. The secondary side is followed along lines."""
    out = np.full(len(index), -1, np.int64)
    seeds: list[tuple[int, int]] = []
    for t in grid.transformers:
        prim = [k for k in t.windings[0].terminal.nodes if k in PHASES]
        if t.enabled and len(t.windings) == 3 and len(prim) == 1:
            for w in t.windings[1:]:
                if w.terminal.bus in index:
                    seeds.append((index[w.terminal.bus], prim[0] - 1))
    if not seeds:
        return out
    adj: dict[int, list[int]] = {}
    for br in grid.branches:  # lines between buses of the same (secondary) voltage base
        a, b = index.get(br.t1.bus), index.get(br.t2.bus)
        same = grid.bus_kv_ln.get(br.t1.bus) == grid.bus_kv_ln.get(br.t2.bus)
        if br.enabled and a is not None and b is not None and same:
            adj.setdefault(a, []).append(b)
            adj.setdefault(b, []).append(a)
    todo: deque[int] = deque()
    for j, p in seeds:
        out[j] = p
        todo.append(j)
    while todo:
        a = todo.popleft()
        for b in adj.get(a, []):
            if out[b] < 0:
                out[b] = out[a]
                todo.append(b)
    return out


def build_geometry(grid: ThreePhaseGrid) -> Geometry:
    """The feeder's drawing: bus coordinates (the grid's own, else a tree layout), branch
    endpoints and phases, distance along the tree from the source, devices."""
    from gridpilot.twin.hosting.profiles import bus_xy

    nodes = grid.nodes()
    buses = list(dict.fromkeys(b for b, _ in nodes))
    index = {b: i for i, b in enumerate(buses)}
    mask = np.zeros(len(buses), np.int64)
    for b, k in nodes:
        if k in PHASES:
            mask[index[b]] |= 1 << (k - 1)
    split = split_phase(grid, index)
    mask = np.where(split >= 0, 1 << np.maximum(split, 0), mask)
    xy = bus_xy(grid)
    own = bool(grid.buscoords) and all(b in grid.buscoords for b in buses)
    names, kinds, fr, to, bm, lkm = [], [], [], [], [], []
    unitless = False
    for br in grid.branches:
        if not br.enabled or br.t1.bus not in index or br.t2.bus not in index:
            continue
        km = br.length_km
        if km is None:  # no unit in the script: its number as given (said in distance_unit)
            unitless = unitless or br.length > 0.0011
            km = br.length
        names.append(br.name)
        kinds.append(br.kind)
        fr.append(index[br.t1.bus])
        to.append(index[br.t2.bus])
        sp = split[index[br.t1.bus]]
        bm.append(1 << sp if sp >= 0 else _mask(br.t1.nodes))
        lkm.append(km)
    for t in grid.transformers:
        ws = [w.terminal.bus for w in t.windings]
        if not t.enabled or any(b not in index for b in ws) or ws[0] == ws[1]:
            continue
        names.append(t.name)
        kinds.append("transformer")
        fr.append(index[ws[0]])
        to.append(index[ws[1]])
        bm.append(_mask(t.windings[0].terminal.nodes))
        lkm.append(0.0)
    g = Geometry(
        buses=buses,
        index=index,
        x=np.array([xy[b][0] for b in buses], float),
        y=np.array([xy[b][1] for b in buses], float),
        mask=mask,
        kv_ln=np.array([grid.bus_kv_ln.get(b, np.nan) for b in buses], float),
        layout="coordinates" if own else "tree",
        br_name=names,
        br_kind=kinds,
        br_from=np.array(fr, np.int64),
        br_to=np.array(to, np.int64),
        br_mask=np.array(bm, np.int64),
        br_len_km=np.array(lkm, float),
        split=split,
        distance_unit="script units (no length unit given)" if unitless else "km",
    )
    g.distance = tree_distance(g, grid, index.get(grid.source.terminal.bus, 0))
    g.devices = devices(grid, index)
    return g


def tree_distance(g: Geometry, grid: ThreePhaseGrid, root: int) -> np.ndarray:
    """Distance of each bus from ``root`` along the energised tree (closed branches and
    transformers, breadth first; the first path found where loops exist); NaN if unreached."""
    n = len(g.buses)
    closed = {b.name: b.closed for b in grid.branches}
    adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for k in range(len(g.br_name)):
        if g.br_kind[k] != "transformer" and not closed.get(g.br_name[k], True):
            continue
        a, b, d = int(g.br_from[k]), int(g.br_to[k]), float(g.br_len_km[k])
        adj[a].append((b, d))
        adj[b].append((a, d))
    dist = np.full(n, np.nan)
    dist[root] = 0.0
    todo = deque([root])
    while todo:
        a = todo.popleft()
        for b, d in adj[a]:
            if np.isnan(dist[b]):
                dist[b] = dist[a] + d
                todo.append(b)
    return dist


def devices(grid: ThreePhaseGrid, index: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Regulators (the transformer a RegControl drives), capacitors and switches, with the
    bus index each sits at and its phases."""
    regs = []
    for rc in grid.regcontrols:
        try:
            t = grid.transformer(rc.transformer)
        except UnknownComponentError:  # a control of a missing transformer: not drawn
            log.warning("regcontrol %s: no transformer %s", rc.name, rc.transformer)
            continue
        w = t.windings[min(rc.winding, len(t.windings)) - 1].terminal
        if w.bus in index:
            regs.append({"name": rc.name, "bus": index[w.bus], "phases": _mask(w.nodes)})
    caps = [
        {"name": c.name, "bus": index[c.t1.bus], "phases": _mask(c.t1.nodes), "kvar": sum(c.kvar)}
        for c in grid.capacitors
        if c.enabled and c.t1.bus in index
    ]
    sws = [
        {"name": b.name, "bus": index[b.t1.bus], "phases": _mask(b.t1.nodes), "closed": b.closed}
        for b in grid.branches
        if b.kind == "switch" and b.enabled and b.t1.bus in index
    ]
    return {"regulators": regs, "capacitors": caps, "switches": sws}


def _digits(a: np.ndarray) -> int:
    """Decimals that keep 1e-5 of ``a``'s extent (enough to draw; fewer bytes)."""
    ext = float(np.nanmax(a) - np.nanmin(a)) if a.size and np.isfinite(a).any() else 1.0
    return int(max(0, 5 - np.floor(np.log10(max(ext, 1e-9)))))


def geometry_payload(g: Geometry, name: str) -> dict[str, Any]:
    """:class:`Geometry` as JSON columns (see :class:`~gridpilot.api.schemas_feeder.FeederGeometry`)."""
    return {
        "name": name,
        "layout": g.layout,
        "distance_unit": g.distance_unit,
        "buses": {
            "name": g.buses,
            "x": _r(g.x, _digits(g.x)),
            "y": _r(g.y, _digits(g.y)),
            "phases": g.mask.tolist(),
            "kv_ln": _r(g.kv_ln, 4),
            "distance": _r(g.distance, 4),
        },
        "branches": {
            "name": g.br_name,
            "kind": g.br_kind,
            "from": g.br_from.tolist(),
            "to": g.br_to.tolist(),
            "phases": g.br_mask.tolist(),
            "length_km": _r(g.br_len_km, 4),
        },
        "devices": g.devices,
    }


def _bus_phases(g: Geometry, res: UnbalancedResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-phase |V| (pu), angle and complex V per bus; a split-phase secondary shows its
    lower leg on the primary phase that feeds it."""
    nb = len(g.buses)
    vpu, ang = np.full((3, nb), np.nan), np.full((3, nb), np.nan)
    vc = np.full((3, nb), np.nan, complex)
    vpu_all, ang_all = res.v_pu, res.angle_deg
    for i, (b, k) in enumerate(res.nodes):
        j = g.index.get(b)
        if j is None or k not in PHASES:
            continue
        p = int(g.split[j]) if g.split[j] >= 0 else k - 1
        if np.isnan(vpu[p, j]) or vpu_all[i] < vpu[p, j]:
            vpu[p, j], ang[p, j], vc[p, j] = vpu_all[i], ang_all[i], res.v[i]
    return vpu, ang, vc


def _flows(
    g: Geometry, grid: ThreePhaseGrid, res: UnbalancedResult, vc: np.ndarray
) -> list[np.ndarray]:
    """Per-phase branch current (A, largest conductor), kW and kvar into the from end (summed
    over the conductors on the phase) and loading (%)."""
    nbr = len(g.br_name)
    amps, load = np.full((3, nbr), np.nan), np.full((3, nbr), np.nan)
    pq = np.zeros((3, nbr), complex)
    row = {
        n: k
        for k, (n, kd) in enumerate(zip(g.br_name, g.br_kind, strict=True))
        if kd != "transformer"
    }
    for (name, _c, node, rating), i_a in zip(res.branch_meta, res.branch_i_a, strict=True):
        k = row.get(name)
        if k is None or node not in PHASES:
            continue
        fb = int(g.br_from[k])
        p = int(g.split[fb]) if g.split[fb] >= 0 else node - 1
        v_node = (
            res.v[res_index(res).get((g.buses[fb], node), -1)] if g.split[fb] >= 0 else vc[p, fb]
        )
        pq[p, k] += v_node * np.conj(i_a)
        amps[p, k] = np.fmax(amps[p, k], abs(i_a))
        if rating > 0:
            load[p, k] = np.fmax(load[p, k], 100.0 * abs(i_a) / rating)
    pq = np.where(np.isnan(amps), np.nan, pq)
    return [amps, pq.real / 1e3, pq.imag / 1e3, load]


def res_index(res: UnbalancedResult) -> dict[tuple[str, int], int]:
    """(bus, node) -> row of ``res``, built once per result."""
    idx = res.__dict__.get("_node_index")
    if idx is None:
        idx = {bk: i for i, bk in enumerate(res.nodes)}
        res.__dict__["_node_index"] = idx
    return idx  # type: ignore[no-any-return]


def snapshot_payload(
    g: Geometry,
    grid: ThreePhaseGrid,
    res: UnbalancedResult,
    source: str,
    open_names: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Per-phase bus voltages (pu, degrees) and branch flows (A, kW, kvar, % of rating) as
    arrays ``[phase A, phase B, phase C]`` in geometry order; ``null`` where a bus or branch
    lacks the phase (transformers carry no flow here). Switch states: ``open_names`` (branch
    names, lower case) where given, else the grid's own."""
    vpu, ang, vc = _bus_phases(g, res)
    amps, pkw, qkvar, load = _flows(g, grid, res, vc)
    closed = {b.name: b.closed for b in grid.branches}
    if open_names is not None:
        closed = {n: n.lower() not in open_names for n in closed}
    return {
        "name": grid.name,
        "source": source,
        "v_pu": [_r(v, 5) for v in vpu],
        "angle_deg": [_r(a, 2) for a in ang],
        "i_a": [_r(a, 2) for a in amps],
        "p_kw": [_r(a, 2) for a in pkw],
        "q_kvar": [_r(a, 2) for a in qkvar],
        "loading_pct": [_r(a, 1) for a in load],
        "closed": [
            bool(closed.get(n, True)) if kd != "transformer" else True
            for n, kd in zip(g.br_name, g.br_kind, strict=True)
        ],
        "losses_kw": round(float(res.losses_kw), 3),
        "summary": {k: v for k, v in res.summary().items() if not isinstance(v, dict)},
    }


def profile_payload(g: Geometry, snap: dict[str, Any]) -> dict[str, Any]:
    """The classic OpenDSS voltage profile: per phase, each bus's voltage (pu) against its
    distance from the substation, and the segments (branches present on that phase, as
    index pairs into the phase's points) that join them."""
    phases = []
    for p in range(3):
        v = np.array([np.nan if x is None else x for x in snap["v_pu"][p]], float)
        ok = np.isfinite(v) & np.isfinite(g.distance) & (v > 0.05)  # energised, reached
        bus = np.flatnonzero(ok)
        pos = np.full(len(g.buses), -1)
        pos[bus] = np.arange(bus.size)
        on = (g.br_mask & (1 << p)) > 0
        a, b = pos[g.br_from], pos[g.br_to]
        seg = on & (a >= 0) & (b >= 0) & (g.br_len_km > 0)
        phases.append(
            {
                "phase": "ABC"[p],
                "bus": bus.tolist(),
                "distance": _r(g.distance[bus], 4),
                "v_pu": _r(v[bus], 5),
                "seg_from": a[seg].tolist(),
                "seg_to": b[seg].tolist(),
            }
        )
    return {
        "name": snap["name"],
        "distance_unit": g.distance_unit,
        "source": snap["source"],
        "phases": phases,
    }


class FeederSource:
    """One feeder the API serves: its grid, cached geometry, and where snapshots come from
    (``world``, a :class:`PhaseAwareWorld`, else one cached twin power flow of ``grid``)."""

    def __init__(self, grid: ThreePhaseGrid, world: PhaseAwareWorld | None = None) -> None:
        self.grid, self.world = grid, world
        self._lock = threading.Lock()
        self._geometry: Geometry | None = None
        self._twin_result: UnbalancedResult | None = None
        self._geometry_json: dict[str, Any] | None = None
        self._snap: tuple[UnbalancedResult, dict[str, Any]] | None = None

    @classmethod
    def of_world(cls, world: PhaseAwareWorld) -> FeederSource:
        """A source that reads the loop's world."""
        return cls(world.grid3p, world)

    def geometry(self) -> Geometry:
        """The geometry, computed once."""
        with self._lock:
            if self._geometry is None:
                self._geometry = build_geometry(self.grid)
            return self._geometry

    def geometry_payload(self) -> dict[str, Any]:
        """The geometry as JSON columns, built once."""
        g = self.geometry()
        with self._lock:
            if self._geometry_json is None:
                self._geometry_json = geometry_payload(g, self.grid.name)
            return self._geometry_json

    def result(self) -> tuple[UnbalancedResult, str]:
        """The latest result and where it came from (``loop`` or ``twin``)."""
        if self.world is not None:
            res = self.world.phase_result()
            if res is not None:
                return res, "loop"
        with self._lock:
            if self._twin_result is None:
                from gridpilot.twin.unbalanced.inverters import twin_for

                self._twin_result = twin_for(self.grid).powerflow(control_mode="static")
            return self._twin_result, "twin"

    def open_branches(self) -> frozenset[str] | None:
        """The world's open branches (names, lower case) where it says them
        (``open_branches()``), else ``None``: the grid's own switch states."""
        fn = getattr(self.world, "open_branches", None)
        return frozenset(str(n).lower() for n in fn()) if callable(fn) else None

    def snapshot(self) -> dict[str, Any]:
        """The snapshot payload of the latest result (built once per result object)."""
        res, src = self.result()
        g = self.geometry()
        with self._lock:
            if self._snap is not None and self._snap[0] is res:  # held: its id is not reused
                return self._snap[1]
        out = snapshot_payload(g, self.grid, res, src, self.open_branches())
        with self._lock:
            self._snap = (res, out)
        return out
