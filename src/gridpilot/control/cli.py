"""CLI commands of self-healing: ``flisr`` and ``reconfigure``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from gridpilot.errors import GridpilotError

UNVERIFIED_EXIT = 3  # a plan or configuration came out, but it fails its own limits

#: the end-to-end three-phase FLISR run (fault, the field's protection, FLISR), wired from
#: above by ``gridpilot.agent.flisr3p_run.register`` (control may not import the field)
FLISR3P_RUNNER: list[Callable[..., tuple[dict[str, Any], bool]]] = []


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach ``flisr`` and ``reconfigure`` to the root app."""
    _register_flisr(app)
    _register_reconfigure(app)


def _print_flisr(grid_name: str, fault: list[int], out: dict[str, Any]) -> None:
    """The human-readable form of a FLISR decision's summary."""
    from rich.console import Console

    c = Console()
    c.print(f"[bold]{grid_name}[/]: fault on line(s) {fault} located in line(s) {out['located']}")
    c.print(f"  isolate (open): {out['isolate']}")
    c.print(
        f"  restore (close, in order): {out['restore']}  sectionalise (open): {out['open_for_restore']}"
    )
    c.print(
        f"  restored {out['restored_kw']:.0f} of {out['restorable_kw']:.0f} kW restorable; "
        f"unserved {out['unserved_kw']:.0f} kW; shed loads {out['shed']}"
    )
    c.print(
        f"  after: vmin {out['vmin_pu_after']:.4f} pu, max loading {out['max_loading_pct_after']:.1f} % "
        f"(verified by {out['verified_by']}); decision {out['decision_ms']:.1f} ms"
    )
    for n in out["notes"]:
        c.print(f"  note: {n}")
    if not out["verified"]:
        c.print("[bold red]  plan NOT verified: it fails its own limits in the twin[/]")


