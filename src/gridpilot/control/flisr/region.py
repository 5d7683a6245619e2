"""The restoration region of a dead island: the island and the live feeders behind its ties,
compiled for the batched radial sweep, fed through the grid upstream, and the evaluation of
candidate switch states against the limits (all functions of a :class:`FlisrEngine`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gridpilot.control.flisr.state import Prefault, Region
from gridpilot.control.radialpf import S_BASE_MVA
from gridpilot.control.sections import SectionState, subtree_mask

if TYPE_CHECKING:
    from gridpilot.control.flisr.engine import FlisrEngine

# candidate sweeps stop at this voltage change (pu): 100x below the 1e-5 pu calibration margin
SWEEP_TOL_PU = 1e-7
# margin (%) on the estimated loading of the transformers feeding a region's roots
ROOT_TRAFO_MARGIN_PCT = 0.5


def build_region(
    eng: FlisrEngine, sections: np.ndarray, st: SectionState, pre: Prefault, extra_sw: np.ndarray
) -> Region:
    """Buses, branches and roots of the feeders holding ``sections`` (plus entry switches)."""
    sec = eng.sections
    ins = np.zeros(sec.n, bool)
    ins[sections] = True
    ins &= ~sec.source
    # top sections: energised region sections whose parent is a source section
    par = st.parent
    tops = np.flatnonzero(ins & (par >= 0) & sec.source[np.maximum(par, 0)])
    root_sw = st.parent_switch[tops]
    # entries from a source section directly
    src_side = sec.source[sec.sw_a[extra_sw]] | sec.source[sec.sw_b[extra_sw]]
    link_sw = np.concatenate([root_sw, extra_sw[src_side]]).astype(np.int64)
    br_in = np.flatnonzero(ins[np.maximum(eng.branch_section, 0)] & (eng.branch_section >= 0))
    # bus-bus switches with both sides in the region
    bsw = eng.solver.bus_switch_pos
    nl_nt = eng.solver.n_line + eng.solver.n_trafo
    both = ins[sec.sw_a[bsw]] & ins[sec.sw_b[bsw]] if bsw.size else np.zeros(0, bool)
    link_br = eng.switch_branch[link_sw]
    branches = np.unique(np.concatenate([br_in, nl_nt + np.flatnonzero(both), link_br]))
    bus_in = ins[sec.of_bus]
    lf, lt = eng.solver.branch_from[link_br], eng.solver.branch_to[link_br]
    roots = np.unique(np.concatenate([lf[~bus_in[lf]], lt[~bus_in[lt]]]))
    keep = bus_in.copy()
    keep[roots] = True
    buses = np.flatnonzero(keep)
    branches = branches[
        keep[eng.solver.branch_from[branches]] & keep[eng.solver.branch_to[branches]]
    ]
    # switches on region branches
    sw_br = eng.switch_branch
    in_reg = np.zeros(eng.solver.branch_from.size + 1, bool)  # last slot: switches without a branch
    in_reg[branches] = True
    pair_sw = np.flatnonzero(in_reg[sw_br])
    pair_br = np.searchsorted(branches, sw_br[pair_sw])
    v_root = pre.v_pu[roots]
    v_root = np.where(v_root > 0.5, v_root, 1.0)
    lv = eng._trafo_lv
    root_trafo = [np.flatnonzero((lv == r) & eng.grid.transformer["in_service"]) for r in roots]
    trafo_pct = root_trafo_pct(eng, roots, root_trafo, st, pre)
    return Region(
        buses,
        branches,
        roots,
        v_root,
        pair_sw,
        pair_br,
        sec.of_bus[buses],
        root_trafo,
        trafo_pct,
        eng.solver.prepare(buses, branches, roots, v_root),
        eng.solver.in_service[branches],
    )


def attach_upstream(
    eng: FlisrEngine, region: Region, work: np.ndarray, st: SectionState, pre: Prefault
) -> None:
    """Feed the region's roots through the grid upstream of them (in place).

    Each root gets its Thevenin impedance, a virtual source at the open-circuit voltage and,
    as a constant-power load on the root, what it feeds outside the region; the sources are
    then trimmed so that, in the ``work`` state, each root sits at its present voltage (the
    pre-fault voltage raised by the load the trip removed). Without an upstream model the
    roots stay held at their pre-fault voltages.
    """
    up = eng._upstream(pre)
    if up is None or not region.roots.size:
        return
    removed = (pre.v_pu > 0.5) & ~st.energised[eng.sections.of_bus]
    v_now, z, v_open, s_tot = up.equivalent(region.roots, removed, eng.solver)
    if not np.all(np.isfinite(v_now)) or np.any(v_now < 0.5):
        return
    cond = conducting(region, work[None, :])
    ideal = eng.solver.prepare(region.buses, region.branches, region.roots, v_now)
    res = eng.solver.run(ideal, cond, tol=SWEEP_TOL_PU, max_iter=40)
    if not res.converged[0]:
        return
    s_other = s_tot - res.root_s_mva[0] / S_BASE_MVA  # fed by the root outside the region
    model = eng.solver.prepare(region.buses, region.branches, region.roots, v_open, z, s_other)
    real_root = model.bt[model.k_real :]
    for _ in range(8):  # trim the sources: the roots at their present voltage in ``work``
        res = eng.solver.run(model, cond, tol=SWEEP_TOL_PU, max_iter=40)
        if not res.converged[0]:
            return
        err = v_now - res.v_pu[0][real_root]
        model.v_root = model.v_root + err
        if np.max(np.abs(err)) < 1e-8:
            break
    region.model = model
    region.v_root = v_now


def root_trafo_pct(
    eng: FlisrEngine, roots: np.ndarray, trafos: list[np.ndarray], st: SectionState, pre: Prefault
) -> np.ndarray:
    """Loading (%) of the transformers feeding each root in the present state: the
    pre-fault loading less the load the trip removed from their source section (the
    apparent power of the de-energised loads that section fed before the fault)."""
    sec, sv = eng.sections, eng.solver
    out = np.zeros(roots.size)
    if not any(t.size for t in trafos):
        return out
    if pre.source_of is None:
        src = np.full(sec.n, -1, np.int64)
        for s_ in pre.st.order.tolist():
            p_ = int(pre.st.parent[s_])
            src[s_] = s_ if sec.source[s_] or p_ < 0 else src[p_]
        pre.source_of = src
    va = pre.v_pu
    s_bus = (sv.s_p + sv.s_i * va + sv.s_z * va**2) * (va > 0.5)
    removed = (va > 0.5) & ~st.energised[sec.of_bus]
    src_bus = pre.source_of[sec.of_bus]
    sn = eng.grid.transformer["sn_mva"]
    for j, trs in enumerate(trafos):
        if not trs.size:
            continue
        lost = s_bus[removed & (src_bus == sec.of_bus[roots[j]])].sum() * S_BASE_MVA
        base = float(np.max(pre.trafo_loading_pct[trs]))
        out[j] = max(base - abs(lost) / float(sn[trs].sum()) * 100, 0.0)
    return out


def conducting(region: Region, states: np.ndarray) -> np.ndarray:
    """(T, k) conducting flag of the region's branches in switch states ``states``."""
    t_n = states.shape[0]
    blocked = np.zeros((t_n, region.branches.size), bool)
    opened = ~states[:, region.pair_sw]
    if opened.any():
        tt, pp = np.nonzero(opened)
        blocked[tt, region.pair_br[pp]] = True
    return ~blocked & region.in_service[None, :]


