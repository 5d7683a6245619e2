"""CLI of volt/VAR optimisation with CVR: ``gridpilot cvr GRID --steps 96``."""

from __future__ import annotations

import json
from typing import Annotated

import numpy as np
import typer

from gridpilot.errors import GridpilotError, ValidationError


def day_shape(steps: int, minutes: float, seed: int = 1) -> np.ndarray:
    """A synthetic daily load multiplier (0.55-0.9 with noise), the shape the unbalanced
    benches use; one value per step."""
    t = np.arange(steps) * minutes / 60.0
    rng = np.random.default_rng(seed)
    return 0.55 + 0.35 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.06 * rng.standard_normal(steps)


def register(app: typer.Typer) -> None:
    """Attach ``cvr`` to the root app."""

    @app.command()
    def cvr(
        grid: Annotated[str, typer.Argument(help="three-phase grid: ieee13 … ieee8500 or .dss")],
        steps: Annotated[int, typer.Option(help="15-minute steps (96 = one day)")] = 96,
        cvr_loads: Annotated[
            bool, typer.Option(help="model consumer loads as exponential CVR (0.8 P, 3 Q)")
        ] = False,
        vmin: Annotated[float, typer.Option(help="lower limit, pu")] = 0.95,
        vmax: Annotated[float, typer.Option(help="upper limit, pu")] = 1.05,
        margin: Annotated[float, typer.Option(help="margin kept inside the limits, pu")] = 0.005,
        match_ops: Annotated[
            bool,
            typer.Option(
                "--match-baseline-ops/--one-plan",
                help="re-plan (up to 4 times) until tap operations <= the baseline's",
            ),
        ] = True,
        day_plan: Annotated[
            bool,
            typer.Option(
                "--day-plan/--hourly",
                help="one day-ahead schedule per regulator and capacitor (DP, tap budget)",
            ),
        ] = False,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Volt/VAR optimisation with CVR over a day against OpenDSS's own controls."""
        from gridpilot.control.cvr import CvrOptions, with_cvr_loads
        from gridpilot.control.cvr_run import cvr_day
        from gridpilot.model import load_grid
        from gridpilot.model.threephase import ThreePhaseGrid

        try:
            if steps < 1 or steps > 35040:
                raise ValidationError(f"steps must be within 1-35040, got {steps}")
            g = load_grid(grid)
            if not isinstance(g, ThreePhaseGrid):
                raise ValidationError(f"cvr needs a three-phase grid, {grid!r} is not")
            g = with_cvr_loads(g) if cvr_loads else g
            o = CvrOptions(vmin, vmax, margin, match_baseline_ops=match_ops, day_plan=day_plan)
            res = cvr_day(g, day_shape(steps, 15.0), 900.0, o)
        except GridpilotError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        out = res.summary()
        if json_out:
            typer.echo(json.dumps(out, indent=1))
            return
        b, o = out["baseline"], out["optimised"]
        typer.echo(f"{res.grid}: {steps} steps, energy saved {out['energy_saved_pct']:.2f} %")
        keys = ("energy_kwh", "violation_min", "violation_min_regulated", "tap_ops", "cap_ops",
                "vmin_pu", "vmax_pu")  # fmt: skip
        for k in keys:
            typer.echo(f"  {k:23s} baseline {b[k]:>12}  optimised {o[k]:>12}")
        typer.echo(f"  decision ms p50 {out['decision_ms_p50']}  p99 {out['decision_ms_p99']}")
