"""``gridpilot field run GRID --devices N --hours H [--transport mqtt] [--store duckdb|postgres] [--json]``."""

from __future__ import annotations

import json
import os

import typer

field_app = typer.Typer(
    help="Field simulator: devices, faults and signed telemetry.", no_args_is_help=True
)


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
        "field", "--prefix", help="table prefix in the store (one fleet per prefix)"
    ),
    speed: float = typer.Option(
        0.0, "--speed", min=0.0, help="x real time (0: as fast as possible)"
    ),
    fault_line: int = typer.Option(
        None, "--fault-line", help="inject a fault on this line id halfway through"
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run GRID's field for H hours: devices step, the twin computes the truth, readings are signed,
    published and ingested into the store. Prints a summary (speed vs real time, readings, events)."""
    import time

    import numpy as np
    from rich.console import Console
    from rich.progress import Progress

    from gridpilot.errors import GridpilotError, ValidationError
    from gridpilot.field.fleet import FleetConfig
    from gridpilot.field.publish import FieldTelemetry
    from gridpilot.field.simulator import FieldSimulator
    from gridpilot.model import load_grid
    from gridpilot.telemetry import Ingestor, Receiver, open_store, open_transport

    err = Console(stderr=True)
    try:
        g = load_grid(grid)
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
        t0 = time.perf_counter()
        sim = FieldSimulator(
            g,
            FleetConfig(n_devices=devices, seed=seed),
            meter_interval_s=meter_interval_s,
            seed=seed,
        )
        bus = open_transport(t_url)
        tel = FieldTelemetry(sim, bus)
        st = open_store(s_url, prefix=prefix)
        try:
            ing = Ingestor(tel.registry, st, clock=tel.clock)
        except GridpilotError as exc:
            st.close()
            raise ValidationError(
                f"{exc}\n  (a store keeps one fleet's devices: use another --prefix or store)"
            ) from None
        rx = Receiver(bus, ing, tel.topics.all_telemetry)
        build_s = time.perf_counter() - t0
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot reach {transport!r}/{store!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    steps = max(1, round(hours * 3600 / dt_s))
    sent = 0
    events: dict[str, int] = {}
    vmin = np.inf
    step_ms: list[float] = []
    pub_ms = 0.0
    t0 = time.perf_counter()
    with Progress(console=err, transient=True, disable=as_json) as prog:
        task = prog.add_task(f"{grid}: {sim.fleet.n_devices:,} devices", total=steps)
        for k in range(steps):
            if fault_line is not None and k == steps // 2:
                sim.inject_line_fault(fault_line)
            stats = sim.step(dt_s)
            if stats is not None:
                step_ms.append(stats.devices_ms + stats.powerflow_ms)
                vmin = min(vmin, stats.vmin_pu) if np.isfinite(stats.vmin_pu) else vmin
            ta = time.perf_counter()
            batch = sim.readings()
            for e in batch.events:
                events[e.name] = events.get(e.name, 0) + 1
            sent += tel.publish(batch).payloads
            bus.flush()
            if speed:
                time.sleep(max(0.0, dt_s / speed - (time.perf_counter() - ta)))
            want = sent
            rx.run(until=lambda n=want: rx.received >= n, duration_s=60, max_payloads=None)
            pub_ms += (time.perf_counter() - ta) * 1e3
            prog.advance(task)
    wall = time.perf_counter() - t0
    bus.close()
    tot = ing.totals.as_dict()
    st.close()
    sim_s = steps * dt_s
    out = {
        "grid": grid,
        "devices": sim.fleet.n_devices,
        "device_counts": sim.fleet.counts,
        "steps": steps,
        "dt_s": dt_s,
        "simulated_s": sim_s,
        "wall_s": round(wall, 3),
        "build_s": round(build_s, 3),
        "speed_x_real_time": round(sim_s / wall, 1) if wall > 0 else None,
        "step_ms_mean": round(float(np.mean(step_ms)), 3) if step_ms else None,
        "telemetry_ms_per_step": round(pub_ms / steps, 3),
        "payloads": sent,
        "ingest": tot,
        "events": events,
        "vmin_pu": None if not np.isfinite(vmin) else round(float(vmin), 4),
        "transport": t_url,
        "store": s_url.split("@")[-1],
    }
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        Console().print(out)


def register(app: typer.Typer) -> None:
    """Attach the ``field`` sub-commands to the root app."""
    app.add_typer(field_app, name="field")
