"""Protocol benchmark: OCPP, OpenADR 3 and SunSpec Modbus at field scale, on 127.0.0.1.

    PYTHONPATH=src .venv/bin/python bench/protocols.py --json                 # the issue's sizes
    PYTHONPATH=src .venv/bin/python bench/protocols.py --json --quick         # small, ~1 minute

One JSON row per protocol: ``protocol``, ``devices``, ``connect_s`` (all devices up),
``command_p50_ms`` / ``command_p99_ms``, ``readings_per_s``, ``errors`` and the ``target``
of issue #18 beside them; device sides run in separate processes (``--procs``).

* ``ocpp``: N charge points (the ``ocpp`` library, charge-point role) connect to one CSMS
  (basic auth, boot, status, transaction); a plan's ``SetChargingProfile`` goes to all at once
  (``command_*``: per station, ``plan_s``: until the last answered); they send ``MeterValues``
  every ``--meter-s`` s for ``--duration`` s into a DuckDB telemetry store; ``lost`` = meter
  values the stations had confirmed minus rows the CSMS received. Target: 1,000 stations,
  p99 < 5 s, 0 lost.
* ``openadr``: N VENs (aiohttp) take OAuth2 tokens, subscribe, and poll ``GET /events``
  every 10 s; the business logic publishes one event; ``command_*`` is publication to
  notification received at each VEN (webhook), ``seen_by_poll_p99_ms`` the same by polling.
  Target: 1,000 VENs, p99 < 2 s.
* ``sunspec``: N devices (pymodbus servers, one port each); gridpilot's client scans all,
  reads 701/713 of all every 4 s (``readings_per_s``, ``read_p99_ms``), then writes a
  volt-var curve to all at once (``command_*``, ``write_all_s``, each read back). Target: 200
  devices, curve to all < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import sys
import threading
import time
from typing import Any

import numpy as np

PW = "bench-password-0123"


def note(text: str) -> None:
    """Progress on stderr (stdout carries the JSON)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 1) if xs else None


# ------------------------------------------------------------------------------------ OCPP
def _ocpp_stations(url: str, ids: list[str], meter_s: float, stop: Any, out: Any) -> None:
    from gridpilot.protocols.ocpp import RunOptions, StationModel, StationSpec, run_station

    logging.getLogger("ocpp").setLevel(logging.ERROR)

    async def go() -> int:
        models = [
            StationModel(StationSpec(i, PW, version="2.1" if k % 4 == 0 else "2.0.1"))
            for k, i in enumerate(ids)
        ]
        opts = RunOptions(url, meter_s=meter_s, backoff_s=2.0)
        tasks = [asyncio.create_task(run_station(m.spec, opts, m)) for m in models]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sum(m.meter_sent for m in models)

    out.put(asyncio.run(go()))


