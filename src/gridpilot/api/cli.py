"""CLI: ``gridpilot demo`` and ``gridpilot serve``, the commands that serve the API and dashboard
over the demo orchestrator (:func:`gridpilot.agent.cli.build_demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gridpilot.agent.cli import (
    DurationOpt,
    EvProtocolOpt,
    FlexPlanOpt,
    GridOpt,
    MetersOpt,
    ModeOpt,
    ProtocolsOpt,
    SpeedOpt,
    WorldOpt,
    build_demo,
    demo_events,
)


def demo(
    grid: GridOpt = "case33bw",
    duration: DurationOpt = None,
    speed: SpeedOpt = 120.0,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="serve the dashboard")] = True,
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
    start_after: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="start the storyline after this many seconds if no dashboard has connected by then",
        ),
    ] = 60.0,
    protocols: ProtocolsOpt = "",
) -> None:
    """The default grid and fleet in accelerated time, the orchestrator acting, the dashboard live.

    A storyline of announced drills (a fault, its repair, a wind drop; then again with
    another fault) starts when the first dashboard connects or after --start-after seconds,
    so that self-healing and demand response are seen. With --no-serve: the fixed events (a
    fault on line 7 at +10 min, a wind drop at +40 min). Stops after --duration seconds, or
    with Ctrl-C (a summary is printed; exit code 0).
    """
    from rich.console import Console

    con = Console()
    protos = tuple(p.strip() for p in protocols.split(",") if p.strip())
    orch = _build_or_exit(con, grid, mode, None, world, flex_plan, meters, ev_protocol, protos)
    if not serve:
        try:
            orch.run(steps, demo_events(orch.world.step_s))
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
    from gridpilot.api.storyline import Storyline

    story = Storyline(
        orch.grid,
        speed,
        orch.world.step_s,
        lambda text: con.print(f"[bold yellow]storyline:[/bold yellow] {text}", soft_wrap=True),
        start_after_s=start_after,
    )
    try:
        _serve(orch, host, port, speed, duration, story, con)
    finally:
        if hasattr(orch.world, "close"):  # a protocol world's servers and device processes
            orch.world.close()


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
    hosting: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="folder of `gridpilot hosting-capacity --out` tables (feeder view)",
        ),
    ] = None,
) -> None:
    """Serve the API and dashboard over a simulated grid, without injected events.

    A three-phase feeder (ieee13 … ieee8500, .dss) that the loop does not run is served
    as the feeder view alone (/feeder: canvas drawing, per-phase voltage profile,
    hosting-capacity map) over one unbalanced power flow."""
    from rich.console import Console

    con = Console()
    orch = _orch_or_feeder(con, grid, mode, audit, world, flex_plan, meters)
    if not hasattr(orch, "world"):  # a three-phase grid the loop does not run
        _serve_feeder(orch, host, port, duration, hosting, con)
        return
    _serve(orch, host, port, speed, duration, None, con, hosting)


def register(app: typer.Typer) -> None:
    """Attach ``demo`` and ``serve`` to the root app."""
    app.command("demo")(demo)
    app.command("serve")(serve_cmd)


def _orch_or_feeder(con: Any, grid: str, *args: Any) -> Any:
    """The loop's orchestrator over ``grid`` (:func:`build_demo`), or, where the loop refuses
    ``grid`` and it is a three-phase feeder, that :class:`ThreePhaseGrid` to serve alone;
    any other refusal is named on the console (exit code 2)."""
    from gridpilot.errors import GridpilotError
    from gridpilot.model.threephase.builtin import IEEE_FEEDERS

    try:
        return build_demo(grid, *args)
    except GridpilotError as exc:
        key = grid.strip()
        if key in IEEE_FEEDERS or key.lower().endswith(".dss"):
            from gridpilot.model import load_grid
            from gridpilot.model.threephase import ThreePhaseGrid

            try:
                g = load_grid(key)
            except GridpilotError as err:
                con.print(f"[red]error:[/red] {err}")
                raise typer.Exit(2) from None
            if isinstance(g, ThreePhaseGrid):
                con.print(f"the loop does not run {grid!r} ({exc}); serving its feeder view alone",
                          soft_wrap=True)  # fmt: skip
                return g
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _serve_feeder(
    grid: Any, host: str, port: int, duration: float | None, hosting: Path | None, con: Any
) -> None:
    """Serve the feeder view of ``grid`` (no loop) until --duration or Ctrl-C."""
    import contextlib
    import threading

    import uvicorn

    from gridpilot.api import KeyStore
    from gridpilot.api.feeder_app import create_feeder_app

    keys = KeyStore.generate()
    app = create_feeder_app(grid, keys, hosting_dir=hosting)
    base = f"http://{host}:{port}/feeder"
    con.print(f"[bold]gridpilot feeder view:[/bold] {base}#key={keys.issued['viewer']}",
              soft_wrap=True)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if duration:
        timer = threading.Timer(duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def _build_or_exit(
    con: Any,
    grid: str,
    mode: str,
    audit: str | None,
    world: str,
    flex_plan: bool = False,
    meters: bool = False,
    ev_protocol: str = "internal",
    protocols: tuple[str, ...] = (),
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
            protocols=protocols,
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
    story: Any,
    con: Any,
    hosting: Path | None = None,
) -> None:
    """Serve until --duration or Ctrl-C, then print the run's summary (exit code 0 either way);
    ``hosting``: the folder of hosting-capacity tables for the feeder view."""
    import contextlib
    import threading

    import uvicorn

    from gridpilot.api import KeyStore, LoopRunner, create_app
    from gridpilot.api.summary import run_summary, summary_lines

    keys = KeyStore.generate()
    runner = LoopRunner(orch, speed=speed, hook=story)
    app = create_app(orch, keys, runner=runner, on_client=story.client_connected if story else None)
    app.state.hosting_dir = hosting  # the feeder view's hosting tables (a three-phase world)
    base = f"http://{host}:{port}/"
    con.print(
        f"[bold]gridpilot dashboard:[/bold] {base}#key={keys.issued['viewer']}", soft_wrap=True
    )
    con.print(
        f"operator key: {base}#key={keys.issued['operator']}   admin key: {base}#key={keys.issued['admin']}",
        soft_wrap=True,
    )
    from gridpilot.api.feeder3p import PhaseAwareWorld

    if isinstance(orch.world, PhaseAwareWorld):  # a three-phase world: the per-phase view too
        con.print(f"feeder view (per phase): {base}feeder#key={keys.issued['viewer']}",
                  soft_wrap=True)  # fmt: skip
    con.print(
        f"API docs: {base}docs   "
        + (f"stops after {duration:.0f} s" if duration else "Ctrl-C to stop"),
        soft_wrap=True,
    )
    if story is not None:
        when = f"or in {story.start_after_s:.0f} s" if story.start_after_s is not None else ""
        con.print(
            f"the storyline starts when a browser opens the dashboard {when}".rstrip(),
            soft_wrap=True,
        )
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if duration:
        timer = threading.Timer(duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
        server.run()
    runner.stop()
    con.print(
        f"[bold]stopped at[/bold] {orch.headline().get('time')} (simulated time)", soft_wrap=True
    )
    for line in summary_lines(run_summary(orch, story.happened if story else None)):
        con.print("  " + line, soft_wrap=True, highlight=False)
