"""What the dashboard is sent: the static drawing once (``/api/grid``), the live arrays per step.

The WebSocket's messages carry per-step arrays only, in the order of ``/api/grid``'s ``buses``,
``lines`` and ``switches``; the id arrays are not repeated. Each bus's injections (MW, loads
+ EV + flexible loads drawn, generation, batteries) and each metered line's flow come along so
that the diagram can show them on demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.agent.acting import AlarmAcks
from gridpilot.model.limits import OperatingLimits

STATIC_KEYS = ("bus_id", "line_id", "switch_id")
WARN_BAND_PU = 0.05  # the dashboard warns within this distance of a voltage limit
WARN_LOADING_SHARE = 0.8  # ... and above this share of the loading limit


def limits_dict(lim: OperatingLimits) -> dict[str, float]:
    """The one set of operating limits (the orchestrator's, which its guard and FLISR hold) and
    the dashboard's warning bands derived from them (voltages pu, loadings percent)."""
    lim = lim.operating
    return {
        "v_min_pu": float(lim.v_min_pu),
        "v_max_pu": float(lim.v_max_pu),
        "v_warn_low_pu": round(float(lim.v_min_pu) + WARN_BAND_PU, 4),
        "v_warn_high_pu": round(float(lim.v_max_pu) - WARN_BAND_PU, 4),
        "loading_max_pct": float(lim.loading_max_pct),
        "loading_warn_pct": round(float(lim.loading_max_pct) * WARN_LOADING_SHARE, 2),
    }


def _per_bus(grid: Any, table: str, values: np.ndarray) -> np.ndarray:
    """``values`` of ``grid``'s ``table`` summed per bus (table order), MW."""
    n = len(grid.bus)
    t = getattr(grid, table)
    if not len(t) or len(values) != len(t):
        return np.zeros(n)
    return np.bincount(grid.bus.position_map(t["bus"]), weights=values, minlength=n)


def injections(orch: Any) -> dict[str, list[float]]:
    """Per bus of the latest observation: ``bus_load_mw`` (loads, EV chargers, flexible loads
    drawn) and ``bus_gen_mw`` (generation less battery charging), MW, 4 decimals."""
    o, g = orch.last, orch.grid
    if o is None:
        return {}
    load = (
        _per_bus(g, "load", o.load_p_mw)
        + _per_bus(g, "ev_charger", o.ev_p_mw)
        + _per_bus(g, "flex_load", o.flex_p_mw)
    )
    gen = _per_bus(g, "generator", o.gen_p_mw) - _per_bus(g, "storage", o.storage_p_mw)
    return {
        "bus_load_mw": np.round(load, 4).tolist(),
        "bus_gen_mw": np.round(gen, 4).tolist(),
    }


def line_flows(orch: Any) -> list[float | None]:
    """Active power at each line's from end, MW, where a flow sensor measures it (None elsewhere)."""
    o, g = orch.last, orch.grid
    if o is None or len(o.line_p_mw) != len(g.line):
        return [None] * len(g.line)
    est = getattr(orch, "estimator", None)
    metered = set(est.sensors.flow_line_ids) if est is not None else set()
    return [
        round(float(p), 4) if int(i) in metered else None
        for i, p in zip(g.line.ids, o.line_p_mw, strict=True)
    ]


def valued_state(orch: Any) -> dict[str, Any]:
    """The live state (``orch.state()``) with each bus's injections and each metered line's flow,
    all read under one hold of the loop's lock, so that they come from the same step. Before the
    first step it is the bare state (no values to add)."""
    with orch.lock:
        st = orch.state()
        if "v_pu" in st:
            st.update(injections(orch))
            st["line_p_mw"] = line_flows(orch)
        return st


def live_message(orch: Any, acks: AlarmAcks) -> dict[str, Any]:
    """One WebSocket message: the valued state without the static id arrays, with acknowledged
    alarms and the latest history row."""
    with orch.lock:
        st = valued_state(orch)
        st["history_tail"] = list(orch.history)[-1:]
    for k in STATIC_KEYS:
        st.pop(k, None)
    st["alarms"] = acks.annotate(st.get("alarms", []))
    return st
