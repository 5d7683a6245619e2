"""How a phase-aware plan's full power flow stands against its limits and against uncontrolled
charging: the excess over each limit (what ``feasible`` needs at 0), how far it goes past the
uncontrolled fleet's worst (``deeper``: the plan must not), the status and the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.flex.phase_cuts import TOL_V_PU, TOL_VUF_PCT, CutSet
from gridpilot.flex.phase_lp import Devices
from gridpilot.flex.phase_network import Check


def excess(lin: CutSet, c: Check, limit_mw: np.ndarray) -> dict[str, float]:
    """How far a full power flow breaks each limit beyond what the grid does without the fleet."""
    live = c.v_pu > 0.05
    return {
        "vuf_pct": float(np.maximum(c.vuf_pct - lin.vuf_allow - TOL_VUF_PCT, 0).max(initial=0)),
        "v_high_pu": float(np.maximum(c.v_pu - lin.v_hi - TOL_V_PU, 0).max(initial=0)),
        "v_low_pu": float(
            np.where(live, np.maximum(lin.v_lo - c.v_pu - TOL_V_PU, 0), 0).max(initial=0)
        ),
        "phase_mw": float(np.maximum(c.phase_mw - limit_mw - 1e-6, 0).max(initial=0)),
    }


def set_floors(lin: CutSet, before: Check, limit_mw: np.ndarray) -> None:
    """How far the uncontrolled fleet (``before``) goes past each limit at its worst step, per
    bus, node-phase and phase: the plan may not go further (``CutSet.floors``)."""
    live = before.v_pu > 0.05
    lin.floors = (
        np.maximum(lin.vuf_allow, before.vuf_pct.max(axis=1, keepdims=True)),
        np.maximum(lin.v_hi, before.v_pu.max(axis=1, keepdims=True)),
        np.minimum(lin.v_lo, np.where(live, before.v_pu, 9.0).min(axis=1, keepdims=True)),
        np.maximum(limit_mw, before.phase_mw.max(axis=1, keepdims=True)),
    )


def deeper(lin: CutSet, c: Check) -> dict[str, float]:
    """How far a full power flow goes past the uncontrolled fleet's worst (``lin.floors``) at
    any bus, node-phase or phase (0 everywhere: no violation deepened), and the node-phases
    and buses where it does."""
    assert lin.floors is not None
    vuf, hi, lo, mw = lin.floors
    live = c.v_pu > 0.05
    low = np.where(live, lo - c.v_pu - TOL_V_PU, 0)
    high = c.v_pu - hi - TOL_V_PU
    over = c.vuf_pct - vuf - TOL_VUF_PCT
    return {
        "vuf_pct": float(np.maximum(over, 0).max(initial=0)),
        "v_high_pu": float(np.maximum(high, 0).max(initial=0)),
        "v_low_pu": float(np.maximum(low, 0).max(initial=0)),
        "phase_mw": float(np.maximum(c.phase_mw - mw - 1e-6, 0).max(initial=0)),
        "node_phases": int(((low > 0) | (high > 0)).any(axis=1).sum()),
        "buses": int((over > 0).any(axis=1).sum()),
    }


def deep_score(dp: dict[str, float]) -> float:
    """One number of :func:`deeper`'s limits (0: no violation deepened)."""
    return dp["vuf_pct"] + dp["v_high_pu"] + dp["v_low_pu"] + dp["phase_mw"]


