"""Balanced bad-data removal (``estimate_robust``): one measurement per estimate versus several
non-interacting ones per pass (``simultaneous``), same removals and wall time.

* ``--case single``: the docs' figure - +0.08 pu on each bus's voltage, seeds ``--seeds``
  (case33bw: 33 buses x 5 seeds = 165 cases); per case the removed labels of both modes.
* ``--case multi``: ``--errors`` gross errors at once on ``--grid``, seeds ``--seeds``:
  ``--kind v`` voltages +``--v-error`` pu at random buses; ``--kind flow`` (a flow sensor
  on every line) line P readings +``--p-error`` sigma at random lines. The stored sigmas
  times ``--sigma-scale`` (1.5 was used on the synthetic feeders before 2026-12-06, when their
  clean data failed the chi-square test at 1x; fixed, see docs/estimation.md).

Prints one JSON row per case kind: cases, same removals (set and order), estimates per run,
wall seconds per run for both modes, load average.

    PYTHONPATH=src .venv/bin/python bench/se_baddata.py --case single --grid case33bw --json
    PYTHONPATH=src .venv/bin/python bench/se_baddata.py --case multi --grid synthetic:2000 \\
        --kind flow --errors 10 --sigma-scale 1.5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from gridpilot.estimation import (
    PowerSensorKind,
    StateEstimator,
    estimate_robust,
    measurements_from_powerflow,
)
from gridpilot.estimation.measurements import Measurements
from gridpilot.model import load_balanced_grid
from gridpilot.twin import Twin


def _run(se: StateEstimator, m: Measurements, simultaneous: bool, removals: int) -> tuple:
    t0 = time.perf_counter()
    rep = estimate_robust(se, m, simultaneous=simultaneous, max_removals=removals)
    return rep, time.perf_counter() - t0


def _compare(se: StateEstimator, cases: list[Measurements], removals: int) -> dict[str, Any]:
    same = same_set = 0
    est = {True: 0, False: 0}
    wall = {True: 0.0, False: 0.0}
    diff: list[Any] = []
    for i, m in enumerate(cases):
        out = {}
        for mode in (False, True):
            rep, dt = _run(se, m, mode, removals)
            out[mode] = rep.removed_labels
            est[mode] += len(rep.chi2_history)
            wall[mode] += dt
        same += int(out[True] == out[False])
        same_set += int(set(out[True]) == set(out[False]))
        if out[True] != out[False] and len(diff) < 5:
            diff.append({"case": i, "one": out[False], "pass": out[True]})
    n = max(len(cases), 1)
    return {"cases": len(cases), "same_removals": same, "same_set": same_set,
            "estimates_per_run_one": round(est[False] / n, 3),
            "estimates_per_run_pass": round(est[True] / n, 3),
            "s_per_run_one": round(wall[False] / n, 4), "s_per_run_pass": round(wall[True] / n, 4),
            "differences": diff}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print the JSON row."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="case33bw")
    ap.add_argument("--case", choices=["single", "multi"], default="single")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--errors", type=int, default=5)
    ap.add_argument("--kind", choices=["v", "flow"], default="v")
    ap.add_argument("--v-error", type=float, default=0.15)
    ap.add_argument("--p-error", type=float, default=30.0)
    ap.add_argument("--sigma-scale", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    g = load_balanced_grid(args.grid, "bad-data bench")
    pf = Twin(g).powerflow()
    se = StateEstimator(g)
    cases: list[Measurements] = []
    for seed in args.seeds:
        lines = [1, 18, 22, 25] if args.grid == "case33bw" else None
        if args.kind == "flow":
            lines = g.line.ids
        clean, _ = measurements_from_powerflow(g, pf, v_bus_ids=g.bus.ids, line_from_ids=lines,
                                               rng=np.random.default_rng(seed))  # fmt: skip
        clean.v_sigma_pu *= args.sigma_scale
        clean.p_sigma_mw *= args.sigma_scale
        clean.q_sigma_mvar *= args.sigma_scale
        if args.case == "single":
            for b in range(clean.v_pu.size):
                m = clean.copy()
                m.v_pu[b] += 0.08
                cases.append(m)
        else:
            m = clean.copy()
            rng = np.random.default_rng(1000 + seed)
            if args.kind == "v":
                m.v_pu[rng.choice(m.v_pu.size, args.errors, replace=False)] += args.v_error
            else:
                flows = np.flatnonzero(m.p_kind == PowerSensorKind.LINE_FROM)
                j = rng.choice(flows, args.errors, replace=False)
                m.p_mw[j] += args.p_error * m.p_sigma_mw[j]
            cases.append(m)
    removals = 5 if args.case == "single" else 2 * args.errors
    row = {"grid": args.grid, "buses": len(g.bus), "case": args.case, "kind": args.kind,
           "scalars": cases[0].n_scalar, "seeds": args.seeds,
           "errors": 1 if args.case == "single" else args.errors,
           "sigma_scale": args.sigma_scale, "max_removals": removals,
           **_compare(se, cases, removals), "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(json.dumps(row), file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