def _register_flisr(app: typer.Typer) -> None:
    """Attach ``flisr`` (its options are the command line, hence more than six)."""

    @app.command()
    def flisr(
        grid: Annotated[str, typer.Argument(help="built-in grid name or grid file")],
        fault: Annotated[
            list[str],
            typer.Option(
                "--fault",
                help="faulted line id (repeat for several); on a three-phase feeder one line "
                "name, optionally with its type: l60 or l60:slg:a",
            ),
        ],
        vmin: Annotated[
            float, typer.Option(help="lowest voltage allowed after restoration, pu")
        ] = 0.95,
        vmax: Annotated[float, typer.Option(help="highest voltage allowed, pu")] = 1.05,
        max_loading: Annotated[float, typer.Option(help="branch loading limit, %")] = 100.0,
        failed_fpi: Annotated[
            list[int] | None,
            typer.Option("--failed-fpi", help="switch id whose indicator fails to pick up"),
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
        fault_type: Annotated[
            str,
            typer.Option(help="three-phase feeders: 3ph or slg:a (phase a, b, c or 1-3)"),
        ] = "3ph",
        temporary: Annotated[
            bool, typer.Option(help="three-phase feeders: a temporary fault (a reclose clears it)")
        ] = False,
    ) -> None:
        """Locate, isolate and restore after faults on lines (simulated protection indications).

        On a three-phase feeder (ieee123, ieee8500, a .dss file) the fault is studied in the
        unbalanced twin, the feeder's fuses and recloser act on it, and FLISR restores
        through the ties with limits held per node-phase (exit 3 if not verified).
        """
        from gridpilot.control.flisr import FlisrEngine, Limits
        from gridpilot.model import load_grid
        from gridpilot.model.threephase import ThreePhaseGrid

        try:
            g_any = load_grid(grid)
            if isinstance(g_any, ThreePhaseGrid):
                _flisr3p(g_any, fault, fault_type, temporary, Limits(vmin, vmax, max_loading))
                return
            from gridpilot.model import require_balanced

            g = require_balanced(g_any, "flisr")
            eng = FlisrEngine(g, Limits(vmin, vmax, max_loading))
            res = eng.respond_to_faults(
                _line_ids(fault), fpi_failures={int(s): False for s in failed_fpi or []}
            )
        except GridpilotError as exc:
            _fail(exc)
            return
        out = res.summary()
        if json_out:
            typer.echo(json.dumps(out, indent=2))
            if not res.verified:
                raise typer.Exit(UNVERIFIED_EXIT)
            return
        _print_flisr(g.name, _line_ids(fault), out)
        if not res.verified:
            raise typer.Exit(UNVERIFIED_EXIT)


def _line_ids(fault: list[str]) -> list[int]:
    """Balanced grids: the faulted line ids (a non-integer is a named error)."""
    from gridpilot.errors import ValidationError

    out = []
    for f in fault:
        try:
            out.append(int(f))
        except ValueError:
            raise ValidationError(
                f"--fault: a line id (integer) on a balanced grid, got {f!r}"
            ) from None
    return out


def _flisr3p(grid: Any, fault: list[str], fault_type: str, temporary: bool, lim: Any) -> None:
    """``flisr`` on a three-phase feeder: one fault, JSON out, exit 3 if not verified."""
    from dataclasses import replace

    from gridpilot.errors import ValidationError
    from gridpilot.model.limits import OperatingLimits
    from gridpilot.twin.unbalanced.faults import Fault

    if len(fault) != 1:
        raise ValidationError(f"--fault: one line on a three-phase feeder, got {fault!r}")
    line, _, spec = fault[0].partition(":")
    f = replace(Fault.parse(line, spec or fault_type), permanent=not temporary)
    if not FLISR3P_RUNNER:
        raise ValidationError("three-phase FLISR is not wired (run through the gridpilot CLI)")
    out, ok = FLISR3P_RUNNER[0](
        grid, f, OperatingLimits(lim.v_min_pu, lim.v_max_pu, lim.loading_max_pct)
    )
    typer.echo(json.dumps(out, indent=2))
    if not ok:
        raise typer.Exit(UNVERIFIED_EXIT)


def _reconfigure3p(grid: Any, lim: Any, asked: bool) -> None:
    """``reconfigure`` on a three-phase feeder: JSON out, exit 3 if not verified."""
    from gridpilot.control.flisr3p.reconfig import reconfigure3p
    from gridpilot.model.limits import OperatingLimits

    res = reconfigure3p(
        grid,
        OperatingLimits(lim.v_min_pu, lim.v_max_pu, lim.loading_max_pct),
        relax_to_prefault=not asked,
    )
    out = res.summary()
    out["status"] = "ok" if res.verified else "infeasible"
    typer.echo(json.dumps(out, indent=2))
    if not res.verified:
        raise typer.Exit(UNVERIFIED_EXIT)


def _register_reconfigure(app: typer.Typer) -> None:
    """Attach ``reconfigure``."""

    @app.command()
    def reconfigure(
        grid: Annotated[str, typer.Argument(help="built-in grid name or grid file")],
        vmin: Annotated[
            float | None,
            typer.Option(help="lowest voltage asked for, pu (a target: exit 3 if not met)"),
        ] = None,
        vmax: Annotated[
            float | None, typer.Option(help="highest voltage asked for, pu (a target)")
        ] = None,
        max_loading: Annotated[
            float | None, typer.Option(help="branch loading asked for, % (a target)")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Choose the switches to open for least losses (radial, all loads served, limits held).

        Without --vmin/--vmax/--max-loading the default band (0.95-1.05 pu, 100 %) is widened
        to the starting state's extremes and losses are minimised within it (exit 0; a remark
        says if the default band is not met). With any of them the band is a request: the
        least violation of it comes first, then losses, and the exit status is 3 when it
        cannot be met (the best configuration found is still printed).
        """
        from gridpilot.control.flisr import Limits
        from gridpilot.control.reconfig import reconfigure as run
        from gridpilot.model import load_balanced_grid

        asked = any(v is not None for v in (vmin, vmax, max_loading))
        try:
            d = Limits()
            lim = Limits(
                d.v_min_pu if vmin is None else vmin,
                d.v_max_pu if vmax is None else vmax,
                d.max_loading_pct if max_loading is None else max_loading,
                relax_to_prefault=not asked,
            )
            from gridpilot.model import load_grid
            from gridpilot.model.threephase import ThreePhaseGrid

            g_any = load_grid(grid)
            if isinstance(g_any, ThreePhaseGrid):
                _reconfigure3p(g_any, lim, asked)
                return
            res = run(load_balanced_grid(grid, "reconfigure"), lim)
        except GridpilotError as exc:
            _fail(exc)
            return
        out = res.summary()
        infeasible = asked and not res.target_holds
        out["status"] = "infeasible" if infeasible else "ok"
        if json_out:
            typer.echo(json.dumps(out, indent=2))
        else:
            typer.echo(
                f"open {out['open']}: losses {out['losses_kw_before']:.2f} -> "
                f"{out['losses_kw_after']:.2f} kW, vmin {out['vmin_pu_before']:.4f} -> "
                f"{out['vmin_pu_after']:.4f} pu, {out['solve_ms']:.0f} ms"
            )
            for r in out["remarks"]:
                typer.echo(f"  remark: {r}")
        if infeasible:
            raise typer.Exit(UNVERIFIED_EXIT)
