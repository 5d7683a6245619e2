"""What-if scenarios: the twin run with and without gridpilot's control, KPIs side by side.

``run_scenario("fault", "case33bw", hours=4)`` runs the same simulated world twice, once
uncontrolled (protection and field crews only) and once with the orchestrator acting, and
returns a :class:`ScenarioReport` with both KPI sets and their time series; :func:`write_report`
writes JSON, CSV, plots (PNG) and an HTML page. :func:`run_many` fans specs out serially or over
a Dask cluster (``executor="dask"``: a LocalCluster, or any scheduler ``address``).

Scenarios (the orchestrator and world live in :mod:`gridpilot.agent`):

- ``fault``: a permanent fault on a line at minute 30 of a summer evening, repaired after
  ``repair_h`` hours. Uncontrolled: the breaker trips and its feeder stays dark until repair.
- ``heatwave``: a summer day from 06:00 with loads +25 % and up to +30 % more for air conditioning
  around 17:00.
- ``ev-surge``: a winter evening with four times the EV charging.
- ``cyberattack``: forged switching commands open the feeder breaker and two sectionalisers at
  minute 20, with spoofed telemetry showing them open. Uncontrolled (a legacy control system without authentication) executes them until
  operators notice (``detect_min``, default 30); with gridpilot they carry no valid API key,
  are refused and audited, the spoofed frames fail signature verification, and the grid is
  untouched. At the same minute a compromised voltage sensor (``fdi_bus``, default 18: a remote
  bus) starts reporting ``fdi_offset_pu`` (+0.06) high, signed by the gateway: the state
  estimator identifies and removes it (``checks.bad_data_removed``).
- ``n-1``: a contingency sweep (every line), see :mod:`gridpilot.agent.contingency`.

KPIs (one set per run): energy not served (MWh), SAIDI (min) and SAIFI (interruptions per
customer; interruptions longer than 3 min, EN 50160), MAIFI (shorter ones), voltage violation
minutes (any energised bus outside 0.90-1.10 pu), loading violation minutes (> 100 %), peak
import (MW), losses (MWh), curtailment (MWh; on the field world with household DR events the
events' expected reduction is counted too), cost (EUR: imports at 120 EUR/MWh, energy not
served at 10,000 EUR/MWh, curtailment at 150 EUR/MWh) and CO2 (t, imports at 0.35 t/MWh).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import UnknownComponentError, ValidationError

SCENARIOS = ("fault", "heatwave", "ev-surge", "cyberattack", "n-1", "theft")
WORLDS = ("sim", "field")  # SimWorld (the twin) or FieldWorld (gridpilot.field)
PRICE_EUR_MWH = 120.0
VOLL_EUR_MWH = 10_000.0
DR_EUR_MWH = 150.0
CO2_T_MWH = 0.35
SUSTAINED_MIN = 3.0
WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}  # one core per worker
SUMMER_DAY = 200
WINTER_DAY = 20

KPI_UNITS = {
    "energy_not_served_mwh": "MWh",
    "saidi_min": "min",
    "saifi": "1/customer",
    "maifi": "1/customer",
    "voltage_violation_min": "min",
    "loading_violation_min": "min",
    "peak_import_mw": "MW",
    "losses_mwh": "MWh",
    "curtailment_mwh": "MWh",
    "cost_eur": "EUR",
    "co2_t": "t",
}


@dataclass
class ScenarioSpec:
    """One run: scenario ``name`` on ``grid`` for ``hours``, ``controlled`` or not, with parameters."""

    name: str
    grid: str = "case33bw"
    hours: float = 4.0
    controlled: bool = True
    step_s: float = 60.0
    fleet: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    world: str = "field"  # "field" (FieldWorld: gridpilot.field's simulator) or "sim" (SimWorld)


@dataclass
class RunResult:
    """KPIs and per-step series of one run (series: time, import, served load, vmin, max loading, dead buses)."""

    spec: ScenarioSpec
    kpis: dict[str, float]
    series: dict[str, list[Any]]
    actions: int
    refused: int
    wall_s: float
    notes: list[str] = field(default_factory=list)
    telemetry_refused: int = 0
    bad_data_removed: list[str] = field(default_factory=list)  # measurements the estimator removed


@dataclass
class ScenarioReport:
    """Both runs of a scenario and the comparison."""

    name: str
    grid: str
    hours: float
    uncontrolled: RunResult
    controlled: RunResult
    checks: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """KPI rows: name, unit, uncontrolled, controlled."""
        return [
            {
                "kpi": k,
                "unit": KPI_UNITS.get(k, ""),
                "uncontrolled": self.uncontrolled.kpis[k],
                "controlled": self.controlled.kpis[k],
            }
            for k in self.uncontrolled.kpis
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the long series)."""

        def run(r: RunResult) -> dict[str, Any]:
            return {
                "kpis": r.kpis,
                "actions": r.actions,
                "refused": r.refused,
                "wall_s": round(r.wall_s, 3),
                "notes": r.notes,
            }

        return {
            "scenario": self.name,
            "grid": self.grid,
            "hours": self.hours,
            "world": self.controlled.spec.world,
            "uncontrolled": run(self.uncontrolled),
            "controlled": run(self.controlled),
            "checks": self.checks,
        }


