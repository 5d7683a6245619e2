"""CLI of the hosting-capacity study: ``gridpilot hosting-capacity GRID --der pv``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gridpilot.errors import GridpilotError, ValidationError


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach ``hosting-capacity`` to the root app."""

    @app.command("hosting-capacity")
    def hosting_capacity_cmd(
        grid: Annotated[str, typer.Argument(help="three-phase grid: ieee13 … ieee8500 or .dss")],
        der: Annotated[str, typer.Option(help="pv or ev")] = "pv",
        out: Annotated[Path, typer.Option(help="folder for the table (CSV) and map (PNG)")] = Path(
            "hosting"
        ),
        vmax: Annotated[float, typer.Option(help="overvoltage limit, pu")] = 1.05,
        vmin: Annotated[float, typer.Option(help="undervoltage limit (EV), pu")] = 0.95,
        max_kw: Annotated[float, typer.Option(help="largest size tried, kW")] = 5000.0,
        step_kw: Annotated[float, typer.Option(help="resolution, kW")] = 10.0,
        workers: Annotated[int, typer.Option(help="threads (parts of the node list)")] = 1,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Largest PV (or EV-charging) kW per node-phase that breaks no limit at the
        critical hours of a year of 15-minute profiles; writes a table and a map."""
        try:
            res, table, png = _run(grid, der, out, vmax, vmin, max_kw, step_kw, workers)
        except GridpilotError as exc:
            _fail(exc)
            return
        summary = {**res.summary(), "table": str(table), "map": str(png)}
        if json_out:
            rows = res.table().to_dict(orient="records")
            typer.echo(json.dumps({**summary, "rows": rows}, indent=1, default=float))
            return
        from rich.console import Console

        c = Console()
        c.print(f"[bold]{res.grid}[/] {der.upper()} hosting capacity, {len(res.nodes)} node-phases"
                f" in {res.elapsed_s:.1f} s")  # fmt: skip
        c.print(f"  kW min/median/max: {summary['hc_kw_min']:.0f} / "
                f"{summary['hc_kw_median']:.0f} / {summary['hc_kw_max']:.0f}")  # fmt: skip
        c.print(f"  limits: {summary['limits']}")
        c.print(f"  table: {table}  map: {png}")


def _run(grid_name: str, der: str, out: Path, vmax: float, vmin: float, max_kw: float,
         step_kw: float, workers: int) -> tuple:  # type: ignore[type-arg]  # fmt: skip
    from concurrent.futures import ThreadPoolExecutor

    from gridpilot.model import load_grid
    from gridpilot.model.threephase import ThreePhaseGrid
    from gridpilot.twin.hosting import (
        HostingOptions,
        clear_sky_pv,
        critical_scenarios,
        hosting_capacity,
        hosting_capacity_on,
    )
    from gridpilot.twin.hosting.profiles import feeder_load_profile, plot_map

    g = load_grid(grid_name)
    if not isinstance(g, ThreePhaseGrid):
        raise ValidationError(f"hosting-capacity needs a three-phase grid, {grid_name!r} is not")
    opts = HostingOptions(der=der, vmax_pu=vmax, vmin_pu=vmin, max_kw=max_kw, step_kw=step_kw)
    opts.validate()
    if workers < 1:
        raise ValidationError(f"workers must be >= 1, got {workers}")
    load = feeder_load_profile(g)
    scs = critical_scenarios(load, clear_sky_pv(len(load)), der)
    if workers == 1:
        res = hosting_capacity(g, scs, opts)
    else:
        with ThreadPoolExecutor(workers) as ex:
            res = hosting_capacity_on(ex, g, scs, opts, parts=workers)
    out.mkdir(parents=True, exist_ok=True)
    table = out / f"{g.name}_{der}_hosting.csv"
    df = res.table()
    df.to_csv(table, index=False)
    png = plot_map(g, df, out / f"{g.name}_{der}_hosting.png", der)
    return res, table, png
