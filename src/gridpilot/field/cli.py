"""``gridpilot field run GRID --devices N --hours H [--transport mqtt] [--store duckdb|postgres] [--json]``.

Exit codes: 0 the run completed and every message was stored; 1 it completed but messages
were refused or lost; 2 it could not start (bad grid, unreachable service, a store holding
another fleet); 3 it stopped part-way (broker or store lost): the summary so far is printed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import typer

field_app = typer.Typer(
    help="Field simulator: devices, faults and signed telemetry.", no_args_is_help=True
)


def _urls(transport: str, store: str) -> tuple[str, str]:
    """Return the transport and store URLs for the CLI's short names."""
    t_url = (
        os.environ.get("GRIDPILOT_MQTT_URL", "mqtt://127.0.0.1:1883")
        if transport == "mqtt"
        else transport
    )
    s_url = {
        "duckdb": "duckdb::memory:",
        "postgres": os.environ.get(
            "GRIDPILOT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    }.get(store, store)
    return t_url, s_url


@field_app.command("run")
def run(
    grid: str = typer.Argument(..., help="grid name (see `gridpilot grids`), e.g. case33bw"),
    devices: int = typer.Option(
        None, "--devices", "-n", min=1, help="devices in total (default: the grid's natural size)"
    ),
    hours: float = typer.Option(1.0, "--hours", min=0.0, help="simulated hours"),
    dt_s: float = typer.Option(60.0, "--dt", min=1.0, help="step, seconds"),
    meter_interval_s: int = typer.Option(
        900, "--meter-interval", min=1, help="meters report every this many seconds"
    ),
    transport: str = typer.Option(
        "inproc", "--transport", help="inproc, mqtt (GRIDPILOT_MQTT_URL) or mqtt://host:port"
    ),
    store: str = typer.Option(
        "duckdb",
        "--store",
        help="duckdb, postgres (GRIDPILOT_PG_DSN), duckdb:<path> or postgresql://...",
    ),
    prefix: str = typer.Option(
        "field",
        "--prefix",
        help="table prefix in the store (one fleet per prefix; a run on a prefix with data "
        "resumes after its last message)",
    ),
    speed: float = typer.Option(
        0.0, "--speed", min=0.0, help="x real time (0: as fast as possible)"
    ),
    fault_line: int = typer.Option(
        None, "--fault-line", help="inject a fault on this line id halfway through"
    ),
    broker_timeout_s: float = typer.Option(
        30.0,
        "--broker-timeout",
        min=0.1,
        help="seconds to wait for a lost MQTT broker to come back (and for deliveries)",
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run GRID's field for H hours: devices step, the twin computes the truth, readings are signed,
    published and ingested into the store. Prints a summary (speed vs real time, readings, events).

    On a store prefix that already holds this fleet's telemetry the run resumes: the simulated
    clock starts at the last stored message and sequence numbers continue above the stored ones.
    """
    from gridpilot.errors import GridpilotError
    from gridpilot.field.run import FieldRunConfig, open_field_run

    cfg = FieldRunConfig(
        grid=grid,
        devices=devices,
        hours=hours,
        dt_s=dt_s,
        meter_interval_s=meter_interval_s,
        speed=speed,
        fault_line=fault_line,
        broker_timeout_s=broker_timeout_s,
        seed=seed,
        show_progress=not as_json,
    )
    t_url, s_url = _urls(transport, store)
    try:
        fr = open_field_run(cfg, t_url, s_url, prefix)
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot reach {transport!r}/{store!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    failure = fr.run()
    out = fr.summary()
    fr.close()
    _print(out, as_json)
    code = _exit_code(out, failure)
    if code:
        raise typer.Exit(code)


def _print(out: dict[str, Any], as_json: bool) -> None:
    """Print the run summary on stdout: JSON, or a Rich table (the ingest totals flattened)."""
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    from gridpilot.tables import kv_table, print_table

    flat = {k: v for k, v in out.items() if k != "ingest"}
    flat.update({f"ingest {k}": v for k, v in out.get("ingest", {}).items()})
    print_table(kv_table(f"field run: {out.get('grid', '')}", flat))


def _exit_code(out: dict[str, Any], failure: str | None) -> int:
    """0 success; 1 messages refused or lost; 3 stopped part-way. Prints why on stderr."""
    if failure is not None:
        typer.echo(
            f"error: {failure}\n  stopped after {out['steps_done']} of {out['steps']} steps; "
            f"{out['ingest']['readings_stored']} readings stored (see the summary)",
            err=True,
        )
        return 3
    ing = out["ingest"]
    lost = out["payloads"] - ing["payloads"]
    if ing["rejected"] or lost:
        typer.echo(
            f"error: {ing['rejected']} messages refused {ing['rejected_by_reason']}, "
            f"{lost} payloads published but never received",
            err=True,
        )
        return 1
    return 0


def register(app: typer.Typer) -> None:
    """Attach the ``field`` sub-commands to the root app."""
    app.add_typer(field_app, name="field")
