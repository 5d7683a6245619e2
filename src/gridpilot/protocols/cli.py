"""CLI: ``gridpilot protocols csms | vtn | sunspec-read | sunspec-sim`` (point real devices at gridpilot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Field protocols: OCPP CSMS, OpenADR 3 VTN, SunSpec Modbus (docs/protocols.md).",
    no_args_is_help=True,
)
Host = Annotated[str, typer.Option(help="address to listen on / connect to")]
Duration = Annotated[float | None, typer.Option(help="seconds to run (default: until Ctrl-C)")]


def _fail(text: str) -> None:
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(2)


def _stations(path: Path) -> list[dict[str, Any]]:
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"stations: cannot read {str(path)[:200]!r}: {exc}")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        _fail('stations: must be a JSON list of {"station_id", "password"}')
    return items


@app.command("csms")
def csms_cmd(
    stations: Annotated[Path, typer.Option(help='JSON list of {"station_id", "password"}')],
    host: Host = "127.0.0.1",
    port: int = 9000,
    store: Annotated[
        str, typer.Option(help="telemetry store URL (duckdb path or postgresql://)")
    ] = ":memory:",
    duration: Duration = None,
) -> None:
    """Run the OCPP CSMS at ws://HOST:PORT/ocpp/<station-id> (security profile 1)."""
    import asyncio

    from gridpilot.errors import GridpilotError
    from gridpilot.protocols import ReadingSink
    from gridpilot.protocols.ocpp import Csms, CsmsConfig
    from gridpilot.telemetry import open_store

    items = _stations(stations)
    try:
        sink = ReadingSink(store=open_store(store))
        csms = Csms(CsmsConfig(host=host, port=port), sink)
        for it in items:
            csms.provision(str(it.get("station_id", "")), str(it.get("password", "")))
    except GridpilotError as exc:
        _fail(str(exc))

    async def run() -> None:
        await csms.start()
        typer.echo(
            f"CSMS on ws://{host}:{csms.port}/ocpp/<station-id>: {len(items)} stations provisioned"
        )
        t = 0.0
        while duration is None or t < duration:
            await asyncio.sleep(5.0)
            t += 5.0
            n = await asyncio.to_thread(sink.flush)
            typer.echo(
                f"{len(csms.sessions)} connected, {n} readings stored, refused {csms.stats.refused}"
            )
        await csms.stop()

    asyncio.run(run())


@app.command("vtn")
def vtn_cmd(
    clients: Annotated[
        Path, typer.Option(help='JSON list of {"client_id", "secret", "role", "ven_name"}')
    ],
    host: Host = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Run the OpenADR 3.0.1 VTN alone (base URL http://HOST:PORT/openadr3)."""
    import uvicorn
    from fastapi import FastAPI

    from gridpilot.errors import GridpilotError
    from gridpilot.protocols.openadr import Vtn, load_clients, openadr_router

    vtn = Vtn()
    try:
        n = load_clients(vtn, clients)
    except GridpilotError as exc:
        _fail(str(exc))
    api = FastAPI(title="gridpilot OpenADR 3.0.1 VTN")
    api.include_router(openadr_router(vtn))
    typer.echo(f"VTN at http://{host}:{port}/openadr3 ({n} clients)")
    uvicorn.run(api, host=host, port=port, log_level="warning")


@app.command("sunspec-read")
def sunspec_read(
    host: Annotated[str, typer.Argument(help="the device's address")],
    port: int = 502,
    unit: int = 1,
) -> None:
    """Scan a SunSpec Modbus TCP device and print its models and AC readings as JSON."""
    import asyncio

    from gridpilot.protocols.sunspec import SunSpecClient, SunSpecError

    async def run() -> dict[str, Any]:
        c = SunSpecClient(host, port, unit=unit)
        try:
            models = await c.connect()
            return {
                "models": {str(k): v[0] for k, v in models.items()},
                "readings": await c.readings(),
            }
        finally:
            c.close()

    try:
        typer.echo(json.dumps(asyncio.run(asyncio.wait_for(run(), 30))))
    except (SunSpecError, TimeoutError, OSError) as exc:
        _fail(str(exc))


@app.command("sunspec-sim")
def sunspec_sim(
    devices: int = 1,
    kind: Annotated[str, typer.Option(help="pv or battery")] = "pv",
    duration: Duration = None,
) -> None:
    """Serve simulated SunSpec devices on 127.0.0.1 (one port each); prints id -> port."""
    import asyncio

    from gridpilot.protocols.sunspec import Der, DerHost, DerSpec

    if kind not in ("pv", "battery") or not 1 <= devices <= 2000:
        _fail(f"kind must be pv or battery and devices 1..2000, got {kind!r}, {devices}")

    async def run() -> None:
        host = DerHost(
            [Der(DerSpec(f"{kind}-{i}", kind, 10_000, 4_400, 20_000)) for i in range(devices)]
        )
        typer.echo(json.dumps(await host.start()))
        await asyncio.sleep(duration if duration else 1e9)
        await host.stop()

    asyncio.run(run())


def _ocpp_world(world: Any, audit: Any) -> Any:
    """``gridpilot demo --ev-protocol ocpp``: the world's EV stations behind OCPP."""
    from gridpilot.protocols.ocpp.fieldlink import OcppWorld

    return OcppWorld(world, audit=audit)


def _sunspec_world(world: Any, audit: Any) -> Any:
    """``gridpilot demo --protocols sunspec``: the grid's batteries and PV inverters behind SunSpec."""
    from gridpilot.protocols.sunspec.fieldlink import SunSpecWorld

    return SunSpecWorld(world, audit=audit)


def _openadr_world(world: Any, audit: Any) -> Any:
    """``gridpilot demo --protocols openadr``: household DR only through OpenADR 3 VENs."""
    from gridpilot.protocols.openadr.fieldlink import OpenAdrWorld

    return OpenAdrWorld(world, audit=audit)


def register(root: typer.Typer) -> None:
    """Attach ``gridpilot protocols ...`` to the root app and register the protocol worlds for
    ``gridpilot demo --ev-protocol ocpp`` and ``--protocols ocpp,sunspec,openadr`` (the adapter
    registration point)."""
    from gridpilot.agent import cli as agent_cli

    root.add_typer(app, name="protocols")
    agent_cli.EV_PROTOCOLS["ocpp"] = _ocpp_world
    agent_cli.PROTOCOL_WORLDS["ocpp"] = _ocpp_world
    agent_cli.PROTOCOL_WORLDS["sunspec"] = _sunspec_world
    agent_cli.PROTOCOL_WORLDS["openadr"] = _openadr_world
