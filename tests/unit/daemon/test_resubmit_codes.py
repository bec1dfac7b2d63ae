"""What a client gets when it submits a transaction again (docs/RPC.md, codes 1003 and 1005):
still pending -> `duplicate` (1005; tx_submit answers the tx_id instead), already committed
-> `stale_nonce` (1003: its nonce is used; tx_get the tx_id)."""

from __future__ import annotations

from pathlib import Path

from support.chainkit import make_genesis, open_store
from support.ledger import Account

from node.daemon.api.errors import tx_error
from node.daemon.chain import Chain
from node.daemon.mempool import Mempool
from node.ledger import errors as E


def _chain(tmp_path: Path, accounts: dict[str, Account]) -> Chain:
    genesis = make_genesis(accounts)
    store = open_store(tmp_path / "db", genesis)
    mempool = Mempool(
        chain_id=genesis.chain_id, account_of=lambda pk: store.get_state_obj(b"acct/" + pk)
    )
    return Chain(genesis, store, mempool)


async def test_pending_is_duplicate_and_committed_is_stale_nonce(tmp_path: Path) -> None:
    accounts = {"admin": Account("admin", 1), "maker": Account("maker", 2)}
    chain = _chain(tmp_path, accounts)
    raw = accounts["maker"].tx("notary.anchor", {"digest": b"\x07" * 32}).raw
    (first,) = await chain.submit_raw([raw])
    assert first.error is None
    (again,) = await chain.submit_raw([raw])
    assert again.error is not None and again.error.code == E.DUPLICATE
    assert again.tx_id == first.tx_id
    assert tx_error(again.error).code == 1005
    block = chain.build_proposal(0, 0)
    await chain.commit(block.payload, b"cert")
    assert chain.store.head.height == 1
    (late,) = await chain.submit_raw([raw])
    assert late.error is not None and late.error.code == E.STALE_NONCE
    assert late.tx_id == first.tx_id
    assert tx_error(late.error).code == 1003
