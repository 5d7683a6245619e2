"""FLISR benchmark: decision time and restored share for single-line faults, per grid.

For each grid, single-line faults (all lines on small grids, a fixed random sample on large
ones) are simulated by protection (``indications_for_fault``) and handed to
``FlisrEngine.respond``. Reported per grid: ``faults``, decision time ``p50_ms``/``p99_ms``
(locate + isolate + restore + verification, wall clock) and ``cpu_p50_ms``/``cpu_p99_ms`` (the
same decisions in CPU time of the deciding thread: on a shared machine wall time also counts
waiting for a core), ``restored_share`` (restored / restorable kW,
summed over faults) and side by side ``baseline_restored_share``: isolate only, reclosing the
tripped breaker, no tie switching; ``unverified``: plans whose final state fails their own
limits in the twin's check (FLISR returns them marked ``verified: false``). Run: ``.venv/bin/python bench/flisr.py --json [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from gridpilot.control.flisr import FlisrEngine, Limits
from gridpilot.control.location import indications_for_fault
from gridpilot.model import load_grid

GRIDS = [
    "case33bw",
    "case69",
    "cigre-mv",
    "oberrhein",
    "schutterwald",
    "synthetic:1000",
    "synthetic:10000",
]


def run(name: str, max_faults: int, seed: int = 0) -> dict:
    g = load_grid(name)
    lim = Limits(v_min_pu=0.90) if name == "case33bw" else Limits()
    t0 = time.perf_counter()
    eng = FlisrEngine(g, lim)
    init_s = time.perf_counter() - t0
    lines = g.line.ids.copy()
    if lines.size > max_faults:
        lines = np.sort(np.random.default_rng(seed).choice(lines, max_faults, replace=False))
    ms, cpu, restored, restorable, base, unverified = [], [], 0.0, 0.0, 0.0, 0
    eng.respond(
        indications_for_fault(g, [int(lines[0])], sections=eng.sections)
    )  # warm-up, not timed
    for lid in lines:
        ind = indications_for_fault(g, [int(lid)], sections=eng.sections)
        if not ind.tripped:
            continue  # a fault in a de-energised section trips nothing
        res = eng.respond(ind)
        unverified += not getattr(res, "verified", True)
        cpu.append(res.decision_cpu_ms)
        ms.append(res.decision_ms)
        restored += res.restored_kw
        restorable += res.restorable_kw
        base += min(eng.baseline(ind), res.restorable_kw)
    arr = np.array(ms) if ms else np.zeros(1)
    carr = np.array(cpu) if cpu else np.zeros(1)
    return {
        "grid": name,
        "buses": len(g.bus),
        "faults": len(ms),
        "lines": len(g.line),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "cpu_p50_ms": round(float(np.percentile(carr, 50)), 2),
        "cpu_p99_ms": round(float(np.percentile(carr, 99)), 2),
        "restored_share": round(restored / restorable, 4) if restorable else 1.0,
        "baseline_restored_share": round(base / restorable, 4) if restorable else 1.0,
        "verified_by": eng.verify,
        "unverified": unverified,
        "v_min_pu": lim.v_min_pu,
        "init_s": round(init_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument(
        "--quick", action="store_true", help="at most 15 faults per grid, small grids only"
    )
    ap.add_argument("--max-faults", type=int, default=200, help="sample size on large grids")
    ap.add_argument("--grids", nargs="*", default=None)
    a = ap.parse_args()
    grids = a.grids or ([*GRIDS[:4], "synthetic:1000"] if a.quick else GRIDS)
    n = 15 if a.quick else a.max_faults
    rows = [run(name, n) for name in grids]
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()
