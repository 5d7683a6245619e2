"""The demo's storyline (#19 item 7) and the summary printed when a served run stops (item 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridpilot.agent import Orchestrator, SimWorld, demo_grid
from gridpilot.api.storyline import Storyline, Timing, fault_candidates
from gridpilot.api.summary import run_summary, summary_lines
from netutil import free_port

from .conftest import EVENING

FAST = Timing(lead_s=3, fault_hold_s=4, wind_hold_s=3, pause_s=1)  # 1 step per wall s below


def _orch() -> Orchestrator:
    return Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING))


def test_storyline_waits_for_a_client_then_announces_ahead_and_repeats_with_new_faults() -> None:
    orch = _orch()
    said: list[str] = []
    story = Storyline(orch.grid, 60.0, 60.0, said.append, timing=FAST, start_after_s=None)
    for _ in range(5):  # nobody has connected: nothing happens
        story.before_step(orch)
        orch.step()
    assert said == [] and not any(e["kind"] == "injected" for e in orch.events)
    story.client_connected()
    t0 = orch.world.t
    for _ in range(40):
        story.before_step(orch)
        orch.step()
    ev = list(orch.events)
    announce = [e for e in ev if e["kind"] == "announce"]
    faults = [e for e in ev if e["kind"] == "injected" and e["event"]["kind"] == "fault"]
    assert len(faults) >= 2
    lines = [f["event"]["line"] for f in faults]
    assert len(set(lines)) == len(lines)  # a new fault each episode
    first = announce[0]
    assert first["text"] == f"in 3 s: a fault on line {lines[0]}" and first["at_step"] == t0 + 3
    assert faults[0]["t"] - first["t"] == 3  # 3 wall s at 1 step per wall s
    assert said[0].startswith("storyline starts") and f"now: a fault on line {lines[0]}" in said
    assert any(e["kind"] == "injected" and e["event"]["kind"] == "repair" for e in ev)


def test_storyline_starts_after_the_countdown_without_a_client() -> None:
    orch = _orch()
    said: list[str] = []
    story = Storyline(orch.grid, 60.0, 60.0, said.append, timing=FAST, start_after_s=0.2)
    story.before_step(orch)
    assert said == []
    time.sleep(0.25)
    story.before_step(orch)
    assert said[0] == "storyline starts (0 s passed)" and said[1].startswith("in 3 s: a fault")


def test_fault_candidates_leave_out_ties_and_the_substation() -> None:
    g = demo_grid("case33bw")
    c = fault_candidates(g)
    assert 1 not in c and not {33, 34, 35, 36, 37} & set(c) and len(c) == len(set(c)) > 20


def test_summary_counts_what_happened() -> None:
    orch = _orch()
    orch.inject("fault", line=7)
    orch.run(5)
    s = run_summary(orch, ["a fault on line 7", "a wind drop to 5 % of what is available"])
    assert s["steps"] == 5 and s["flisr_actions"] == 1 and s["audit_chain_ok"]
    assert s["bus_minutes_without_supply"] > 0 and s["lowest_v_pu"] < 1
    text = "\n".join(summary_lines(s))
    assert "fault(s) on line(s) 7; 1 wind drop(s)" in text and "1 FLISR action(s)" in text


def _ctrl_c(cmd: list[str], env: dict[str, str], cwd: Path, ready: str) -> tuple[int, str]:
    """Run ``cmd`` in its own process group, wait for ``ready`` in its output, then send SIGINT
    to the whole group (what Ctrl-C in a terminal does); returns (exit code, output)."""
    out = cwd / "out.txt"
    with out.open("w") as f:
        p = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        for _ in range(600):
            if ready in out.read_text() or p.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return rc, out.read_text()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    src = Path(__file__).resolve().parents[2] / "src"
    return {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200"}


def test_ctrl_c_ends_the_demo_cleanly_with_a_summary(tmp_path: Path, cli_env) -> None:
    cmd = [sys.executable, "-m", "gridpilot", "demo", "--port", str(free_port())]
    rc, out = _ctrl_c(cmd, cli_env, tmp_path, "Ctrl-C to stop")
    assert rc == 0, out
    assert "Traceback" not in out and "Aborted" not in out
    assert "stopped at" in out and "audit:" in out and "hash chain verifies" in out


def test_make_demo_ctrl_c_is_no_error(tmp_path: Path, cli_env) -> None:
    """``make demo`` Ctrl-C'd: make reports no error (its venv stands in by a stamp and a wrapper)."""
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make not installed")
    repo = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    gp = venv / "bin" / "gridpilot"
    gp.write_text(f'#!/bin/sh\nexec {sys.executable} -m gridpilot "$@" --port {free_port()!s}\n')
    gp.chmod(0o755)
    (venv / ".installed").touch()  # newer than pyproject.toml: make builds nothing
    cmd = ["make", "-f", str(repo / "Makefile"), "-C", str(repo), "demo", f"VENV={venv}"]
    rc, out = _ctrl_c(cmd, cli_env, tmp_path, "Ctrl-C to stop")
    # make got the SIGINT too: it waits for gridpilot, then ends by the signal as a well-behaved
    # parent does, silently: no "make: *** [demo] Error 130" and no "Interrupt"
    assert rc in (0, -signal.SIGINT), out
    assert "make: ***" not in out and "Error" not in out and "Interrupt" not in out, out
    assert "stopped at" in out and "hash chain verifies" in out
