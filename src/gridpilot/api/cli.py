"""CLI: ``gridpilot demo`` and ``gridpilot serve``, the commands that serve the API and dashboard
over the demo orchestrator (:func:`gridpilot.agent.cli.build_demo`)."""

from __future__ import annotations

import json
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


def register(app: typer.Typer) -> None:
    """Attach ``demo`` and ``serve`` to the root app."""

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
        protocols: ProtocolsOpt = "",
    ) -> None:
        """The default grid and fleet in accelerated time, the orchestrator acting, the dashboard live.

        A fault (line 7, +10 min) and a wind drop (+40 min) are injected so self-healing and
        demand response are seen. Stops after --duration seconds, or with Ctrl-C.
        """
        from rich.console import Console

        con = Console()
        protos = tuple(p.strip() for p in protocols.split(",") if p.strip())
        orch = _build_or_exit(con, grid, mode, None, world, flex_plan, meters, ev_protocol, protos)
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
