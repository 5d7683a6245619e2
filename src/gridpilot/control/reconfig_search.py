"""Branch exchange for loss reconfiguration, on the batched radial power flow.

:class:`ExchangeSearch` holds a grid's sections, the movable switches and the radial solver
(roots at every in-service source), and scores switch states by the objective of
:func:`gridpilot.control.reconfig.reconfigure`: feasible within the hard band first, then (when
a target band is asked for explicitly) least violation of the target, then least losses.

Load moves between trees fed by *different* sources too: the tree path between the two ends of
an open switch runs, when they hang below different sources, from each end up to its own
source (the sources are joined through the upstream grid, a virtual super-root), so closing the
tie and opening a switch on either side moves load from one source to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.control.radialpf import RadialSolver
from gridpilot.control.sections import Sections
from gridpilot.model import ElementType, Grid

LOSS_TOL_KW = 1e-6
LIMIT_NAMES = ("v_min_pu", "v_max_pu", "max_loading_pct")


@dataclass(frozen=True)
class Band:
    """A voltage band (pu) and a loading limit (%)."""

    v_min_pu: float
    v_max_pu: float
    max_loading_pct: float

    def as_dict(self) -> dict[str, float]:
        """Plain JSON form (rounded)."""
        return {
            "v_min_pu": round(self.v_min_pu, 6),
            "v_max_pu": round(self.v_max_pu, 6),
            "max_loading_pct": round(self.max_loading_pct, 3),
        }

    def violation(self, vmin: Any, vmax: Any, load: Any) -> Any:
        """How far values lie outside the band (pu, loading in % / 100; 0 inside)."""
        return (
            np.maximum(0.0, self.v_min_pu - vmin)
            + np.maximum(0.0, vmax - self.v_max_pu)
            + np.maximum(0.0, load - self.max_loading_pct) / 100
        )

    def broken(self, vmin: float, vmax: float, load: float, tol_pu: float = 1e-4) -> list[str]:
        """Names of the limits that ``vmin``/``vmax``/``load`` break (with a small tolerance)."""
        out = []
        if vmin < self.v_min_pu - tol_pu:
            out.append("v_min_pu")
        if vmax > self.v_max_pu + tol_pu:
            out.append("v_max_pu")
        if load > self.max_loading_pct + 0.5:
            out.append("max_loading_pct")
        return out


@dataclass
class Scores:
    """Sweep results of a batch of switch states: losses (kW), extremes, feasibility within the
    hard band, violation of the target band, and which hard limits each state breaks."""

    losses_kw: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    load_pct: np.ndarray
    ok: np.ndarray
    target_viol: np.ndarray
    breaks: np.ndarray  # (T, 3) bool: v_min, v_max, loading of the hard band broken
    topology_ok: np.ndarray  # radial, converged, every served bus still supplied
    target_breaks: np.ndarray  # (T, 3) bool: v_min, v_max, loading of the target broken

    def key(self, i: int, use_target: bool) -> tuple[float, float]:
        """Objective of state ``i`` (smaller is better): (target violation, losses)."""
        tv = float(np.round(self.target_viol[i], 9)) if use_target else 0.0
        return (tv, float(self.losses_kw[i]))


@dataclass
class ExchangeSearch:
    """Branch exchange over a grid's movable switches (see the module docstring)."""

    grid: Grid
    sections: Sections
    movable: np.ndarray
    served: np.ndarray  # sections that must stay energised
    hard: Band
    target: Band
    use_target: bool
    solver: RadialSolver = field(init=False)
    rounds: int = 0
    blocked_by: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        g = self.grid
        self.solver = sv = RadialSolver(g)
        on = g.source["in_service"]
        roots = g.bus.position_map(g.source["bus"][on])
        self._model = sv.prepare(
            np.arange(len(g.bus)), np.arange(sv.branch_from.size), roots, g.source["vm_pu"][on]
        )
        self._served_bus = self.served[self.sections.of_bus]
        # the branch (solver numbering) each switch interrupts when open
        sw = g.switch
        nl, nt = len(g.line), len(g.transformer)
        br = np.full(len(sw), -1, np.int64)
        m = sw["et"] == ElementType.LINE
        br[m] = g.line.position_map(sw["element"][m], "line")
        m = sw["et"] == ElementType.TRANSFORMER
        br[m] = nl + g.transformer.position_map(sw["element"][m], "transformer")
        br[sv.bus_switch_pos] = nl + nt + np.arange(sv.bus_switch_pos.size)
        self._sw_pos = np.flatnonzero(br >= 0)
        self._sw_br = br[self._sw_pos]

    def conducting(self, states: np.ndarray) -> np.ndarray:
        """(T, branches) conducting flag of every solver branch for switch states (T, n_switch)."""
        t_n = states.shape[0]
        blocked = np.zeros((t_n, self.solver.branch_from.size), bool)
        opened = ~states[:, self._sw_pos]
        for j, b in enumerate(self._sw_br.tolist()):
            blocked[:, b] |= opened[:, j]
        return self.solver.in_service[None, :] & ~blocked

    def score(self, states: np.ndarray) -> Scores:
        """Score switch states (T, n_switch) with one batched radial power flow."""
        res = self.solver.run(self._model, self.conducting(states), tol=1e-9, max_iter=30)
        breaks = _breaks(self.hard, res.vmin_pu, res.vmax_pu, res.max_loading_pct)
        full = (
            res.supplied[:, self._served_bus].all(axis=1)
            if self._served_bus.any()
            else np.ones(len(states), bool)
        )
        topo = res.radial & res.converged & full
        ok = topo & ~breaks.any(axis=1)
        tv = self.target.violation(res.vmin_pu, res.vmax_pu, res.max_loading_pct)
        tb = _breaks(self.target, res.vmin_pu, res.vmax_pu, res.max_loading_pct)
        return Scores(
            res.losses_kw, res.vmin_pu, res.vmax_pu, res.max_loading_pct, ok, tv, breaks, topo, tb
        )

    def moves(self, closed: np.ndarray) -> list[np.ndarray]:
        """Every branch exchange of a radial state: close one open movable switch, open one
        movable switch on the path it closes (across sources too)."""
        sec = self.sections
        st = sec.state(closed)
        out: list[np.ndarray] = []
        for f in np.flatnonzero(~closed & self.movable):
            for e in tree_path(st, int(sec.sw_a[f]), int(sec.sw_b[f])):
                if self.movable[e]:
                    c = closed.copy()
                    c[f] = True
                    c[e] = False
                    out.append(c)
        return out

    def run(self, closed: np.ndarray, max_rounds: int) -> np.ndarray:
        """Best-improvement branch exchange from a radial state; returns the final state.

        Records in ``blocked_by`` the hard limits (and, when a target is asked for, the
        ``"target ..."`` limits) that ruled out a lower-loss exchange of the final state: the
        limits binding there."""
        cur = self.score(closed[None, :])
        best = cur.key(0, self.use_target) if cur.ok[0] else (np.inf, np.inf)
        for _ in range(max_rounds):
            self.rounds += 1
            moves = self.moves(closed)
            if not moves:
                break
            sc = self.score(np.array(moves))
            keys = [
                sc.key(i, self.use_target) if sc.ok[i] else (np.inf, np.inf)
                for i in range(len(moves))
            ]
            k = min(range(len(moves)), key=keys.__getitem__)
            if better(keys[k], best):
                best, closed = keys[k], moves[k]
                continue
            lower = sc.topology_ok & (sc.losses_kw < best[1] - LOSS_TOL_KW)
            worse_target = sc.target_viol > best[0] + 1e-9
            for j, name in enumerate(LIMIT_NAMES):
                if np.any(sc.breaks[lower, j]):
                    self.blocked_by.add(name)
                if self.use_target and np.any(sc.target_breaks[lower & worse_target, j]):
                    self.blocked_by.add(f"target {name}")
            break
        return closed


