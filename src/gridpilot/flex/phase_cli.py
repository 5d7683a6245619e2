"""CLI of the phase-aware flexibility: ``gridpilot flex phase-balance`` and ``flex plan`` on a
three-phase grid (``ieee13``, ``ieee123``, ``ieee8500`` or an OpenDSS ``.dss`` file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridpilot.errors import GridpilotError, ValidationError

if TYPE_CHECKING:
    from gridpilot.flex.phase_fleet import PhaseFleet
    from gridpilot.model.threephase import ThreePhaseGrid


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def three_phase_grid(name: str) -> ThreePhaseGrid:
    """Load ``name`` and require a :class:`ThreePhaseGrid` (a named error otherwise)."""
    from gridpilot.model import load_grid
    from gridpilot.model.threephase import ThreePhaseGrid

    g = load_grid(name)
    if not isinstance(g, ThreePhaseGrid):
        raise ValidationError(
            f"grid {name!r} is balanced; phase-aware flexibility needs a three-phase grid "
            "(ieee13, ieee123, ieee8500 or an OpenDSS .dss file)"
        )
    return g


def _fleet(g: ThreePhaseGrid, der: Path | None, place: dict[str, Any]) -> PhaseFleet:
    from gridpilot.flex.phase_fleet import PlaceConfig, place_fleet
    from gridpilot.flex.phase_records import fleet_from_records

    if der is None:
        return place_fleet(g, PlaceConfig(**place))
    try:
        records = json.loads(der.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"--der: cannot read {str(der)!r}: {exc}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValidationError(f"--der: {str(der)!r} must hold a JSON list of device objects")
    return fleet_from_records(g, records)


def parse_window(text: str | None, t0: int = 48) -> tuple[int, int] | None:
    """``"18:00-21:00"`` as absolute steps of the horizon from ``t0`` (times before it are on
    the next day)."""
    if not text:
        return None
    try:
        a, b = text.split("-", 1)
        steps = []
        for part in (a, b):
            h, m = part.strip().split(":", 1)
            if not (0 <= int(h) <= 24 and 0 <= int(m) < 60):
                raise ValueError
            st = round((int(h) + int(m) / 60) * 4)
            steps.append(st + 96 if st < t0 else st)
    except ValueError:
        raise ValidationError(f"--limit-window: expected HH:MM-HH:MM, got {text!r}") from None
    lo, hi = steps
    return (lo, hi if hi > lo else hi + 96)


def run_phase_plan(g: ThreePhaseGrid, pf: PhaseFleet, plan_cfg: dict[str, Any]) -> dict[str, Any]:
    """Plan ``pf`` on ``g`` and return the summary with the fleet's per-phase totals."""
    from gridpilot.flex.phase_plan import PhasePlanConfig, plan_phases

    p = plan_phases(g, pf, PhasePlanConfig(**plan_cfg))
    s = p.summary()
    s["fleet"] = pf.summary()
    return s


def _print(s: dict[str, Any]) -> None:
    from gridpilot.tables import print_table, rows_table

    keys = ("vuf_max_pct", "vuf_over_limit_bus_steps", "v_max_pu", "v_min_pu", "phase_peak_mw")
    rows = [{"metric": k, "before": s["before"][k], "after": s["after"][k]} for k in keys]
    title = (
        f"{s['grid']} ({s['mode']}): {s['ev_sessions']} EV sessions on {s['points']} bus-phases, "
        f"VUF limit {s['vuf_limit_pct']} %"
    )
    print_table(rows_table(title, ("metric", "before", "after"), rows))
    typer.echo(
        f"EV energy {s['ev_delivered_mwh']:.3f} of {s['ev_requested_mwh']:.3f} MWh; "
        f"feasible {s['feasible']}, status {s['status']} ({s['reason']}); {s['rounds']} rounds, "
        f"{s['total_s']:.1f} s"
    )


def phase_balance_cmd(
    grid: Annotated[str, typer.Argument(help="three-phase grid name or .dss file")],
    seed: Annotated[int, typer.Option(help="fleet seed")] = 0,
    ev_share: Annotated[float, typer.Option(help="share of households with an EV")] = 0.3,
    kw_per_household: Annotated[float, typer.Option(help="load kW per household")] = 2.5,
    flexible_share: Annotated[
        float, typer.Option(help="share of EVs at three-phase buses with a phase-switching charger")
    ] = 0.5,
    level1_share: Annotated[
        float,
        typer.Option(help="share of EVs on split-phase services with a 120 V Level 1 charger"),
    ] = 0.0,
    vuf_limit: Annotated[float, typer.Option(help="voltage unbalance limit, %")] = 2.0,
    phase_limit_mw: Annotated[
        float | None, typer.Option(help="demand limit per phase, MW (default none)")
    ] = None,
    limit_window: Annotated[
        str | None, typer.Option(help="HH:MM-HH:MM the per-phase limit holds in (a DR event)")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="balance (EVs only) or plan (+ batteries, heaters)")
    ] = "balance",
    der: Annotated[
        Path | None, typer.Option(help="JSON list of devices instead of a generated fleet")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Assign EV charging by phase and time so that the VUF stays within the limit at every
    three-phase bus (checked by a full unbalanced power flow); before/after and EV energy.
    Exit 3 when the plan fails that check (the summary says why)."""
    try:
        g = three_phase_grid(grid)
        pf = _fleet(
            g,
            der,
            {
                "seed": seed,
                "ev_share": ev_share,
                "kw_per_household": kw_per_household,
                "phase_flexible_share": flexible_share,
                "level1_share": level1_share,
            },
        )
        plan_cfg = {
            "mode": mode,
            "vuf_limit_pct": vuf_limit,
            "phase_limit_mw": phase_limit_mw,
            "limit_window": parse_window(limit_window),
        }
        s = run_phase_plan(g, pf, plan_cfg)
    except GridpilotError as exc:
        _fail(exc)
        return
    _emit(s, json_out)


def _emit(s: dict[str, Any], json_out: bool) -> None:
    """Print the plan's summary; exit 3 when the plan fails its own exact check (the
    summary says why), as ``flisr`` and ``reconfigure`` do for an unverified plan."""
    if json_out:
        typer.echo(json.dumps(s, indent=2, default=float))
    else:
        _print(s)
    if not s["feasible"]:
        raise typer.Exit(3)


def plan_three_phase(g: ThreePhaseGrid, hours: int, seed: int, json_out: bool) -> None:
    """``flex plan`` on a three-phase grid: the VPP schedule (EVs, batteries, heaters) within
    the per-phase limits, from noon over ``hours``."""
    from gridpilot.flex.phase_fleet import PlaceConfig, place_fleet

    pf = place_fleet(g, PlaceConfig(seed=seed, days=max(hours // 24, 1)))
    s = run_phase_plan(g, pf, {"mode": "plan", "t0": 48, "steps": hours * 4})
    _emit(s, json_out)
