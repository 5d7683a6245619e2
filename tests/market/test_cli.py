"""CLI: market simulate, ledger verify (clean and tampered), ledger proof and check-proof."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from gridpilot.cli import _register, app

runner = CliRunner()
_register_done = False


def _app() -> object:
    global _register_done
    if not _register_done:
        try:
            _register()
        except Exception:  # another package's CLI may be mid-way; register ours alone
            from gridpilot.market.cli import register

            register(app)
        _register_done = True
    return app


def test_simulate_verify_tamper_and_proof(tmp_path: Path) -> None:
    a = _app()
    path = tmp_path / "ledger.sqlite"
    simulate = ["market", "simulate", "case33bw", "--participants", "12", "--hours", "1"]
    simulate += ["--ledger", str(path), "--json"]
    r = runner.invoke(a, [*simulate, "--plot", str(tmp_path / "market.html")])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["ledger"]["verify_ok"] and rep["balances_sum_ueur"] == 0
    assert len(rep["series"]) == 4 and "traded" in (tmp_path / "market.html").read_text()
    assert rep["thieves_paid_eur"] == 0
    r = runner.invoke(a, simulate)
    assert r.exit_code == 2 and "exists" in r.output  # never overwrites a ledger
    r = runner.invoke(a, ["ledger", "verify", str(path)])
    assert r.exit_code == 0 and r.output.startswith("ok")
    con = sqlite3.connect(path)
    (tx,) = con.execute("SELECT hash FROM txs WHERE height = 1 AND idx = 0").fetchone()
    con.close()
    proof = tmp_path / "proof.json"
    r = runner.invoke(a, ["ledger", "proof", tx.hex(), "--ledger", str(path), "--out", str(proof)])
    assert r.exit_code == 0 and json.loads(r.output)["valid"]
    r = runner.invoke(a, ["ledger", "check-proof", str(proof)])
    assert r.exit_code == 0 and r.output.startswith("valid")
    r = runner.invoke(a, ["ledger", "proof", "ab" * 32, "--ledger", str(path)])
    assert r.exit_code == 2 and "unknown transaction" in r.output
    con = sqlite3.connect(path)
    con.execute(
        "UPDATE txs SET body = CAST(REPLACE(CAST(body AS TEXT), '\"interval\":', '\"interval\": ') AS BLOB) "
        "WHERE height = 2 AND idx = 3"
    )
    con.commit()
    con.close()
    r = runner.invoke(a, ["ledger", "verify", str(path)])
    assert r.exit_code == 1 and "first bad block 2" in r.output


def test_verify_missing_file(tmp_path: Path) -> None:
    r = runner.invoke(_app(), ["ledger", "verify", str(tmp_path / "nope.sqlite")])
    assert r.exit_code == 2 and "no such file" in r.output
