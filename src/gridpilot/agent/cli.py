"""CLI: ``gridpilot scenario``, and the demo orchestrator that ``gridpilot demo`` and ``serve``
(in :mod:`gridpilot.api.cli`, since they serve the API) build."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

DEMO_START_STEP = 161 * 96 + 16 * 4  # a windy early-summer day (10 June), 16:00
# the what-if scenarios (gridpilot.agent.scenarios.SCENARIOS, kept in step by a test); listed
# here so that ``--help`` does not import the scenario machinery
SCENARIO_NAMES: tuple[str, ...] = ("heatwave", "fault", "cyberattack", "ev-surge", "theft")
# world wrappers by EV protocol name ((world, audit) -> world), registered from above the loop
# (gridpilot.protocols' CLI registers "ocpp"): the agent never imports a protocol package
EV_PROTOCOLS: dict[str, Callable[[Any, Any], Any]] = {}
# world wrappers by protocol name for ``demo --protocols a,b`` (same signature; gridpilot.protocols
# registers "ocpp", "sunspec", "openadr"), applied in the order given
PROTOCOL_WORLDS: dict[str, Callable[[Any, Any], Any]] = {}


def demo_events(step_s: float = 60.0) -> dict[int, list[dict[str, Any]]]:
    """The demo's injected events by step: a fault on line 7 at +10 min (repaired at +70 min) and a
    wind drop at +40 min (back at +100 min)."""
    m = lambda minutes: int(minutes * 60 / step_s)  # noqa: E731
    return {
        m(10): [{"kind": "fault", "line": 7}],
        m(40): [{"kind": "wind_drop", "factor": 0.05}],
        m(70): [{"kind": "repair"}],
        m(100): [{"kind": "wind_restore"}],
    }


def build_demo(
    grid: str = "case33bw",
    mode: str = "autonomous",
    audit_path: str | None = None,
    world: str = "field",
    flex_plan: bool = False,
    meters: bool = False,
    ev_protocol: str = "internal",
    protocols: tuple[str, ...] = (),
) -> Any:
    """The demo orchestrator: ``grid`` with the demo fleet, a summer afternoon, 1-minute steps;
    ``world`` ``field`` (FieldWorld on gridpilot.field, default) or ``sim`` (SimWorld);
    ``flex_plan`` adds the flexibility schedule (FlexPlanPolicy; field world only), ``meters``
    the household meters' telemetry and theft checks (MeterPath; field world only);
    ``ev_protocol`` ``ocpp`` puts the EV stations behind OCPP (gridpilot.protocols; field world);
    ``protocols`` names field protocols whose world wrappers apply (:data:`PROTOCOL_WORLDS`)."""
    from gridpilot.agent import AuditLog, FieldWorld, Orchestrator, SimWorld, demo_grid
    from gridpilot.errors import ValidationError

    if world not in ("sim", "field"):
        raise ValidationError(f"world: unknown {world!r}; known: sim, field")
    if flex_plan and world != "field":
        raise ValidationError(
            f"flex_plan: the flexibility schedule needs the field world's devices, got world {world!r}"
        )
    wrap = EV_PROTOCOLS.get(ev_protocol)
    if ev_protocol != "internal" and (wrap is None or world != "field"):
        known = ", ".join(["internal", *EV_PROTOCOLS])
        raise ValidationError(
            f"ev_protocol: {ev_protocol!r} with world {world!r}; known: {known} (field world)"
        )
    bad = [p for p in protocols if p not in PROTOCOL_WORLDS]
    if protocols and (bad or world != "field"):
        raise ValidationError(
            f"protocols: {','.join(protocols)!r} with world {world!r}; known: "
            f"{', '.join(PROTOCOL_WORLDS) or 'none registered'} (field world)"
        )
    from gridpilot.agent.world3p import is_three_phase

    world_obj: Any
    if is_three_phase(grid):  # a three-phase feeder runs in the three-phase world
        world_obj = three_phase_demo_world(grid, flex_plan, ev_protocol, protocols)
    else:
        cls = FieldWorld if world == "field" else SimWorld
        world_obj = cls(demo_grid(grid), step_s=60.0, start_step=DEMO_START_STEP)
    audit = AuditLog(audit_path or ":memory:")
    if wrap is not None:
        world_obj = wrap(world_obj, audit)
    for name in protocols:
        world_obj = PROTOCOL_WORLDS[name](world_obj, audit)
    orch = Orchestrator(
        world_obj,
        mode=mode,
        audit=audit,
        flex_plan=flex_plan,
        meters=meters,
    )
    attach = getattr(world_obj, "attach", None)  # a protocol world that reads the loop's records
    if callable(attach):
        attach(orch)
    return orch


def three_phase_demo_world(
    grid: str,
    flex_plan: bool = False,
    ev_protocol: str = "internal",
    protocols: tuple[str, ...] = (),
) -> Any:
    """The demo's world on a three-phase feeder (:class:`~gridpilot.agent.ThreePhaseWorld`
    with the demo fleet and its customer meters); the field world's device options are
    refused, named."""
    from gridpilot.agent.world3p import ThreePhaseWorld, three_phase_grid
    from gridpilot.errors import ValidationError

    asked = {
        "flex_plan": flex_plan,
        "ev_protocol": ev_protocol != "internal",
        "protocols": bool(protocols),
    }
    bad = [k for k, v in asked.items() if v]
    if bad:
        raise ValidationError(
            f"{bad[0]}: the three-phase world of {grid!r} has no household devices or field "
            "protocols yet (field world on balanced grids only; --meters works)"
        )
    return ThreePhaseWorld(three_phase_grid(grid), step_s=60.0, start_step=DEMO_START_STEP)


# options shared by ``demo``, ``serve`` and ``scenario``
GridOpt = Annotated[str, typer.Option(help="grid (the demo fleet is added)")]
DurationOpt = Annotated[
    float | None, typer.Option(help="wall seconds to run (default: until Ctrl-C)")
]
SpeedOpt = Annotated[float, typer.Option(help="simulated seconds per wall second")]
ModeOpt = Annotated[str, typer.Option(help="autonomous or propose")]
WorldOpt = Annotated[
    str, typer.Option(help="field (gridpilot.field's simulator) or sim (SimWorld)")
]
FlexPlanOpt = Annotated[
    bool,
    typer.Option(
        "--flex-plan/--no-flex-plan",
        help="plan the flexible fleet hourly (FlexPlanPolicy; field world)",
    ),
]
EvProtocolOpt = Annotated[
    str,
    typer.Option(
        "--ev-protocol",
        help="internal, or ocpp: the EV stations as OCPP charge points (gridpilot.protocols)",
    ),
]
ProtocolsOpt = Annotated[
    str,
    typer.Option(
        "--protocols",
        help="field protocols, comma-separated: ocpp (EV stations), sunspec (batteries and PV "
        "inverters), openadr (DR to households only through OpenADR 3 VENs); docs/protocols.md",
    ),
]
MetersOpt = Annotated[
    bool,
    typer.Option(
        "--meters/--no-meters",
        help="household meters' signed 15-min telemetry in the loop, theft checks (field world)",
    ),
]


def _kpi_rows(table: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """A scenario report's KPI table as (KPI with its unit, uncontrolled, controlled) rows."""
    return [
        (
            r["kpi"] + (f" ({r['unit']})" if r["unit"] else ""),
            r["uncontrolled"],
            r["controlled"],
        )
        for r in table
    ]


