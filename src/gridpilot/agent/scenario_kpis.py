"""The scenarios' KPIs, accumulated step by step (see :mod:`gridpilot.agent.scenarios`), and
each scenario's set-up: start step, events and the attacker's commands."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.agent.scenario_spec import (
    CO2_T_MWH,
    DR_EUR_MWH,
    KPI_UNITS,
    PRICE_EUR_MWH,
    SCENARIOS,
    SUMMER_DAY,
    SUSTAINED_MIN,
    VOLL_EUR_MWH,
    WINTER_DAY,
    ScenarioSpec,
    default_fault_line,
)
from gridpilot.errors import UnknownComponentError


def _setup(
    spec: ScenarioSpec, grid: Any
) -> tuple[int, dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Start step (15-min profile index), events by step, and attacker commands (cyberattack)."""
    per_h = round(3600 / spec.step_s)
    p = spec.params
    n = round(spec.hours * per_h)
    if spec.name == "fault":
        # a three-phase feeder's fault may name its ``branch``, ``phases`` and ``permanent``
        fault: dict[str, Any] = {k: p[k] for k in ("branch", "phases", "permanent") if k in p}
        if "branch" not in fault:
            fault["line"] = int(p.get("line", default_fault_line(grid)))
            grid.line.index_of(fault["line"])
        at = int(p.get("at_min", 30) * 60 / spec.step_s)
        rep = at + int(p.get("repair_h", 2.0) * per_h)
        ev = {at: [{"kind": "fault", **fault}]}
        if rep < n:
            ev.setdefault(rep, []).append({"kind": "repair"})
        return SUMMER_DAY * 96 + 17 * 4, ev, []
    if spec.name == "heatwave":
        return (
            SUMMER_DAY * 96 + int(p.get("start_hour", 6) * 4),
            {
                0: [
                    {
                        "kind": "heatwave",
                        "load_factor": p.get("load_factor", 1.25),
                        "peak_factor": p.get("peak_factor", 0.3),
                    }
                ]
            },
            [],
        )
    if spec.name == "ev-surge":
        return (
            WINTER_DAY * 96 + 16 * 4,
            {0: [{"kind": "ev_surge", "factor": p.get("factor", 4.0)}]},
            [],
        )
    if spec.name == "cyberattack":
        at = int(p.get("at_min", 20) * 60 / spec.step_s)
        sw = grid.switch
        targets = [int(sw.ids[0])] + [int(x) for x in sw.ids[(sw["kind"] != 0) & sw["closed"]][2:4]]
        return (
            SUMMER_DAY * 96 + 17 * 4,
            {},
            [{"t": at, "switch": s, "closed": False} for s in targets],
        )
    if spec.name == "theft":  # meters tampered with in the field (run_one injects it)
        return SUMMER_DAY * 96 + int(p.get("start_hour", 0) * 4), {}, []
    raise UnknownComponentError("scenario", spec.name, f"known: {', '.join(SCENARIOS)}")


def theft_meters(world: Any, loads: list[int] | None = None, share: float = 0.5) -> list[int]:
    """The theft scenario's tampered meters (world side): ``share`` of the meters behind each of
    ``loads`` (grid load ids; default the 3rd, 12th and 25th load), the first ones of each."""
    g = world.grid
    ids = [int(x) for x in g.load.ids]
    loads = [ids[k] for k in (2, 11, 24) if k < len(ids)] if loads is None else list(loads)
    pos = g.load.index_of(np.asarray(loads, np.int64))
    ml = getattr(world, "meter_load", None)  # a three-phase world's meters
    if ml is None:
        ml = world.devices.meter_load
    out: list[int] = []
    for k in pos:
        m = np.flatnonzero(ml == k)
        out += [int(x) for x in m[: max(1, round(share * m.size))]]
    return out


