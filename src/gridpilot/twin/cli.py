"""CLI commands of the model and the twin: ``grids``, ``powerflow``, ``qsts``, ``timeseries``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridpilot.errors import GridpilotError, ValidationError

if TYPE_CHECKING:
    from gridpilot.model import Grid
    from gridpilot.twin.results import TimeSeriesResult

log = logging.getLogger(__name__)
_OUT_FORMATS = (".csv", ".parquet")


def _emit(s: dict[str, Any], title: str, json_out: bool) -> None:
    """A command's summary: JSON, or a table titled ``title``."""
    if json_out:
        typer.echo(json.dumps(s, indent=2))
        return
    from gridpilot.tables import kv_table, print_table

    print_table(kv_table(title, s))


def fail(exc: Exception) -> None:
    """Print a gridpilot error plainly (no traceback) and exit with status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _check_out_path(out: Path) -> None:
    """Refuse an output file of an unknown kind or in a missing folder before any work."""
    if out.suffix.lower() not in _OUT_FORMATS:
        raise ValidationError(
            f"--out: {str(out)!r} must end in {' or '.join(_OUT_FORMATS)}, got {out.suffix!r}"
        )
    if not out.parent.is_dir():
        raise ValidationError(f"--out: folder {str(out.parent)!r} does not exist")


def _write_steps(res: TimeSeriesResult, out: Path) -> tuple[int, int]:
    """Write ``res``'s per-step series (and per-bus voltages when present) to ``out``;
    returns (rows, columns)."""
    df = res.df()
    df["vmin_bus"] = res.vmin_bus
    df["vmax_bus"] = res.vmax_bus
    if res.v_pu is not None:
        import pandas as pd

        v = pd.DataFrame(res.v_pu, index=df.index, columns=[f"v_pu_{b}" for b in res.bus_id])
        df = pd.concat([df, v], axis=1)
    try:
        if out.suffix.lower() == ".csv":
            df.to_csv(out)
        else:
            df.to_parquet(out)
    except OSError as exc:
        raise ValidationError(f"--out: cannot write {str(out)!r}: {exc.strerror}") from None
    log.info("wrote %d steps x %d columns to %s", len(df), df.shape[1], out)
    return len(df), int(df.shape[1])


def _balanced_summary(grid: Grid) -> dict[str, Any]:
    """One balanced power flow's summary. ``calc_ms`` is the flow itself; ``first_call_ms`` the
    process's first call, which also loads numba's compiled kernels from their on-disk cache
    (a few hundred ms) or compiles them (about a minute, once per installation)."""
    from gridpilot.twin import Twin

    twin = Twin(grid)
    first = twin.powerflow()
    s = twin.powerflow().summary() if first.converged else first.summary()
    s["first_call_ms"] = round(first.calc_ms, 3)
    s["grid"] = grid.name
    return s


def grids(json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the built-in grids with their bus counts."""
    from gridpilot.model import list_grids

    grids = list_grids()
    rows = [
        {"name": g.name, "buses": g.buses, "nodes": g.nodes, "description": g.description}
        for g in grids
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="built-in grids")
    for c in ("name", "buses", "nodes", "description"):
        t.add_column(c)
    for g in grids:
        t.add_row(
            g.name,
            "on demand" if g.buses is None else f"{g.buses:,}",
            "" if g.nodes is None else f"{g.nodes:,}",
            g.description,
        )
    Console().print(t)


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

        g = load_grid(grid)
        if isinstance(g, ThreePhaseGrid):
            from gridpilot.twin.unbalanced.cli import powerflow_summary

            s = powerflow_summary(g, controls)
        else:
            s = _balanced_summary(g)
    except GridpilotError as exc:
        fail(exc)
        return
    _emit(s, f"power flow: {s.get('grid', grid)}", json_out)


def qsts(
    grid: Annotated[str, typer.Argument(help="three-phase built-in grid (ieee13 …) or .dss file")],
    steps: Annotated[int, typer.Option(help="number of time steps")] = 96,
    resolution: Annotated[str, typer.Option(help="step length: 15min, 1min, 900s, 1h")] = "15min",
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
    _emit(s, f"QSTS: {s.get('grid', grid)}", json_out)


def timeseries(
    grid: Annotated[str, typer.Argument(help="built-in grid name or grid file")],
    steps: Annotated[int, typer.Option(help="number of time steps")] = 96,
    start: Annotated[int, typer.Option(help="first step of the profiles")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="write the per-step results to this .csv or .parquet file"),
    ] = None,
    voltages: Annotated[
        bool, typer.Option("--voltages", help="with --out: one v_pu column per bus")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run a batch time series over the grid's own profiles (or the default daily shapes)."""
    try:
        from gridpilot.model import load_balanced_grid
        from gridpilot.twin import Twin

        if out is not None:
            _check_out_path(out)
        elif voltages:
            raise ValidationError("--voltages: needs --out FILE.csv|FILE.parquet")
        g = load_balanced_grid(grid, "timeseries (use 'gridpilot qsts')")
        twin = Twin(g)
        outputs = ("v_pu",) if voltages else ()
        if sys.stderr.isatty() and not json_out:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"{g.name}: {steps} steps", total=steps)
                res = twin.timeseries(
                    steps,
                    start=start,
                    outputs=outputs,
                    progress=lambda d, t: bar.update(task, completed=d),
                )
        else:
            res = twin.timeseries(steps, start=start, outputs=outputs)
        written = _write_steps(res, out) if out is not None else None
    except GridpilotError as exc:
        fail(exc)
        return
    s = res.summary()
    s["grid"] = g.name
    s["buses"] = len(g.bus)
    if written is not None:
        s["out"], s["out_rows"], s["out_columns"] = str(out), written[0], written[1]
    _emit(s, f"time series: {s.get('grid', grid)}", json_out)


def register(app: typer.Typer) -> None:
    """Attach ``grids``, ``powerflow`` and ``timeseries`` to the root app."""
    app.command()(grids)
    app.command()(powerflow)
    app.command()(qsts)
    app.command()(timeseries)
