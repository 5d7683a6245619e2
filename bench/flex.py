"""Flexibility benchmark: a week on a SimBench grid, planned vs uncontrolled, scaling, frequency response.

    .venv/bin/python bench/flex.py --json            # full: one week, 1k and 100k device timings
    .venv/bin/python bench/flex.py --json --quick    # one day, 1k and 10k devices

Prints one JSON document: the fleet, both cases' twin-verified figures side by side, the
targets checked, the optimisation timings and the frequency study.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from gridpilot.control.frequency import FleetResponse, FrequencySystem, compare
from gridpilot.flex import PlanConfig, aggregate, generate_fleet, plan
from gridpilot.model import load_grid

GRID = "simbench:1-MV-rural--0-sw"


def week(grid_name: str, days: int, day0: int, curtail_kinds: tuple[int, ...] = (0, 3)) -> dict[str, Any]:
    """Plan ``days`` days from ``day0`` with rolling daily windows; both cases through the twin."""
    g = load_grid(grid_name)
    t0 = day0 * 96
    fleet = generate_fleet(g, days=days + 2, start_step=t0 - 96, curtail_kinds=curtail_kinds)
    t = time.perf_counter()
    p = plan(g, fleet, days * 96, t0=t0, config=PlanConfig())
    s = p.summary()
    s["wall_s"] = time.perf_counter() - t
    c, u = s["controlled"], s["uncontrolled"]
    s["targets"] = {
        "peak_reduction_ge_20pct": s["peak_reduction_pct"] >= 20.0,
        "violations_zero": c["v_violation_min"] == 0 and c["loading_violation_min"] == 0,
        "every_ev_leaves_with_its_energy": s["ev"]["short_sessions"] == 0,
        "devices_within_limits": s["device_limit_violations"] == 0,
    }
    s["uncontrolled_violation_min"] = u["v_violation_min"] + u["loading_violation_min"]
    s["grid"] = grid_name
    s["start_step"] = t0
    s["_fleet"] = fleet
    return s


def scaling(grid_name: str, n_devices: int, steps: int = 96, day0: int = 10) -> dict[str, Any]:
    """Time one day-ahead plan of a fleet of about ``n_devices`` devices (aggregation -> LP -> devices -> twin)."""
    g = load_grid(grid_name)
    t0 = day0 * 96
    fleet = generate_fleet(g, days=2, start_step=t0 - 96, n_devices=n_devices, seed=1)
    t = time.perf_counter()
    p = plan(g, fleet, steps, t0=t0, config=PlanConfig(horizon_steps=steps, commit_steps=steps))
    wall = time.perf_counter() - t
    s = p.summary()
    return {"devices": fleet.n_devices, "flex_devices": fleet.n_devices - len(fleet.pv), "steps": steps,
            "wall_s": wall, "lp_solve_s": s["lp"]["solve_s"], "lp_build_s": s["lp"]["build_s"],
            "lp_vars": s["lp"]["max_vars"], "lp_rows": s["lp"]["max_rows"],
            "peak_reduction_pct": s["peak_reduction_pct"], "ev_short_sessions": s["ev"]["short_sessions"],
            "device_limit_violations": s["device_limit_violations"]}


def frequency(fleet: Any, t_evening: int, feeders: float) -> dict[str, Any]:
    """Reference loss (1 GW in a 30 GW system) with the fleet's droop: batteries and plugged V2G EVs."""
    agg = aggregate(fleet, t_evening, 1)
    up_mw = float(agg.bat_p_max_mw.sum() - agg.ev_p_lo_mw.sum())  # batteries + V2G discharge only
    r = compare(FrequencySystem(), 1000.0, FleetResponse(up_mw * feeders))
    r["feeder_ffr_mw"] = up_mw
    r["feeders"] = feeders
    r["note"] = (f"FFR of the modelled feeder's batteries and plugged-in EVs at step {t_evening} "
                 f"(battery and V2G discharge; charging pauses not counted), times {feeders:g} feeders like it")
    r["target_nadir_50pct_closer"] = r["nadir_improvement_pct"] >= 50.0
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print JSON (the default output anyway)")
    ap.add_argument("--quick", action="store_true", help="one day and 10k devices instead of a week and 100k")
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--day", type=int, default=10, help="first day of the grid's profiles")
    ap.add_argument("--feeders", type=float, default=250.0, help="feeders like this one in the frequency study")
    a = ap.parse_args()
    days = 1 if a.quick else 7
    out: dict[str, Any] = {"bench": "flex", "grid": a.grid, "quick": a.quick,
                           "note": "timings on a shared 2-core machine under contention; forecasts are the grid's "
                                   "own profiles (perfect foresight); prices/CO2 are the synthetic defaults"}
    w = week(a.grid, days, a.day, (0, 1, 3))
    fleet = w.pop("_fleet")
    w["curtailable"] = "PV, wind and other generators (DSO may curtail every renewable generator)"
    out["week"] = w
    w2 = week(a.grid, days, a.day, (0, 3))
    w2.pop("_fleet")
    w2["curtailable"] = "PV and other generators only (wind farms not curtailable)"
    out["week_no_wind_curtailment"] = {k: w2[k] for k in ("controlled", "uncontrolled", "peak_reduction_pct", "targets",
                                                          "unresolved", "wall_s", "curtailable")}
    out["scaling"] = [scaling(a.grid, 1000), scaling(a.grid, 10_000 if a.quick else 100_000)]
    out["scaling_targets"] = {"1k_devices_96_steps_under_10s": out["scaling"][0]["wall_s"] < 10.0,
                              "100k_devices_under_60s": None if a.quick else out["scaling"][1]["wall_s"] < 60.0}
    out["frequency"] = frequency(fleet, a.day * 96 + 19 * 4, a.feeders)
    print(json.dumps(out, indent=2, default=lambda x: x.item() if isinstance(x, np.generic) else str(x)))


if __name__ == "__main__":
    main()
