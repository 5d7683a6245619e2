"""Phase-aware flexibility on the three-phase IEEE feeders: phase balancing of EV charging.

    .venv/bin/python bench/flex_phase.py --json                  # ieee13, ieee123, ieee8500
    .venv/bin/python bench/flex_phase.py --json --cases ieee123:surge --mode plan
    .venv/bin/python bench/flex_phase.py --json --cases ieee8500:default:2:3   # 3 rounds

One row per case (grid:fleet[:VUF limit[:rounds]]; fleets ``default``, ``surge`` and the same without
phase-switching chargers, ``-1ph``): the seeded fleet (gridpilot.flex.place_fleet), the voltage unbalance factor
(VUF, %) over 24 h of 15-minute steps from noon at the worst three-phase bus without the fleet,
with the uncontrolled fleet (EVs charge at full power on their own phase from arrival) and with
the plan (gridpilot.flex.plan_phases, limit 2 % unless given), the bus-steps over the limit, EV energy
requested and delivered, the rounds and the solve times. Reference: the plan's worst step is
replayed in OpenDSS (the feeder's own master file, the fleet's powers as single-phase loads, the
same load multiplier, regulator taps and capacitor states, controls off), and OpenDSS's VUF at that step and
the largest node-phase voltage difference are printed beside ours. ``ieee8500`` (too large for the
dense sensitivities) is planned by constraint generation (``sens_mode`` ``rows``): its row gives
the sensitivity rows computed, the cut rows, the limit breaks each round's exact check found and
the peak RSS of the bench process so far; its default case is a short run of 2 rounds.
``status`` is ``feasible``, ``no_deeper`` (limits broken, but at no bus, node-phase or phase
further than by uncontrolled charging) or ``uncontrolled`` (no round beat it: returned);
``deeper_than_uncontrolled`` how far the returned plan goes past the uncontrolled worst.
Devices on ``ieee8500``'s split-phase services are 240 V, across both legs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from typing import Any

import numpy as np

from gridpilot.flex import PhasePlanConfig, PlaceConfig, place_fleet, plan_phases
from gridpilot.flex.phase_network import LEG_TO_LEG, PhaseNetwork
from gridpilot.model import load_grid
from gridpilot.model.importers.opendss import DssSession
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced.reference import dss_voltages, tighten
from gridpilot.twin.unbalanced.results import unbalance_factor

FLEETS: dict[str, dict[str, float]] = {
    "default": {},  # 30 % of households with an EV, 2.5 kW of load per household
    "default-1ph": {"phase_flexible_share": 0.0},  # the same without phase-switching chargers
    "surge": {"ev_share": 0.6, "kw_per_household": 1.2},  # an EV surge: about 4x the EVs
    # the same surge without phase-switching chargers: time shifting only
    "surge-1ph": {"ev_share": 0.6, "kw_per_household": 1.2, "phase_flexible_share": 0.0},
}


def _opendss_step(g: ThreePhaseGrid, net: PhaseNetwork, p_mw: np.ndarray, t: int) -> dict[str, Any]:
    """Replay step ``t`` of ``p_mw`` in OpenDSS (taps and capacitors as ours, controls off)."""
    s = DssSession()
    s.compile(feeder_master(g.name))
    level = float(net.level[t])
    kv = {b.lower(): v for b, v in g.bus_kv_ln.items()}
    for k, (bus, ph) in enumerate(net.points):
        legs = ph == LEG_TO_LEG  # 240 V across both legs of a split-phase service
        node, vk = ("1.2", 2.0 * kv[bus.lower()]) if legs else (str(ph), kv[bus.lower()])
        s.command(
            f"new load.der_{k} bus1={bus}.{node} phases=1 kv={vk:.6f} "
            f"kw={1e3 * p_mw[k, t]:.6f} kvar=0 model=1 vminpu=0.7 vmaxpu=1.3 status=fixed"
        )
    taps, caps = net.controls[level]
    for rc in g.regcontrols:
        s.command(f"transformer.{rc.transformer}.wdg={rc.tap_winding} tap={taps[rc.name.lower()]}")
    for name, states in caps.items():
        s.command(f"capacitor.{name}.states=[{' '.join(str(x) for x in states)}]")
    tighten(s, "off")
    s.command(f"set loadmult={float(net.mult[t])!r}")
    s.command("solve")
    ref = dss_voltages(s)
    v = np.array([ref.get(f"{b.lower()}.{n}", np.nan) for b, n in net.nodes])
    vt = v[net.tri_idx]
    return {"v": v, "vuf_pct": 100 * unbalance_factor(vt)}


def run(
    grid: str, fleet: str, mode: str, seed: int, vuf_limit: float = 2.0, rounds: int = 10
) -> dict[str, Any]:
    """One case: plan, checks and the OpenDSS replay of the worst step."""
    g = load_grid(grid)
    assert isinstance(g, ThreePhaseGrid)
    pf = place_fleet(g, PlaceConfig(seed=seed, **FLEETS[fleet]))  # type: ignore[arg-type]
    cfg = PhasePlanConfig(mode=mode, vuf_limit_pct=vuf_limit, max_rounds=rounds)
    t0 = time.perf_counter()
    net = PhaseNetwork(g, pf.points(), np.arange(cfg.t0, cfg.t0 + cfg.steps), pf.fleet.step_h)
    net_s = time.perf_counter() - t0
    plan = plan_phases(g, pf, cfg, net)
    s = plan.summary()
    after = plan.checks["after"]
    t = int(np.argmax(after.vuf_pct.max(axis=0)))
    ref = _opendss_step(g, net, plan.p_mw, t)
    ok = np.isfinite(ref["v"])
    dv = np.abs(np.abs(ref["v"][ok]) - np.abs(after.v[ok, t])) / net.vbase[ok]
    return {
        "grid": grid,
        "fleet": fleet,
        "mode": mode,
        "vuf_limit_pct": vuf_limit,
        "ev_sessions": s["ev_sessions"],
        "ev_phase_flexible": int((pf.ev_phases.sum(axis=1) > 1).sum()),
        "points": s["points"],
        "vuf_none_max_pct": s["none"]["vuf_max_pct"],
        "vuf_before_max_pct": s["before"]["vuf_max_pct"],
        "vuf_after_max_pct": s["after"]["vuf_max_pct"],
        "over_limit_bus_steps_before": s["before"]["vuf_over_limit_bus_steps"],
        "over_limit_bus_steps_after": s["after"]["vuf_over_limit_bus_steps"],
        "over_allowed_bus_steps_before": s["vuf_over_allowed_bus_steps"]["before"],
        "over_allowed_bus_steps_after": s["vuf_over_allowed_bus_steps"]["after"],
        "phase_peak_mw_before": s["before"]["phase_peak_mw"],
        "phase_peak_mw_after": s["after"]["phase_peak_mw"],
        "ev_requested_mwh": s["ev_requested_mwh"],
        "ev_delivered_mwh": s["ev_delivered_mwh"],
        "ev_charged_mwh_by_phase": s["ev_charged_mwh_by_phase"],
        "ev_switched_mwh": s["ev_switched_mwh"],
        "feasible": s["feasible"],
        "status": s["status"],
        "deeper_than_uncontrolled": s["deeper_than_uncontrolled"],
        "worse_than_uncontrolled": s["worse_than_uncontrolled"],
        "best_round": s["best_round"],
        "plan_share": s["plan_share"],
        "capped_points": s["capped_points"],
        "reason": s["reason"],
        "rounds": s["rounds"],
        "max_rounds": rounds,
        "sens_mode": s["sens_mode"],
        "sens_rows": s["sens_rows"],
        "node_phases": s["node_phases"],
        "cut_rows_in_lp": s["cut_rows_in_lp"],
        "broken_by_round": s["broken_by_round"],
        "rounds_stopped": s["rounds_stopped"],
        "excess": s["excess"],
        "v_min_pu_before_after": [s["before"]["v_min_pu"], s["after"]["v_min_pu"]],
        "v_max_pu_before_after": [s["before"]["v_max_pu"], s["after"]["v_max_pu"]],
        "devices": pf.summary()["devices"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "network_s": round(net_s, 3),
        "lp_s": s["lp_s"],
        "total_s": s["total_s"],
        "worst_step": int(net.steps[t]),
        "vuf_worst_step_pct": round(float(after.vuf_pct[:, t].max()), 4),
        "opendss_vuf_worst_step_pct": round(float(np.nanmax(ref["vuf_pct"])), 4),
        "opendss_max_dv_pu": round(float(dv.max()), 6),
        "opendss_nodes_matched": int(ok.sum()),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every case, print one JSON document (rows) or a line per case."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--cases",
        default="ieee13:default,ieee123:default,ieee123:surge,ieee123:surge-1ph,"
        "ieee13:default:1.5,ieee13:default-1ph:1.5,ieee8500:default:2:2",
        help="grid:fleet[:VUF limit %[:rounds]], comma-separated",
    )
    ap.add_argument("--mode", default="balance", choices=("balance", "plan"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    for case in a.cases.split(","):
        grid, fleet, limit, rounds = ([*case.split(":"), "", "", ""])[:4]
        rows.append(
            run(grid, fleet or "default", a.mode, a.seed, float(limit or 2.0), int(rounds or 10))
        )
    doc = {"bench": "flex_phase", "load_avg": os.getloadavg()[0], "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2, default=float))
        return
    for r in rows:
        print(
            f"{r['grid']:8} {r['fleet']:8} VUF {r['vuf_before_max_pct']:.2f} -> "
            f"{r['vuf_after_max_pct']:.2f} % (OpenDSS {r['opendss_vuf_worst_step_pct']:.2f}), "
            f"EV {r['ev_delivered_mwh']:.2f}/{r['ev_requested_mwh']:.2f} MWh, "
            f"feasible {r['feasible']} ({r['status']}), {r['total_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
