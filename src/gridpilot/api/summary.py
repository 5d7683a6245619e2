"""What a served run did, in a few lines: printed when ``gridpilot demo`` / ``serve`` stop."""

from __future__ import annotations

from typing import Any

import numpy as np


def run_summary(orch: Any, happened: list[str] | None = None) -> dict[str, Any]:
    """KPIs of the run so far: simulated span (h), drills, FLISR and DR actions, plans executed
    and refused, lowest voltage (pu), highest loading (%), bus-minutes without supply and energy
    imported (MWh) over the kept history, audit entries and whether the chain verifies."""
    with orch.lock:
        hist = list(orch.history)
        actions = orch.audit.entries(limit=100_000, kind="action")
        c = dict(orch.counters)
    step_h = orch.world.step_s / 3600.0

    def col(k: str) -> np.ndarray:
        return np.array([r.get(k) for r in hist if r.get(k) is not None], np.float64)

    vmin, load, dead, imp = (
        col("vmin_pu"),
        col("max_loading_pct"),
        col("dead_buses"),
        col("source_p_mw"),
    )
    by = lambda actor: sum(1 for a in actions if a["actor"] == actor)  # noqa: E731
    ok, _bad = orch.audit.verify()
    return {
        "simulated_h": round(c.get("steps", 0) * step_h, 2),
        "steps": c.get("steps", 0),
        "drills": list(happened or []),
        "flisr_actions": by("policy:flisr"),
        "dr_actions": by("policy:dr"),
        "operator_actions": sum(1 for a in actions if a["actor"].startswith("operator:")),
        "plans_executed": c.get("executed", 0),
        "plans_refused": c.get("refused", 0),
        "switch_ops": c.get("switch_ops", 0),
        "lowest_v_pu": round(float(vmin.min()), 4) if vmin.size else None,
        "max_loading_pct": round(float(load.max()), 1) if load.size else None,
        "bus_minutes_without_supply": round(float(dead.sum() * orch.world.step_s / 60.0), 1),
        "energy_imported_mwh": round(float(imp.sum() * step_h), 3),
        "history_steps": len(hist),
        "audit_entries": orch.audit.count(),
        "audit_chain_ok": bool(ok),
    }


def summary_lines(s: dict[str, Any]) -> list[str]:
    """:func:`run_summary` as short lines for the terminal."""
    drills = _drills(s["drills"])
    over = (
        f" (over the last {s['history_steps']} steps kept)"
        if s["history_steps"] < s["steps"]
        else ""
    )
    return [
        f"ran {s['steps']} steps ({s['simulated_h']} simulated hours); drills: {drills}",
        f"self-healing: {s['flisr_actions']} FLISR action(s); demand response: {s['dr_actions']} action(s); "
        f"operators: {s['operator_actions']} command(s)",
        f"plans executed {s['plans_executed']}, refused by the guard {s['plans_refused']}, switch operations {s['switch_ops']}",
        f"lowest voltage {s['lowest_v_pu']} pu, highest loading {s['max_loading_pct']} %, "
        f"{s['bus_minutes_without_supply']} bus-minutes without supply, {s['energy_imported_mwh']} MWh imported{over}",
        f"audit: {s['audit_entries']} entries, hash chain {'verifies' if s['audit_chain_ok'] else 'BROKEN'}",
    ]


def _drills(happened: list[str]) -> str:
    """``a fault on line 4, a fault on line 13, a wind drop …`` → ``faults on lines 4, 13; 1 wind drop``."""
    if not happened:
        return "none"
    faults = [h.rsplit(" ", 1)[-1] for h in happened if h.startswith("a fault on line ")]
    drops = sum(h.startswith("a wind drop") for h in happened)
    rest = sorted(
        {
            h
            for h in happened
            if not h.startswith(("a fault on line ", "a wind drop", "the repair", "the wind back"))
        }
    )
    parts = [f"fault(s) on line(s) {', '.join(faults)}"] if faults else []
    parts += [f"{drops} wind drop(s)"] if drops else []
    return "; ".join(parts + rest) or "none"
