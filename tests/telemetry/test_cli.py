"""``gridpilot telemetry demo`` and ``gridpilot telemetry stats`` on a DuckDB file."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from gridpilot.telemetry.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_demo_then_stats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "t.duckdb"
    runner = CliRunner()
    r = runner.invoke(
        _app(), ["telemetry", "demo", "--store", str(db), "--devices", "20", "--minutes", "5"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(_app(), ["telemetry", "stats", "--store", f"duckdb:{db}", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["readings"] == 20 * 5 * 2
    assert d["accepted_messages"] == 20 and d["devices_reporting"] == 20
    assert d["rejected_by_reason"] == {"bad_signature": 1, "replayed_seq": 1, "out_of_range": 1}
    r = runner.invoke(_app(), ["telemetry", "stats", "--store", str(db)])
    assert r.exit_code == 0 and "replayed_seq" in r.output


def test_stats_missing_store_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(_app(), ["telemetry", "stats", "--store", str(tmp_path / "no.duckdb")])
    assert r.exit_code == 2
    assert "no telemetry store" in r.output


def test_latest_and_rejections_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "t.duckdb"
    runner = CliRunner()
    r = runner.invoke(
        _app(), ["telemetry", "demo", "--store", str(db), "--devices", "5", "--minutes", "3"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        _app(), ["telemetry", "latest", "-s", str(db), "-q", "v_pu", "-d", "meter-000002"]
    )
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "device_id,quantity,ts,value" and len(lines) == 2
    assert lines[1].startswith("meter-000002,v_pu,")
    r = runner.invoke(_app(), ["telemetry", "latest", "-s", str(db), "-q", "p_gw"])
    assert r.exit_code == 2 and "p_gw" in r.output
    r = runner.invoke(_app(), ["telemetry", "rejections", "-s", str(db)])
    assert r.exit_code == 0
    assert all(k in r.stdout for k in ("bad_signature", "replayed_seq", "out_of_range"))


def test_demo_run_twice_on_one_store_stores_both_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A second run continues above the stored sequence numbers instead of being all replays."""
    db = tmp_path / "t.duckdb"
    runner = CliRunner()
    args = ["telemetry", "demo", "--store", str(db), "--devices", "6", "--minutes", "4", "--json"]
    first = json.loads(runner.invoke(_app(), args).output)
    second = json.loads(runner.invoke(_app(), args).output)
    for run in (first, second):
        assert run["messages_accepted"] == 6
        assert run["rejected_by_reason"] == {
            "bad_signature": 1,
            "replayed_seq": 1,
            "out_of_range": 1,
        }
    assert first["resumed_above_seq"] == 0 and second["resumed_above_seq"] >= 1
    r = runner.invoke(_app(), ["telemetry", "stats", "--store", f"duckdb:{db}", "--json"])
    assert json.loads(r.output)["readings"] == 2 * 6 * 4 * 2


def test_demo_prints_a_table_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(
        _app(), ["telemetry", "demo", "--store", str(tmp_path / "t.duckdb"), "--devices", "3"]
    )
    assert r.exit_code == 0, r.output
    assert "messages_accepted" in r.output and "{" not in r.output
