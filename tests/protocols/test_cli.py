"""``gridpilot protocols``: bad files get a clear error and exit 2; sunspec-read prints readings."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from typer.testing import CliRunner

from gridpilot.protocols.cli import app
from gridpilot.protocols.sunspec import Der, DerHost, DerSpec


def test_bad_station_and_client_files_exit_2_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps([{"station_id": "cs 1", "password": "short"}]))
    r = CliRunner().invoke(app, ["csms", "--stations", str(bad), "--duration", "0"])
    assert r.exit_code == 2 and "station_id" in r.output
    r = CliRunner().invoke(app, ["csms", "--stations", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "cannot read" in r.output
    bad.write_text(json.dumps([{"client_id": "ven-1", "secret": "x" * 20, "role": "root"}]))
    r = CliRunner().invoke(app, ["vtn", "--clients", str(bad)])
    assert r.exit_code == 2 and "role" in r.output


def test_sunspec_read_prints_models_and_readings() -> None:
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    host = DerHost([Der(DerSpec("pv-9", "pv", 6_000, 2_000))])
    ports = asyncio.run_coroutine_threadsafe(host.start(), loop).result(10)
    try:
        r = CliRunner().invoke(app, ["sunspec-read", "127.0.0.1", "--port", str(ports["pv-9"])])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output.strip().splitlines()[-1])
        assert out["readings"]["p_kw"] == -6.0 and "701" in out["models"]
    finally:
        asyncio.run_coroutine_threadsafe(host.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
