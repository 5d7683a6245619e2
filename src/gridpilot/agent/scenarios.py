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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the scenarios' parts live in scenario_spec, scenario_kpis and scenario_run; every name that
# was importable from here still is (private ones too: bench/ and tests use them)
from gridpilot.agent.phase_kpis import PHASE_KPI_UNITS
from gridpilot.agent.scenario_kpis import _Kpis as _Kpis
from gridpilot.agent.scenario_kpis import _setup as _setup
from gridpilot.agent.scenario_kpis import theft_meters
from gridpilot.agent.scenario_run import _refuse_forged as _refuse_forged
from gridpilot.agent.scenario_run import _tamper_sensor as _tamper_sensor
from gridpilot.agent.scenario_run import run_one
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
    WORKER_ENV,
    WORLDS,
    RunResult,
    ScenarioSpec,
    default_fault_line,
    scenario_grid,
)
from gridpilot.errors import UnknownComponentError, ValidationError


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
                "unit": KPI_UNITS.get(k, PHASE_KPI_UNITS.get(k, "")),
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


def run_many(
    specs: Sequence[Any],
    executor: str = "serial",
    address: str | None = None,
    workers: int = 2,
    fn: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Run specs (with ``fn``, default :func:`run_one` on :class:`ScenarioSpec` items) serially or
    over Dask; returns ``fn``'s results in order.

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


def run_scenario(  # noqa: PLR0913
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
    "CO2_T_MWH",
    "DR_EUR_MWH",
    "KPI_UNITS",
    "PRICE_EUR_MWH",
    "SCENARIOS",
    "SUMMER_DAY",
    "SUSTAINED_MIN",
    "VOLL_EUR_MWH",
    "WINTER_DAY",
    "WORKER_ENV",
    "WORLDS",
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
