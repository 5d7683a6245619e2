"""Balanced estimator on clean data: the chi-square test's false-alarm rate and J against its
degrees of freedom, per seed; and what ``estimate_robust`` removes from clean data (nothing, ideally).

Measurements as ``bench/se_baddata.py`` makes them (voltage at every bus, every load, the source,
with ``--flows`` a flow sensor on every line; 1 % noise, the stored sigmas those used).

    PYTHONPATH=src .venv/bin/python bench/se_chi2_clean.py --grid case69 --seeds 40 --json
    PYTHONPATH=src .venv/bin/python bench/se_chi2_clean.py --grid synthetic:2000 --flows \\
        --seeds 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

import numpy as np

from gridpilot.estimation import StateEstimator, estimate_robust, measurements_from_powerflow
from gridpilot.model import load_balanced_grid
from gridpilot.twin import Twin


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print the JSON row."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="case69")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--flows", action="store_true")
    ap.add_argument("--robust", action="store_true", help="also run estimate_robust")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    g = load_balanced_grid(args.grid, "chi-square bench")
    pf = Twin(g).powerflow()
    se = StateEstimator(g)
    js, alarms, methods, removed = [], 0, Counter(), 0
    t_est = t_rob = 0.0
    dof = limit = 0.0
    for seed in range(args.seeds):
        m, _ = measurements_from_powerflow(g, pf, v_bus_ids=g.bus.ids,
                                           line_from_ids=g.line.ids if args.flows else None,
                                           rng=np.random.default_rng(seed))  # fmt: skip
        t0 = time.perf_counter()
        res = se.estimate(m)
        t_est += time.perf_counter() - t0
        js.append(res.chi2)
        dof, limit = res.dof, res.chi2_limit
        alarms += int(res.bad_data_suspected)
        methods[
            str(res.meta.get("method")) + ("+cont" if "continuation_solves" in res.meta else "")
        ] += 1
        if args.robust:
            t0 = time.perf_counter()
            removed += len(estimate_robust(se, m).removed)
            t_rob += time.perf_counter() - t0
    n = max(args.seeds, 1)
    row = {"grid": args.grid, "flows": args.flows, "seeds": args.seeds, "scalars": m.n_scalar,
           "dof": dof, "chi2_limit": round(limit, 1), "J_mean": round(float(np.mean(js)), 1),
           "J_min": round(float(np.min(js)), 1), "J_max": round(float(np.max(js)), 1),
           "false_alarm_rate": round(alarms / n, 3), "methods": dict(methods),
           "s_per_estimate": round(t_est / n, 3),
           **({"removed_on_clean": removed, "s_per_robust": round(t_rob / n, 3)} if args.robust else {}),
           "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(json.dumps(row), file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
