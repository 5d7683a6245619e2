"""Operating real feeders: volt/VAR optimisation with CVR and hosting capacity, each side by
side with its OpenDSS reference in one run. One JSON row per grid and capability.

* ``cvr`` / ``cvr_exp``: a day of 15-minute steps (the CLI's synthetic day shape, seed 1) on
  every load, loads as modelled (``cvr``) or as exponential CVR loads 0.8/3 (``cvr_exp``).
  Baseline = OpenDSS's own controls as the engine's QSTS reproduces them (energy from
  replaying each step at its taps); ``opendss_*`` = OpenDSS itself stepped in time mode
  (its own taps, capacitor operations, energy, violation minutes). decision_ms = one
  hourly decision of the optimiser (taps for the hour, every candidate verified).
* ``hosting_pv`` / ``hosting_ev``: every node-phase (or ``--hc-nodes`` sampled) at the
  critical hours of the feeder's own load shape over a year and a clear-sky PV year;
  ``hc_max_abs_err_kw`` against brute-force iterative OpenDSS runs (10 kW steps) on 20
  sampled node-phases (seed 0).
* ``cvr_pv`` / ``cvr_pv_exp`` (bench/_ops_cvr_hc.py): as ``cvr``/``cvr_exp`` with a seeded
  rooftop-PV fleet on IEEE 1547 volt-var inverters, in the baseline, the optimiser and
  OpenDSS (PVSystems + InvControl). ``hosting_pv_dask`` / ``hosting_ev_dask``: the same
  study on a Dask LocalCluster of ``--workers`` processes.

    PYTHONPATH=src .venv/bin/python bench/unbalanced_ops.py --json
    PYTHONPATH=src .venv/bin/python bench/unbalanced_ops.py --grids ieee8500 --workers 2 --json
    PYTHONPATH=src .venv/bin/python bench/unbalanced_ops.py --only cvr_pv cvr_pv_exp --json
    PYTHONPATH=src .venv/bin/python bench/unbalanced_ops.py --grids ieee8500 \
        --only hosting_pv_dask --workers 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from _ops_cvr_hc import cvr_row, hosting_dask_row
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.hosting import (
    HostingOptions,
    clear_sky_pv,
    critical_scenarios,
    hosting_capacity_on,
)
from gridpilot.twin.hosting.feeder import Feeder, phase_nodes
from gridpilot.twin.hosting.profiles import feeder_load_profile
from gridpilot.twin.hosting.reference import DssHosting
from gridpilot.twin.unbalanced.reference import dss_cap_states, dss_taps

GRIDS = ["ieee123", "ieee8500"]
KEYS = ("grid", "capability", "decision_ms_p50", "decision_ms_p99", "energy_saved_pct",
        "violation_min", "tap_ops", "cap_ops", "baseline_tap_ops", "baseline_cap_ops",
        "hc_nodes", "hc_s", "hc_max_abs_err_kw")  # fmt: skip


def _dss_day(s: DssSession, steps: int) -> dict[str, Any]:
    """OpenDSS stepped in yearly time mode over the shape: ops, energy, violation minutes."""
    c = s.circuit
    for cmd in ("set mode=yearly stepsize=900s number=1", "set controlmode=time",
                "set maxcontroliter=100", "set tolerance=1e-6", "set maxiterations=200"):  # fmt: skip
        s.command(cmd)
    prev_t, prev_c = dss_taps(s), dss_cap_states(s)
    taps = caps = bad = 0
    kwh = solve_s = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        c.Solution.Solve()
        solve_s += time.perf_counter() - t0
        v = np.asarray(c.AllBusVmagPu)
        v = v[v > 0.05]
        bad += int(v.min() < 0.95 - 1e-9 or v.max() > 1.05 + 1e-9)
        kwh += -float(c.TotalPower[0]) * 0.25
        t, cp = dss_taps(s), dss_cap_states(s)
        taps += sum(abs(t[k] - prev_t[k]) for k in t)
        caps += sum(abs(a - b) for k in cp for a, b in zip(cp[k], prev_c[k], strict=True))
        prev_t, prev_c = t, cp
    return {"opendss_tap_ops": taps, "opendss_cap_ops": caps, "opendss_energy_kwh": round(kwh, 3),
            "opendss_violation_min": bad * 15.0, "opendss_solve_s": round(solve_s, 3)}  # fmt: skip


def hosting_row(name: str, der: str, n_nodes: int | None, workers: int) -> dict[str, Any]:
    """One hosting row: the study (all or sampled node-phases) and the brute-force check."""
    s = DssSession()
    s.compile(feeder_master(name))
    g = grid_from_session(s, name)
    load = feeder_load_profile(g)
    scs = critical_scenarios(load, clear_sky_pv(len(load)), der)
    opts = HostingOptions(der=der)
    nodes = phase_nodes(g)
    rng = np.random.default_rng(0)
    if n_nodes is not None and n_nodes < len(nodes):
        nodes = [nodes[i] for i in sorted(rng.choice(len(nodes), n_nodes, replace=False))]
    cpu0 = time.process_time()
    with ThreadPoolExecutor(workers) as ex:
        res = hosting_capacity_on(ex, g, scs, opts, nodes=nodes, parts=workers)
    cpu_s = time.process_time() - cpu0
    pick = sorted(np.random.default_rng(0).choice(len(nodes), min(20, len(nodes)), replace=False))
    sample = [nodes[i] for i in pick]
    t0 = time.perf_counter()
    fd = Feeder(g, sample)
    ref = np.full(len(sample), np.inf)
    for sc in scs:
        dh = DssHosting(feeder_master(name), fd, sc, opts)
        ref = np.minimum(ref, [dh.node_hc_kw(b, k) for b, k in sample])
    ref_s = time.perf_counter() - t0
    err = np.abs(ref - res.hc_kw[pick])
    return {"grid": name, "capability": f"hosting_{der}", "hc_nodes": len(nodes),
            "hc_s": round(res.elapsed_s, 2), "hc_cpu_s": round(cpu_s, 2),
            "load_avg_1min": round(os.getloadavg()[0], 2), "hc_max_abs_err_kw": float(err.max()),
            "hc_workers": workers, "hc_median_kw": float(np.median(res.hc_kw)),
            "hc_limits": res.summary()["limits"], "bruteforce_nodes": len(sample),
            "bruteforce_s": round(ref_s, 2), "bruteforce_hc_kw": [float(x) for x in ref],
            "scenarios": [sc.label for sc in scs]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every grid and capability, print one JSON row each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", nargs="+", default=GRIDS)
    ap.add_argument("--only", nargs="+",
                    default=["cvr", "cvr_exp", "hosting_pv", "hosting_ev", "flisr", "reconfig"])  # fmt: skip
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--hc-nodes", type=int, default=None, help="sample this many node-phases")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--day-plan", action="store_true",
                    help="cvr rows: the day-ahead DP schedule (control.cvr_plan)")  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for name in args.grids:
        for cap in args.only:
            if cap in ("flisr", "reconfig"):  # self-healing rows: bench/flisr3p_ops.py
                from flisr3p_ops import flisr_row, reconfig_row

                row = flisr_row(name, 40) if cap == "flisr" else reconfig_row(name)
            elif cap.startswith("cvr_pv"):  # smart-inverter fleet (bench/_ops_cvr_hc.py)
                row = cvr_row(name, args.steps, cap == "cvr_pv_exp", pv=True,
                              day_plan=args.day_plan)  # fmt: skip
            elif cap.endswith("_dask"):
                row = hosting_dask_row(name, cap.split("_")[1], args.hc_nodes, args.workers)
            elif cap.startswith("cvr"):
                row = cvr_row(name, args.steps, cap == "cvr_exp", day_plan=args.day_plan)
            else:
                row = hosting_row(name, cap.split("_")[1], args.hc_nodes, args.workers)
            row = {**dict.fromkeys(KEYS), **row}
            print(json.dumps(row), file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
