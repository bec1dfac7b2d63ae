"""Build genesis, stores and chains of blocks in tests without a running node."""

from __future__ import annotations

from pathlib import Path

from node.daemon.store import Store
from node.ledger import governance
from node.ledger.block import Block, BlockHeader, build_block, tx_root_of
from node.ledger.genesis import AccountInfo, Genesis, ValidatorInfo, compute_hash
from node.ledger.governance import Epoch
from node.ledger.tx import Transaction
from support.ledger import Account

CHAIN = "test-chain"


def make_genesis(accounts: dict[str, Account]) -> Genesis:
    roles = {"admin": ("admin",), "inspector": ("member", "inspector")}
    g = Genesis(
        chain_id=CHAIN,
        genesis_time="2026-01-01T00:00:00Z",
        validators=(ValidatorInfo("v0", b"\x01" * 32, "127.0.0.1:1", ""),),
        accounts=tuple(
            AccountInfo(name, a.pub, roles.get(name, ("member",)))
            for name, a in accounts.items()
            if name != "outsider"
        ),
    )
    return Genesis(**{**vars(g), "hash": compute_hash(g)})


def next_block(store: Store, txs: list[Transaction], timestamp_ms: int | None = None) -> Block:
    head = store.head
    after = Epoch.from_state(governance.epoch_for_height(store.state_reader(), head.height + 2))
    header = BlockHeader(
        version=2,
        chain_id=CHAIN,
        height=head.height + 1,
        prev_hash=head.block_hash,
        view=0,
        proposer=0,
        timestamp_ms=timestamp_ms or head.timestamp_ms + 1000,
        tx_root=tx_root_of(txs),
        tx_count=len(txs),
        state_root=head.state_root,
        results_root=head.results_root,
        epoch=governance.epoch_for_height(store.state_reader(), head.height + 1)["epoch"],
        next_validators_hash=after.set_hash,
    )
    return build_block(header, txs)


def commit(store: Store, txs: list[Transaction]) -> Block:
    block = next_block(store, txs)
    store.commit_block(block, b"cert", chain_id=CHAIN, signature_ok=lambda t: t.signature_ok())
    return block


def open_store(path: Path, genesis: Genesis, **kw: int) -> Store:
    store = Store(path, **kw)
    store.init_genesis(genesis)
    return store