def bench_ocpp(n: int, procs: int, meter_s: float, duration_s: float) -> dict[str, Any]:
    """N charge points on one CSMS (see the module docstring)."""
    from gridpilot.protocols import ReadingSink
    from gridpilot.protocols.ocpp import Csms, CsmsConfig
    from gridpilot.telemetry import DuckDBStore

    logging.getLogger("ocpp").setLevel(logging.ERROR)
    sink = ReadingSink(store=DuckDBStore())
    csms = Csms(CsmsConfig(port=0, response_timeout_s=30.0), sink)
    ids = [f"cs-{i:05d}" for i in range(n)]
    for i in ids:
        csms.provision(i, PW)

    async def go() -> dict[str, Any]:
        port = await csms.start()
        ctx = mp.get_context("spawn")
        q, stop = ctx.Queue(), ctx.Event()
        t0 = time.perf_counter()
        ps = [
            ctx.Process(
                target=_ocpp_stations,
                args=(f"ws://127.0.0.1:{port}/ocpp", ids[k::procs], meter_s, stop, q),
            )
            for k in range(procs)
        ]
        for p in ps:
            p.start()
        while len(csms.sessions) < n and time.perf_counter() - t0 < 180:
            await asyncio.sleep(0.1)
        connect_s = time.perf_counter() - t0
        note(f"ocpp: {len(csms.sessions)} of {n} stations up in {connect_s:.1f} s")
        await asyncio.sleep(1.0)
        t1 = time.perf_counter()
        res = await asyncio.gather(*(csms.set_limit(i, 7400.0) for i in ids))
        plan_s = time.perf_counter() - t1
        note(f"ocpp: profiles to {n} stations in {plan_s:.2f} s")
        lat = [r.latency_ms for r in res if r.accepted]
        acc0, t2 = sink.stats.accepted, time.perf_counter()
        while time.perf_counter() - t2 < duration_s:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(sink.flush)
        rate = (sink.stats.accepted - acc0) / (time.perf_counter() - t2)
        stop.set()
        sent, t3 = 0, time.perf_counter()
        for _ in ps:
            while q.empty() and time.perf_counter() - t3 < 60:
                await asyncio.sleep(0.2)
            sent += q.get() if not q.empty() else 0
        await asyncio.sleep(0.5)
        await asyncio.to_thread(sink.flush)
        got = sum(r.counters.get("meter_values", 0) for r in csms.records.values())
        await csms.stop()
        return {
            "protocol": "ocpp",
            "devices": n,
            "connect_s": round(connect_s, 2),
            "command_p50_ms": _pct(lat, 50),
            "command_p99_ms": _pct(lat, 99),
            "readings_per_s": round(rate, 1),
            "errors": n - len(lat),
            "plan_s": round(plan_s, 2),
            "meter_values_confirmed": sent,
            "meter_values_received": got,
            "lost": max(sent - got, 0),
            "rows_stored": sink.stats.written,
            "sessions_up": len(csms.records)
            - sum(not r.connections for r in csms.records.values()),
            "target": "1,000 stations; profiles to all p99 < 5 s; 0 lost meter values",
        }

    return asyncio.run(go())


# --------------------------------------------------------------------------------- OpenADR
def _vens(url: str, names: list[str], cb_port: int, poll_s: float, run_s: float, out: Any) -> None:
    import aiohttp
    from aiohttp import web

    got: dict[str, float] = {}
    seen: dict[str, float] = {}
    stats = {"polls": 0, "errors": 0}
    poll_ms: list[float] = []

    async def callback(req: web.Request) -> web.Response:
        got.setdefault(req.match_info["ven"], time.time())
        return web.json_response({})

    async def ven(s: aiohttp.ClientSession, name: str, k: int) -> None:
        try:
            r = await s.post(
                f"{url}/auth/token",
                data={"grant_type": "client_credentials", "client_id": name, "client_secret": PW},
            )
            h = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
            progs = await (await s.get(f"{url}/programs", headers=h)).json()
            sub = {
                "clientName": name,
                "programID": progs[0]["id"],
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["POST"],
                        "callbackUrl": f"http://127.0.0.1:{cb_port}/cb/{name}",
                    }
                ],
            }
            await s.post(f"{url}/subscriptions", json=sub, headers=h)
        except (aiohttp.ClientError, KeyError, IndexError, ValueError):
            stats["errors"] += 1
            return
        await asyncio.sleep(poll_s * k / len(names))
        end = time.time() + run_s
        while time.time() < end:
            t = time.perf_counter()
            try:
                evs = await (await s.get(f"{url}/events", headers=h)).json()
                stats["polls"] += 1
                poll_ms.append((time.perf_counter() - t) * 1e3)
                if evs and name not in seen:
                    seen[name] = time.time()
            except (aiohttp.ClientError, ValueError):
                stats["errors"] += 1
            await asyncio.sleep(poll_s)

    async def go() -> None:
        app = web.Application()
        app.router.add_post("/cb/{ven}", callback)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", cb_port).start()
        conn = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(
            connector=conn, timeout=aiohttp.ClientTimeout(total=30)
        ) as s:
            await asyncio.gather(*(ven(s, n, k) for k, n in enumerate(names)))
        await runner.cleanup()

    asyncio.run(go())
    out.put({"got": got, "seen": seen, "stats": stats, "poll_ms": poll_ms})


