"""Three-phase state estimation against the true state, side by side with a power flow
from the same data (the reference an operator has without an estimator), one run.

Per feeder (ieee13, ieee34, ieee123, and ieee8500 in a short run) and case, over ``--seeds``
seeds (each: which loads carry a smart meter, the measurement noise and the customers'
deviation from the profile):

* cases: ``fresh`` (meters read now), ``fresh+bad`` (gross errors on a feeder-head P, a
  regulator |V| and two smart meters, removed by the largest normalised residual),
  ``delayed`` (meters read 15 min before the estimate, the loads moved meanwhile),
  ``delayed aligned`` (their σ widened for the drift), ``delayed+bad``;
* errors against the truth (the twin's power flow at the same loads): largest and mean |V|
  error over all node-phases (pu), largest angle error (degrees), averaged over the seeds,
  and the worst seed's largest |V| error; ``first_v_err_max_pu`` the estimate before bad-data
  removal; ``pf_v_err_max_pu`` the power flow from the meters (as read) and the profiles,
  with the *true* source voltage (generous to it);
* ``identified``: seeds where exactly the injected rows were removed (replaced by their
  pseudo-measurement for a meter P/Q); ``false_removals``: other rows removed, per seed;
* ``opendss``: the truth itself checked against OpenDSS (the reference engine): the feeder
  compiled there, every load set to its true kW/kvar, the same taps and capacitor states,
  solved with controls off; largest |V| (pu) and angle (degrees) difference, seed 0;
* ``estimate_ms`` (median first estimate), ``robust_ms`` (median with removals and
  re-estimates); states and measurement counts; ``model`` dense or sparse; ``peak_rss_mb``
  the process's peak resident memory when the grid's last case ended. ``load`` is the
  machine's 1-min load average (also per row: ``load_after``).
* ``ieee8500`` (sparse model, :mod:`gridpilot.estimation.unbalanced.sparse`) runs short:
  ``--big-seeds`` seeds (1) of the ``--big-cases`` (fresh, delayed aligned, delayed+bad),
  without the OpenDSS check of the truth.

    .venv/bin/python bench/se_unbalanced.py --json
    .venv/bin/python bench/se_unbalanced.py --grids ieee123 --seeds 20 --json
    .venv/bin/python bench/se_unbalanced.py --grids ieee8500 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from gridpilot.estimation.unbalanced import (
    SensorSpec,
    TruthOptions,
    default_cases,
    run_case,
    true_state,
)
from gridpilot.model import load_grid

GRIDS = ["ieee13", "ieee34", "ieee123", "ieee8500"]
BIG = {"ieee8500"}  # short run: --big-seeds, --big-cases, no OpenDSS check
BIG_CASES = "fresh,delayed aligned,delayed+bad"


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(k: str) -> float:
        return round(float(np.mean([r[k] for r in rows])), 5)

    r0 = rows[0]
    extra = [sorted(set(r["removed"]) - set(r["injected"])) for r in rows]
    return {
        "grid": r0["grid"],
        "case": r0["case"],
        "seeds": len(rows),
        "node_phases": r0["node_phases"],
        "states_real": r0["states_real"],
        "model": r0["model"],
        "measurements": r0["measurements"],
        "meter_delay_s": r0["meter_delay_s"],
        "v_err_max_pu": mean("v_err_max_pu"),
        "v_err_max_pu_worst_seed": round(max(r["v_err_max_pu"] for r in rows), 5),
        "v_err_mean_pu": mean("v_err_mean_pu"),
        "angle_err_max_deg": mean("angle_err_max_deg"),
        "angle_err_mean_deg": mean("angle_err_mean_deg"),
        "first_v_err_max_pu": mean("first_v_err_max_pu"),
        "pf_v_err_max_pu": mean("pf_baseline_v_err_max_pu"),
        "pf_v_err_mean_pu": mean("pf_baseline_v_err_mean_pu"),
        "identified": sum(set(r["injected"]) == set(r["removed"]) for r in rows if r["injected"]),
        "false_removals": round(float(np.mean([len(e) for e in extra])), 2),
        "detectable_head_p_kw": mean("detectable_head_p_kw"),
        "detectable_meter_p_kw_median": mean("detectable_meter_p_kw_median"),
        "detectable_meter_v_pu_median": mean("detectable_meter_v_pu_median"),
        "estimate_ms": round(float(np.median([r["estimate_ms"] for r in rows])), 2),
        "robust_ms": round(float(np.median([r["robust_ms"] for r in rows])), 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def opendss_truth(name: str, hour: float) -> dict[str, Any]:
    """The truth (seed 0, now) solved again in OpenDSS: largest differences over all
    node-phases."""
    from gridpilot.model.importers.opendss import DssSession, grid_from_session
    from gridpilot.model.threephase.builtin import feeder_master
    from gridpilot.twin.unbalanced import UnbalancedTwin
    from gridpilot.twin.unbalanced.reference import compare, dss_voltages, tighten

    sess = DssSession()
    sess.compile(feeder_master(name))
    twin = UnbalancedTwin(grid_from_session(sess, name))
    ts = true_state(twin, 0.0, TruthOptions(hour=hour, seed=0))
    assert ts.s_now_va is not None
    lb = twin.loads
    for i, ld in enumerate(twin.grid.loads):
        s_kva = ts.s_now_va[lb.load_of == i].sum() / 1e3
        sess.command(f"{ld.kind}.{ld.name}.kw={float(s_kva.real)!r} kvar={float(s_kva.imag)!r}")
    for rc in twin.grid.regcontrols:
        t = twin.grid.transformer(rc.transformer)
        tap = t.windings[rc.tap_winding - 1].tap
        sess.command(f"transformer.{t.name}.wdg={rc.tap_winding} tap={float(tap)!r}")
    for cap in twin.grid.capacitors:
        sess.command(f"capacitor.{cap.name}.states=[{' '.join(map(str, cap.states))}]")
    tighten(sess, "off")
    sess.command("solve")
    a = compare(twin.result(ts.v_now, ts.s_now_va, 0, 0), dss_voltages(sess))
    return {"max_dv_pu": a.max_dv_pu, "max_dangle_deg": a.max_dangle_deg, "worst": a.worst_node}


def _grid_rows(name: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    """The aggregated rows of one grid (short for the big ones)."""
    big = name in BIG
    g = load_grid(name)
    ref = None if big else opendss_truth(name, a.hour)
    seeds = a.big_seeds if big else a.seeds
    wanted = set(a.big_cases.split(",")) if big else None
    out = []
    for case in default_cases(SensorSpec(meter_coverage=a.coverage)):
        if wanted is not None and case.name not in wanted:
            continue
        rows = [
            run_case(g, replace(case, spec=replace(case.spec, seed=s)),
                     TruthOptions(hour=a.hour, seed=s))
            for s in range(seeds)
        ]  # fmt: skip
        out.append(_aggregate(rows))
        print(f"{name} {case.name}: done", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in out:
        r["opendss"] = ref
        r["peak_rss_mb"] = round(rss)
    return out


def main() -> int:
    """Run the study and print the rows (JSON or a table)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", nargs="+", default=GRIDS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--big-seeds", type=int, default=1)
    ap.add_argument("--big-cases", default=BIG_CASES)
    ap.add_argument("--hour", type=float, default=7.5)
    ap.add_argument("--coverage", type=float, default=0.7)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = [row for name in a.grids for row in _grid_rows(name, a)]
    doc = {"load": round(os.getloadavg()[0], 2), "hour": a.hour, "coverage": a.coverage,
           "rows": out}  # fmt: skip
    if a.json:
        print(json.dumps(doc, indent=2))
        return 0
    cols = ("grid", "case", "v_err_max_pu", "v_err_mean_pu", "angle_err_max_deg",
            "pf_v_err_max_pu", "identified", "false_removals", "estimate_ms")  # fmt: skip
    print("  ".join(cols))
    for r in out:
        print("  ".join(str(r[c]) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
