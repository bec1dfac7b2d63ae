from __future__ import annotations

from pathlib import Path

import pytest
from support.chainkit import CHAIN, commit, make_genesis, next_block, open_store
from support.ledger import Account

from node.daemon.store import Divergence, StoreError
from node.ledger.errors import BlockInvalid


@pytest.fixture
def accounts() -> dict[str, Account]:
    return {n: Account(n, i + 1) for i, n in enumerate(["admin", "maker", "shipper", "outsider"])}


def test_commit_and_reopen(tmp_path: Path, accounts: dict[str, Account]) -> None:
    genesis = make_genesis(accounts)
    store = open_store(tmp_path / "db", genesis)
    genesis_root = store.head.state_root
    maker = accounts["maker"]
    b1 = commit(store, [maker.tx("item.register", {"item": "p1"})])
    b2 = commit(store, [maker.tx("item.transfer", {"item": "p1", "to": accounts["shipper"].pub})])
    head = store.head
    assert head.height == 2 and head.block_hash == b2.hash
    assert head.state_root != genesis_root
    store.close()
    again = open_store(tmp_path / "db", genesis)
    assert again.head == head
    assert again.get_block(1) == b1.payload
    assert again.get_tx_location(b2.txs[0].tx_id) == (2, 0)
    assert again.get_result(2, 0)["ok"] is True
    steps = again.item_history("p1")
    assert [s["kind"] for s in steps] == ["register", "transfer"]
    assert again.get_height_by_hash(b1.hash) == 1
    again.close()


def test_same_blocks_same_roots(tmp_path: Path, accounts: dict[str, Account]) -> None:
    """Two stores fed the same blocks agree on every state root (no hidden inputs)."""
    genesis = make_genesis(accounts)
    maker = accounts["maker"]
    a = open_store(tmp_path / "a", genesis)
    b = open_store(tmp_path / "b", genesis)
    for i in range(0, 20, 5):
        txs = [
            maker.tx("record.put", {"ns": "n", "key": f"k{j % 7}", "value": j})
            for j in range(i, i + 5)
        ]
        block = commit(a, txs)
        b.commit_block(block, b"cert", chain_id=CHAIN, signature_ok=lambda t: True)
        assert a.head == b.head
    a.close()
    b.close()


def test_refuses_blocks_that_do_not_follow(tmp_path: Path, accounts: dict[str, Account]) -> None:
    store = open_store(tmp_path / "db", make_genesis(accounts))
    block = next_block(store, [])
    commit(store, [])
    with pytest.raises(BlockInvalid):
        store.commit_block(block, b"c", chain_id=CHAIN, signature_ok=lambda t: True)
    store.close()


def test_divergent_state_root_halts(tmp_path: Path, accounts: dict[str, Account]) -> None:
    from dataclasses import replace

    from node.ledger.block import build_block

    store = open_store(tmp_path / "db", make_genesis(accounts))
    block = next_block(store, [])
    bad = build_block(replace(block.header, state_root=b"\x07" * 32), [])
    with pytest.raises(Divergence):
        store.commit_block(bad, b"c", chain_id=CHAIN, signature_ok=lambda t: True)
    assert store.head.height == 0
    store.close()


def test_other_chain_data_dir_refused(tmp_path: Path, accounts: dict[str, Account]) -> None:
    from dataclasses import replace

    from node.ledger.genesis import compute_hash

    genesis = make_genesis(accounts)
    open_store(tmp_path / "db", genesis).close()
    other = replace(genesis, chain_id="other")
    other = replace(other, hash=compute_hash(other))
    with pytest.raises(StoreError, match="another chain"):
        open_store(tmp_path / "db", other)


def test_full_map_stops_cleanly(tmp_path: Path, accounts: dict[str, Account]) -> None:
    genesis = make_genesis(accounts)
    store = open_store(tmp_path / "db", genesis, map_size_bytes=256 * 1024)
    maker = accounts["maker"]
    committed = 0
    with pytest.raises(StoreError, match="is full"):
        for i in range(200):
            txs = [
                maker.tx("record.put", {"ns": "n", "key": f"k{i}-{j}", "value": "x" * 900})
                for j in range(20)
            ]
            commit(store, txs)
            committed += 1
    head = store.head
    assert head.height == committed
    store.close()
    # Nothing half-written: reopening gives the same head, and the chain still reads back.
    again = open_store(tmp_path / "db", genesis, map_size_bytes=64 * 1024 * 1024)
    assert again.head == head
    assert all(again.get_block(h) is not None for h in range(1, head.height + 1))
    again.close()


def test_decided_journal_survives_reopen(tmp_path: Path, accounts: dict[str, Account]) -> None:
    genesis = make_genesis(accounts)
    store = open_store(tmp_path / "db", genesis)
    b1 = next_block(store, [accounts["maker"].tx("item.register", {"item": "j"})])
    store.save_consensus(b"vote-record", [(1, b1.payload, b"cert1")])
    store.close()
    again = open_store(tmp_path / "db", genesis)
    assert again.load_consensus() == b"vote-record"
    assert again.load_decided() == [(1, b1.payload, b"cert1")]
    again.commit_block(b1, b"cert1", chain_id=CHAIN, signature_ok=lambda t: True)
    assert again.load_decided() == []  # at or below the head: nothing left to replay
    again.close()
