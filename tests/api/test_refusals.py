"""Refused attempts are audited in aggregate: one row at once, one summary row per window."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from gridpilot.agent import Orchestrator, SimWorld, demo_grid
from gridpilot.agent.audit import AuditLog, RefusalLog
from gridpilot.api import KeyStore, create_app

from .conftest import EVENING


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _refuse(log: RefusalLog, client: str = "10.0.0.1", route: str = "/api/commands/dr") -> None:
    log.refuse(
        client=client, actor="unknown", method="POST", route=route, path=route, why="missing"
    )


def test_one_row_at_once_then_one_summary_per_window() -> None:
    audit, clock = AuditLog(), Clock()
    log = RefusalLog(audit, window_s=10.0, clock=clock)
    for _ in range(500):
        _refuse(log)
        clock.t += 0.001
    assert audit.count("auth") == 1  # the first, at once
    clock.t += 10.0
    _refuse(log, route="/api/mode")  # a later refusal closes the quiet window
    rows = audit.entries(kind="auth")
    assert len(rows) == 3
    summary = next(r for r in rows if r["what"]["refused"] == 499)
    assert summary["what"]["client"] == "10.0.0.1" and summary["what"]["window_s"] == 10.0
    assert "499 more refused attempts from 10.0.0.1 to POST /api/commands/dr" in summary["why"]
    assert log.flush(everything=True) == 0  # /api/mode had only its first, already written
    assert audit.verify() == (True, None)


def test_memory_and_rows_are_bounded_under_many_clients() -> None:
    audit, clock = AuditLog(), Clock()
    log = RefusalLog(audit, window_s=10.0, max_open=50, clock=clock)
    for i in range(2000):
        _refuse(log, client=f"10.0.{i // 250}.{i % 250}")
    assert log.open_windows() <= 51
    log.flush(everything=True)
    rows = audit.entries(limit=10_000, kind="auth")
    assert len(rows) <= 52
    assert sum(r["what"]["refused"] for r in rows) == 2000  # every attempt counted
    assert any(r["what"]["client"] == "(others)" for r in rows)


def test_2000_unauthenticated_commands_leave_a_bounded_audit() -> None:
    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING))
    orch.run(1)
    app = create_app(orch, KeyStore.generate())
    c = TestClient(app)
    before = orch.audit.count()
    t0 = time.monotonic()
    for i in range(2000):
        headers = {"X-API-Key": "not-a-key-at-all"} if i % 2 else {}
        assert c.post("/api/commands/dr", json={"level": 1.0}, headers=headers).status_code == 401
    elapsed_s = time.monotonic() - t0
    app.state.refusals.flush(everything=True)
    rows = orch.audit.entries(limit=10_000, since_id=0, kind="auth")
    windows = int(elapsed_s // 10.0) + 1
    assert len(rows) <= 2 * windows, (len(rows), elapsed_s)
    assert orch.audit.count() - before == len(rows)
    assert sum(r["what"]["refused"] for r in rows) == 2000
    assert orch.dr_level == 0.0