def reason(ex: dict[str, float], short_mwh: float, lin: CutSet, c: Check, lp_slack: float) -> str:
    """Why a plan is not feasible (each limit broken, where and by how much; EVs short), or
    that all limits hold."""
    parts = []
    net = lin.net
    if ex["vuf_pct"] > 0:
        b, t = np.unravel_index(int(np.argmax(c.vuf_pct - lin.vuf_allow)), c.vuf_pct.shape)
        why = (
            "the fleet's flexibility is not enough (the schedule needs slack on the VUF cuts)"
            if lp_slack > 1e-6
            else "the linearised limits hold but the power flow still breaks them: more rounds"
        )
        parts.append(
            f"VUF {c.vuf_pct[b, t]:.3f} % at bus {net.tri_buses[b]} step "
            f"{int(net.steps[t])} (allowed {lin.vuf_allow[b, t]:.2f} %): {why}"
        )
    if ex["v_high_pu"] > 0 or ex["v_low_pu"] > 0:
        parts.append(
            f"voltage outside the band by up to {max(ex['v_high_pu'], ex['v_low_pu']):.4f} pu"
        )
    if ex["phase_mw"] > 0:
        parts.append(f"per-phase demand above the limit by {ex['phase_mw']:.4f} MW")
    if short_mwh > 1e-6:
        parts.append(f"EVs {short_mwh * 1e3:.1f} kWh short of their requests")
    return "; ".join(parts) if parts else "all limits kept and every EV request met"


def worse_than(ex: dict[str, float], ref: dict[str, float]) -> list[str]:
    """The limits (``_excess`` keys) a plan's excess ``ex`` breaks further than ``ref``'s."""
    return [k for k in ex if ex[k] > ref[k] + 1e-9]


def status(feasible: bool, best_round: int, deep: dict[str, float]) -> str:
    """``feasible``; ``uncontrolled`` (no round beat it: returned); ``no_deeper`` (limits
    broken, but nowhere further than by uncontrolled charging); ``deeper`` (should not come
    back: the uncontrolled fleet would have been returned)."""
    if feasible:
        return "feasible"
    if best_round == 0:
        return "uncontrolled"
    return "no_deeper" if deep_score(deep) <= 0 else "deeper"


def point_caps(lin: CutSet, before: Check, p_unc: np.ndarray) -> np.ndarray:
    """A cap per injection point (MW, inf = none): where the uncontrolled fleet takes a
    node-phase of the point's bus below the low limit, the point may draw at most its own
    uncontrolled peak at any step. Constraint generation sees only the node-phases it has
    rows for; stacking more EV charging on such a bus than uncontrolled charging ever did is
    what deepens its undervoltage, so the schedule may move that draw in time but not pile
    it up. (Capping every split-phase service as well went further past the floors in the
    first round on ieee8500: 0.053 pu at 438 node-phases vs 0.036 at 315.)"""
    net = lin.net
    live = before.v_pu > 0.05
    low = ((lin.v_lo - before.v_pu > TOL_V_PU) & live).any(axis=1)
    buses = {net.nodes[int(n)][0] for n in np.flatnonzero(low)}
    hit = np.array([b in buses for b, _ in net.points], bool)
    return np.where(hit, p_unc.max(axis=1) + 1e-9, np.inf)


def short_mwh(d: Devices, ev: dict[str, np.ndarray]) -> float:
    """MWh the EV sessions get less than they asked for."""
    got = np.bincount(d.es, (ev["charge_mw"] - ev["discharge_mw"]) * d.step_h, d.need.size)
    return float(np.maximum(d.need - got, 0).sum())


def assignment(d: Devices, ev: dict[str, np.ndarray], point_phase: np.ndarray) -> dict[str, Any]:
    """EV energy charged per feeder phase (``point_phase``: each point's), and what
    phase-switching chargers drew off their own phase."""
    e = ev["charge_mw"] * d.step_h
    by_phase = np.bincount(point_phase[d.ek] - 1, e, 3)
    n_ph = np.bincount(d.es, minlength=d.need.size)  # columns per session (x steps)
    steps = np.bincount(d.es[d.ephi == d.own[d.es]], minlength=d.need.size)
    switching = n_ph > steps  # sessions with more than their own phase
    off = switching[d.es] & (d.ephi != d.own[d.es])
    return {
        "ev_charged_mwh_by_phase": [round(float(x), 5) for x in by_phase],
        "ev_switching_sessions": int(switching.sum()),
        "ev_switched_mwh": round(float(e[off].sum()), 5),
    }