def kicked(search: ExchangeSearch, closed: np.ndarray, kicks: int, max_rounds: int) -> np.ndarray:
    """Iterated local search: from a local optimum, take each of the ``kicks`` best feasible
    exchanges that do *not* improve it and run branch exchange again; returns the best state
    found (``closed`` itself when no kick leads lower)."""
    base = search.score(closed[None, :])
    best_key = base.key(0, search.use_target) if base.ok[0] else (np.inf, np.inf)
    moves = search.moves(closed)
    if not moves or kicks <= 0:
        return closed
    sc = search.score(np.array(moves))
    order = [i for i in np.lexsort((sc.losses_kw, sc.target_viol)) if sc.ok[i]][:kicks]
    best = closed
    for i in order:
        end = search.run(moves[int(i)].copy(), max_rounds)
        e = search.score(end[None, :])
        if e.ok[0] and better(e.key(0, search.use_target), best_key):
            best, best_key = end, e.key(0, search.use_target)
    return best


def _breaks(band: Band, vmin: np.ndarray, vmax: np.ndarray, load: np.ndarray) -> np.ndarray:
    """(T, 3) bool: the band's v_min, v_max and loading limits broken."""
    return np.stack(
        [vmin < band.v_min_pu, vmax > band.v_max_pu, load > band.max_loading_pct], axis=1
    )


def better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Objective ``a`` beats ``b``: less target violation, or as much and fewer losses."""
    if a[0] < b[0] - 1e-9:
        return True
    return abs(a[0] - b[0]) <= 1e-9 and a[1] < b[1] - LOSS_TOL_KW


def tree_path(st: Any, u: int, v: int) -> list[int]:
    """Parent switches on the path between sections ``u`` and ``v`` of a supply tree.

    Where ``u`` and ``v`` hang below different sources the path runs through the virtual
    super-root joining the sources: each side up to its own source section. Empty when either
    is dead or ``u == v``.
    """
    if u == v or not (st.energised[u] and st.energised[v]):
        return []
    au: list[int] = []
    anc_u: dict[int, int] = {}
    x = u
    while True:
        anc_u[x] = len(au)
        if st.parent[x] < 0:
            break
        au.append(int(st.parent_switch[x]))
        x = int(st.parent[x])
    bv: list[int] = []
    y = v
    while y not in anc_u:
        if st.parent[y] < 0:  # v's source differs from u's: through the super-root
            return au + bv
        bv.append(int(st.parent_switch[y]))
        y = int(st.parent[y])
    return au[: anc_u[y]] + bv
