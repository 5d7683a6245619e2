"""CLI commands of the model and the twin: ``grids``, ``powerflow``, ``qsts``, ``timeseries``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from gridpilot.errors import GridpilotError


def fail(exc: Exception) -> None:
    """Print a gridpilot error plainly (no traceback) and exit with status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach ``grids``, ``powerflow`` and ``timeseries`` to the root app."""

    @app.command()
    def grids(json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
        """List the built-in grids with their bus counts."""
        from gridpilot.model import list_grids

        rows = [
            {"name": g.name, "buses": g.buses, "nodes": g.nodes, "description": g.description}
            for g in list_grids()
        ]
        if json_out:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title="built-in grids")
        for c in ("name", "buses", "nodes", "description"):
            t.add_column(c)
        for r in rows:
            t.add_row(
                r["name"],
                "" if r["buses"] is None else f"{r['buses']:,}",
                "" if r["nodes"] is None else f"{r['nodes']:,}",
                r["description"],
            )
        Console().print(t)

    @app.command()
    def powerflow(
        grid: Annotated[
            str, typer.Argument(help="built-in grid name or grid file (.json/.npz/.m/.dss)")
        ],
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
        controls: Annotated[
            str, typer.Option(help="three-phase grids: regulator/capacitor controls static|off")
        ] = "static",
    ) -> None:
        """Run one AC power flow and print losses, voltage extremes and loading (per phase,
        with node and phase, and the max unbalance for three-phase grids)."""
        try:
            from gridpilot.model import load_grid
            from gridpilot.model.threephase import ThreePhaseGrid
            from gridpilot.twin import Twin

            g = load_grid(grid)
            if isinstance(g, ThreePhaseGrid):
                from gridpilot.twin.unbalanced.cli import powerflow_summary

                s = powerflow_summary(g, controls)
            else:
                s = Twin(g).powerflow().summary()
                s["grid"] = g.name
        except GridpilotError as exc:
            fail(exc)
            return
        if json_out:
            typer.echo(json.dumps(s, indent=2))
            return
        for k, v in s.items():
            typer.echo(f"{k:>20}: {v}")

    @app.command()
    def qsts(
        grid: Annotated[
            str, typer.Argument(help="three-phase built-in grid (ieee13 …) or .dss file")
        ],
        steps: Annotated[int, typer.Option(help="number of time steps")] = 96,
        resolution: Annotated[
            str, typer.Option(help="step length: 15min, 1min, 900s, 1h")
        ] = "15min",
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Quasi-static time series of an unbalanced grid with stateful regulator and
        capacitor controls (OpenDSS time mode): voltage extremes, hours outside ANSI Range A,
        unbalance, losses, tap and capacitor operations."""
        try:
            from gridpilot.model import load_grid
            from gridpilot.model.threephase import ThreePhaseGrid
            from gridpilot.twin.unbalanced.cli import qsts_summary

            g = load_grid(grid)
            if not isinstance(g, ThreePhaseGrid):
                raise GridpilotError(
                    f"qsts runs on three-phase grids (ieee13 … ieee8500 or a .dss file); "
                    f"{grid!r} is balanced: use 'gridpilot timeseries'"
                )
            s = qsts_summary(g, steps, resolution, show_progress=not json_out)
        except GridpilotError as exc:
            fail(exc)
            return
        if json_out:
            typer.echo(json.dumps(s, indent=2))
            return
        for k, v in s.items():
            typer.echo(f"{k:>32}: {v}")

    @app.command()
    def timeseries(
        grid: Annotated[str, typer.Argument(help="built-in grid name or grid file")],
        steps: Annotated[int, typer.Option(help="number of time steps")] = 96,
        start: Annotated[int, typer.Option(help="first step of the profiles")] = 0,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Run a batch time series over the grid's own profiles (or the default daily shapes)."""
        try:
            from gridpilot.model import load_grid
            from gridpilot.twin import Twin

            g = load_grid(grid)
            twin = Twin(g)
            if sys.stderr.isatty() and not json_out:
                from rich.progress import Progress

                with Progress(transient=True) as bar:
                    task = bar.add_task(f"{g.name}: {steps} steps", total=steps)
                    res = twin.timeseries(
                        steps, start=start, progress=lambda d, t: bar.update(task, completed=d)
                    )
            else:
                res = twin.timeseries(steps, start=start)
        except GridpilotError as exc:
            fail(exc)
            return
        s = res.summary()
        s["grid"] = g.name
        s["buses"] = len(g.bus)
        if json_out:
            typer.echo(json.dumps(s, indent=2))
            return
        for k, v in s.items():
            typer.echo(f"{k:>20}: {v}")