def _serve(app: Any) -> tuple[Any, threading.Thread, str]:
    """``app`` under uvicorn in a thread on a free port: (server, thread, base URL)."""
    import uvicorn

    cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off",
                         backlog=4096)  # fmt: skip
    server = uvicorn.Server(cfg)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    return server, th, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def _publish(url: str, program_id: str) -> float:
    """The business logic's token and one event for every VEN; returns the time it was sent."""
    import httpx

    form = {"grant_type": "client_credentials", "client_id": "bl", "client_secret": PW}
    ev = {
        "programID": program_id,
        "eventName": "bench",
        "intervalPeriod": {"start": "2026-07-01T16:00:00Z", "duration": "PT15M"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}],
    }
    with httpx.Client(timeout=30) as c:
        tok = c.post(f"{url}/auth/token", data=form).json()["access_token"]
        t_pub = time.time()
        r = c.post(f"{url}/events", json=ev, headers={"Authorization": f"Bearer {tok}"})
        if r.status_code != 201:
            raise RuntimeError(f"event not published: {r.status_code} {r.text[:200]}")
    return t_pub


def bench_openadr(n: int, procs: int, duration_s: float) -> dict[str, Any]:
    """N VENs on the VTN (see the module docstring)."""
    import socket

    from fastapi import FastAPI

    from gridpilot.protocols.openadr import PROGRAM_NAME, Vtn, openadr_router
    from gridpilot.protocols.openadr.bridge import LOOP

    vtn = Vtn()
    names = [f"ven-{i:05d}" for i in range(n)]
    for v in names:
        vtn.oauth.add_client(v, PW, "ven", ven_name=v)
    pid = vtn.store.create(LOOP, "program", {"programName": PROGRAM_NAME})["id"]
    vtn.oauth.add_client("bl", PW, "bl")
    app = FastAPI()
    app.include_router(openadr_router(vtn))
    server, th, base = _serve(app)
    url = f"{base}/openadr3"

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t0 = time.perf_counter()
    ps = [
        ctx.Process(target=_vens, args=(url, names[k::procs], free(), 10.0, duration_s, q))
        for k in range(procs)
    ]
    for p in ps:
        p.start()
    while len(vtn.store.objects["subscription"]) < n and time.perf_counter() - t0 < 120:
        time.sleep(0.1)
    connect_s = time.perf_counter() - t0
    time.sleep(min(10.0, duration_s / 3))
    t_pub = _publish(url, pid)
    res = [q.get() for _ in ps]
    for p in ps:
        p.join(30)
    server.should_exit = True
    th.join(10)
    push = [(t - t_pub) * 1e3 for x in res for t in x["got"].values()]
    poll = [(t - t_pub) * 1e3 for x in res for t in x["seen"].values()]
    polls = sum(x["stats"]["polls"] for x in res)
    pms = [v for x in res for v in x["poll_ms"]]
    return {
        "protocol": "openadr",
        "devices": n,
        "connect_s": round(connect_s, 2),
        "command_p50_ms": _pct(push, 50),
        "command_p99_ms": _pct(push, 99),
        "readings_per_s": round(polls / duration_s, 1),
        "errors": sum(x["stats"]["errors"] for x in res) + (n - len(push)),
        "notified": len(push),
        "seen_by_poll_p99_ms": _pct(poll, 99),
        "poll_p50_ms": _pct(pms, 50),
        "poll_p99_ms": _pct(pms, 99),
        "notifier": dict(vtn.notifier.counts),
        "target": "1,000 VENs polling every 10 s; event to all p99 < 2 s",
    }


# --------------------------------------------------------------------------------- SunSpec
def _ders(n: int, q: Any, stop: Any) -> None:
    from gridpilot.protocols.sunspec import Der, DerHost, DerSpec

    logging.getLogger("pymodbus").setLevel(logging.ERROR)

    async def go() -> None:
        ders = [
            Der(DerSpec(f"der-{i:04d}", "battery" if i % 5 == 0 else "pv", 10_000, 4_400, 20_000))
            for i in range(n)
        ]
        host = DerHost(ders)
        q.put(await host.start())
        while not stop.is_set():
            await asyncio.sleep(0.2)
        await host.stop()

    asyncio.run(go())


