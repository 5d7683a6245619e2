"""Scenario throughput: a batch of what-if runs in one process versus Dask on 2 local workers, in one run.

    .venv/bin/python bench/scenarios.py --json            # full: 8 fault runs of 2 h, N-1 on case33bw
    .venv/bin/python bench/scenarios.py --json --quick    # 4 fault runs of 0.5 h, N-1 on 8 lines

Rows:

* ``scenario_batch``: fault scenarios (controlled, a different line each) run by
  :func:`gridpilot.twin.run_many` with ``executor="serial"`` (the baseline, one process) and
  on a LocalCluster of 2 single-threaded worker processes, twice: one task per scenario
  (``dask_2_workers_s``) and the scenarios batched into one task per worker
  (``dask_batched_s``: per-task overhead paid once per worker). The cluster is started and
  warmed (imports, numba cache, FLISR engine, forecast fit) before timing; its start-up is
  reported apart. Serial and Dask runs alternate (serial, dask, batched, serial again) so
  that a change of the machine's load hits both; the serial time is the mean of the two.
  Target: dask throughput >= 1.6x one process.
* ``n1_sweep``: the N-1 sweep, serial versus dask (chunks of contingencies per task).
* Also the orchestrator's step time (``decision_ms``: observe, decide, guard, act) on the
  demo grid: with signed telemetry and state estimation every 5 steps (the default), without
  telemetry, without state estimation (``se_every_steps=0``, the loop before issue #9) and
  with it every step (interleaved); on the field world also with the households' meter path
  (``meter_path``: ``Orchestrator(meters=True)``, its mean and the steps that ingest a
  15-minute meter interval).
* ``orchestrator_step_three_phase``: the loop's step time on the three-phase feeder ieee123
  (:class:`~gridpilot.agent.ThreePhaseWorld`, the demo's events) beside case33bw+fleet on
  SimWorld, interleaved; and the three-phase world's own step (``world_step_ms_median``).
* ``state_estimation``: the cost of one estimate in the loop (``se_ms`` per call: measurement
  build, PGM WLS, bad-data rounds) and its accuracy against the simulator's true voltages
  (which the controller never sees) with noisy sensors, on the 240-step demo.

The machine and whether it was shared are printed with the figures: on a 2-core machine
shared with other work, two workers cannot show their full speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1min_at_start": round(load[0], 2),
    }


def run_chunk(specs: list[Any]) -> list[Any]:
    """Worker task: run several scenario specs in one task (results in order)."""
    from gridpilot.agent.scenarios import run_one

    return [run_one(s) for s in specs]


WORLD = "field"  # the orchestrator's world in every row (--world)


def _world(grid: Any) -> Any:
    """The demo's world on ``grid`` as chosen by ``--world``."""
    from gridpilot.agent import FieldWorld, SimWorld
    from gridpilot.agent.cli import DEMO_START_STEP

    cls = FieldWorld if WORLD == "field" else SimWorld
    return cls(grid, start_step=DEMO_START_STEP)


