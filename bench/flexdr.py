"""Demand response on the field's devices (gridpilot.agent.flexlink.FlexDR): dispatch time and
planned vs measured reduction.

    .venv/bin/python bench/flexdr.py --json            # dispatch timings + three field events
    .venv/bin/python bench/flexdr.py --json --quick    # 10k devices only, one event

Prints one JSON document. Timings: ``FlexDR.set_level`` (registry -> flex fleet, shed potential,
event set points, commands) best / median of ``--repeat`` on case33bw with the field's default
fleet of ``n_devices`` (meters included; the flexible ones are counted). Reduction: the field
simulator with the event against a twin with the same seed and no event, per 15-minute step of
the plan (MW), the event's set points refreshed every plan step as the loop does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from gridpilot.agent.flexlink import FlexDR
from gridpilot.field import FieldSimulator, FleetConfig
from gridpilot.model import load_grid


def _sim(grid: Any, n: int, start: str) -> FieldSimulator:
    return FieldSimulator(grid, FleetConfig(n_devices=n, seed=1), start=start, seed=4)


def timing(grid: Any, n: int, repeat: int) -> dict[str, Any]:
    """Dispatch time of one event at level 0.5 over ``n`` field devices (18:00 in January)."""
    sim = _sim(grid, n, "2025-01-15T17:30")
    for _ in range(30):
        sim.step(60)
    now = np.datetime64(sim.now_ms, "ms")
    times, cmds, dr = [], [], None
    for _ in range(repeat):
        dr = FlexDR(grid, sim.fleet)
        t = time.perf_counter()
        cmds = dr.set_level(0.5, now)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    for c in cmds:
        sim.apply(c)
    assert dr is not None
    rec = dr.records[-1]
    return {
        "n_devices": n,
        "flexible_devices": sum(rec.devices.values()),
        "participants": rec.devices,
        "dispatch_ms_best": round(min(times) * 1e3, 1),
        "dispatch_ms_median": round(float(np.median(times)) * 1e3, 1),
        "commands": len(cmds),
        "apply_ms": round((time.perf_counter() - t) * 1e3, 2),
    }


def reduction(grid: Any, n: int, start: str, level: float) -> dict[str, Any]:
    """One hour-long event 30 minutes after ``start``: planned vs twin-measured, per plan step."""
    a, b = _sim(grid, n, start), _sim(grid, n, start)
    for _ in range(30):
        a.step(60)
        b.step(60)
    dr = FlexDR(grid, a.fleet)
    now = np.datetime64(a.now_ms, "ms")
    for c in dr.set_level(level, now):
        a.apply(c)
    rec = dr.records[-1]
    diff = []
    for _ in range(60):
        a.step(60)
        b.step(60)
        for c in dr.tick(np.datetime64(a.now_ms, "ms")):
            a.apply(c)
        diff.append(float(b.load_p_mw.sum() - a.load_p_mw.sum()))
    for c in dr.release(np.datetime64(a.now_ms, "ms")):
        a.apply(c)
    for _ in range(30):
        a.step(60)
        b.step(60)
        diff.append(float(b.load_p_mw.sum() - a.load_p_mw.sum()))
    d = np.asarray(diff)
    meas = [round(float(d[i : i + 15].mean()), 4) for i in range(0, 60, 15)]
    return {
        "n_devices": n,
        "event_start": rec.start,
        "level": level,
        "target_mw": round(rec.target_mw, 4),
        "planned_mw": [round(x, 4) for x in rec.expected_reduction_mw],
        "measured_mw": meas,
        "measured_over_planned": round(float(np.mean(meas)) / max(rec.expected_mean_mw, 1e-9), 3),
        "rebound_mw": [round(float(d[i : i + 15].mean()), 4) for i in (60, 75)],
        "devices": rec.devices,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON (the default output)")
    ap.add_argument("--quick", action="store_true", help="10k devices and one event only")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    grid = load_grid("case33bw")
    sizes = (10_000,) if args.quick else (10_000, 37_000, 100_000)
    events = (
        [(3000, "2025-01-15T17:30", 0.5)]
        if args.quick
        else [
            (3000, "2025-01-15T17:30", 0.5),
            (10_000, "2025-01-15T19:30", 0.5),
            (10_000, "2025-01-15T01:37", 1.0),
        ]
    )
    out = {
        "grid": "case33bw",
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "timing": [timing(grid, n, args.repeat) for n in sizes],
        "reduction": [reduction(grid, n, s, lv) for n, s, lv in events],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