def bench_sunspec(n: int, duration_s: float) -> dict[str, Any]:
    """N SunSpec devices read every 4 s and a volt-var curve written to all (module docstring)."""
    from gridpilot.protocols.sunspec import SunSpecClient

    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_ders, args=(n, q, stop))
    p.start()
    ports = q.get(timeout=120)
    curve = ((92.0, 40.0), (98.0, 0.0), (102.0, 0.0), (108.0, -40.0))

    async def go() -> dict[str, Any]:
        cs = [SunSpecClient("127.0.0.1", port, dev) for dev, port in ports.items()]
        t0 = time.perf_counter()
        up = await asyncio.gather(*(c.connect() for c in cs), return_exceptions=True)
        connect_s = time.perf_counter() - t0
        errors = sum(isinstance(u, Exception) for u in up)
        cs = [c for c, u in zip(cs, up, strict=True) if not isinstance(u, Exception)]
        rows, read_ms, t1 = 0, [], time.perf_counter()

        async def read(c: SunSpecClient) -> int:
            t = time.perf_counter()
            try:
                v = await c.readings()
            except Exception:  # counted as an error
                return -1
            read_ms.append((time.perf_counter() - t) * 1e3)
            return len(v)

        rounds = 0
        while time.perf_counter() - t1 < duration_s:
            tr = time.perf_counter()
            got = await asyncio.gather(*(read(c) for c in cs))
            rows += sum(g for g in got if g > 0)
            errors += sum(g < 0 for g in got)
            rounds += 1
            await asyncio.sleep(max(4.0 - (time.perf_counter() - tr), 0.0))
        rate = rows / (time.perf_counter() - t1)
        t2 = time.perf_counter()
        res = await asyncio.gather(*(c.set_volt_var(curve) for c in cs))
        write_all_s = time.perf_counter() - t2
        ok = [r.latency_ms for r in res if r.accepted]
        for c in cs:
            c.close()
        return {
            "protocol": "sunspec",
            "devices": n,
            "connect_s": round(connect_s, 2),
            "command_p50_ms": _pct(ok, 50),
            "command_p99_ms": _pct(ok, 99),
            "readings_per_s": round(rate, 1),
            "errors": errors + len(res) - len(ok),
            "write_all_s": round(write_all_s, 2),
            "read_p50_ms": _pct(read_ms, 50),
            "read_p99_ms": _pct(read_ms, 99),
            "read_rounds": rounds,
            "target": "200 devices read every 4 s; volt-var to all < 2 s",
        }

    try:
        return asyncio.run(go())
    finally:
        stop.set()
        p.join(30)


def main() -> None:
    """Run the benches asked for and print their rows (JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="small sizes (100 / 100 / 20)")
    ap.add_argument("--only", choices=("ocpp", "openadr", "sunspec"), default=None)
    ap.add_argument("--ocpp", type=int, default=1000, help="charge points")
    ap.add_argument("--vens", type=int, default=1000, help="VENs")
    ap.add_argument("--sunspec", type=int, default=200, help="SunSpec devices")
    ap.add_argument("--procs", type=int, default=2, help="device-side processes")
    ap.add_argument(
        "--duration", type=float, default=30.0, help="seconds of steady traffic per bench"
    )
    ap.add_argument("--meter-s", type=float, default=10.0, help="OCPP MeterValues interval, s")
    a = ap.parse_args()
    if a.quick:
        a.ocpp, a.vens, a.sunspec, a.duration = 100, 100, 20, 12.0
    rows = []
    t = time.time()
    if a.only in (None, "ocpp"):
        rows.append(bench_ocpp(a.ocpp, a.procs, a.meter_s, a.duration))
    if a.only in (None, "openadr"):
        rows.append(bench_openadr(a.vens, a.procs, a.duration))
    if a.only in (None, "sunspec"):
        rows.append(bench_sunspec(a.sunspec, a.duration))
    out = {
        "bench": "protocols",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "wall_s": round(time.time() - t, 1),
        "rows": rows,
    }
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()
