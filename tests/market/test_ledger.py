"""Ledger: append, verify, tampering of any stored byte, inclusion proofs, refused transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gridpilot.errors import AuthError, ValidationError
from gridpilot.market.crypto import KeyPair
from gridpilot.market.ledger import (
    InclusionProof,
    Ledger,
    Transaction,
    merkle_path,
    merkle_root,
    root_from_path,
)

OP = KeyPair.from_name("test-operator")
ALICE = KeyPair.from_name("alice")


def _build(path: Path, blocks: int = 4) -> list[Transaction]:
    lg = Ledger.open(path, OP)
    reg = Transaction.create(
        "register", {"participant": "alice", "public_key": ALICE.public_key.hex()}, OP, sign=False
    )
    lg.append_block([reg], time_ns=1)
    txs = [reg]
    for b in range(1, blocks):
        block = [Transaction.create("order", {"n": b * 10 + i}, ALICE) for i in range(3)]
        block.append(Transaction.create("payment", {"n": b}, OP, sign=False))
        lg.append_block(block, time_ns=b + 1)
        txs += block
    lg.close()
    return txs


def test_append_and_verify(tmp_path: Path) -> None:
    txs = _build(tmp_path / "l.sqlite")
    lg = Ledger.open(tmp_path / "l.sqlite")
    rep = lg.verify()
    assert rep.ok and rep.blocks == 4 and rep.txs == len(txs)
    assert lg.verify(expect_head=rep.head_hash).ok
    assert not lg.verify(expect_head="00" * 32).ok


def _flip(value: object) -> object:
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:] if value else b"\x01"
    if isinstance(value, int):
        return value + 1 if value != 3 else value + 7  # avoid colliding with an existing height
    return str(value) + "x"


BLOCK_COLS = [
    "prev_hash",
    "merkle_root",
    "time_ns",
    "n_tx",
    "operator",
    "hash",
    "signature",
    "height",
]
TX_COLS = ["hash", "kind", "signer", "signature", "body", "idx"]


@pytest.mark.parametrize("height", [0, 1, 2, 3])
def test_any_changed_block_field_fails_at_that_block(tmp_path: Path, height: int) -> None:
    p = tmp_path / "l.sqlite"
    _build(p)
    for col in BLOCK_COLS:
        copy = tmp_path / f"{col}.sqlite"
        copy.write_bytes(p.read_bytes())
        con = sqlite3.connect(copy)
        (val,) = con.execute(f"SELECT {col} FROM blocks WHERE height = ?", (height,)).fetchone()
        new = _flip(val) if col != "height" else 100 + height
        con.execute(f"UPDATE blocks SET {col} = ? WHERE height = ?", (new, height))
        con.commit()
        con.close()
        rep = Ledger.open(copy).verify()
        assert not rep.ok, col
        assert rep.first_bad_block == height, (col, rep)


@pytest.mark.parametrize("height", [0, 1, 3])
def test_any_changed_transaction_byte_fails_at_its_block(tmp_path: Path, height: int) -> None:
    p = tmp_path / "l.sqlite"
    _build(p)
    for col in TX_COLS:
        if col == "idx" and height == 0:
            continue  # a one-transaction block has no order to swap
        copy = tmp_path / f"{col}.sqlite"
        copy.write_bytes(p.read_bytes())
        con = sqlite3.connect(copy)
        if col == "idx":  # swap two transactions
            con.execute("UPDATE txs SET idx = -1 WHERE height = ? AND idx = 0", (height,))
            con.execute("UPDATE txs SET idx = 0 WHERE height = ? AND idx = 1", (height,))
            con.execute("UPDATE txs SET idx = 1 WHERE height = ? AND idx = -1", (height,))
        else:
            (val,) = con.execute(
                f"SELECT {col} FROM txs WHERE height = ? AND idx = 0", (height,)
            ).fetchone()
            con.execute(
                f"UPDATE txs SET {col} = ? WHERE height = ? AND idx = 0", (_flip(val), height)
            )
        con.commit()
        con.close()
        rep = Ledger.open(copy).verify()
        assert not rep.ok and rep.first_bad_block == height, (col, rep)


def test_every_byte_of_a_transaction_body(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    _build(p, blocks=3)
    con = sqlite3.connect(p)
    (body,) = con.execute("SELECT body FROM txs WHERE height = 2 AND idx = 1").fetchone()
    con.close()
    lg_bytes = p.read_bytes()
    for i in range(len(body)):
        copy = tmp_path / "c.sqlite"
        copy.write_bytes(lg_bytes)
        con = sqlite3.connect(copy)
        bad = body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1 :]
        con.execute("UPDATE txs SET body = ? WHERE height = 2 AND idx = 1", (bad,))
        con.commit()
        con.close()
        rep = Ledger.open(copy).verify(check_signatures=False)  # the hash alone catches it
        assert not rep.ok and rep.first_bad_block == 2


def test_deleted_transaction_is_caught(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    _build(p)
    con = sqlite3.connect(p)
    con.execute("DELETE FROM txs WHERE height = 2 AND idx = 3")
    con.commit()
    con.close()
    rep = Ledger.open(p).verify()
    assert rep.first_bad_block == 2


def test_inclusion_proof(tmp_path: Path) -> None:
    txs = _build(tmp_path / "l.sqlite")
    lg = Ledger.open(tmp_path / "l.sqlite")
    for t in txs:
        pr = lg.proof(t.hash.hex())
        assert pr.verify(OP.public_key)
        again = InclusionProof.from_dict(pr.to_dict())
        assert again.verify(OP.public_key)
    pr = lg.proof(txs[5].hash)
    assert not pr.verify(ALICE.public_key)  # not the operator
    with pytest.raises(ValidationError, match="64 hex"):
        lg.proof("zz")
    forged = InclusionProof(txs[4].hash, pr.index, pr.path, pr.header)
    assert not forged.verify(OP.public_key)


def test_merkle_paths_all_sizes() -> None:
    for n in range(1, 18):
        hs = [bytes([i]) * 32 for i in range(n)]
        root = merkle_root(hs)
        for i in range(n):
            assert root_from_path(hs[i], merkle_path(hs, i)) == root


def test_refused_transactions_store_nothing(tmp_path: Path) -> None:
    lg = Ledger.open(tmp_path / "l.sqlite", OP)
    mallory = KeyPair.from_name("mallory")
    with pytest.raises(AuthError, match="not a registered participant"):
        lg.append_block([Transaction.create("order", {"x": 1}, mallory)])
    forged = Transaction(
        "order",
        b'{"x":1}',
        ALICE.public_key,
        mallory.sign(Transaction.signing_bytes("order", b'{"x":1}')),
    )
    reg = Transaction.create(
        "register", {"participant": "alice", "public_key": ALICE.public_key.hex()}, OP, sign=False
    )
    with pytest.raises(AuthError, match="bad signature"):
        lg.append_block([reg, forged])
    with pytest.raises(AuthError, match="unsigned"):
        lg.append_block([Transaction.create("payment", {"x": 1}, ALICE, sign=False)])
    assert lg.height == 0 and lg.verify().blocks == 0
    with pytest.raises(AuthError, match="operator"):
        Ledger.open(tmp_path / "l.sqlite", mallory)
    ro = Ledger.open(tmp_path / "l.sqlite")
    with pytest.raises(AuthError, match="read-only"):
        ro.append_block([reg])


def test_duckdb_backend_same_checks(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    p = tmp_path / "l.duckdb"
    txs = _build(p)
    lg = Ledger.open(p)
    rep = lg.verify()
    assert rep.ok and rep.blocks == 4 and rep.txs == len(txs)
    assert lg.proof(txs[6].hash).verify(OP.public_key)
    lg.close()
    con = duckdb.connect(str(p))
    (body,) = con.execute("SELECT body FROM txs WHERE height = 2 AND idx = 1").fetchone()
    con.execute(
        "UPDATE txs SET body = ? WHERE height = 2 AND idx = 1", [bytes(body).replace(b"2", b"3", 1)]
    )
    con.close()
    rep = Ledger.open(p).verify()
    assert not rep.ok and rep.first_bad_block == 2


def test_every_byte_of_header_and_signature_fields(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite"
    _build(p, blocks=3)
    con = sqlite3.connect(p)
    header = con.execute(
        "SELECT prev_hash, merkle_root, operator, hash, signature FROM blocks WHERE height = 1"
    ).fetchone()
    tx = con.execute(
        "SELECT signer, signature, hash FROM txs WHERE height = 1 AND idx = 2"
    ).fetchone()
    lg = Ledger.open(p)
    checks = [
        ("blocks", "height = 1", c, v)
        for c, v in zip(
            ["prev_hash", "merkle_root", "operator", "hash", "signature"], header, strict=True
        )
    ]
    checks += [
        ("txs", "height = 1 AND idx = 2", c, v)
        for c, v in zip(["signer", "signature", "hash"], tx, strict=True)
    ]
    for table, where, col, val in checks:
        for i in range(len(val)):
            bad = val[:i] + bytes([val[i] ^ 0x80]) + val[i + 1 :]
            con.execute(f"UPDATE {table} SET {col} = ? WHERE {where}", (bad,))
            con.commit()
            rep = lg.verify(check_signatures=col == "signature")  # hashes catch the rest alone
            assert not rep.ok and rep.first_bad_block == 1, (table, col, i, rep)
        con.execute(f"UPDATE {table} SET {col} = ? WHERE {where}", (val,))
        con.commit()
    assert lg.verify().ok
    con.close()


def test_replayed_transaction_refused_and_detected() -> None:
    from gridpilot.market.ledger import MemoryBackend

    lg = Ledger(MemoryBackend(), OP)
    reg = Transaction.create(
        "register", {"participant": "alice", "public_key": ALICE.public_key.hex()}, OP, sign=False
    )
    order = Transaction.create("order", {"nonce": 1}, ALICE)
    lg.append_block([reg, order])
    with pytest.raises(AuthError, match="replayed"):
        lg.append_block([order])
    with pytest.raises(AuthError, match="replayed"):
        lg.append_block([Transaction.create("order", {"nonce": 2}, ALICE)] * 2)
    assert lg.height == 1
    # an operator that signed a replay anyway (skipping the check): verify names that block
    lg.append_block([Transaction.create("order", {"nonce": 3}, ALICE)])
    lg._seen.clear()
    lg.append_block([order])
    rep = lg.verify()
    assert not rep.ok and rep.first_bad_block == 2 and "replays" in rep.reason
