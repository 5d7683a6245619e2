"""``gridpilot telemetry ...`` commands: stats, latest values, refusals, downsampling; a demo feed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from gridpilot.telemetry.store import TelemetryStore

telemetry_app = typer.Typer(
    help="Signed telemetry: stores, counts, a demo feed.", no_args_is_help=True
)

STORE_HELP = "duckdb:<path>, <path>.duckdb, duckdb::memory: or postgresql://..."


@telemetry_app.command("stats")
def stats(
    store: str = typer.Option("gridpilot.duckdb", "--store", "-s", help=STORE_HELP),
    prefix: str = typer.Option("tm", help="table prefix in the store"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Print a store's counts: accepted messages and readings, refusals by reason, devices, time span."""
    from rich.console import Console
    from rich.table import Table

    with _open_existing(store, prefix) as st:
        s = st.stats()
    d = s.as_dict()
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    t = Table(title=f"telemetry store {store} (prefix {prefix})", show_header=False)
    for k in ("accepted_messages", "readings", "records", "rejected"):
        t.add_row(k.replace("_", " "), f"{d[k]:,}")
    for kind, n in sorted(s.accepted_by_kind.items()):
        t.add_row(f"  accepted {kind}", f"{n:,}")
    for reason, n in s.rejected_by_reason.items():
        t.add_row(f"  rejected: {reason}", f"{n:,}")
    t.add_row("devices registered", f"{s.devices_registered:,}")
    t.add_row("devices reporting", f"{s.devices_reporting:,}")
    t.add_row("first reading", str(d["first_ts"]))
    t.add_row("last reading", str(d["last_ts"]))
    Console().print(t)


def _open_existing(store: str, prefix: str) -> TelemetryStore:
    """Open an existing store, or exit with code 2 and a one-line error."""
    from pathlib import Path

    from gridpilot.errors import GridpilotError
    from gridpilot.telemetry.store import open_store

    path = store[len("duckdb:") :] if store.startswith("duckdb:") else store
    is_file = not store.startswith(("postgresql://", "postgres://")) and path != ":memory:"
    if is_file and not Path(path).exists():
        typer.echo(f"error: no telemetry store at {path!r}", err=True)
        raise typer.Exit(2)
    try:
        return open_store(store, prefix=prefix)
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@telemetry_app.command("latest")
def latest(
    store: str = typer.Option("gridpilot.duckdb", "--store", "-s", help=STORE_HELP),
    prefix: str = typer.Option("tm", help="table prefix in the store"),
    quantity: str = typer.Option(None, "--quantity", "-q", help="e.g. p_kw, v_pu"),
    device: list[str] = typer.Option(None, "--device", "-d", help="device id (repeatable)"),
    limit: int = typer.Option(20, min=1, help="rows to print"),
) -> None:
    """Print the latest reading per device and quantity (CSV)."""
    from gridpilot.errors import GridpilotError

    with _open_existing(store, prefix) as st:
        try:
            df = st.latest(device or None, quantity)
        except GridpilotError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(df.head(limit).to_csv(index=False), nl=False)
    if len(df) > limit:
        typer.echo(f"... {len(df) - limit} more rows", err=True)


@telemetry_app.command("rejections")
def rejections(
    store: str = typer.Option("gridpilot.duckdb", "--store", "-s", help=STORE_HELP),
    prefix: str = typer.Option("tm", help="table prefix in the store"),
    limit: int = typer.Option(20, min=1, help="rows to print"),
) -> None:
    """Print the latest refused messages with their reason (CSV)."""
    with _open_existing(store, prefix) as st:
        df = st.rejections(limit)
    typer.echo(df.to_csv(index=False), nl=False)


