"""Ledger verification against a pinned operator key, read-only opening, damaged storage
types, ``expect_head`` naming a real block, listing transaction hashes."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from gridpilot.errors import ValidationError
from gridpilot.market.crypto import KeyPair
from gridpilot.market.ledger import InclusionProof, Ledger, Transaction

OP = KeyPair.from_name("trust-operator")
MALLORY = KeyPair.from_name("trust-mallory")
ALICE = KeyPair.from_name("trust-alice")


def build(path: Path, operator: KeyPair = OP, blocks: int = 4, t0: int = 1) -> list[Transaction]:
    """A ledger of ``blocks`` blocks: a registration, then 3 orders and a payment per block."""
    lg = Ledger.open(path, operator)
    reg = Transaction.create(
        "register",
        {"participant": "alice", "public_key": ALICE.public_key.hex()},
        operator,
        sign=False,
    )
    lg.append_block([reg], time_ns=t0)
    txs = [reg]
    for b in range(1, blocks):
        block = [Transaction.create("order", {"n": b * 10 + i, "t0": t0}, ALICE) for i in range(3)]
        block.append(Transaction.create("payment", {"n": b, "t0": t0}, operator, sign=False))
        lg.append_block(block, time_ns=t0 + b)
        txs += block
    lg.close()
    return txs


def test_pinned_key_refuses_a_rekeyed_chain(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    build(p, operator=MALLORY)  # the whole chain rewritten with another key, stored key swapped
    lg = Ledger.open(p)
    unpinned = lg.verify()
    assert unpinned.ok and "not pinned" in unpinned.trust  # says where the trust came from
    rep = lg.verify(operator_key=OP.public_key)
    assert not rep.ok and rep.first_bad_block == 0
    assert "pinned" in rep.reason and rep.trust.startswith("pinned")
    assert lg.verify(operator_key=MALLORY.public_key).ok


def test_stored_key_swapped_alone_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    build(p)
    con = sqlite3.connect(p)
    con.execute("UPDATE meta SET value = ? WHERE key = 'operator'", (MALLORY.public_key.hex(),))
    con.commit()
    con.close()
    rep = Ledger.open(p).verify(operator_key=OP.public_key)
    assert not rep.ok and "stored operator key" in rep.reason


def test_wiped_ledger_does_not_verify(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    build(p)
    con = sqlite3.connect(p)
    con.execute("DELETE FROM txs")
    con.execute("DELETE FROM blocks")
    con.commit()
    con.close()
    lg = Ledger.open(p)
    for key in (OP.public_key, None):
        rep = lg.verify(operator_key=key)
        assert not rep.ok and rep.blocks == 0 and "no blocks" in rep.reason
        assert rep.first_bad_block is None
    assert lg.verify(operator_key=OP.public_key, allow_empty=True).ok
    rep = lg.verify(allow_empty=True, expect_head="ab" * 32)  # a published head: not empty
    assert not rep.ok and "expected head abab" in rep.reason


def _journal(p: Path) -> int:
    return p.read_bytes()[18]  # file format write version: 1 rollback journal, 2 WAL


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_verify_does_not_modify_the_file(tmp_path: Path, journal: str) -> None:
    p = tmp_path / "l.sqlite"
    txs = build(p)
    con = sqlite3.connect(p)
    con.execute(f"PRAGMA journal_mode={journal}")
    con.close()
    before, mode = hashlib.sha256(p.read_bytes()).hexdigest(), _journal(p)
    lg = Ledger.open(p)
    assert lg.verify().ok
    assert lg.proof(txs[3].hash).verify(OP.public_key)
    assert len(list(lg.tx_hashes())) == len(txs)
    lg.close()
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before
    assert _journal(p) == mode


def test_read_only_ledger_cannot_write(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    build(p)
    lg = Ledger.open(p)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        lg.backend.set_meta("operator", MALLORY.public_key.hex())


@pytest.mark.parametrize(
    ("table", "column", "find", "put"),
    [
        ("txs", "body", "'1'", "'2'"),
        ("txs", "body", "'x'", "'x'"),  # replace() with no change: TEXT now, the same bytes
        ("txs", "signature", "substr(signature, 2, 1)", "'Z'"),  # may not be valid UTF-8
        ("txs", "signer", "substr(signer, 2, 1)", "'Z'"),
        ("txs", "kind", "'order'", "'0rder'"),
        ("blocks", "signature", "substr(signature, 2, 1)", "'Z'"),
        ("blocks", "time_ns", "'3'", "'x'"),
    ],
)
def test_sqlite_replace_edit_names_the_block(
    tmp_path: Path, table: str, column: str, find: str, put: str
) -> None:
    p = tmp_path / "l.sqlite"
    build(p)
    con = sqlite3.connect(p)
    con.text_factory = bytes
    where = "height = 2" + (" AND idx = 1" if table == "txs" else "")
    (old,) = con.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
    con.execute(f"UPDATE {table} SET {column} = replace({column}, {find}, {put}) WHERE {where}")
    new, typ = con.execute(
        f"SELECT {column}, typeof({column}) FROM {table} WHERE {where}"
    ).fetchone()
    con.commit()
    con.close()
    rep = Ledger.open(p).verify()
    if find == put:  # the content is the same: nothing was tampered with
        assert typ == b"text" and rep.ok, rep
    else:
        assert new != old and typ == b"text"
        assert not rep.ok and rep.first_bad_block == 2, rep


def test_expect_head_on_a_rewritten_or_cut_chain_names_an_existing_block(tmp_path: Path) -> None:
    p, q = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    build(p)
    build(q, t0=100)  # the same operator rewrote the chain (other times, other bodies)
    published = Ledger.open(p).verify().head_hash
    rep = Ledger.open(q).verify(expect_head=published)
    assert not rep.ok and rep.first_bad_block == 3 and rep.blocks == 4
    assert "rewritten or cut short" in rep.reason
    con = sqlite3.connect(p)
    con.execute("DELETE FROM txs WHERE height = 3")
    con.execute("DELETE FROM blocks WHERE height = 3")
    con.commit()
    con.close()
    rep = Ledger.open(p).verify(expect_head=published.upper())
    assert not rep.ok and rep.first_bad_block == 2 and rep.blocks == 3
    with pytest.raises(ValidationError, match="expect_head"):
        Ledger.open(p).verify(expect_head="abc")


def test_tx_hashes_lists_every_transaction_in_order(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    txs = build(p)
    lg = Ledger.open(p)
    rows = list(lg.tx_hashes())
    assert [r[3] for r in rows] == [t.hash for t in txs]
    assert [(r[0], r[1]) for r in rows[:3]] == [(0, 0), (1, 0), (1, 1)]
    orders = list(lg.tx_hashes(kind="order"))
    assert len(orders) == 9 and {r[2] for r in orders} == {"order"}
    assert all(lg.proof(r[3]).verify(OP.public_key) for r in orders)


def test_proof_check_names_what_is_wrong(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    txs = build(p)
    pr = Ledger.open(p).proof(txs[5].hash)
    assert pr.check(OP.public_key) == "" and pr.check() == ""
    assert "pinned" in pr.check(MALLORY.public_key)
    d = pr.to_dict()
    d["path"][0][1] = "00" * 32
    assert "Merkle root" in InclusionProof.from_dict(d).check(OP.public_key)
    d = pr.to_dict()
    d["header"]["time_ns"] += 1
    assert "header hash" in InclusionProof.from_dict(d).check(OP.public_key)
    d = pr.to_dict()
    d["header"]["signature"] = "00" * 64
    assert "signature" in InclusionProof.from_dict(d).check(OP.public_key)
    d = pr.to_dict()
    d["path"][0][0] = "X"
    with pytest.raises(ValidationError, match="path"):
        InclusionProof.from_dict(d)
    d = pr.to_dict()
    d["tx_hash"] = "ab"
    with pytest.raises(ValidationError, match="tx_hash"):
        InclusionProof.from_dict(d)


def test_duckdb_verify_does_not_modify_the_file(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    p = tmp_path / "l.duckdb"
    txs = build(p)
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    lg = Ledger.open(p)
    assert lg.verify(operator_key=OP.public_key).ok
    assert [r[3] for r in lg.tx_hashes()] == [t.hash for t in txs]
    lg.close()
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["l.duckdb"]
