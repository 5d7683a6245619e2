"""CLI: ``gridpilot demo``, ``gridpilot scenario`` and ``gridpilot serve``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

DEMO_START_STEP = 161 * 96 + 16 * 4  # a windy early-summer day (10 June), 16:00
# world wrappers by EV protocol name ((world, audit) -> world), registered from above the loop
# (gridpilot.protocols' CLI registers "ocpp"): the agent never imports a protocol package
EV_PROTOCOLS: dict[str, Callable[[Any, Any], Any]] = {}


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
) -> Any:
    """The demo orchestrator: ``grid`` with the demo fleet, a summer afternoon, 1-minute steps;
    ``world`` ``field`` (FieldWorld on gridpilot.field, default) or ``sim`` (SimWorld);
    ``flex_plan`` adds the flexibility schedule (FlexPlanPolicy; field world only), ``meters``
    the household meters' telemetry and theft checks (MeterPath; field world only);
    ``ev_protocol`` ``ocpp`` puts the EV stations behind OCPP (gridpilot.protocols; field world)."""
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
    cls = FieldWorld if world == "field" else SimWorld
    world_obj: Any = cls(demo_grid(grid), step_s=60.0, start_step=DEMO_START_STEP)
    audit = AuditLog(audit_path or ":memory:")
    if wrap is not None:
        world_obj = wrap(world_obj, audit)
    return Orchestrator(
        world_obj,
        mode=mode,
        audit=audit,
        flex_plan=flex_plan,
        meters=meters,
    )


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
MetersOpt = Annotated[
    bool,
    typer.Option(
        "--meters/--no-meters",
        help="household meters' signed 15-min telemetry in the loop, theft checks (field world)",
    ),
]


def register(app: typer.Typer) -> None:
    """Attach ``demo``, ``scenario`` and ``serve`` to the root app."""

    @app.command("demo")
    def demo(
        grid: GridOpt = "case33bw",
        duration: DurationOpt = None,
        speed: SpeedOpt = 120.0,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="serve the dashboard")
        ] = True,
        steps: Annotated[
            int, typer.Option(help="with --no-serve: steps to run as fast as possible")
        ] = 120,
        host: str = "127.0.0.1",
        port: int = 8765,
        mode: ModeOpt = "autonomous",
        world: WorldOpt = "field",
        flex_plan: FlexPlanOpt = False,
        meters: MetersOpt = False,
        ev_protocol: EvProtocolOpt = "internal",
    ) -> None:
        """The default grid and fleet in accelerated time, the orchestrator acting, the dashboard live.

        A fault (line 7, +10 min) and a wind drop (+40 min) are injected so self-healing and
        demand response are seen. Stops after --duration seconds, or with Ctrl-C.
        """
        from rich.console import Console

        con = Console()
        orch = _build_or_exit(con, grid, mode, None, world, flex_plan, meters, ev_protocol)
        events = demo_events(orch.world.step_s)
        if not serve:
            try:
                orch.run(steps, events)
            finally:
                if hasattr(orch.world, "close"):
                    orch.world.close()
            h = orch.headline()
            con.print_json(
                json.dumps(
                    {
                        "headline": h,
                        "events": [e["text"] for e in list(orch.events)[-15:]],
                        "audit_entries": orch.audit.count(),
                        "audit_chain_ok": orch.audit.verify()[0],
                    }
                )
            )
            return
        try:
            _serve(orch, host, port, speed, duration, events, con)
        finally:
            if hasattr(orch.world, "close"):  # a protocol world's servers and device processes
                orch.world.close()

    @app.command("serve")
    def serve_cmd(
        grid: GridOpt = "case33bw",
        host: str = "127.0.0.1",
        port: int = 8765,
        speed: SpeedOpt = 60.0,
        duration: DurationOpt = None,
        mode: ModeOpt = "propose",
        audit: Annotated[str | None, typer.Option(help="audit log SQLite file")] = None,
        world: WorldOpt = "field",
        flex_plan: FlexPlanOpt = False,
        meters: MetersOpt = False,
    ) -> None:
        """Serve the API and dashboard over a simulated grid, without injected events."""
        from rich.console import Console

        con = Console()
        orch = _build_or_exit(con, grid, mode, audit, world, flex_plan, meters)
        _serve(orch, host, port, speed, duration, None, con)

    @app.command("scenario")
    def scenario(
        name: Annotated[str, typer.Argument(help="heatwave, fault, cyberattack, ev-surge or n-1")],
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
    ) -> None:
        """Run a what-if scenario with and without gridpilot's control; KPIs side by side."""
        from rich.console import Console
        from rich.table import Table

        from gridpilot.errors import GridpilotError

        con = Console()
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
                rows = [
                    (
                        r["kpi"] + (f" ({r['unit']})" if r["unit"] else ""),
                        r["uncontrolled"],
                        r["controlled"],
                    )
                    for r in rep2.table()
                ]
        except GridpilotError as exc:
            con.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        if as_json:
            print(json.dumps(data, indent=2, default=str))
            return
        t = Table(title=f"scenario {name} on {grid}")
        t.add_column("KPI")
        t.add_column("uncontrolled", justify="right")
        t.add_column("gridpilot", justify="right")
        for k, u, c in rows:
            t.add_row(
                str(k),
                f"{u:.4g}" if isinstance(u, float) else str(u),
                f"{c:.4g}" if isinstance(c, float) else str(c),
            )
        con.print(t)
        if data.get("checks"):
            con.print(f"checks: {data['checks']}")
        if report:
            con.print(f"report written to {report}/index.html")


def _build_or_exit(
    con: Any,
    grid: str,
    mode: str,
    audit: str | None,
    world: str,
    flex_plan: bool = False,
    meters: bool = False,
    ev_protocol: str = "internal",
) -> Any:
    """:func:`build_demo`, or the error named on the console and exit code 2 (no traceback)."""
    from gridpilot.errors import GridpilotError

    try:
        return build_demo(
            grid,
            mode,
            audit,
            world=world,
            flex_plan=flex_plan,
            meters=meters,
            ev_protocol=ev_protocol,
        )
    except GridpilotError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _serve(
    orch: Any,
    host: str,
    port: int,
    speed: float,
    duration: float | None,
    events: dict[int, list[dict[str, Any]]] | None,
    con: Any,
) -> None:
    import threading

    import uvicorn

    from gridpilot.api import KeyStore, LoopRunner, create_app

    keys = KeyStore.generate()
    runner = LoopRunner(orch, speed=speed, events=events)
    app = create_app(orch, keys, runner=runner)
    con.print(
        f"[bold]gridpilot dashboard:[/bold] http://{host}:{port}/?key={keys.issued['viewer']}",
        soft_wrap=True,
    )
    con.print(
        f"operator key: {keys.issued['operator']}   admin key: {keys.issued['admin']}",
        soft_wrap=True,
    )
    con.print(
        f"API docs: http://{host}:{port}/docs   "
        + (f"stops after {duration:.0f} s" if duration else "Ctrl-C to stop"),
        soft_wrap=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if duration:
        threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
    server.run()
    h = orch.headline()
    con.print(
        f"stopped at {h.get('time')}: {h.get('executed')} plans executed, {h.get('refused')} refused, "
        f"audit chain ok: {orch.audit.verify()[0]}",
        soft_wrap=True,
    )
