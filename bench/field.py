"""Field simulation speed: 1,000,000 devices at 1-minute steps (target: faster than real time).

One step = every device's state advanced (household demand, PV, batteries, EVs, water heaters),
device powers summed per grid load (``np.bincount``) and one AC power flow of the grid with the
twin. Meters report every 15 minutes (``readings()``, amortised per step) and, once, the report
is signed by the gateways (``FieldTelemetry.frames``: Ed25519, columnar frames).

Baseline in the same run: the same device models written the plain way, one Python object per
device with a ``step`` method, timed on a sample and scaled to the fleet size.

    .venv/bin/python bench/field.py --json            # 1,000,000 devices, 60 steps (1 hour)
    .venv/bin/python bench/field.py --quick --json    # 100,000 devices, 10 steps
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from typing import Any

import numpy as np
from rich.console import Console

console = Console(stderr=True)


class _Household:
    """Baseline: one object per household, the same models as gridpilot.field.devices, scalar."""

    def __init__(self, rnd: random.Random, has: dict[str, bool]) -> None:
        self.rnd = rnd
        self.base_kw = 0.52 * rnd.lognormvariate(0, 0.35)
        self.ar = 0.0
        self.pv_kwp = 5.0 if has["pv"] else 0.0
        self.bat = [10.0, 5.0, 0.5] if has["bat"] else None
        self.ev = [50.0, 7.4, 0.6, 18.0, 7.5] if has["ev"] else None
        self.wh = [3.0, 0.2326, 0.0025, 55.0, False] if has["wh"] else None

    def step(self, dt_s: float, shape: float, pv_shape: float, hour: float) -> float:
        h = dt_s / 3600.0
        rho = math.exp(-dt_s / 1800.0)
        self.ar = rho * self.ar + 0.4 * math.sqrt(1 - rho * rho) * self.rnd.gauss(0, 1)
        base = self.base_kw * shape * max(0.05, 1 + self.ar)
        pv = self.pv_kwp * pv_shape
        net = base - pv
        if self.bat is not None:
            e, pmax, soc = self.bat
            p = max(-pmax, min(pmax, pv - base))
            p = max(-soc * e * 0.95 / h, min((1 - soc) * e / (0.95 * h), p))
            self.bat[2] = min(1.0, max(0.0, soc + (p * 0.95 if p > 0 else p / 0.95) * h / e))
            net += p
        if self.ev is not None:
            e, pmax, soc, arr, dep = self.ev
            if hour >= arr or hour < dep:
                p = min(pmax, max(0.0, (0.9 - soc) * e / (0.92 * h)))
                self.ev[2] = soc + p * 0.92 * h / e
                net += p
        if self.wh is not None:
            pk, cap, ua, t, heating = self.wh
            heating = (heating or t < 50.0) and t < 60.0
            p = pk if heating else 0.0
            draw = 0.14 * self.rnd.expovariate(1.0)
            self.wh[3] = max(10.0, t + (p - ua * (t - 20.0) - draw) * h / cap)
            self.wh[4] = heating
            net += p
        return net


def _baseline(n_devices: int, sample_devices: int, steps: int) -> dict[str, Any]:
    rnd = random.Random(0)
    per_h = 1.65  # devices per household, as the default fleet
    n_h = int(sample_devices / per_h)
    hs = [
        _Household(
            rnd,
            {
                "pv": rnd.random() < 0.2,
                "bat": rnd.random() < 0.05,
                "ev": rnd.random() < 0.1,
                "wh": rnd.random() < 0.3,
            },
        )
        for _ in range(n_h)
    ]
    loads = [rnd.randrange(32) for _ in range(n_h)]
    t0 = time.perf_counter()
    for k in range(steps):
        acc = [0.0] * 32
        for hh, ld in zip(hs, loads, strict=True):
            acc[ld] += hh.step(60.0, 0.8, 0.5, (k / 60.0) % 24)
    per_step = (time.perf_counter() - t0) / steps
    scaled = per_step * n_devices / (n_h * per_h)
    return {
        "method": "one Python object per device, scalar step, same models (sample scaled linearly)",
        "sample_devices": int(n_h * per_h),
        "step_ms_sample": round(per_step * 1e3, 2),
        "step_ms_scaled": round(scaled * 1e3, 1),
        "speed_x_real_time_scaled": round(60.0 / scaled, 2),
    }


def bench_field_simulation(quick: bool, grid: str = "case33bw") -> dict[str, Any]:
    """Field simulation speed (see the module docstring); returns a JSON-able dict."""
    from gridpilot.field import FieldSimulator, FleetConfig
    from gridpilot.field.publish import FieldTelemetry
    from gridpilot.model import load_grid
    from gridpilot.telemetry import InProcessBus

    n = 100_000 if quick else 1_000_000
    steps = 10 if quick else 60
    g = load_grid(grid)
    t0 = time.perf_counter()
    sim = FieldSimulator(g, FleetConfig(n_devices=n, seed=0), meter_interval_s=900, seed=0)
    build_s = time.perf_counter() - t0
    sim.step(60.0)  # warm-up (JIT, caches)
    dev_ms, pf_ms, wall = [], [], []
    for _ in range(steps):
        ts = time.perf_counter()
        st = sim.step(60.0)
        wall.append((time.perf_counter() - ts) * 1e3)
        assert st is not None
        dev_ms.append(st.devices_ms)
        pf_ms.append(st.powerflow_ms)
    ts = time.perf_counter()
    batch = sim.readings(meters=True)
    readings_ms = (time.perf_counter() - ts) * 1e3
    tel = FieldTelemetry(sim, InProcessBus())
    ts = time.perf_counter()
    frames = tel.frames(batch)
    sign_ms = (time.perf_counter() - ts) * 1e3
    step_ms = float(np.mean(wall))
    per_step_ms = step_ms + (readings_ms + sign_ms) / 15.0  # a report every 15 one-minute steps
    return {
        "grid": grid,
        "devices": sim.fleet.n_devices,
        "device_counts": sim.fleet.counts,
        "state_mb": round(sim.fleet.nbytes() / 1e6, 1),
        "build_s": round(build_s, 2),
        "steps": steps,
        "dt_s": 60.0,
        "step_ms_mean": round(step_ms, 1),
        "step_ms_p95": round(float(np.percentile(wall, 95)), 1),
        "devices_ms_mean": round(float(np.mean(dev_ms)), 1),
        "powerflow_ms_mean": round(float(np.mean(pf_ms)), 2),
        "meter_report_ms": round(readings_ms, 1),
        "meter_report_rows": len(batch.meters),
        "gateway_signing_ms": round(sign_ms, 1),
        "frames": len(frames),
        "amortised_ms_per_minute": round(per_step_ms, 1),
        "speed_x_real_time": round(60_000.0 / per_step_ms, 1),
        "target": "faster than real time at 1-minute steps (speed_x_real_time > 1)",
        "baseline": _baseline(n, 5_000 if quick else 20_000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON (the default output)")
    ap.add_argument("--quick", action="store_true", help="100,000 devices, 10 steps")
    ap.add_argument("--grid", default="case33bw")
    args = ap.parse_args()
    console.log("field simulation")
    out = {
        "bench": "field",
        "quick": args.quick,
        **bench_field_simulation(args.quick, args.grid),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "note": "shared 2-core machine, timings under contention",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