def _print_kpis(
    con: Any, title: str, rows: list[Any], data: dict[str, Any], report: Path | None
) -> None:
    """The KPIs uncontrolled beside gridpilot as a table, then the checks and the report path."""
    from rich.table import Table

    from gridpilot.tables import format_value

    t = Table(title=title)
    t.add_column("KPI")
    t.add_column("uncontrolled", justify="right")
    t.add_column("gridpilot", justify="right")
    for k, u, c in rows:
        t.add_row(str(k), format_value(u), format_value(c))
    con.print(t)
    if data.get("checks"):
        con.print(f"checks: {data['checks']}")
    if report:
        con.print(f"report written to {report}/index.html")


def scenario(
    name: Annotated[str, typer.Argument(help=f"{', '.join(SCENARIO_NAMES)} or n-1")],
    grid: Annotated[str, typer.Argument(help="built-in grid")] = "case33bw",
    hours: Annotated[
        float | None, typer.Option(help="simulated hours (scenario default if omitted)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    report: Annotated[
        Path | None, typer.Option(help="write a report (JSON, CSV, plots, HTML) here")
    ] = None,
    executor: Annotated[str, typer.Option(help="serial or dask")] = "serial",
    address: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster)")
    ] = None,
    workers: Annotated[int, typer.Option(help="LocalCluster workers")] = 2,
    fleet: Annotated[
        bool, typer.Option("--fleet/--no-fleet", help="add the demo device fleet")
    ] = True,
    world: WorldOpt = "field",
    grid_opt: Annotated[
        str | None,
        typer.Option("--grid", help="built-in grid (overrides the GRID argument)"),
    ] = None,
) -> None:
    """Run a what-if scenario with and without gridpilot's control; KPIs side by side.

    A three-phase feeder (ieee13 ... ieee8500, a .dss file) runs in the three-phase world
    (gridpilot.agent.ThreePhaseWorld) whatever --world says; its KPIs add node-phase ones."""
    from rich.console import Console

    from gridpilot.errors import GridpilotError

    con = Console()
    grid = grid_opt or grid
    try:
        if name == "n-1":
            from gridpilot.agent.contingency import n1_sweep, write_n1_report

            rep = n1_sweep(
                grid,
                executor=executor,
                address=address,
                workers=workers,
                fleet=fleet,
                world=world,
            )
            data = rep.to_dict()
            if report:
                write_n1_report(rep, report)
            rows = [
                (k, rep.summary["uncontrolled"].get(k, ""), v)
                for k, v in rep.summary["controlled"].items()
            ]
        else:
            from gridpilot.agent.scenarios import run_scenario, write_report

            rep2 = run_scenario(
                name,
                grid,
                hours,
                executor=executor,
                address=address,
                fleet=fleet,
                world=world,
            )
            data = rep2.to_dict()
            if report:
                write_report(rep2, report)
            rows = _kpi_rows(rep2.table())
    except GridpilotError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    _print_kpis(con, f"scenario {name} on {grid}", rows, data, report)


def register(app: typer.Typer) -> None:
    """Attach ``scenario`` to the root app."""
    app.command("scenario")(scenario)
