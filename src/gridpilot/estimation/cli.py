"""CLI command of the estimation package: ``estimate`` (three-phase state estimation study)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridpilot.errors import GridpilotError, ValidationError

if TYPE_CHECKING:
    from gridpilot.estimation.unbalanced import SensorSpec, TruthOptions

log = logging.getLogger(__name__)


def _delay_s(text: str) -> float:
    """``15min``, ``900s``, ``0`` → seconds (0: fresh meters)."""
    if text.strip() in ("0", "0s", "0min", "none", "fresh"):
        return 0.0
    from gridpilot.twin.unbalanced.cli import parse_resolution

    try:
        return parse_resolution(text)
    except ValidationError:
        raise ValidationError(
            f"--delay: must look like 15min, 900s, 1h or 0 (fresh), got {text!r}"
        ) from None


def estimate_summary(
    grid_name: str, spec: SensorSpec, truth: TruthOptions, bad_data: bool, per_node: bool = False
) -> dict[str, Any]:
    """One state-estimation study on a three-phase grid: the twin's power flow as the
    truth, the sensor set (head, regulators, smart meters, pseudo-measurements), the robust
    estimate and its error (see :func:`gridpilot.estimation.unbalanced.run_case`)."""
    from gridpilot.estimation.unbalanced import Case, run_case
    from gridpilot.model import load_grid
    from gridpilot.model.threephase import ThreePhaseGrid

    spec.check()
    truth.check()
    g = load_grid(grid_name)
    if not isinstance(g, ThreePhaseGrid):
        raise ValidationError(
            f"estimate runs on three-phase grids (ieee13, ieee34, ieee123 or a .dss file); "
            f"{grid_name!r} is balanced: use gridpilot.estimation.StateEstimator"
        )
    name = "delayed" if spec.meter_delay_s else "fresh"
    name += " aligned" if spec.meter_delay_s and spec.align_delayed else ""
    name += "+bad" if bad_data else ""
    return run_case(g, Case(name, spec, gross=bad_data), truth, per_node=per_node)


def _options(
    coverage: float, delay: str, delay_sigma: float, align: bool, hour: float, seed: int
) -> tuple[SensorSpec, TruthOptions]:
    """The sensor spec and truth options of the command line, checked (flags named)."""
    from gridpilot.estimation.unbalanced import SensorSpec, TruthOptions

    if not 0.0 <= coverage <= 1.0:
        raise ValidationError(f"--coverage: must be within 0–1, got {coverage!r}")
    if not 0.0 <= delay_sigma <= 1.0:
        raise ValidationError(f"--delay-sigma: must be within 0–1, got {delay_sigma!r}")
    if not 0.0 <= hour < 24.0:
        raise ValidationError(f"--hour: must be within 0–24, got {hour!r}")
    spec = SensorSpec(
        meter_coverage=coverage,
        meter_delay_s=_delay_s(delay),
        delay_sigma_frac=delay_sigma,
        align_delayed=align,
        seed=seed,
    )
    return spec, TruthOptions(hour=hour, seed=seed)


def _check_out(out: Path | None) -> None:
    """Refuse an output that is not a .csv in an existing folder, before any work."""
    if out is None:
        return
    if out.suffix.lower() != ".csv":
        raise ValidationError(f"--out: {str(out)!r} must end in .csv, got {out.suffix!r}")
    if not out.parent.is_dir():
        raise ValidationError(f"--out: folder {str(out.parent)!r} does not exist")


def _write_nodes(rows: list[dict[str, Any]], out: Path) -> int:
    """Write the per node-phase rows as CSV; returns how many."""
    import csv

    try:
        with out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    except OSError as exc:
        raise ValidationError(f"--out: cannot write {str(out)!r}: {exc.strerror}") from None
    log.info("wrote %d node-phase rows to %s", len(rows), out)
    return len(rows)


def register(app: typer.Typer) -> None:
    """Attach ``estimate`` to the root app."""

    @app.command()
    def estimate(
        grid: Annotated[
            str, typer.Argument(help="three-phase grid (ieee13, ieee34, ieee123, ieee8500 …)")
        ],
        hour: Annotated[float, typer.Option(help="hour of the day of the true state")] = 7.5,
        coverage: Annotated[
            float, typer.Option(help="share of the loads with a smart meter (0–1)")
        ] = 0.7,
        delay: Annotated[str, typer.Option(help="smart-meter delay: 15min, 900s, 0")] = "15min",
        delay_sigma: Annotated[
            float, typer.Option(help="σ added to delayed meter P/Q, share of |S| (0–1)")
        ] = 0.0,
        align: Annotated[
            bool, typer.Option("--align", help="align delayed meters by the load profile")
        ] = False,
        bad_data: Annotated[
            bool, typer.Option("--bad-data", help="inject gross errors (head, regulator, meters)")
        ] = False,
        seed: Annotated[int, typer.Option(help="seed of meters, noise and loads")] = 0,
        out: Annotated[
            Path | None, typer.Option(help="write the per node-phase errors to this .csv file")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Three-phase state estimation per node-phase against the twin's true state:
        feeder-head SCADA, regulator V and I, delayed smart meters and load-profile
        pseudo-measurements; bad data removed by the largest normalised residual. Prints the
        |V| (pu) and angle (degrees) errors, what was removed and the time taken; ``--out``
        writes the error of every node-phase."""
        from gridpilot.twin.cli import fail

        try:
            spec, truth = _options(coverage, delay, delay_sigma, align, hour, seed)
            _check_out(out)
            s = estimate_summary(grid, spec, truth, bad_data, per_node=out is not None)
            if out is not None:
                s["out_rows"] = _write_nodes(s.pop("per_node"), out)
        except GridpilotError as exc:
            fail(exc)
            return
        if json_out:
            typer.echo(json.dumps(s, indent=2, default=str))
            return
        from gridpilot.tables import kv_table, print_table

        print_table(kv_table(f"state estimation: {s['grid']} ({s['case']})", s))
