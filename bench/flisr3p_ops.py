"""Self-healing rows of ``bench/unbalanced_ops.py``: FLISR and loss reconfiguration on the
three-phase feeders, each plan replayed in OpenDSS in the same run.

* ``flisr``: a permanent fault (3ph or SLG, alternately) at the far end of ``--faults``
  sampled three-phase lines (seed 0; the laterals are fused); FLISR where the head recloser
  locks out;
  ``decision_ms`` = indications to plan (plans precomputed per section at start-up:
  ``precompute_s``); each plan replayed in OpenDSS: ``opendss_served_err_kw`` the largest
  |served kW ours − OpenDSS|, ``opendss_violations`` plans whose replay leaves a node-phase
  outside the band or a branch over its limit, ``opendss_faulted_live`` plans whose faulted
  section is not dead in OpenDSS.
* ``reconfig``: the least-loss radial state (exhaustive up to 12 switches); ``decision_ms``
  its solve time; ``energy_saved_pct`` the loss reduction as a share of the feeder's input
  power; ``opendss_losses_kw`` the chosen state's losses in OpenDSS.

    PYTHONPATH=src .venv/bin/python bench/flisr3p_ops.py --json
    PYTHONPATH=src .venv/bin/python bench/unbalanced_ops.py --only flisr reconfig --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

import numpy as np

from gridpilot.agent.flisr3p_run import build_flisr3p
from gridpilot.control.flisr3p import Indications3p
from gridpilot.control.flisr3p.reconfig import reconfigure3p
from gridpilot.field.protection3p import simulate_protection
from gridpilot.model import load_grid
from gridpilot.model.threephase.builtin import feeder_session
from gridpilot.twin.unbalanced.faults import Fault, fault_study
from gridpilot.twin.unbalanced.replay import dss_apply_state, dss_state_metrics

GRIDS = ["ieee123", "ieee8500"]
TOL_PU = 1e-4


def _faults(eng: Any, n: int) -> list[Fault]:
    """``n`` sampled main-feeder faults (three-phase lines: the laterals are fused), half
    3ph, half SLG on a rotating phase."""
    lines = [b for b in eng.grid.branches if b.enabled and b.kind == "line" and b.phases == 3]
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(lines), min(n, len(lines)), replace=False))
    out = []
    for j, i in enumerate(pick):
        b = lines[i]
        out.append(Fault(b.name, "3ph") if j % 2 == 0 else Fault(b.name, "slg", 1 + (j // 2) % 3))
    return out


def flisr_row(name: str, n_faults: int, replay: bool = True) -> dict[str, Any]:
    """One FLISR row (see the module docstring)."""
    t0 = time.perf_counter()
    eng, scheme = build_flisr3p(load_grid(name))  # type: ignore[arg-type]
    build_s = time.perf_counter() - t0
    rec = scheme.recloser
    pre_s = eng.precompute((rec.branch,)) if rec is not None else 0.0
    sess = feeder_session(name)[0]  # rated as our grid is (builtin.rate_lines)
    ms: list[float] = []
    err = 0.0
    viol = live = lockouts = verified = 0
    skip = frozenset(
        f"{b}.{k}" for (b, k), m in zip(eng.solver.nodes, eng.source_side, strict=True) if m
    )
    for f in _faults(eng, n_faults):
        out = simulate_protection(scheme, fault_study(eng.solver, f, prefault=eng.prefault))
        lock = rec is not None and out.cleared_by == rec.name
        res = eng.respond(Indications3p(out.fpi, tuple(out.opened), lockout=lock))
        if not lock:
            continue
        lockouts += 1
        verified += int(res.verified)
        ms.append(res.decision_ms)
        if not replay:
            continue
        dss_apply_state(sess, eng.grid, res.final_state, res.taps, "off", res.cap_states)
        m = dss_state_metrics(sess, skip)
        err = max(err, abs(m.served_kw - (eng.prefault.served_kw - res.unserved_kw)))
        lim = res.limits_used
        bad = (m.vmin_pu < lim["v_min_pu"] - TOL_PU or m.vmax_pu > lim["v_max_pu"] + TOL_PU
               or m.max_loading_pct > lim["loading_max_pct"] + 0.01)  # fmt: skip
        viol += int(bad and res.verified)
        faulted = {b for b, s in eng.sections.of_bus.items() if s == res.section}
        live += int(not faulted <= m.dead_buses)
    a = np.array(ms) if ms else np.array([np.nan])
    return {"grid": name, "capability": "flisr", "decision_ms_p50": round(float(np.percentile(a, 50)), 4),
            "decision_ms_p99": round(float(np.percentile(a, 99)), 4), "faults": n_faults,
            "lockouts": lockouts, "verified": verified, "sections": eng.sections.count,
            "switches": len(eng.sections.ends), "ties": len(eng.sections.ties()),
            "fuses": len(scheme.fuses), "build_s": round(build_s, 2), "precompute_s": round(pre_s, 2),
            "opendss_served_err_kw": round(err, 6), "opendss_violations": viol,
            "opendss_faulted_live": live, "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def reconfig_row(name: str) -> dict[str, Any]:
    """One reconfiguration row (see the module docstring)."""
    g = load_grid(name)
    res = reconfigure3p(g)  # type: ignore[arg-type]
    from gridpilot.twin.unbalanced.topology import normalise_ties, solve_switched

    ng = normalise_ties(g)  # type: ignore[arg-type]
    base = solve_switched(ng).result
    sess = feeder_session(name)[0]  # rated as our grid is (builtin.rate_lines)
    dss_apply_state(sess, ng, res.state, base.taps, "off")
    m = dss_state_metrics(sess)
    load_kw = sum(ld.kw for ld in ng.loads if ld.enabled and ld.kind == "load")
    saved = 100.0 * (res.before.losses_kw - res.after.losses_kw) / (load_kw + res.before.losses_kw)
    return {"grid": name, "capability": "reconfig", "decision_ms_p50": round(res.solve_ms, 1),
            "decision_ms_p99": round(res.solve_ms, 1), "energy_saved_pct": round(saved, 4),
            "open": res.open, "method": res.method, "states_solved": res.evaluated,
            "losses_kw_before": round(res.before.losses_kw, 4),
            "losses_kw_after": round(res.after.losses_kw, 4), "verified": res.verified,
            "opendss_losses_kw": round(m.losses_kw, 4), "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print one JSON row per grid and capability."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", nargs="+", default=GRIDS)
    ap.add_argument("--only", nargs="+", default=["flisr", "reconfig"])
    ap.add_argument("--faults", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    for name in args.grids:
        for cap in args.only:
            row = flisr_row(name, args.faults) if cap == "flisr" else reconfig_row(name)
            print(json.dumps(row), file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