def bench_batch(quick: bool) -> dict[str, Any]:
    from dask.distributed import Client, LocalCluster

    from gridpilot.agent.scenarios import WORKER_ENV, ScenarioSpec, run_many, run_one

    lines = [3, 7, 10, 13, 20, 24, 27, 30] if not quick else [7, 13, 24, 30]
    hours = 0.5 if quick else 2.0
    specs = [
        ScenarioSpec(
            "fault", "case33bw", hours, True, params={"line": ln, "at_min": 10}, world=WORLD
        )
        for ln in lines
    ]
    run_one(
        ScenarioSpec("fault", "case33bw", 0.1, True, params={"at_min": 1}, world=WORLD)
    )  # warm this process
    t0 = time.perf_counter()
    serial = run_many(specs, "serial")
    t_serial_1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=WORKER_ENV
    )
    client = Client(cluster)
    t_start = time.perf_counter() - t0
    try:
        warm = [ScenarioSpec("fault", "case33bw", 0.1, True, params={"at_min": 1}, world=WORLD)] * 2
        client.gather(client.map(run_one, warm, pure=False))
        t0 = time.perf_counter()
        dask = client.gather(client.map(run_one, specs, pure=False))
        t_dask = time.perf_counter() - t0
        chunks = [specs[i::2] for i in range(2)]
        t0 = time.perf_counter()
        parts = client.gather(client.map(run_chunk, chunks, pure=False))
        t_batched = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    t0 = time.perf_counter()
    serial_2 = run_many(specs, "serial")
    t_serial_2 = time.perf_counter() - t0
    t_serial = (t_serial_1 + t_serial_2) / 2
    batched = [parts[i % 2][i // 2] for i in range(len(specs))]
    same = all(
        a.kpis == b.kpis == c.kpis == d.kpis
        for a, b, c, d in zip(serial, dask, batched, serial_2, strict=True)
    )
    steps = sum(len(r.series["time"]) for r in serial)
    return {
        "name": "scenario_batch",
        "runs": len(specs),
        "hours_each": hours,
        "steps_total": steps,
        "serial_s": round(t_serial, 3),
        "serial_s_runs": [round(t_serial_1, 3), round(t_serial_2, 3)],
        "dask_2_workers_s": round(t_dask, 3),
        "dask_batched_s": round(t_batched, 3),
        "cluster_start_s": round(t_start, 3),
        "speedup": round(t_serial / t_dask, 3),
        "speedup_batched": round(t_serial / t_batched, 3),
        "serial_steps_per_s": round(steps / t_serial, 1),
        "dask_steps_per_s": round(steps / t_dask, 1),
        "identical_kpis": same,
        "target_speedup": 1.6,
    }


def bench_n1(quick: bool) -> dict[str, Any]:
    from gridpilot.agent.contingency import n1_sweep

    lines = [2, 4, 6, 8, 11, 14, 19, 23] if quick else None
    n1_sweep("case33bw", lines=lines[:2] if lines else [2, 4], world=WORLD)  # warm
    t0 = time.perf_counter()
    s = n1_sweep("case33bw", lines=lines, world=WORLD)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = n1_sweep("case33bw", lines=lines, executor="dask", workers=2, world=WORLD)
    t_dask = time.perf_counter() - t0
    return {
        "name": "n1_sweep",
        "contingencies": len(s.results),
        "serial_s": round(t_serial, 3),
        "dask_2_workers_s_incl_cluster_start": round(t_dask, 3),
        "speedup_incl_start": round(t_serial / t_dask, 3),
        "identical": [r.__dict__ for r in s.results] == [r.__dict__ for r in d.results],
        "controlled_unsupplied_mw": s.summary["controlled"]["unsupplied_mw_total"],
        "uncontrolled_unsupplied_mw": s.summary["uncontrolled"]["unsupplied_mw_total"],
    }


def bench_step(quick: bool) -> dict[str, Any]:
    """Orchestrator step time on the demo, with signed telemetry and without (interleaved)."""
    from gridpilot.agent import Orchestrator
    from gridpilot.agent.cli import demo_events
    from gridpilot.agent.fleet import demo_grid

    g = demo_grid()
    orchs = {
        "signed_telemetry": Orchestrator(_world(g)),
        "no_telemetry": Orchestrator(_world(g), telemetry=False),
        "no_state_estimation": Orchestrator(_world(g), se_every_steps=0),
        "se_every_step": Orchestrator(_world(g), se_every_steps=1),
    }
    if WORLD == "field":  # the households' meter rows in the loop (signed, verified, balanced)
        orchs["meter_path"] = Orchestrator(_world(g), meters=True)
    meter_steps: list[float] = []  # meter_path: the steps that ingested a meter interval
    ev = demo_events()
    n = 60 if quick else 240
    times: dict[str, list[float]] = {k: [] for k in orchs}
    for o in orchs.values():
        o.run(2)
    for _ in range(n):
        for k, o in orchs.items():
            for e in ev.get(o.world.t, []):
                o.inject(actor="bench", **e)
            rows0 = o.counters.get("meter_rows", 0)
            t0 = time.perf_counter()
            o.step()
            times[k].append((time.perf_counter() - t0) * 1e3)
            if o.counters.get("meter_rows", 0) > rows0:
                meter_steps.append(times[k][-1])
    out: dict[str, Any] = {"name": "orchestrator_step", "grid": "case33bw+fleet", "steps": n}
    for k, v in times.items():
        a = np.asarray(v)
        out[k] = {
            "decision_ms_median": round(float(np.median(a)), 2),
            "decision_ms_p95": round(float(np.percentile(a, 95)), 2),
            "decision_ms_max": round(float(a.max()), 2),
            "decision_ms_mean": round(float(a.mean()), 2),
        }
    if meter_steps:
        out["meter_path"]["meter_interval_steps"] = len(meter_steps)
        out["meter_path"]["meter_interval_step_ms_median"] = round(float(np.median(meter_steps)), 2)
    out["sim_speed_x_realtime"] = round(60_000 / out["signed_telemetry"]["decision_ms_median"], 0)
    for k in ("signed_telemetry", "se_every_step"):
        a = np.asarray(orchs[k].se_ms[1:])  # the first call imports and compiles
        out[k]["se_calls"] = int(a.size + 1)
        out[k]["se_ms_per_call_median"] = round(float(np.median(a)), 2)
        out[k]["se_ms_per_call_p95"] = round(float(np.percentile(a, 95)), 2)
        out[k]["se_ms_first_call"] = round(float(orchs[k].se_ms[0]), 1)
    return out


def bench_step3p(quick: bool) -> dict[str, Any]:
    """The loop on the three-phase feeder ieee123 (ThreePhaseWorld), the demo's events, beside
    the balanced demo (case33bw+fleet, SimWorld) interleaved in the same run: the loop's step
    time, and the world's own step (unbalanced power flow, controls, telemetry) apart."""
    from gridpilot.agent import Orchestrator, SimWorld, ThreePhaseWorld
    from gridpilot.agent.cli import DEMO_START_STEP, demo_events
    from gridpilot.agent.fleet import demo_grid
    from gridpilot.agent.world3p import three_phase_grid

    w3 = ThreePhaseWorld(three_phase_grid("ieee123"), start_step=DEMO_START_STEP)
    orchs = {
        "ieee123": Orchestrator(w3),
        "case33bw": Orchestrator(SimWorld(demo_grid(), start_step=DEMO_START_STEP)),
    }
    ev = demo_events()
    n = 60 if quick else 240
    times: dict[str, list[float]] = {k: [] for k in orchs}
    world_ms: list[float] = []
    for o in orchs.values():
        o.run(2)
    for _ in range(n):
        for k, o in orchs.items():
            for e in ev.get(o.world.t, []):
                o.inject(actor="bench", **e)
            t0 = time.perf_counter()
            o.step()
            times[k].append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        w3.observe()  # the world alone (the same step again: the physics' own cost)
        world_ms.append((time.perf_counter() - t0) * 1e3)
    out: dict[str, Any] = {"name": "orchestrator_step_three_phase", "steps": n}
    for k, v in times.items():
        a = np.asarray(v)
        out[k] = {
            "decision_ms_median": round(float(np.median(a)), 2),
            "decision_ms_p95": round(float(np.percentile(a, 95)), 2),
            "decision_ms_max": round(float(a.max()), 2),
        }
    a = np.asarray(world_ms)
    out["ieee123"]["world_step_ms_median"] = round(float(np.median(a)), 2)
    out["ieee123"]["node_phases"] = len(w3.physics.nodes)
    out["ieee123"]["tap_ops"] = w3.physics.tap_ops
    out["ieee123"]["sim_speed_x_realtime"] = round(60_000 / out["ieee123"]["decision_ms_median"], 0)
    return out


def bench_se(quick: bool) -> dict[str, Any]:
    """State-estimation accuracy in the loop: noisy sensors, one estimate a step, the demo's events."""
    from gridpilot.agent import Orchestrator
    from gridpilot.agent.cli import demo_events
    from gridpilot.agent.fleet import demo_grid

    g = demo_grid()
    o = Orchestrator(_world(g), se_every_steps=1, sensor_noise=True)
    ev = demo_events()
    n = 60 if quick else 240
    mx, mean, dead_steps = [], [], 0
    for _ in range(n):
        for e in ev.get(o.world.t, []):
            o.inject(actor="bench", **e)
        o.step()
        est, truth = o.estimate, o.world.last
        if est is None or truth is None or est.t != truth.t:
            continue
        a, b = est.error_pu(truth.v_pu)
        mx.append(a)
        mean.append(b)
        dead_steps += int((~truth.energised).any())
    s = o.estimator.sensors if o.estimator else None
    return {
        "name": "state_estimation",
        "grid": "case33bw+fleet",
        "steps": n,
        "estimates": len(mx),
        "steps_with_dead_buses": dead_steps,
        "voltage_sensors": len(s.v_bus_ids) if s else 0,
        "buses": len(g.bus),
        "flow_sensors": len(s.flow_line_ids) if s else 0,
        "sensor_sigma": {"v_pu": s.v_sigma_pu, "flow_rel": s.flow_rel_sigma} if s else None,
        "error_pu_max": round(float(np.max(mx)), 5),
        "error_pu_mean_of_max": round(float(np.mean(mx)), 5),
        "error_pu_mean": round(float(np.mean(mean)), 5),
        "bad_data_removed": int(o.counters["bad_data_removed"]),
        "se_ms_per_call_median": round(float(np.median(o.se_ms[1:])), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument(
        "--only",
        choices=("step", "step3p", "se", "batch", "n1"),
        nargs="*",
        help="run only these rows",
    )
    ap.add_argument(
        "--world", choices=("field", "sim"), default="field", help="the orchestrator's world"
    )
    args = ap.parse_args()
    global WORLD
    WORLD = args.world
    rows = {
        "step": bench_step,
        "step3p": bench_step3p,
        "se": bench_se,
        "batch": bench_batch,
        "n1": bench_n1,
    }
    pick = args.only or list(rows)
    out = {
        "bench": "scenarios",
        "quick": args.quick,
        "world": WORLD,
        "machine": _machine(),
        "rows": [rows[k](args.quick) for k in pick],
    }
    out["machine"]["loadavg_1min_at_end"] = (
        round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in out["rows"]:
            print(r)


if __name__ == "__main__":
    main()
