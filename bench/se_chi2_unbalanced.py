"""Per-phase estimator on clean data (the ``fresh`` case of ``bench/se_unbalanced.py``): the
chi-square test's false-alarm rate, J against its degrees of freedom, ``trace(K)`` against the
free states (seed 0), and per measurement source the mean ``r²/σ²``.

    PYTHONPATH=src .venv/bin/python bench/se_chi2_unbalanced.py --grid ieee123 --seeds 30 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

import numpy as np

from gridpilot.estimation.unbalanced.sensors import SensorSpec, build_measurements
from gridpilot.estimation.unbalanced.sparse import build_network
from gridpilot.estimation.unbalanced.sparse_wls import estimator_for
from gridpilot.estimation.unbalanced.study import TruthOptions, default_cases, true_state
from gridpilot.model import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print the JSON row."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="ieee123")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--hour", type=float, default=7.5)
    ap.add_argument("--coverage", type=float, default=0.7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    twin = UnbalancedTwin(load_grid(args.grid))
    lin = build_network(twin)
    case = default_cases(SensorSpec(meter_coverage=args.coverage))[0]  # fresh
    se = estimator_for(lin)
    js, alarms, per, trace_k = [], 0, {}, None
    dof = limit = 0.0
    for s in range(args.seeds):
        ts = true_state(twin, 0.0, TruthOptions(hour=args.hour, seed=s))
        m = build_measurements(lin, ts.truth, replace(case.spec, seed=s))
        r = se.estimate(m)
        js.append(r.chi2)
        dof, limit = r.dof, r.chi2_limit
        alarms += int(r.bad_data_suspected)
        for lab, x in zip(m.labels, (r.residual / r.sigma) ** 2, strict=True):
            per.setdefault(" ".join(lab.split()[:2]), []).append(float(x))
        if s == 0 and np.isfinite(r.k_known).all():
            trace_k = round(float(r.k_known.sum()), 2)
    n = max(args.seeds, 1)
    row = {"grid": args.grid, "case": case.name, "seeds": args.seeds, "dof": dof,
           "free_states": se.n_free, "trace_k_seed0": trace_k, "chi2_limit": round(limit, 1),
           "J_mean": round(float(np.mean(js)), 1), "false_alarm_rate": round(alarms / n, 3),
           "mean_r2_over_s2": {k: round(float(np.mean(v)), 3) for k, v in per.items()},
           "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(json.dumps(row), file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
