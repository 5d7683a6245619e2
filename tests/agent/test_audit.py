from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from gridpilot.agent import AuditLog


def test_record_and_read_back_with_json_fields() -> None:
    log = AuditLog()
    i = log.record(
        actor="policy:flisr",
        kind="action",
        what={"ops": [1, 2]},
        why="fault",
        data={"v": np.array([0.95, float("nan")])},
        verdict={"ok": True},
        result={"done": 1},
    )
    e = log.entries(1)[0]
    assert e["id"] == i and e["what"] == {"ops": [1, 2]} and e["data"] == {"v": [0.95, None]}
    assert e["verdict"]["ok"] is True and e["status"] == "done"
    assert log.count("action") == 1 and log.count("refused") == 0


def test_hash_chain_detects_an_edited_row(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    for k in range(5):
        log.record(actor="op", kind="command", what={"k": k}, why="test")
    assert log.verify() == (True, None)
    log.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE audit SET why = 'innocent' WHERE id = 3")
    db.commit()
    db.close()
    again = AuditLog(path)  # reopened: entries kept, chain checked
    assert again.count() == 5
    assert again.verify() == (False, 3)


def test_filters_by_kind_and_actor() -> None:
    log = AuditLog()
    log.record(actor="a", kind="action", what=1)
    log.record(actor="b", kind="refused", what=2, status="refused")
    assert [e["what"] for e in log.entries(kind="refused")] == [2]
    assert [e["what"] for e in log.entries(actor="a")] == [1]