class _Kpis:
    """Accumulates KPIs step by step."""

    def __init__(self, grid: Any, step_s: float) -> None:
        self.grid = grid
        self.h = step_s / 3600.0
        self.cust = grid.load["customers"].astype(np.int64)
        self.total_cust = max(int(self.cust.sum()), 1)
        self.run = np.zeros(len(grid.load), np.int64)
        self.sustained = 0
        self.momentary = 0
        self.k = dict.fromkeys(KPI_UNITS, 0.0)
        self.step_s = step_s
        self.phase: Any = None  # node-phase KPIs on a three-phase world (PhaseKpis)
        self.series: dict[str, list[Any]] = {
            k: []
            for k in (
                "time",
                "import_mw",
                "served_mw",
                "vmin_pu",
                "max_loading_pct",
                "dead_buses",
                "dr_level",
            )
        }

    def _close_runs(self, ended: np.ndarray) -> None:
        mins = self.run[ended] * self.h * 60
        c = self.cust[ended]
        self.sustained += int(c[mins > SUSTAINED_MIN].sum())
        self.momentary += int(c[(mins > 0) & (mins <= SUSTAINED_MIN)].sum())
        self.run[ended] = 0

    def _reclosures(self, world: Any, obs: Any, off: np.ndarray) -> None:
        """A recloser's trips that end in a successful reclose (sub-step: a temporary fault, or
        fuse saving before a fuse blew) are one momentary interruption of every customer it
        feeds and still has on (its switch opened in the grid's topology; every customer on
        when the recloser is no switch of the grid)."""
        for ev in obs.events:
            if ev.get("kind") != "recloser_operation" or ev.get("lockout"):
                continue
            behind = np.ones(len(self.cust), bool)
            sw = ev.get("switch")
            g = world.grid
            if sw is not None:
                from gridpilot.twin import energised

                closed = np.asarray(obs.switch_closed, bool).copy()
                closed[g.switch.index_of([int(sw)])[0]] = False
                behind = ~energised(g, closed)[g.bus.position_map(g.load["bus"])]
            self.momentary += int(self.cust[behind & ~off].sum())

    def add(self, world: Any, obs: Any, orch: Any = None) -> None:
        from gridpilot.agent.env import step_kpis

        # household DR on the field world: the active FlexDR event's expected reduction
        fd = getattr(orch, "flexdr", None)
        shed = fd.expected_shed_mw(obs.time) if fd is not None else 0.0
        s = step_kpis(world, obs, household_shed_mw=shed)
        k, h = self.k, self.h
        off = s["customers_off_mask"]
        self._close_runs(~off & (self.run > 0))
        self.run[off] += 1
        self._reclosures(world, obs, off)
        k["energy_not_served_mwh"] += s["ens_mwh"]
        k["saidi_min"] += float(self.cust[off].sum()) * h * 60 / self.total_cust
        k["voltage_violation_min"] += h * 60 * s["v_violation"]
        k["loading_violation_min"] += h * 60 * s["loading_violation"]
        k["peak_import_mw"] = max(k["peak_import_mw"], s["import_mw"])
        k["losses_mwh"] += (s["losses_kw"] if np.isfinite(s["losses_kw"]) else 0.0) / 1e3 * h
        k["curtailment_mwh"] += s["curtailed_mwh"]
        imp = max(s["import_mw"], 0.0) * h
        k["cost_eur"] += (
            imp * PRICE_EUR_MWH + s["ens_mwh"] * VOLL_EUR_MWH + s["curtailed_mwh"] * DR_EUR_MWH
        )
        k["co2_t"] += imp * CO2_T_MWH
        if hasattr(world, "phase_result"):  # a three-phase world: node-phase KPIs too
            if self.phase is None:
                from gridpilot.agent.phase_kpis import PhaseKpis

                self.phase = PhaseKpis(self.step_s, getattr(world, "limits", None))
            self.phase.add(world)
        sr = self.series
        sr["time"].append(str(obs.time))
        sr["import_mw"].append(round(obs.source_p_mw, 4))
        sr["served_mw"].append(round(float(obs.load_p_mw.sum()), 4))
        sr["vmin_pu"].append(None if not np.isfinite(obs.vmin_pu) else round(obs.vmin_pu, 4))
        sr["max_loading_pct"].append(round(obs.max_loading_pct, 2))
        sr["dead_buses"].append(int((~obs.energised).sum()))
        sr["dr_level"].append(round(world.dr_level, 3))

    def finish(self) -> dict[str, float]:
        self._close_runs(self.run > 0)
        self.k["saifi"] = self.sustained / self.total_cust
        self.k["maifi"] = self.momentary / self.total_cust
        out = {key: round(float(v), 6) for key, v in self.k.items()}
        if self.phase is not None:
            out.update(self.phase.finish())
            self.series.update(self.phase.series)
        return out
