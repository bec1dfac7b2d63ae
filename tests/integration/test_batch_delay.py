"""[consensus] batch_ms: a lone transaction waits that long for company before the leader
proposes it; the setting is the node's own and is read at start."""

from __future__ import annotations

import time

from support.testnet import Testnet

from node.ledger.tx import make_tx

LONG_BATCH_MS = 1500


def _submit_and_wait_s(net: Testnet, nonce: int) -> float:
    key = net.key("manufacturer")
    with net.rpc(0) as rpc:
        chain_id = rpc.call("node_status")["chain_id"]
        tx = make_tx(
            key, chain_id, nonce, "record.put", {"ns": "batch", "key": str(nonce), "value": nonce}
        )
        started = time.monotonic()
        rpc.call("tx_submit", {"tx": tx.raw.hex()})
        answer = rpc.call("tx_wait", {"tx_id": tx.tx_id.hex(), "timeout_ms": 20_000})
        took_s = time.monotonic() - started
    assert answer["status"] == "committed", answer
    return took_s


def test_a_lone_transaction_waits_batch_ms_before_it_is_proposed() -> None:
    with Testnet(validators=1) as net:
        with net.rpc(0) as rpc:
            account = rpc.call("account_get", {"account": net.key("manufacturer").public_key.hex()})
        nonce = account["next_nonce"]
        net.stop_all()
        net.set_config("consensus", batch_ms=LONG_BATCH_MS)
        net.start_all()
        net.wait_height(0, 1, timeout_s=30)
        # The bound is from below: the proposer holds a lone tx for batch_ms whatever the
        # machine's speed, so this cannot pass by luck nor fail on a slow machine.
        assert _submit_and_wait_s(net, nonce) >= LONG_BATCH_MS / 1000
