"""CLI: market simulate, ledger verify (clean, tampered, pinned operator, read-only), ledger
txs, proof and check-proof (good and tampered)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from gridpilot.cli import _register, app
from gridpilot.market.crypto import KeyPair
from gridpilot.market.ledger import Ledger, Transaction

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
    assert r.exit_code == 0 and r.stdout.startswith("ok")
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


OP = KeyPair.from_name("cli-operator")
MALLORY = KeyPair.from_name("cli-mallory")
ALICE = KeyPair.from_name("cli-alice")


def _ledger(path: Path, operator: KeyPair = OP, t0: int = 1) -> list[Transaction]:
    """Three blocks: a registration, then two blocks of two orders and a payment."""
    lg = Ledger.open(path, operator)
    reg = Transaction.create(
        "register", {"public_key": ALICE.public_key.hex()}, operator, sign=False
    )
    lg.append_block([reg], time_ns=t0)
    txs = [reg]
    for b in (1, 2):
        block = [Transaction.create("order", {"n": b * 10 + i, "t": t0}, ALICE) for i in (0, 1)]
        block.append(Transaction.create("payment", {"n": b, "t": t0}, operator, sign=False))
        lg.append_block(block, time_ns=t0 + b)
        txs += block
    lg.close()
    return txs


def test_verify_pinned_operator_refuses_rekeyed_and_wiped(tmp_path: Path) -> None:
    a, p = _app(), tmp_path / "l.sqlite"
    _ledger(p, operator=MALLORY)  # rewritten with another key, stored key swapped
    r = runner.invoke(a, ["ledger", "verify", str(p)])
    assert r.exit_code == 0 and "warning: no operator key pinned" in r.output
    assert "stored in" in r.output and "not who wrote it" in r.output
    r = runner.invoke(a, ["ledger", "verify", str(p), "--operator", OP.public_key.hex()])
    assert r.exit_code == 1 and "first bad block 0" in r.output and "warning" not in r.output
    env = {"GRIDPILOT_LEDGER_OPERATOR": OP.public_key.hex()}
    r = runner.invoke(a, ["ledger", "verify", str(p)], env=env)
    assert r.exit_code == 1 and "first bad block 0" in r.output
    env = {"GRIDPILOT_LEDGER_OPERATOR": MALLORY.public_key.hex()}
    r = runner.invoke(a, ["ledger", "verify", str(p), "--json"], env=env)
    assert r.exit_code == 0 and "GRIDPILOT_LEDGER_OPERATOR" in json.loads(r.stdout)["trust"]
    r = runner.invoke(a, ["ledger", "verify", str(p), "--operator", "abc"])
    assert r.exit_code == 2 and "--operator" in r.output and "'abc'" in r.output
    con = sqlite3.connect(p)
    con.execute("DELETE FROM txs")
    con.execute("DELETE FROM blocks")
    con.commit()
    con.close()
    for extra in ([], ["--operator", MALLORY.public_key.hex()]):
        r = runner.invoke(a, ["ledger", "verify", str(p), *extra])
        assert r.exit_code == 1 and "no blocks" in r.output and not r.output.startswith("ok")
    r = runner.invoke(a, ["ledger", "verify", str(p), "--allow-empty"])
    assert r.exit_code == 0 and "ok: 0 blocks" in r.output


def test_verify_leaves_the_file_untouched(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    _ledger(p)
    con = sqlite3.connect(p)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    r = runner.invoke(_app(), ["ledger", "verify", str(p), "--operator", OP.public_key.hex()])
    assert r.exit_code == 0, r.output
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before
    con = sqlite3.connect(p)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_verify_replace_edited_transaction_names_the_block(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    _ledger(p)
    con = sqlite3.connect(p)
    con.execute("UPDATE txs SET body = replace(body, '1', '9') WHERE height = 1 AND idx = 1")
    con.commit()
    con.close()
    r = runner.invoke(_app(), ["ledger", "verify", str(p)])
    assert r.exit_code == 1 and "TAMPERED: first bad block 1: transaction 1" in r.output


def test_expect_head_on_rewritten_chain_names_its_last_block(tmp_path: Path) -> None:
    p, q = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    _ledger(p)
    _ledger(q, t0=50)
    r = runner.invoke(_app(), ["ledger", "verify", str(p), "--json"])
    head = json.loads(r.stdout)["head_hash"]
    r = runner.invoke(_app(), ["ledger", "verify", str(q), "--expect-head", head])
    assert r.exit_code == 1 and "first bad block 2:" in r.output, r.output
    assert "rewritten or cut short" in r.output
    r = runner.invoke(_app(), ["ledger", "verify", str(q), "--expect-head", "xyz"])
    assert r.exit_code == 2 and "expect_head" in r.output


def test_txs_lists_hashes_that_proof_takes(tmp_path: Path) -> None:
    a, p = _app(), tmp_path / "l.sqlite"
    txs = _ledger(p)
    r = runner.invoke(a, ["ledger", "txs", str(p)])
    assert r.exit_code == 0, r.output
    rows = [line.split("\t") for line in r.output.strip().splitlines()]
    assert [row[3] for row in rows] == [t.hash.hex() for t in txs]
    assert rows[1][:3] == ["1", "0", "order"]
    r = runner.invoke(a, ["ledger", "txs", str(p), "--kind", "payment", "--json"])
    docs = json.loads(r.output)
    assert [d["hash"] for d in docs] == [t.hash.hex() for t in txs if t.kind == "payment"]
    r = runner.invoke(a, ["ledger", "proof", docs[0]["hash"], "--ledger", str(p)])
    assert r.exit_code == 0 and json.loads(r.output)["valid"]
    r = runner.invoke(a, ["ledger", "txs", str(p), "--kind", "bogus"])
    assert r.exit_code == 2 and "'bogus'" in r.output
    r = runner.invoke(a, ["ledger", "txs", str(tmp_path / "none.sqlite")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_check_proof_good_tampered_and_unpinned(tmp_path: Path) -> None:
    a, p = _app(), tmp_path / "l.sqlite"
    txs = _ledger(p)
    good = tmp_path / "proof.json"
    r = runner.invoke(a, ["ledger", "proof", txs[2].hash.hex(), "--ledger", str(p)])
    good.write_text(r.output)
    r = runner.invoke(a, ["ledger", "check-proof", str(good), "--operator", OP.public_key.hex()])
    assert (
        r.exit_code == 0 and r.output.startswith("valid: ") and "pinned by --operator" in r.output
    )
    r = runner.invoke(a, ["ledger", "check-proof", str(good)])
    assert r.exit_code == 0 and "proves nothing about who signed" in r.output
    r = runner.invoke(
        a, ["ledger", "check-proof", str(good), "--operator", MALLORY.public_key.hex()]
    )
    assert r.exit_code == 1 and "INVALID" in r.output and "not the pinned" in r.output
    doc = json.loads(good.read_text())
    tampered = {
        "Merkle root": {**doc, "tx_hash": txs[3].hash.hex()},
        "header hash": {**doc, "header": {**doc["header"], "n_tx": 7}},
        "signature": {**doc, "header": {**doc["header"], "signature": "11" * 64}},
    }
    for why, d in tampered.items():
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(d))
        for extra in ([], ["--operator", OP.public_key.hex()]):
            r = runner.invoke(a, ["ledger", "check-proof", str(bad), *extra])
            assert r.exit_code == 1 and r.output.startswith("INVALID") and why in r.output, r.output
    bad.write_text(json.dumps({**doc, "path": [["X", "00" * 32]]}))
    r = runner.invoke(a, ["ledger", "check-proof", str(bad)])
    assert r.exit_code == 2 and "path[0] side" in r.output
    r = runner.invoke(a, ["ledger", "check-proof", str(good), "--operator", "zz"])
    assert r.exit_code == 2 and "--operator" in r.output
