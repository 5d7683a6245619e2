"""Service restoration: a radial way to feed each dead healthy island through normally-open ties.

For one island (:func:`restore_island`) the search runs in named steps on a local graph of
the island's sections, the live feeders behind its ties and one node for all sources:

1. :func:`_candidates`: one tie, or two ties with a cut on the path between them;
2. :func:`_branch_exchange`: close a switch, open one on the loop it makes, from the
   least-violating configuration, while it improves;
3. :func:`_shed`: open the cut with the best violation relief per weighted load lost until the
   island is fed within limits (one batched prefix of cuts per step);
4. :func:`_add_back`: re-close, greedily, any shed part that fits (alone or swapped).

Every candidate batch is checked at once by the batched radial sweep (:func:`region.evaluate`).
The result is an :class:`IslandPlan`; :func:`restore_all` applies them island by island.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gridpilot.control.flisr._kernels import csr, reach_batch
from gridpilot.control.flisr.graph import (
    adjacency,
    close_order,
    dead_islands,
    exchanges,
    forest_path,
    pick_best,
    unique_rows,
)
from gridpilot.control.flisr.region import attach_upstream, build_region, evaluate, feeder_sections
from gridpilot.control.flisr.state import Case, Prefault, Region, Restoration
from gridpilot.control.sections import SectionState

if TYPE_CHECKING:
    from gridpilot.control.flisr.engine import FlisrEngine

log = logging.getLogger(__name__)

SWAP_STEPS = 1  # add-back steps that also try swaps (re-close one shed part, cut another)
EXCHANGE_STARTS = 1  # branch-exchange rounds start from the least-violating configuration only


@dataclass
class IslandPlan:
    """How one dead island is fed: switch states after (``closed``), the switches opened and
    closed (in closing order), the island's sections left shed, and the sweep's minimum voltage
    (pu) and maximum loading (%) of the restored region."""

    closed: np.ndarray
    opens: list[int]
    closes: list[int]
    shed: list[int]
    vmin_pu: float
    max_loading_pct: float


@dataclass
class _Scored:
    """A batch of candidate configurations (rows of on/off per local edge) and their sweep:
    violation (0 = feasible), vmin (pu), max loading (%) and weighted island load served."""

    configs: np.ndarray
    viol: np.ndarray
    vmin: np.ndarray
    load: np.ndarray
    wsv: np.ndarray


@dataclass
class _Current:
    """The configuration kept so far, its violation, vmin (pu), loading (%) and weight served."""

    on: np.ndarray
    viol: float
    vmin: float
    load: float
    w: float


@dataclass
class _IslandSearch:
    """The local graph of one island's restoration search and how to score configurations.

    Local nodes: island sections ``0..ki-1``, feeder sections ``ki..k-1``, all sources ``k``.
    Local edges (switches ``e_sw``): closed switches first (``n_tree``), then open usable ones
    inside, then the entries into the island (from ``n_first_entry``).
    """

    eng: FlisrEngine
    isl: np.ndarray
    work: np.ndarray
    limits: tuple[float, float, float]
    pre: Prefault
    region: Region
    loc_secs: np.ndarray
    e_sw: np.ndarray
    e_u: np.ndarray
    e_v: np.ndarray
    n_tree: int
    n_first_entry: int
    cuttable: np.ndarray
    base_on: np.ndarray
    w_isl: np.ndarray
    csr: tuple[np.ndarray, np.ndarray, np.ndarray]

    @property
    def ki(self) -> int:
        """Number of island sections."""
        return int(self.isl.size)

    @property
    def k(self) -> int:
        """Number of island and feeder sections (the sources' node index)."""
        return int(self.loc_secs.size)

    @property
    def live_req(self) -> np.ndarray:
        """Local nodes that must stay fed: the feeder sections."""
        return np.arange(self.ki, self.k)

    def served(self, cfgs: np.ndarray) -> np.ndarray:
        """(N, k+1) bool: local nodes joined to the sources by the closed edges of each config."""
        ptr, adj_e, adj_o = self.csr
        return reach_batch(np.ascontiguousarray(cfgs), ptr, adj_e, adj_o, self.k)

    def keeps_feeders(self, srv: np.ndarray) -> np.ndarray:
        """Per config: every feeder section stays fed."""
        return np.asarray(srv[:, self.live_req].all(axis=1))

    def ev(
        self, cfgs: np.ndarray, srv: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Violation (inf where a feeder is lost), vmin (pu), max loading (%) and weighted
        island load served of configurations ``cfgs`` (``srv``: their :meth:`served`)."""
        states = np.repeat(self.work[None, :], cfgs.shape[0], axis=0)
        states[:, self.e_sw] = cfgs
        v_, vm_, ld_, _ = evaluate(self.eng, self.region, states, self.limits, self.pre, self.work)
        return (
            np.where(self.keeps_feeders(srv), v_, np.inf),
            vm_,
            ld_,
            srv[:, : self.ki] @ self.w_isl,
        )

    def memo_key(self) -> bytes:
        """The same island, region and switch states give the same search (several passes)."""
        parts = (
            self.isl,
            self.loc_secs,
            self.e_sw,
            self.work[self.region.pair_sw],
            self.cuttable,
            self.region.roots,
        )
        return b"|".join(x.tobytes() for x in parts)


def restore_all(eng: FlisrEngine, work: np.ndarray, case: Case) -> Restoration:
    """Restore every dead healthy island from switch states ``work`` (after isolation);
    returns the :class:`Restoration` (islands of most weighted load first, four passes at most)."""
    sec = eng.sections
    out = Restoration(work.copy(), [], [], [], [], [])
    for _pass in range(4):
        st_w = sec.state(out.work)
        dead = case.interrupted & ~case.iso & ~st_w.energised
        dead[out.shed] = False
        if not dead.any():
            break
        islands = dead_islands(sec, out.work, dead)
        progress = False
        for isl in sorted(islands, key=lambda a: -float(sec.weight[a].sum())):
            st_w = sec.state(out.work)
            res = restore_island(eng, isl, out.work, st_w, case)
            if res is None or not res.closes:
                continue
            progress = True
            out.work = res.closed
            out.opens += res.opens
            out.closes += res.closes
            out.shed += res.shed
            out.vmin.append(res.vmin_pu)
            out.load.append(res.max_loading_pct)
        if not progress:
            break
    return out


def restore_island(
    eng: FlisrEngine, isl: np.ndarray, work: np.ndarray, st: SectionState, case: Case
) -> IslandPlan | None:
    """Best radial way to feed one dead island (sections ``isl``) from switch states ``work``
    (section tree ``st``) within ``case``'s limits and locks; None when it has no usable tie."""
    s = _island_search(eng, isl, work, st, case)
    if s is None:
        return None
    key = s.memo_key()
    hit = eng._island_memo.get(key)
    if hit is not None:
        cur = _Current(hit[0].copy(), 0.0, hit[1], hit[2], 0.0)
    else:
        cur = _search(s)
        eng._island_memo[key] = (cur.on.copy(), cur.vmin, cur.load)
    return _island_plan(s, cur, st)


def _island_search(
    eng: FlisrEngine, isl: np.ndarray, work: np.ndarray, st: SectionState, case: Case
) -> _IslandSearch | None:
    """The island's region (island + the live feeders behind every entry, since load may move
    between them) and local graph; None when no usable tie enters the island."""
    locked, pre = case.locked, case.pre
    sec = eng.sections
    inisl = np.zeros(sec.n, bool)
    inisl[isl] = True
    a, b = sec.sw_a, sec.sw_b
    usable = sec.sw_remote & ~locked
    live = st.energised
    entry = np.flatnonzero(~work & usable & ((inisl[a] & live[b]) | (inisl[b] & live[a])))
    if entry.size == 0:
        return None
    live_side = np.where(inisl[a[entry]], b[entry], a[entry])
    feeders = feeder_sections(eng, st, live_side)
    feeders = feeders[~inisl[feeders]]
    region = build_region(eng, np.concatenate([isl, feeders]), st, pre, entry)
    attach_upstream(eng, region, work, st, pre)
    loc_secs = np.concatenate([isl, feeders]).astype(np.int64)
    k = loc_secs.size
    lid = np.full(sec.n, -1, np.int64)
    lid[loc_secs] = np.arange(k)
    lid[sec.source] = k
    both = (lid[a] >= 0) & (lid[b] >= 0) & (a != b) & ((lid[a] < k) | (lid[b] < k))
    tree_e = np.flatnonzero(both & work)
    opn = np.flatnonzero(both & ~work & usable)
    ent_mask = inisl[a[opn]] != inisl[b[opn]]
    e_sw = np.concatenate([tree_e, opn[~ent_mask], opn[ent_mask]])
    e_u, e_v = lid[a[e_sw]], lid[b[e_sw]]
    n_tree = tree_e.size
    cuttable = np.concatenate([sec.sw_remote[tree_e] & ~locked[tree_e], np.ones(opn.size, bool)])
    base_on = np.zeros(e_sw.size, bool)
    base_on[:n_tree] = True
    weight_local = np.concatenate([sec.weight[loc_secs], [0.0]])
    return _IslandSearch(
        eng=eng,
        isl=isl,
        work=work,
        limits=case.limits,
        pre=pre,
        region=region,
        loc_secs=loc_secs,
        e_sw=e_sw,
        e_u=e_u,
        e_v=e_v,
        n_tree=n_tree,
        n_first_entry=n_tree + int((~ent_mask).sum()),
        cuttable=cuttable,
        base_on=base_on,
        w_isl=weight_local[: isl.size],
        csr=csr(k + 1, e_u, e_v),
    )


def _search(s: _IslandSearch) -> _Current:
    """Candidates, branch exchange, then shedding and add-back when nothing fits whole."""
    scored, best = _branch_exchange(s, _candidates(s))
    cur = _Current(
        scored.configs[best].copy(),
        float(scored.viol[best]),
        float(scored.vmin[best]),
        float(scored.load[best]),
        float(scored.wsv[best]),
    )
    if not cur.viol > 0:  # feasible (a NaN violation, too, is left as it is)
        return cur
    cur = _shed(s, cur)
    return _add_back(s, cur)


def _candidates(s: _IslandSearch) -> _Scored:
    """Round 0: every single tie, and every pair of ties with one cut on the path between them."""
    cfg_list: list[np.ndarray] = []
    tree_adj = adjacency(s.k, s.e_u[: s.n_tree], s.e_v[: s.n_tree])
    ent_idx = np.arange(s.n_first_entry, s.e_sw.size)
    for i in ent_idx:
        on = s.base_on.copy()
        on[i] = True
        cfg_list.append(on)
    ki = s.ki
    att = {int(i): int(s.e_u[i] if s.e_u[i] < ki else s.e_v[i]) for i in ent_idx}
    for x in range(ent_idx.size):
        for y in range(x + 1, ent_idx.size):
            ti, tj = int(ent_idx[x]), int(ent_idx[y])
            for e in forest_path(tree_adj, att[ti], att[tj]):
                if not s.cuttable[e]:
                    continue
                on = s.base_on.copy()
                on[ti] = on[tj] = True
                on[e] = False
                cfg_list.append(on)
    configs = unique_rows(np.array(cfg_list, bool).reshape(-1, s.e_sw.size))
    return _Scored(configs, *s.ev(configs, s.served(configs)))


def _branch_exchange(s: _IslandSearch, sc: _Scored) -> tuple[_Scored, int]:
    """Branch-exchange rounds from the least-violating configuration(s) while the best
    violates and the rounds improve; returns all configurations scored and the best's row."""
    eng = s.eng
    best = pick_best(sc.configs, sc.viol, sc.vmin, s.base_on, sc.wsv)
    rounds = 0
    while sc.viol[best] > 0 and rounds < eng.max_rounds and time.perf_counter() < eng._deadline:
        rounds += 1
        starts = np.argsort(sc.viol, kind="stable")[:EXCHANGE_STARTS]
        moves: list[np.ndarray] = []
        for s_i in starts:
            if not np.isfinite(sc.viol[s_i]):
                continue
            moves.append(exchanges(s.k, s.e_u, s.e_v, sc.configs[int(s_i)], s.cuttable))
        mv_cfg = unique_rows(np.concatenate(moves) if moves else np.zeros((0, s.e_sw.size), bool))
        if not mv_cfg.shape[0]:
            break
        mv, mvmin, mload, mw = s.ev(mv_cfg, s.served(mv_cfg))
        stalled = mv.min() >= sc.viol.min() - 1e-12
        sc = _Scored(
            np.concatenate([sc.configs, mv_cfg]),
            np.concatenate([sc.viol, mv]),
            np.concatenate([sc.vmin, mvmin]),
            np.concatenate([sc.load, mload]),
            np.concatenate([sc.wsv, mw]),
        )
        best = pick_best(sc.configs, sc.viol, sc.vmin, s.base_on, sc.wsv)
        if stalled:
            break
    return sc, best


def _fed(s: _IslandSearch, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The configurations that still feed part of the island and every feeder: their rows,
    :meth:`_IslandSearch.served`, and the mask over ``cands``."""
    srv = s.served(cands)
    ok = srv[:, : s.ki].any(axis=1) & s.keeps_feeders(srv)
    return cands[ok], srv[ok], ok


def _shed(s: _IslandSearch, cur: _Current) -> _Current:
    """Open the cut with the best violation relief per weighted load lost, until feasible (or
    out of cuts: the island stays dead); each step then tries a batched prefix of further cuts."""
    eng = s.eng
    guard = 0
    while cur.viol > 0 and guard < 2 * s.k + 4:
        guard += 1
        cut = np.flatnonzero(cur.on & s.cuttable)
        cands = np.repeat(cur.on[None, :], cut.size, axis=0)
        cands[np.arange(cut.size), cut] = False
        cands, srv_c, okc = _fed(s, cands)
        cut = cut[okc]
        if not cands.shape[0]:
            return _Current(s.base_on.copy(), 0.0, float("nan"), float("nan"), cur.w)
        cv, cvmin, cload, w = s.ev(cands, srv_c)
        feas = np.flatnonzero(cv <= 0)
        lost = np.maximum(cur.w - w, 1e-9)
        gain = np.where(np.isfinite(cv), (cur.viol - cv) / lost, -np.inf)
        pick = int(np.argmax(gain)) if np.max(gain) > 0 else int(np.argmin(cv))
        if time.perf_counter() > eng._deadline:  # out of budget: least violation, converge fast
            pick = int(np.argmin(cv))
        if feas.size and w[feas].max() >= w[pick] - 1e-12:
            pick = int(feas[np.argmax(w[feas])])
        cur = _Current(
            cands[pick], float(cv[pick]), float(cvmin[pick]), float(cload[pick]), float(w[pick])
        )
        if cur.viol > 0:
            cur = _shed_prefix(s, cur, cut, gain, pick)
    return cur


def _shed_prefix(
    s: _IslandSearch, cur: _Current, cut: np.ndarray, gain: np.ndarray, pick: int
) -> _Current:
    """One batch for the next shedding steps: keep cutting in the order of this step's relief
    per weighted kW and go straight to the first prefix that is feasible (or the least-violating
    one) when it violates less; the add-back returns what was overdone."""
    rank = np.argsort(-gain, kind="stable")
    rank = rank[(gain[rank] > 0) & (rank != pick)]
    steps: list[np.ndarray] = []
    c = cur.on
    for r in rank.tolist():
        if c[cut[r]]:
            c = c.copy()
            c[cut[r]] = False
            steps.append(c)
    if not steps:
        return cur
    pc, srv_p, _ = _fed(s, np.array(steps))
    if not pc.shape[0]:
        return cur
    pv, pvmin, pload, pw = s.ev(pc, srv_p)
    fp = np.flatnonzero(pv <= 0)
    j = int(fp[0]) if fp.size else int(np.argmin(pv))
    if pv[j] < cur.viol:
        return _Current(pc[j], float(pv[j]), float(pvmin[j]), float(pload[j]), float(pw[j]))
    return cur


def _add_back(s: _IslandSearch, cur: _Current) -> _Current:
    """Add back, greedily, what fits: re-close one shed part, alone or while cutting another
    part (a swap), keeping the most weighted load served; one batch per step."""
    eng = s.eng
    for step in range(2 * s.k + 4):
        if time.perf_counter() > eng._deadline + eng.budget_ms / 1e3:
            log.debug("flisr add-back stopped by the time budget after %d steps", step)
            break
        srv = s.served(cur.on[None, :])[0]
        add = np.flatnonzero(~cur.on & (srv[s.e_u] != srv[s.e_v]))
        if not add.size:
            break
        cutc = np.flatnonzero(cur.on & s.cuttable) if step < SWAP_STEPS else np.zeros(0, np.int64)
        na, nc = add.size, cutc.size
        adds = np.repeat(cur.on[None, :], na * (nc + 1), axis=0)
        adds[np.arange(adds.shape[0]), np.repeat(add, nc + 1)] = True
        sw_rows = np.flatnonzero(np.tile(np.arange(nc + 1) < nc, na))
        adds[sw_rows, np.tile(cutc, na)] = False
        srv_a = s.served(adds)
        better = (srv_a[:, : s.ki] @ s.w_isl > cur.w + 1e-12) & s.keeps_feeders(srv_a)
        adds, srv_a = adds[better], srv_a[better]
        if not adds.shape[0]:
            break
        av, avmin, aload, w = s.ev(adds, srv_a)
        feas = np.flatnonzero(av <= 0)
        if not feas.size:
            break
        pick = int(feas[np.argmax(w[feas])])
        cur = _Current(adds[pick], cur.viol, float(avmin[pick]), float(aload[pick]), float(w[pick]))
    return cur


def _island_plan(s: _IslandSearch, cur: _Current, st: SectionState) -> IslandPlan | None:
    """Switch states and operations of the configuration found; None when it feeds nothing.
    Sections left dead keep their switches as they were: only what separates is opened."""
    srv = s.served(cur.on[None, :])[0]
    keep = s.base_on & ~cur.on & ~srv[s.e_u] & ~srv[s.e_v]
    on = cur.on | keep
    served_mask = srv[: s.ki]
    if not served_mask.any():
        return None
    new = s.work.copy()
    new[s.e_sw] = on
    changed = np.flatnonzero(new != s.work)
    opens = [int(x) for x in changed if not new[x]]
    closes_set = [int(x) for x in changed if new[x]]
    closes = close_order(closes_set, s.eng.sections, new, st.energised)
    shed = [int(s.isl[i]) for i in np.flatnonzero(~served_mask)]
    return IslandPlan(new, opens, closes, shed, cur.vmin, cur.load)