def evaluate(
    eng: FlisrEngine,
    region: Region,
    states: np.ndarray,
    limits: tuple[float, float, float],
    pre: Prefault,
    base: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Violation (0 = feasible), vmin, max loading and radial flag of candidate states.

    Row 0 of the batch is ``base`` (the state before restoring this island): the change of
    power drawn at each root against it, added to the pre-fault loading of the transformers
    feeding that root, estimates their loading. Limits are tightened by the calibration
    margins of the radial sweep against the twin.
    """
    allst = np.concatenate([base[None, :], states])
    cond = conducting(region, allst)
    res = eng.solver.run(region.model, cond, tol=SWEEP_TOL_PU, max_iter=20, warm_from_first=True)
    vmin_l, vmax_l, load_l = limits
    vmin_l += pre.margin_v_pu + eng._extra_margin[0]
    vmax_l -= pre.margin_v_pu + eng._extra_margin[0]
    vmin = np.where(np.isfinite(res.vmin_pu), res.vmin_pu, 1.0)[1:]
    vmax = np.where(np.isfinite(res.vmax_pu), res.vmax_pu, 1.0)[1:]
    load = res.max_loading_pct[1:].copy()
    # the sweep's loadings carry its calibration margin; the estimate of the transformers
    # feeding the roots (from the change of power drawn through the upstream model) its own
    over = load + pre.margin_loading_pct
    if len(eng.grid.transformer):
        ds = np.abs(res.root_s_mva[1:]) - np.abs(res.root_s_mva[0])[None, :]
        sn = eng.grid.transformer["sn_mva"]
        for j, trs in enumerate(region.root_trafo):
            if trs.size:
                est = region.root_trafo_pct[j] + ds[:, j] / float(sn[trs].sum()) * 100
                load = np.maximum(load, est)
                over = np.maximum(over, est + ROOT_TRAFO_MARGIN_PCT)
    viol = (
        np.maximum(0, vmin_l - vmin)
        + np.maximum(0, vmax - vmax_l)
        + np.maximum(0, over + eng._extra_margin[1] - load_l) / 100
    )
    ok = res.radial[1:] & res.converged[1:]
    viol = np.where(ok, viol, np.inf)
    return viol, vmin, load, res.radial[1:]


def feeder_sections(eng: FlisrEngine, st: SectionState, live_sections: np.ndarray) -> np.ndarray:
    """Sections of the feeders (subtrees below a source section) holding ``live_sections``."""
    sec = eng.sections
    tops: list[int] = []
    for s in np.unique(live_sections):
        s = int(s)
        if sec.source[s]:
            continue
        while st.parent[s] >= 0 and not sec.source[st.parent[s]]:
            s = int(st.parent[s])
        tops.append(s)
    if not tops:
        return np.zeros(0, np.int64)
    return np.flatnonzero(subtree_mask(st.parent, tops))