def scenario_grid(name: str, fleet: bool = True) -> Any:
    """The grid of a scenario: a built-in grid, with gridpilot's demo fleet when ``fleet``."""
    from gridpilot.agent.fleet import demo_grid
    from gridpilot.model import load_grid

    return demo_grid(name) if fleet else load_grid(name)


def default_fault_line(grid: Any) -> int:
    """A mid-feeder line for the fault scenario: 7 on case33bw, else the switched line of median depth."""
    from gridpilot.model import ElementType
    from gridpilot.twin import supply_tree

    if grid.name.startswith("case33bw"):
        return 7
    tree = supply_tree(grid)
    sw = grid.switch
    lines = sw["element"][(sw["et"] == ElementType.LINE) & sw["closed"] & (sw["kind"] != 0)]
    if lines.size == 0:
        return int(grid.line.ids[len(grid.line) // 2])
    pos = grid.line.index_of(lines)
    d = tree.depth[grid.bus.position_map(grid.line["to_bus"][pos])]
    return int(lines[np.argsort(d)[d.size // 2]])


def _setup(
    spec: ScenarioSpec, grid: Any
) -> tuple[int, dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Start step (15-min profile index), events by step, and attacker commands (cyberattack)."""
    per_h = round(3600 / spec.step_s)
    p = spec.params
    n = round(spec.hours * per_h)
    if spec.name == "fault":
        line = int(p.get("line", default_fault_line(grid)))
        grid.line.index_of(line)
        at = int(p.get("at_min", 30) * 60 / spec.step_s)
        rep = at + int(p.get("repair_h", 2.0) * per_h)
        ev = {at: [{"kind": "fault", "line": line}]}
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
        return {key: round(float(v), 6) for key, v in self.k.items()}


def run_one(spec: ScenarioSpec) -> RunResult:
    """Run one scenario spec in the twin; returns its :class:`RunResult` (picklable, for Dask)."""
    from gridpilot.agent.fieldworld import FieldWorld
    from gridpilot.agent.orchestrator import Orchestrator
    from gridpilot.agent.world import SimWorld

    if spec.world not in WORLDS:
        raise ValidationError(f"world: unknown {spec.world!r}; known: {', '.join(WORLDS)}")
    if spec.hours <= 0:
        raise ValidationError(f"hours: must be positive, got {spec.hours}")
    if spec.name not in SCENARIOS or spec.name == "n-1":
        raise UnknownComponentError(
            "scenario", spec.name, "known here: fault, heatwave, ev-surge, cyberattack, theft"
        )
    theft = spec.name == "theft"
    if theft and spec.world != "field":
        raise ValidationError(
            f"world: the theft scenario needs household meters (field), got {spec.world!r}"
        )
    t0 = time.perf_counter()
    grid = scenario_grid(spec.grid, spec.fleet)
    start, events, attack = _setup(spec, grid)
    steps = round(spec.hours * 3600 / spec.step_s)
    horizon = int(spec.hours * 4) + 8
    world: Any = (
        FieldWorld(grid, step_s=spec.step_s, start_step=start, horizon_steps=horizon)
        if spec.world == "field"
        else SimWorld(grid, step_s=spec.step_s, start_step=start, horizon_steps=horizon)
    )
    kp = _Kpis(world.grid, spec.step_s)
    notes: list[str] = []
    actions = refused = 0
    orch = Orchestrator(world, meters=theft) if spec.controlled else None
    detect = int(spec.params.get("detect_min", 30) * 60 / spec.step_s)
    # theft: tampered meters from at_min (none when params["clean"]); detection and false alarms
    theft_at = int(spec.params.get("at_min", 420) * 60 / spec.step_s) if theft else -1
    if theft and spec.params.get("clean"):
        theft_at = steps + 1
    theft_factor = float(spec.params.get("factor", 0.5))
    ntl = {"detected_t": None, "false_alarms": 0, "was": False, "sections": []}
    for t in range(steps):
        if t == theft_at:
            m = theft_meters(world, spec.params.get("loads"), float(spec.params.get("share", 0.5)))
            world.sim.inject_theft(m, theft_factor)
            notes.append(f"step {t}: {len(m)} meters report {theft_factor:g} of their import")
        for ev in events.get(t, []):
            kind = ev["kind"]
            params = {k: v for k, v in ev.items() if k != "kind"}
            if orch is not None:
                orch.inject(kind, actor="scenario", **params)
            else:
                world.inject(kind, **params)
                if kind == "repair":  # the crew closes what protection opened
                    world.switch_closed = world.normal_closed.copy()
        if orch is not None and attack and t == attack[0]["t"]:
            _tamper_sensor(orch, spec, notes, t)
        for cmd in [c for c in attack if c["t"] == t]:
            if orch is None:
                world.set_switch(cmd["switch"], cmd["closed"])
                notes.append(
                    f"step {t}: forged command executed: switch {cmd['switch']} -> {cmd['closed']}"
                )
            else:
                refused += _refuse_forged(orch, cmd)
        if orch is None and attack and t == attack[0]["t"] + detect:
            world.switch_closed = world.normal_closed.copy()
            notes.append(
                f"step {t}: operators noticed the attack and restored the normal configuration"
            )
        if orch is not None:
            rep = orch.step()
            actions += len(rep.executed)
            refused += len(rep.refused)
            obs = orch.last
            kp.add(world, obs, orch)
            if theft:
                on = "non_technical_loss" in orch.alarms
                if on and not ntl["was"]:
                    if t < theft_at:
                        ntl["false_alarms"] += 1
                    elif ntl["detected_t"] is None:
                        ntl["detected_t"] = t
                        ntl["sections"] = list(orch.alarms["non_technical_loss"]["sections"])
                ntl["was"] = on
        else:
            obs = world.observe()
            kp.add(world, obs)
            world.advance()
    tel = int(orch.counters.get("telemetry_rejected", 0)) if orch is not None else 0
    bad = (
        sorted({m for e in orch.events if e["kind"] == "bad_data" for m in e["measurements"]})
        if orch is not None
        else []
    )
    kpis = kp.finish()
    if theft:
        d = ntl["detected_t"]
        # None (JSON null) where nothing was detected (or nobody watched: uncontrolled)
        kpis["detection_delay_min"] = (  # type: ignore[assignment]
            None if d is None else round((d - theft_at) * spec.step_s / 60.0, 3)
        )
        kpis["false_alarms"] = float(ntl["false_alarms"])
        if orch is not None:
            notes.append(
                f"meter rows {orch.counters['meter_rows']}, frames refused "
                f"{orch.counters['meter_frames_rejected']}; sections named {ntl['sections']}"
            )
    return RunResult(
        spec, kpis, kp.series, actions, refused, time.perf_counter() - t0, notes, tel, bad
    )


def _tamper_sensor(orch: Any, spec: ScenarioSpec, notes: list[str], t: int) -> None:
    """The attacker's false-data injection on one voltage sensor (signed by the gateway)."""
    link, est = getattr(orch, "link", None), getattr(orch, "estimator", None)
    if link is None or est is None:
        return
    bus = int(spec.params.get("fdi_bus", 18))
    if bus not in est.sensors.v_bus_ids:  # another grid: its last (remote) sensor
        bus = int(est.sensors.v_bus_ids[-1])
    off = float(spec.params.get("fdi_offset_pu", 0.06))
    link.tamper_voltage(bus, off)
    notes.append(f"step {t}: voltage sensor at bus {bus} compromised: reports {off:+.3f} pu")


def _refuse_forged(orch: Any, cmd: dict[str, Any]) -> int:
    """A forged command meets the API's key check: refused and audited. Returns 1."""
    from gridpilot.agent.auth import KeyStore
    from gridpilot.errors import AuthError

    if (
        getattr(orch, "link", None) is not None
    ):  # the attacker also spoofs telemetry: switch shown open
        ts_ms = int(orch.world.time.astype("datetime64[ms]").astype(np.int64))
        orch.receive_foreign([orch.link.forged_frame(ts_ms, [cmd["switch"]])])
    keys = KeyStore.generate()
    try:
        keys.require("forged-key-from-attacker", "operator")
    except AuthError as exc:
        orch.audit.record(
            actor="unknown",
            kind="auth",
            what={"command": "switch", **cmd},
            why=str(exc),
            status="refused",
            sim_time=str(orch.world.time),
        )
        orch._event(
            "security", f"forged command refused: switch {cmd['switch']} ({exc})", "critical"
        )
        return 1
    return 0


def run_many(
    specs: Sequence[ScenarioSpec],
    executor: str = "serial",
    address: str | None = None,
    workers: int = 2,
    fn: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Run specs (with ``fn``, default :func:`run_one`) serially or over Dask; results in order.

    ``executor="dask"`` uses the scheduler at ``address`` or starts a LocalCluster of
    ``workers`` single-threaded worker processes (closed afterwards).
    """
    fn = fn or run_one
    if executor == "serial":
        return [fn(s) for s in specs]
    if executor != "dask":
        raise ValidationError(f"executor: unknown {executor!r}; known: serial, dask")
    with dask_client(address, workers) as client:
        futures = client.map(fn, list(specs), pure=False)
        return client.gather(futures)


class dask_client:
    """Context manager: a Dask client on ``address`` or on a fresh LocalCluster of ``workers`` processes."""

    def __init__(self, address: str | None = None, workers: int = 2) -> None:
        self.address, self.workers = address, workers
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        from dask.distributed import Client, LocalCluster

        if self.address:
            self.client = Client(self.address)
        else:
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=WORKER_ENV,
            )
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_scenario(
    name: str,
    grid: str = "case33bw",
    hours: float | None = None,
    *,
    executor: str = "serial",
    address: str | None = None,
    fleet: bool = True,
    step_s: float = 60.0,
    params: dict[str, Any] | None = None,
    world: str = "field",
) -> ScenarioReport:
    """Run scenario ``name`` uncontrolled and controlled; returns the :class:`ScenarioReport`.

    Default hours: fault 4, heatwave 24, ev-surge 6, cyberattack 2, theft 9 (meters tampered
    at 7 h; the loop with the meter path; a third, clean run counts false alarms). For ``n-1``
    use :func:`gridpilot.agent.contingency.n1_report`. ``world``: ``field`` (FieldWorld on
    ``gridpilot.field``, default) or ``sim`` (SimWorld, the twin-only world).
    """
    defaults = {"fault": 4.0, "heatwave": 24.0, "ev-surge": 6.0, "cyberattack": 2.0, "theft": 9.0}
    if name not in defaults:
        raise UnknownComponentError("scenario", name, f"known: {', '.join(defaults)} (and n-1)")
    h = defaults[name] if hours is None else float(hours)
    specs = [
        ScenarioSpec(name, grid, h, c, step_s, fleet, dict(params or {}), world)
        for c in (False, True)
    ]
    unc, ctl = run_many(specs, executor, address)
    rep = ScenarioReport(name, grid, h, unc, ctl)
    u, c = unc.kpis, ctl.kpis
    if name == "fault":
        ratio = (
            c["energy_not_served_mwh"] / u["energy_not_served_mwh"]
            if u["energy_not_served_mwh"] > 0
            else None
        )
        rep.checks = {
            "ens_ratio": None if ratio is None else round(ratio, 4),
            "ens_within_10pct": ratio is not None and ratio <= 0.10,
        }
    elif name in ("heatwave", "ev-surge"):
        rep.checks = {
            "uncontrolled_violation_min": u["voltage_violation_min"] + u["loading_violation_min"],
            "controlled_violation_min": c["voltage_violation_min"] + c["loading_violation_min"],
            "violations_removed": (c["voltage_violation_min"] + c["loading_violation_min"]) == 0,
        }
    elif name == "theft":
        clean = run_many(
            [
                ScenarioSpec(
                    name, grid, h, True, step_s, fleet, {**(params or {}), "clean": True}, world
                )
            ],
            executor,
            address,
        )[0]
        delay = c["detection_delay_min"]
        rep.checks = {
            "detection_delay_min": delay,
            "detected": delay is not None,
            "false_alarms_before_theft": int(c["false_alarms"]),
            "false_alarms_clean_run": int(clean.kpis["false_alarms"]),
            "clean_run_notes": clean.notes,
        }
    elif name == "cyberattack":
        rep.checks = {
            "forged_commands_refused": ctl.refused,
            "telemetry_frames_refused": ctl.telemetry_refused,
            "bad_data_removed": ctl.bad_data_removed,
            "controlled_ens_mwh": c["energy_not_served_mwh"],
        }
    return rep


def _fmt(v: Any) -> str:
    """A KPI for the report page (``-`` where there is none, e.g. theft never detected)."""
    return "-" if v is None else f"{v:.4g}"


def open_report(out_dir: str | Path, names: Sequence[str], data: dict[str, Any]) -> list[Path]:
    """A report folder: created if needed, ``data`` written to the first of ``names`` (JSON);
    returns the paths of ``names`` in it. Selects matplotlib's file backend for the plots."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in names]
    paths[0].write_text(json.dumps(data, indent=2))
    return paths


def write_report(rep: ScenarioReport, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``kpis.csv``, ``series.csv``, ``timeseries.png`` and ``index.html``; returns the paths."""
    names = ("report.json", "kpis.csv", "series.csv", "timeseries.png", "index.html")
    paths = open_report(out_dir, names, rep.to_dict())
    import matplotlib.pyplot as plt
    import pandas as pd

    pd.DataFrame(rep.table()).to_csv(paths[1], index=False)
    su, sc = pd.DataFrame(rep.uncontrolled.series), pd.DataFrame(rep.controlled.series)
    both = su.add_suffix("_uncontrolled").join(sc.add_suffix("_controlled"))
    both.to_csv(paths[2], index=False)
    x = pd.to_datetime(su["time"])
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    for ax, col, lab in zip(
        axes,
        ("served_mw", "vmin_pu", "max_loading_pct", "dr_level"),
        ("served load (MW)", "lowest voltage (pu)", "highest loading (%)", "DR level"),
        strict=True,
    ):
        ax.plot(x, su[col].astype(float), label="uncontrolled", color="#c0392b")
        ax.plot(x, sc[col].astype(float), label="gridpilot", color="#2471a3")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[1].axhline(0.90, color="grey", ls="--", lw=1)
    axes[2].axhline(100, color="grey", ls="--", lw=1)
    axes[0].legend()
    axes[0].set_title(f"scenario {rep.name} on {rep.grid}, {rep.hours} h")
    fig.tight_layout()
    fig.savefig(paths[3], dpi=90)
    plt.close(fig)
    rows = "".join(
        f"<tr><td>{r['kpi']}</td><td>{r['unit']}</td><td>{_fmt(r['uncontrolled'])}</td>"
        f"<td>{_fmt(r['controlled'])}</td></tr>"
        for r in rep.table()
    )
    paths[4].write_text(
        f"<!doctype html><meta charset=utf-8><title>gridpilot scenario {rep.name}</title>"
        f"<h1>Scenario {rep.name} on {rep.grid} ({rep.hours} h)</h1>"
        f"<table border=1 cellpadding=4><tr><th>KPI</th><th>unit</th><th>uncontrolled</th><th>gridpilot</th></tr>{rows}</table>"
        f"<p>checks: <code>{json.dumps(rep.checks)}</code></p><img src='timeseries.png' width=900>"
        f"<p>actions by gridpilot: {rep.controlled.actions}; refused by its guard or API: {rep.controlled.refused}</p>"
    )
    return paths


__all__ = [
    "KPI_UNITS",
    "SCENARIOS",
    "RunResult",
    "ScenarioReport",
    "ScenarioSpec",
    "dask_client",
    "default_fault_line",
    "run_many",
    "run_one",
    "run_scenario",
    "scenario_grid",
    "theft_meters",
    "write_report",
]
