"""CLI of the flexibility package: ``gridpilot flex plan`` and ``gridpilot flex dr``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gridpilot.errors import GridpilotError, ValidationError


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _parse_event(text: str, step_h: float) -> dict[str, float]:
    """``start=18:00,minutes=60,target_mw=0.5`` (or ``price=300``; ``start`` may be a step number)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValidationError(f"--event: expected key=value, got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k == "start" and ":" in v:
            h, m = v.split(":", 1)
            try:
                out["start"] = round((int(h) + int(m) / 60) / step_h)
            except ValueError:
                raise ValidationError(
                    f"--event: start must be HH:MM or a step, got {v!r}"
                ) from None
            continue
        if k not in ("start", "minutes", "target_mw", "price"):
            raise ValidationError(
                f"--event: unknown key {k!r}; use start, minutes, target_mw, price"
            )
        try:
            out[k] = float(v)
        except ValueError:
            raise ValidationError(f"--event: {k} must be a number, got {v!r}") from None
    if "start" not in out:
        raise ValidationError("--event: 'start' is required")
    return out


def plan_cmd(
    grid: Annotated[str, typer.Argument(help="grid name or file")],
    hours: Annotated[int, typer.Option(help="horizon in hours")] = 24,
    day: Annotated[int, typer.Option(help="first day of the grid's profiles")] = 10,
    seed: Annotated[int, typer.Option(help="fleet seed")] = 0,
    show_plan: Annotated[
        bool, typer.Option("--plan", help="include per-step fleet totals")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Schedule a generated fleet on GRID: cost, CO2, peak, violations, vs the uncontrolled fleet.

    On a three-phase grid (ieee13, ieee123, ieee8500, .dss) the schedule is phase-aware: the
    fleet sits on named phases and per-phase limits and the unbalance limit hold."""
    try:
        from gridpilot.flex import generate_fleet, plan
        from gridpilot.model import load_grid, require_balanced
        from gridpilot.model.threephase import ThreePhaseGrid

        if hours <= 0:
            raise ValidationError(f"--hours: must be positive, got {hours}")
        loaded = load_grid(grid)
        if isinstance(loaded, ThreePhaseGrid):  # the phase-aware VPP schedule
            from gridpilot.flex.phase_cli import plan_three_phase

            plan_three_phase(loaded, hours, seed, json_out)
            return
        g = require_balanced(loaded, "flex")
        steps = hours * 4
        t0 = day * 96
        fleet = generate_fleet(g, days=hours // 24 + 2, seed=seed, start_step=max(t0 - 96, 0))
        p = plan(g, fleet, steps, t0=t0)
    except GridpilotError as exc:
        _fail(exc)
        return
    s = p.summary()
    s["grid"] = g.name
    if show_plan:
        s["plan"] = p.table()
    if json_out:
        typer.echo(json.dumps(s, indent=2, default=float))
        return
    _print_plan(s, g.name, steps)


def dr_cmd(
    grid: Annotated[str, typer.Argument(help="grid name or file")],
    event: Annotated[str, typer.Option(help="start=18:00,minutes=60,target_mw=0.5 (or price=300)")],
    seed: Annotated[int, typer.Option(help="fleet seed")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Dispatch one demand-response event to a generated fleet and report the measured response."""
    try:
        from gridpilot.flex import Event, Program, dispatch_event, generate_fleet
        from gridpilot.model import load_balanced_grid

        g = load_balanced_grid(grid, "flex")
        ev = _parse_event(event, 0.25)
        fleet = generate_fleet(g, days=1, seed=seed)
        minutes = ev.get("minutes", 60.0)
        dur = max(round(minutes / 15.0), 1)
        if "price" in ev:
            e = Event(
                "cli",
                Program("cli-price", "price"),
                int(ev["start"]),
                dur,
                price_eur_per_mwh=ev["price"],
            )
        else:
            e = Event(
                "cli", Program("cli-shed"), int(ev["start"]), dur, target_mw=ev.get("target_mw")
            )
        rep = dispatch_event(fleet, e, 0, 96)
    except GridpilotError as exc:
        _fail(exc)
        return
    s = rep.summary()
    s["grid"] = g.name
    if json_out:
        typer.echo(json.dumps(s, indent=2, default=float))
        return
    from gridpilot.tables import kv_table, print_table

    print_table(kv_table(f"{g.name}: demand-response event", s))


def freq_cmd(
    loss_mw: Annotated[float, typer.Option(help="generation lost, MW")] = 1000.0,
    ffr_mw: Annotated[float, typer.Option(help="fleet FFR headroom, MW")] = 1500.0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Reference loss event in a 30 GW system with and without the fleet's droop response."""
    try:
        from gridpilot.control.frequency import FleetResponse, FrequencySystem, compare

        r = compare(FrequencySystem(), loss_mw, FleetResponse(ffr_mw))
    except GridpilotError as exc:
        _fail(exc)
        return
    if json_out:
        typer.echo(json.dumps(r, indent=2, default=float))
        return
    from gridpilot.tables import print_table, rows_table

    without, with_fleet = r["without"], r["with_fleet"]
    assert isinstance(without, dict) and isinstance(with_fleet, dict)
    rows = [{"metric": k, "without": v, "with fleet": with_fleet[k]} for k, v in without.items()]
    title = f"{loss_mw:,.0f} MW lost: nadir improved {r['nadir_improvement_pct']:.1f} %"
    print_table(rows_table(title, ("metric", "without", "with fleet"), rows))


def _print_plan(s: dict[str, Any], grid_name: str, steps: int) -> None:
    """The plan's KPI table against the uncontrolled fleet, and a line of headline figures."""
    from gridpilot.tables import print_table, rows_table

    c, u = s["controlled"], s["uncontrolled"]
    kpis = (
        "peak_mw",
        "cost_eur",
        "co2_t",
        "v_violation_min",
        "loading_violation_min",
        "vmin_pu",
        "vmax_pu",
    )
    rows = [{"kpi": k, "plan": c[k], "uncontrolled": u[k]} for k in kpis]
    title = (
        f"{grid_name}: {steps} steps, {s['fleet']['devices']:,} devices at "
        f"{s['fleet']['buses']} buses"
    )
    print_table(rows_table(title, ("kpi", "plan", "uncontrolled"), rows))
    typer.echo(
        f"peak reduction {s['peak_reduction_pct']:.1f} %, EVs short {s['ev']['short_sessions']}, "
        f"V2G {s['ev']['v2g_mwh']:.2f} MWh paid {s['ev']['v2g_paid_eur']:,.0f} EUR"
    )


def register(app: typer.Typer) -> None:
    """Attach the ``flex`` sub-app (``plan``, ``dr``, ``frequency``, ``phase-balance``)."""
    from gridpilot.flex.phase_cli import phase_balance_cmd

    flex = typer.Typer(
        help="Flexibility: VPP scheduling, demand response, frequency response.",
        no_args_is_help=True,
    )
    app.add_typer(flex, name="flex")
    flex.command("plan")(plan_cmd)
    flex.command("dr")(dr_cmd)
    flex.command("frequency")(freq_cmd)
    flex.command("phase-balance")(phase_balance_cmd)
