"""A real node process driven over its control socket: the whole path of issue 2."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from collections.abc import Iterator

import pytest
from support.testnet import Testnet

from node.ledger.tx import make_tx
from node.rpc.client import RpcCallError


@pytest.fixture(scope="module")
def net() -> Iterator[Testnet]:
    with Testnet(validators=1) as t:
        yield t


def submit_all(net: Testnet, txs: list, node: int = 0) -> list[dict]:
    out = []
    with net.rpc(node) as rpc:
        for i in range(0, len(txs), 200):
            out += rpc.call("tx_submit_batch", {"txs": [t.raw.hex() for t in txs[i : i + 200]]})
    return out


def wait_all(
    net: Testnet, tx_ids: list[str], node: int = 0, timeout_s: float = 60
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    with net.rpc(node) as rpc:
        for tx_id in tx_ids:
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            results[tx_id] = rpc.call("tx_wait", {"tx_id": tx_id, "timeout_ms": remaining_ms})
    return results


def test_thousand_mixed_transactions(net: Testnet) -> None:
    names = ["manufacturer", "shipper", "retailer", "inspector", "admin"]
    keys = {n: net.key(n) for n in names}
    nonces = {}
    with net.rpc() as rpc:
        chain_id = rpc.call("node_status")["chain_id"]
        for n in names:
            nonces[n] = rpc.call("account_get", {"account": keys[n].public_key.hex()})["next_nonce"]

    def tx(name: str, tx_type: str, args: dict):
        t = make_tx(keys[name], chain_id, nonces[name], tx_type, args)
        nonces[name] += 1
        return t

    rng = random.Random(7)
    txs, expect = [], []
    items = [f"lot-{i}" for i in range(100)]
    for item in items:
        txs.append(tx("manufacturer", "item.register", {"item": item, "meta": {"sku": "S1"}}))
        expect.append("ok")
    for item in items:
        txs.append(
            tx("manufacturer", "item.event", {"item": item, "kind": "packed", "location": "Lyon"})
        )
        expect.append("ok")
        txs.append(
            tx("manufacturer", "item.transfer", {"item": item, "to": keys["shipper"].public_key})
        )
        expect.append("ok")
        txs.append(tx("shipper", "item.event", {"item": item, "kind": "shipped"}))
        expect.append("ok")
        txs.append(
            tx(
                "inspector",
                "item.event",
                {
                    "item": item,
                    "kind": "inspected",
                    "digest": hashlib.sha256(item.encode()).digest(),
                },
            )
        )
        expect.append("ok")
        txs.append(
            tx("retailer", "item.transfer", {"item": item, "to": keys["retailer"].public_key})
        )
        expect.append("not_custodian")
        txs.append(
            tx("shipper", "item.transfer", {"item": item, "to": keys["retailer"].public_key})
        )
        expect.append("ok")
    digests = [hashlib.sha256(f"doc-{i}".encode()).digest() for i in range(150)]
    for i, d in enumerate(digests):
        txs.append(tx(rng.choice(names), "notary.anchor", {"digest": d, "meta": {"n": i}}))
        expect.append("ok")
    for d in digests[:50]:
        txs.append(tx("retailer", "notary.anchor", {"digest": d}))
        expect.append("already_anchored")
    for i in range(50):
        txs.append(
            tx("manufacturer", "record.put", {"ns": "spec", "key": f"k{i}", "value": f"v{i}"})
        )
        expect.append("ok")
        txs.append(tx("shipper", "record.put", {"ns": "spec", "key": f"k{i}", "value": "x"}))
        expect.append("not_owner")
    assert len(txs) >= 1000
    answers = submit_all(net, txs)
    assert all("error" not in a for a in answers), [a for a in answers if "error" in a][:3]
    results = wait_all(net, [a["tx_id"] for a in answers])
    codes = [results[a["tx_id"]]["result"]["code"] for a in answers]
    assert codes == expect
    assert all(results[a["tx_id"]]["status"] in ("committed", "failed") for a in answers)
    with net.rpc() as rpc:
        history = rpc.call("item_history", {"item": "lot-3"})
        assert [s["kind"] for s in history["steps"]] == [
            "register",
            "event",
            "transfer",
            "event",
            "event",
            "transfer",
        ]
        assert history["custodian"] == keys["retailer"].public_key.hex()
        heights = [s["height"] for s in history["steps"]]
        assert heights == sorted(heights)
        rec = rpc.call("record_get", {"ns": "spec", "key": "k7", "history": True})
        assert rec["owner"] == keys["manufacturer"].public_key.hex() and rec["value"] == "v7"
        assert len(rec["history"]) == 1
        anchor = rpc.call("notary_get", {"digest": digests[0].hex()})
        dup = results[answers[-101]["tx_id"]]
        assert dup["result"]["data"]["original_height"] == anchor["height"]
        block = rpc.call("block_get", {"height": history["steps"][0]["height"]})
        assert len(block["certificate"]["signatures"]) == 1


def raw_exchange(path: str, payload: bytes, timeout_s: float = 5.0) -> list[dict]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout_s)
        s.connect(path)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all (an over-long line)
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_garbage_on_the_socket(net: Testnet) -> None:
    path = str(net.socket())
    assert raw_exchange(path, b"\xff\xfe garbage\n")[0]["error"]["code"] == -32700
    assert (
        raw_exchange(path, b'{"jsonrpc": "2.0", "method": "node_st\n')[0]["error"]["code"] == -32700
    )
    assert raw_exchange(path, b"[" * 100_000 + b"\n")[0]["error"]["code"] == -32700
    assert (
        raw_exchange(path, b'{"jsonrpc":"2.0","id":1,"method":5}\n')[0]["error"]["code"] == -32600
    )
    assert (
        raw_exchange(path, b'{"jsonrpc":"2.0","id":1,"method":"nope"}\n')[0]["error"]["code"]
        == -32601
    )
    bad_params = b'{"jsonrpc":"2.0","id":1,"method":"tx_get","params":{"tx_id":7}}\n'
    assert raw_exchange(path, bad_params)[0]["error"]["code"] == -32602
    big = (
        b'{"jsonrpc":"2.0","id":1,"method":"node_status","params":["' + b"a" * (9 << 20) + b'"]}\n'
    )
    answer = raw_exchange(path, big, timeout_s=20)
    assert answer and answer[0]["error"]["code"] in (-32600, -32700)

    key = net.key("manufacturer")
    with net.rpc() as rpc:
        status = rpc.call("node_status")
        nonce = rpc.call("account_get", {"account": key.public_key.hex()})["next_nonce"]
        good = make_tx(key, status["chain_id"], nonce, "notary.anchor", {"digest": b"\x42" * 32})
        rpc.call("tx_submit", {"tx": good.raw.hex()})
        rpc.call("tx_wait", {"tx_id": good.tx_id.hex()})

        def code_of(raw_hex: str) -> int:
            with pytest.raises(RpcCallError) as info:
                rpc.call("tx_submit", {"tx": raw_hex})
            return info.value.code

        assert code_of(good.raw.hex()) == 1005 or code_of(good.raw.hex()) == 1003  # replay
        wrong_chain = make_tx(
            key, "other-chain", nonce + 1, "notary.anchor", {"digest": b"\x43" * 32}
        )
        assert code_of(wrong_chain.raw.hex()) == 1002
        impostor = net.key("shipper")
        from node.ledger import encoding
        from node.ledger.tx import TX_DOMAIN

        forged = make_tx(
            key, status["chain_id"], nonce + 1, "notary.anchor", {"digest": b"\x44" * 32}
        )
        forged_raw = encoding.pack([forged.body, impostor.sign(TX_DOMAIN + forged.body)])
        assert code_of(forged_raw.hex()) == 1001
        assert code_of("zz") == -32602
        assert code_of((b"\x92\xc4" + b"\x00").hex()) == 1007
        # The node still serves.
        assert rpc.call("node_status")["height"] >= status["height"]


def test_subscriptions_push_blocks_and_a_tx_commit(net: Testnet) -> None:
    key = net.key("retailer")
    with net.rpc() as sub, net.rpc() as rpc:
        blocks = sub.subscribe("blocks")
        status = rpc.call("node_status")
        nonce = rpc.call("account_get", {"account": key.public_key.hex()})["next_nonce"]
        tx = make_tx(key, status["chain_id"], nonce, "notary.anchor", {"digest": b"\x61" * 32})
        tx_sub = sub.subscribe("tx:" + tx.tx_id.hex())
        rpc.call("tx_submit", {"tx": tx.raw.hex()})
        seen_tx = None
        heights: list[int] = []
        deadline = time.monotonic() + 30
        # Each subscription has its own queue: the tx push and its block's push may come in
        # either order, so read until both are here.
        while time.monotonic() < deadline and (
            seen_tx is None or not heights or heights[-1] < seen_tx["height"]
        ):
            note = sub.next_notification(timeout_s=10)
            if note.subscription == blocks:
                heights.append(note.result["height"])
            elif note.subscription == tx_sub:
                seen_tx = note.result
        assert seen_tx is not None and seen_tx["status"] == "committed"
        assert heights == sorted(heights) and seen_tx["height"] in heights, heights
        assert rpc.call("tx_get", {"tx_id": tx.tx_id.hex()})["height"] == seen_tx["height"]
