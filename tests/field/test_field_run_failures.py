"""`gridpilot field run` when things go wrong: broker loss, a restart on the same store prefix.

Issue #21 item 11; each test failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gridpilot.errors import GridpilotError
from gridpilot.telemetry import DuckDBStore, InProcessBus
from netutil import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _app() -> Any:
    from gridpilot.cli import _register, app

    _register()
    return app


def _json(output: str) -> dict[str, Any]:
    return json.loads(output[output.index("{") : output.rindex("}") + 1])


RUN = ["field", "run", "case33bw", "--devices", "300", "--json"]


def test_restart_on_the_same_prefix_resumes(tmp_path: Path) -> None:
    """A second run on the same store and prefix continues the timeline and its seq numbers."""
    db = f"duckdb:{tmp_path / 'field.duckdb'}"
    runner = CliRunner()
    first = runner.invoke(_app(), [*RUN, "--hours", "0.5", "--store", db])
    assert first.exit_code == 0, first.output
    a = _json(first.output)
    second = runner.invoke(_app(), [*RUN, "--hours", "0.5", "--store", db])
    assert second.exit_code == 0, second.output
    b = _json(second.output)
    assert b["ingest"]["rejected"] == 0  # all refused as replays before the fix
    assert b["ingest"]["readings_stored"] > 0
    assert b["resumed_from"] is not None and a["resumed_from"] is None
    with DuckDBStore(str(tmp_path / "field.duckdb"), prefix="field") as st:
        s = st.stats()
        assert s.readings == a["ingest"]["readings_stored"] + b["ingest"]["readings_stored"]
        assert s.rejected == 0
        # the second run's readings come after the first's: no time stamp twice
        r = st.range("src-1", 0, 4_102_444_800_000, quantity="p_mw")
        assert r["ts"].is_monotonic_increasing and r["ts"].is_unique
        assert len(r) == 60


class _FailingBus(InProcessBus):
    """A transport whose broker goes away after ``ok`` publishes (as MqttTransport reports it)."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def publish(self, topic: str, payload: bytes) -> None:
        if self.published >= self.ok:
            raise GridpilotError(
                "lost the MQTT broker at mqtt://127.0.0.1:1 and could not reconnect within 1 s"
            )
        super().publish(topic, payload)


def test_broker_loss_is_one_clear_message_and_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    import gridpilot.telemetry as tm

    monkeypatch.setattr(tm, "open_transport", lambda url: _FailingBus(ok=20))
    res = CliRunner().invoke(_app(), [*RUN, "--hours", "0.5"])
    assert not isinstance(res.exception, GridpilotError)  # raised through before the fix
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    assert "error: lost the MQTT broker" in res.output
    out = _json(res.output)  # the summary of what was done before the loss
    assert 0 < out["steps_done"] < out["steps"] and out["ingest"]["readings_stored"] > 0


# ---------------------------------------------------------------- a real broker of our own


def _start_broker(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.skip("could not start a private mosquitto")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto binary not installed")
    port = free_port()
    procs = [_start_broker(port, tmp_path)]
    yield port, procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(5)


def _wait_for_traffic(port: int) -> None:
    """Return once the field run publishes on the private broker (it is then under way)."""
    import threading

    from gridpilot.telemetry import MqttTransport, Topics

    seen = threading.Event()
    watch = MqttTransport(f"mqtt://127.0.0.1:{port}")
    try:
        watch.subscribe(Topics().all_telemetry, lambda _t, _p: seen.set())
        assert seen.wait(60), "the field run never published"
        time.sleep(1.0)
    finally:
        watch.close()


def _field_run(port: int, *extra: str) -> subprocess.Popen[str]:
    main = "import sys; sys.argv[0] = 'gridpilot'; from gridpilot.cli import main; main()"
    cmd = [sys.executable, "-c", main, *RUN, "--hours", "0.5", "--speed", "150"]  # 12 s paced
    cmd += ["--transport", f"mqtt://127.0.0.1:{port}", *extra]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.mqtt
def test_broker_gone_for_good_exits_nonzero_with_a_clear_message(
    broker: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, procs = broker
    run = _field_run(port, "--broker-timeout", "3")
    _wait_for_traffic(port)
    procs[0].kill()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 3, err
    assert "Traceback" not in err and "error:" in err and "MQTT broker" in err
    assert _json(out)["steps_done"] > 0


@pytest.mark.mqtt
def test_broker_back_within_the_timeout_the_run_completes(
    broker: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, procs = broker
    run = _field_run(port, "--broker-timeout", "20")
    _wait_for_traffic(port)
    procs[0].kill()
    procs[0].wait(5)
    time.sleep(1.5)
    procs.append(_start_broker(port, tmp_path))
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err
    res = _json(out)
    assert res["steps_done"] == res["steps"] and res["ingest"]["rejected"] == 0
    assert res["ingest"]["payloads"] == res["payloads"]  # nothing lost across the outage