@telemetry_app.command("downsample")
def downsample(
    before: str = typer.Option(
        ..., "--before", help="compact readings older than this time (ISO, UTC if naive)"
    ),
    bucket_s: int = typer.Option(3600, "--bucket-s", help="aggregate bucket width in seconds"),
    store: str = typer.Option("gridpilot.duckdb", "--store", "-s", help=STORE_HELP),
    prefix: str = typer.Option("tm", help="table prefix in the store"),
) -> None:
    """Compact raw readings older than --before into per-bucket aggregates (prints JSON counts).

    ``before`` is floored to a bucket boundary; late readings merge into compacted buckets.
    """
    from gridpilot.errors import GridpilotError

    with _open_existing(store, prefix) as st:
        try:
            res = st.downsample(before, bucket_s)
        except GridpilotError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(json.dumps({**res, "cut": res["cut"].isoformat()}))


@telemetry_app.command("demo")
def demo(
    store: str = typer.Option("gridpilot.duckdb", "--store", "-s", help=STORE_HELP),
    prefix: str = typer.Option("tm", help="table prefix in the store"),
    devices: int = typer.Option(100, min=1, help="number of meters"),
    minutes: int = typer.Option(60, min=1, help="minutes of 1-minute readings per meter"),
    transport: str = typer.Option("inproc", help="inproc or mqtt://host:port"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Sign a demo feed (with a few forged, replayed and out-of-range messages) and ingest it.

    Run again on the same store, the meters go on above the sequence numbers already stored
    (as a restarted device would), so each run stores its own readings.
    """
    import time

    import numpy as np

    from gridpilot.errors import GridpilotError
    from gridpilot.telemetry import (
        DeviceRegistry,
        DeviceSigner,
        Ingestor,
        Receiver,
        Topics,
        keys_from_seeds,
        open_store,
        open_transport,
    )

    rng = np.random.default_rng(0)
    keys = keys_from_seeds(rng.integers(0, 256, (devices, 32)))
    reg = DeviceRegistry()
    ids = [f"meter-{i:06d}" for i in range(devices)]
    reg.register_many(ids, keys, feeder=[f"F{i % 4 + 1}" for i in range(devices)])
    try:
        st = open_store(store, prefix=prefix)
        bus = open_transport(transport)
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    ingestor = Ingestor(reg, st)  # raises the registry's last seqs to the store's
    last = reg.last_seq[[reg.index_of(d) for d in ids]].astype(np.int64)
    now_ms = int(time.time() * 1000)
    ts = now_ms - 60_000 * np.arange(minutes, 0, -1, dtype=np.int64)
    frames = []
    for i, (d, k) in enumerate(zip(ids, keys, strict=True)):
        p = 1.0 + 0.5 * np.sin(np.arange(minutes) / 10 + i) + rng.normal(0, 0.05, minutes)
        signer = DeviceSigner(d, k, seq=int(last[i]))
        frames.append(signer.readings(ts, {"p_kw": p, "v_pu": 1 + p / 100}))
    bad = [
        DeviceSigner(ids[0], keys[-1], seq=int(last[0]) + 1).readings(ts[:1], {"p_kw": [1.0]}),
        frames[0],  # replay
        DeviceSigner(ids[1], keys[1], seq=int(last[1]) + 5).readings(ts[:1], {"v_pu": [7.0]}),
    ]
    topics = Topics()
    rx = Receiver(bus, ingestor, topics.all_telemetry, topics=topics)
    for d, fr in zip(ids, frames, strict=True):  # each device on its own topic
        bus.publish(topics.telemetry(d), fr)
    bus.flush()
    rx.run(until=lambda: rx.received >= len(frames), duration_s=30)
    for d, b in zip((ids[0], ids[0], ids[1]), bad, strict=True):
        bus.publish(topics.telemetry(d), b)
    bus.flush()
    rx.run(until=lambda: rx.received >= len(frames) + 3, duration_s=30)
    bus.close()
    st.close()
    total = {**rx.ingestor.totals.as_dict(), "resumed_above_seq": int(last.max(initial=0))}
    if json_out:
        typer.echo(json.dumps(total))
        return
    from gridpilot.tables import kv_table, print_table

    print_table(kv_table(f"telemetry demo: {devices} meters, {minutes} min", total))


def register(app: typer.Typer) -> None:
    """Attach the ``telemetry`` sub-commands to the root app."""
    app.add_typer(telemetry_app, name="telemetry")
