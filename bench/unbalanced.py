"""Unbalanced three-phase twin against OpenDSS (the reference engine), side by side, one run.

Per feeder (ieee13, ieee34, ieee37, ieee123, ieee8500):

* snapshot: our fixed-point power flow vs OpenDSS ``Solve`` (controls off, same taps), times
  in ms (best of ``--repeat``; OpenDSS at its default tolerance, as users run it; our default
  1e-8 pu); agreement with OpenDSS solved tightly (1e-12): max |dV| pu and max dangle deg
  over all node-phases, with the script's taps imposed (``max_dv_pu``) and with both engines'
  own static controls from neutral taps (``ctrl_max_dv_pu``, ``ctrl_taps_equal``);
* QSTS: the same synthetic load shape (daily + seasonal + noise, seed 1) on every load of both
  engines, yearly mode with time-driven controls, ``--steps`` steps of ``--resolution``:
  steps/s of each (OpenDSS: at its default tolerance, timed as one ``Solve`` of all the
  steps, its own compiled loop with no call per step, ``opendss_one_solve_same_taps``
  checking it ended where the stepped run did; ``opendss_cpu_steps_per_s_stepped``: the
  stepped run's ``Solve`` calls, one per step from Python, as timed before 2026-12-06;
  gridpilot: its whole step loop with controls and statistics, the one-time packing and
  factorisation of the twin apart in ``gridpilot_setup_ms``, and both together in
  ``gridpilot_steps_per_s_with_setup``; kernels loaded once before, as OpenDSS's library;
  ``*_cpu_steps_per_s`` and ``cpu_speedup`` from process CPU time, robust on a busy machine;
  ``cpu_speedup_same_tol``: ours also at OpenDSS's default tolerance 1e-4, as it is timed,
  with its operation counts ``*_tol1e4``; the counts compared are both at tight tolerance),
  regulator tap operations and capacitor switchings, and the largest gap of the per
  node-phase voltage extremes (OpenDSS solved at 1e-9 for that comparison);
* peak_rss_mb: the process's peak resident memory after the feeder (both engines loaded).

    .venv/bin/python bench/unbalanced.py --json
    .venv/bin/python bench/unbalanced.py --grids ieee123 ieee8500 --steps 2976 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import numpy as np

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import (
    add_shape,
    compare,
    dss_qsts,
    dss_taps,
    dss_voltages,
    dss_yearly_timed,
    extremes_gap,
    reset_taps,
    tap_numbers,
    tighten,
)

GRIDS = ["ieee13", "ieee34", "ieee37", "ieee123", "ieee8500"]


def shape(steps: int, minutes: float, seed: int = 1) -> np.ndarray:
    """Daily double hump, a seasonal swing and noise: a multiplier per step."""
    t = np.arange(steps) * minutes / 60.0
    rng = np.random.default_rng(seed)
    day = 0.55 + 0.35 * np.sin(2 * np.pi * (t - 8) / 24) ** 2
    return day + 0.1 * np.cos(2 * np.pi * t / 8760) + 0.06 * rng.standard_normal(steps)


def _session(name: str) -> DssSession:
    s = DssSession()
    s.compile(feeder_master(name))
    return s


def _best_ms(fn: Any, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def snapshot(name: str, repeat: int) -> dict[str, Any]:
    """Snapshot timings and agreement (taps imposed; own static controls)."""
    s = _session(name)
    g = grid_from_session(s, name)
    t0 = time.perf_counter()
    tw = UnbalancedTwin(g)
    compile_ms = (time.perf_counter() - t0) * 1e3
    s.command("set controlmode=off")
    dss_ms = _best_ms(s.circuit.Solution.Solve, repeat)
    ours_ms = _best_ms(lambda: tw.powerflow(control_mode="off"), repeat)
    tighten(s, "off")
    s.command("solve")
    a = compare(tw.powerflow(control_mode="off"), dss_voltages(s))
    s2 = _session(name)
    reset_taps(s2)
    g2 = grid_from_session(s2, name)
    tighten(s2, "static")
    s2.command("solve")
    res = UnbalancedTwin(g2).powerflow(control_mode="static")
    b = compare(res, dss_voltages(s2))
    return {
        "grid": name,
        "nodes": len(tw.net.nodes),
        "compile_ms": round(compile_ms, 1),
        "snapshot_ms": round(ours_ms, 3),
        "opendss_snapshot_ms": round(dss_ms, 3),
        "max_dv_pu": a.max_dv_pu,
        "max_dangle_deg": a.max_dangle_deg,
        "ctrl_max_dv_pu": b.max_dv_pu,
        "ctrl_max_dangle_deg": b.max_dangle_deg,
        "ctrl_taps_equal": tap_numbers(res) == dss_taps(s2),
    }


def qsts(name: str, steps: int, minutes: float) -> dict[str, Any]:
    """The same QSTS in both engines: speed, operations, extremes."""
    mult = shape(steps, minutes)

    def prepared() -> tuple[DssSession, UnbalancedTwin]:
        s = _session(name)
        reset_taps(s)
        add_shape(s, "bench", mult, minutes)
        return s, UnbalancedTwin(grid_from_session(s, name))

    s_fast, _ = prepared()
    stepped = dss_qsts(s_fast, steps, minutes * 60.0, tol=1e-4)  # OpenDSS's default tolerance
    s_one, _ = prepared()
    fast = dss_yearly_timed(s_one, steps, minutes * 60.0, tol=1e-4)  # its fastest: one Solve
    s_ref, tw = prepared()
    ref = dss_qsts(s_ref, steps, minutes * 60.0, tol=1e-9)
    res = tw.qsts(steps, minutes * 60.0)
    loop_s = res.elapsed_s - res.setup_s
    _, tw4 = prepared()
    res4 = tw4.qsts(steps, minutes * 60.0, tol_pu=1e-4)  # OpenDSS's default, as timed there
    return {
        "steps": steps,
        "resolution_min": minutes,
        "gridpilot_steps_per_s": round(steps / loop_s, 1),
        "opendss_steps_per_s": round(steps / fast.solve_s, 1),
        "speedup": round(fast.solve_s / loop_s, 2),
        "gridpilot_setup_ms": round(res.setup_s * 1e3, 1),
        "gridpilot_steps_per_s_with_setup": round(steps / res.elapsed_s, 1),
        "iterations_per_step": round(res.iterations / steps, 2),
        "gridpilot_cpu_steps_per_s": round(steps / max(res.loop_cpu_s, 1e-9), 1),
        "opendss_cpu_steps_per_s": round(steps / max(fast.solve_cpu_s, 1e-9), 1),
        "opendss_cpu_steps_per_s_stepped": round(steps / max(stepped.solve_cpu_s, 1e-9), 1),
        "opendss_one_solve_same_taps": fast.final_taps == dss_taps(s_fast),
        "cpu_speedup": round(fast.solve_cpu_s / max(res.loop_cpu_s, 1e-9), 2),
        "cpu_speedup_same_tol": round(fast.solve_cpu_s / max(res4.loop_cpu_s, 1e-9), 2),
        "tap_ops_gridpilot_tol1e4": int(sum(res4.tap_ops.values())),
        "cap_ops_gridpilot_tol1e4": int(sum(res4.cap_ops.values())),
        "tap_ops_gridpilot": int(sum(res.tap_ops.values())),
        "tap_ops_opendss": int(sum(ref.tap_ops.values())),
        "tap_ops_opendss_default_tol": int(sum(stepped.tap_ops.values())),
        "tap_ops_equal_per_regulator": res.tap_ops == ref.tap_ops,
        "cap_ops_gridpilot": int(sum(res.cap_ops.values())),
        "cap_ops_opendss": int(sum(ref.cap_ops.values())),
        "extremes_max_gap_pu": extremes_gap(res.nodes, res.vmin_pu, res.vmax_pu, ref),
        "factorisations": res.factorisations,
    }


def warm_kernels() -> None:
    """Load the compiled QSTS kernels once (numba's cache), as OpenDSS's library is loaded
    before its timings: a short run on ieee13, not timed."""
    s = _session("ieee13")
    UnbalancedTwin(grid_from_session(s, "ieee13")).qsts(2, 900.0)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every grid, print one JSON row per grid (or a table)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", nargs="+", default=GRIDS, choices=GRIDS)
    ap.add_argument("--steps", type=int, default=96, help="QSTS steps (8500: see docs)")
    ap.add_argument("--resolution", type=float, default=15.0, help="QSTS step in minutes")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    warm_kernels()
    rows = []
    for name in args.grids:
        row = snapshot(name, args.repeat)
        row.update(qsts(name, args.steps, args.resolution))
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr if not args.json else sys.stdout, flush=True)
    if not args.json:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="unbalanced twin vs OpenDSS")
        keys = list(rows[0])
        for k in keys:
            t.add_column(k)
        for r in rows:
            t.add_row(*(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys))
        Console().print(t)


if __name__ == "__main__":
    main()
