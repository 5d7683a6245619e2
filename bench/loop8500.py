"""The loop's step time on the IEEE 8500-node feeder beside ieee123 (ThreePhaseWorld), in one run.

    PYTHONPATH=src .venv/bin/python bench/loop8500.py --json            # 20 steps each
    PYTHONPATH=src .venv/bin/python bench/loop8500.py --json --steps 6

Both feeders start at 17:00 on a summer day (noise off, no demo fleet), the loop warmed by
two steps, then stepped in turn (interleaved, so that the machine's load hits both). After
the plain steps a trunk fault is injected on each (ieee123: ``l60``, ieee8500:
``ln6108142-1``) and the two steps after it are timed apart: the step that sees protection act
(the world's fault study) and the one that runs the unbalanced FLISR and its guard checks.
Per feeder: the world's construction (``build_s``: import, view, settling), the loop's step
(``decision_ms``: observe, estimate, decide, guard, act) and the world's own step (``observe``
again: the unbalanced power flow, controls, telemetry).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

EVENING = 200 * 96 + 17 * 4
FAULTS = {"ieee123": "l60", "ieee8500": "ln6108142-1"}


def run(steps: int) -> dict[str, Any]:
    """Build both loops, step them interleaved, then time the fault response."""
    from gridpilot.agent import Orchestrator, ThreePhaseWorld
    from gridpilot.agent.world3p import three_phase_grid

    orchs: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name in FAULTS:
        t0 = time.perf_counter()
        w = ThreePhaseWorld(three_phase_grid(name), start_step=EVENING, noise=0.0, fleet=False)
        orchs[name] = Orchestrator(w)
        out[name] = {"build_s": round(time.perf_counter() - t0, 2),
                     "node_phases": len(w.physics.nodes), "view_buses": len(w.grid.bus)}  # fmt: skip
        orchs[name].run(2)
    times: dict[str, list[float]] = {k: [] for k in orchs}
    world_ms: dict[str, list[float]] = {k: [] for k in orchs}
    for _ in range(steps):
        for k, o in orchs.items():
            t0 = time.perf_counter()
            o.step()
            times[k].append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            o.world.observe()  # the world alone (the same step again)
            world_ms[k].append((time.perf_counter() - t0) * 1e3)
    for k, o in orchs.items():
        a = np.asarray(times[k])
        out[k] |= {
            "decision_ms_median": round(float(np.median(a)), 1),
            "decision_ms_p95": round(float(np.percentile(a, 95)), 1),
            "world_step_ms_median": round(float(np.median(world_ms[k])), 1),
        }
        o.inject("fault", branch=FAULTS[k])
        fault_ms = []
        for _ in range(2):
            t0 = time.perf_counter()
            o.step()
            fault_ms.append(round((time.perf_counter() - t0) * 1e3, 1))
        acted = [r for r in o.audit.entries(kind="action") if r["actor"] == "policy:flisr"]
        out[k] |= {"fault_steps_ms": fault_ms, "flisr_executed": bool(acted),
                   "dark_buses_after": int((~o.last.energised).sum())}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--steps", type=int, default=20, help="plain steps per feeder")
    args = ap.parse_args()
    out = {"bench": "loop8500", "steps": args.steps, "rows": run(args.steps)}
    out["loadavg_1min_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    print(json.dumps(out, indent=2) if args.json else out)


if __name__ == "__main__":
    main()
