"""The flexibility schedule in the loop (gridpilot.agent.flexplan.FlexPlanPolicy): 24 h on the
field world of demo_grid("case33bw"), with and without the policy, same seed and events.

    .venv/bin/python bench/flexplan.py --json                     # heatwave, summer, winter
    .venv/bin/python bench/flexplan.py --json --cases summer --hours 6

Prints one JSON document: per case and run the scenario KPIs (peak import, imported energy,
violation minutes, ENS, CO2 at the KPIs' flat 0.35 t/MWh) plus the import's CO2 and cost at
the scheduler's own synthetic price and carbon intensity (gridpilot.flex.default_signals),
the household EVs' energy charged and the cars that left below their target state of charge,
and the planning time per plan (wall, ms).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from gridpilot.agent.fieldworld import FieldWorld
from gridpilot.agent.orchestrator import Orchestrator
from gridpilot.agent.scenarios import ScenarioSpec, _Kpis, _setup, scenario_grid
from gridpilot.flex import default_signals

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "heatwave": ("heatwave", {}),  # summer day from 06:00, +25 % load, +30 % around 17:00
    "summer": ("heatwave", {"load_factor": 1.0, "peak_factor": 0.0}),  # the same day, plain
    "winter": ("ev-surge", {"factor": 1.0}),  # winter day from 16:00, EV stations as usual
}


def run(case: str, hours: float, flex_plan: bool) -> dict[str, Any]:
    """One controlled run; returns its figures."""
    name, params = CASES[case]
    spec = ScenarioSpec(name, "case33bw", hours, True, 60.0, True, dict(params), "field")
    grid = scenario_grid("case33bw", True)
    start, events, _ = _setup(spec, grid)
    steps = round(hours * 60)
    world = FieldWorld(grid, step_s=60.0, start_step=start, horizon_steps=int(hours * 4) + 8)
    orch = Orchestrator(world, flex_plan=flex_plan)
    kp = _Kpis(world.grid, 60.0)
    sig = default_signals(world.grid, start + int(hours * 4) + 8)
    d = world.devices
    scale = np.asarray(d.meter_scale, np.float64)[d.ev_meter] * np.asarray(d.ev_kwh) / 1e3
    soc0 = np.asarray(d.ev_soc, np.float64).copy()
    plug0 = np.asarray(d.ev_plugged, bool).copy()

    def stored_mwh() -> float:
        """Energy in the household batteries (grid MW scale) and the grid's batteries, MWh."""
        bs = np.asarray(d.meter_scale, np.float64)[d.bat_meter]
        hh = float((np.asarray(d.bat_soc) * np.asarray(d.bat_kwh) * bs).sum() / 1e3)
        o = orch.last
        soc = o.storage_soc if o is not None else world.grid.storage["soc"]
        return hh + float((soc * world.grid.storage["e_mwh"]).sum())

    ev_mwh = co2_sig = cost_sig = 0.0
    short = left = 0
    t0 = time.perf_counter()
    stored0 = None
    for t in range(steps):
        for ev in events.get(t, []):
            orch.inject(
                ev["kind"], actor="scenario", **{k: v for k, v in ev.items() if k != "kind"}
            )
        orch.step()
        obs = orch.last
        kp.add(world, obs)
        if stored0 is None:
            stored0 = stored_mwh()
        soc = np.asarray(d.ev_soc, np.float64)
        plug = np.asarray(d.ev_plugged, bool)
        ev_mwh += float((np.clip(soc - soc0, 0, None) * scale * (plug & plug0)).sum())
        gone = plug0 & ~plug
        left += int(gone.sum())
        short += int((gone & (soc0 < np.asarray(d.ev_target_soc) - 0.02)).sum())
        soc0, plug0 = soc.copy(), plug.copy()
        i = start + t // 15
        imp = max(obs.source_p_mw, 0.0) / 60.0
        co2_sig += imp * float(sig.co2_t_per_mwh[i])
        cost_sig += imp * float(sig.price_eur_per_mwh[i])
    k = kp.finish()
    pol = next((p for p in orch.policies if p.name == "flexplan"), None)
    ms = getattr(pol, "planning_ms", []) if pol is not None else []
    return {
        "flex_plan": flex_plan,
        "peak_import_mw": k["peak_import_mw"],
        "peak_time": kp.series["time"][int(np.argmax(kp.series["import_mw"]))],
        "import_mwh": round(float(np.sum(np.clip(kp.series["import_mw"], 0, None)) / 60.0), 4),
        "voltage_violation_min": k["voltage_violation_min"],
        "loading_violation_min": k["loading_violation_min"],
        "energy_not_served_mwh": k["energy_not_served_mwh"],
        "co2_t_flat": k["co2_t"],
        "co2_t_signal": round(co2_sig, 4),
        "cost_eur_signal": round(cost_sig, 2),
        "losses_mwh": k["losses_mwh"],
        "curtailment_mwh": k["curtailment_mwh"],
        "storage_change_mwh": round(stored_mwh() - (stored0 or 0.0), 4),
        "ev_charged_mwh": round(ev_mwh, 4),
        "ev_departures": left,
        "ev_left_below_target": short,
        "actions": orch.counters["executed"],
        "refused": orch.counters["refused"],
        "plans": len(ms),
        "planning_ms_median": round(float(np.median(ms)), 1) if ms else None,
        "planning_ms_max": round(float(np.max(ms)), 1) if ms else None,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cases", default="heatwave,summer,winter")
    ap.add_argument("--hours", type=float, default=24.0)
    a = ap.parse_args()
    out: dict[str, Any] = {"grid": "demo_grid case33bw, FieldWorld (seed 0)", "hours": a.hours}
    out["load_average"] = round(os.getloadavg()[0], 2)
    for case in a.cases.split(","):
        out[case] = [run(case, a.hours, fp) for fp in (False, True)]
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()
