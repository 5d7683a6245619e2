"""CLI commands of the model and the twin: ``grids``, ``powerflow``, ``timeseries``."""

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
            {"name": g.name, "buses": g.buses, "description": g.description} for g in list_grids()
        ]
        if json_out:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title="built-in grids")
        for c in ("name", "buses", "description"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["name"], "" if r["buses"] is None else f"{r['buses']:,}", r["description"])
        Console().print(t)

    @app.command()
    def powerflow(
        grid: Annotated[str, typer.Argument(help="built-in grid name or grid file")],
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Run one AC power flow and print losses, voltage extremes and loading."""
        try:
            from gridpilot.model import load_grid
            from gridpilot.twin import Twin

            g = load_grid(grid)
            res = Twin(g).powerflow()
        except GridpilotError as exc:
            fail(exc)
            return
        s = res.summary()
        s["grid"] = g.name
        if json_out:
            typer.echo(json.dumps(s, indent=2))
            return
        for k, v in s.items():
            typer.echo(f"{k:>20}: {v}")

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
