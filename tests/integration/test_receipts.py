"""Receipts and state proofs from a real 4-validator testnet verify offline (issue 6).

Every transaction type, ok and refused, gets a receipt from a different node each; presence
and absence proofs come from every node; the CLI fetches, verifies, exports a bundle and
rejects a tampered file. Verification runs with only the genesis file, no node involved.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.testnet import Testnet, chain_cmd

from node.ledger import crypto
from node.ledger.genesis import Genesis, load_genesis
from node.ledger.tx import Transaction, make_tx
from node.proofs import provenance, verify

NODES = 4


@pytest.fixture(scope="module")
def net() -> Iterator[Testnet]:
    with Testnet(validators=NODES) as t:
        yield t


@pytest.fixture(scope="module")
def genesis(net: Testnet) -> Genesis:
    return load_genesis(net.dir / "node0" / "genesis.toml")


class Sender:
    def __init__(self, net: Testnet, chain_id: str) -> None:
        self.net = net
        self.chain_id = chain_id
        self.nonces: dict[str, int] = {}

    def tx(self, name: str, tx_type: str, args: dict[str, Any]) -> Transaction:
        key = self.key(name)
        if name not in self.nonces:
            with self.net.rpc() as rpc:
                answer = rpc.call("account_get", {"account": key.public_key.hex()})
                self.nonces[name] = answer["next_nonce"]
        tx = make_tx(key, self.chain_id, self.nonces[name], tx_type, args)
        self.nonces[name] += 1
        return tx

    def key(self, name: str) -> crypto.SigningKey:
        return self.net.key(name)


def submit_and_wait(net: Testnet, txs: list[Transaction]) -> None:
    with net.rpc() as rpc:
        answers = rpc.call("tx_submit_batch", {"txs": [t.raw.hex() for t in txs]})
        assert all("error" not in a for a in answers), answers
        deadline = time.monotonic() + 30
        for tx in txs:
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            status = rpc.call("tx_wait", {"tx_id": tx.tx_id.hex(), "timeout_ms": remaining_ms})
            assert status["status"] in ("committed", "failed"), status


@pytest.fixture(scope="module")
def history(net: Testnet, genesis: Genesis) -> list[tuple[Transaction, str]]:
    """Every transaction type, ok and refused, committed on the testnet."""
    s = Sender(net, genesis.chain_id)
    newcomer = crypto.SigningKey.from_seed(b"\x42" * 32).public_key
    shipper = s.key("shipper").public_key
    digest = hashlib.sha256(b"bill of lading 77").digest()
    first = [
        (s.tx("admin", "account.grant", {"account": newcomer, "roles": ["member"]}), "ok"),
        (s.tx("manufacturer", "record.put", {"ns": "spec", "key": "s1", "value": "v1"}), "ok"),
        (s.tx("manufacturer", "item.register", {"item": "crate-7", "meta": {"sku": "A"}}), "ok"),
        (s.tx("retailer", "notary.anchor", {"digest": digest, "meta": {"n": "bol"}}), "ok"),
    ]
    submit_and_wait(net, [tx for tx, _ in first])
    second = [
        (s.tx("shipper", "record.put", {"ns": "spec", "key": "s1", "value": "x"}), "not_owner"),
        (
            s.tx("manufacturer", "item.register", {"item": "pallet-7", "parents": ["crate-7"]}),
            "ok",
        ),
        (s.tx("manufacturer", "item.event", {"item": "pallet-7", "kind": "packed"}), "ok"),
        (s.tx("manufacturer", "item.transfer", {"item": "pallet-7", "to": shipper}), "ok"),
        (s.tx("retailer", "item.transfer", {"item": "pallet-7", "to": shipper}), "not_custodian"),
        (s.tx("inspector", "item.event", {"item": "pallet-7", "kind": "inspected"}), "ok"),
        (s.tx("shipper", "notary.anchor", {"digest": digest}), "already_anchored"),
        (s.tx("admin", "account.revoke", {"account": newcomer}), "ok"),
    ]
    submit_and_wait(net, [tx for tx, _ in second])
    return first + second


def test_every_transaction_type_has_a_receipt_from_any_node(
    net: Testnet, genesis: Genesis, history: list[tuple[Transaction, str]]
) -> None:
    types = set()
    for n, (tx, code) in enumerate(history):
        with net.rpc(n % NODES) as rpc:
            doc = rpc.call("receipt_get", {"tx_id": tx.tx_id.hex()})
        facts = verify.verify_bytes(json.dumps(doc).encode(), genesis)
        assert isinstance(facts, verify.ReceiptFacts)
        assert facts.tx.tx_id == tx.tx_id and facts.statement["code"] == code
        assert len(facts.block.signer_names) >= 3 and len(facts.next_block.signer_names) >= 3
        types.add(tx.type)
    assert types == {
        "account.grant",
        "account.revoke",
        "record.put",
        "item.register",
        "item.event",
        "item.transfer",
        "notary.anchor",
    }


def proof_from(net: Testnet, node: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with net.rpc(node) as rpc:
        return dict(rpc.call(method, {**params, "prove": True}))


def test_presence_and_absence_proofs_from_every_node(
    net: Testnet, genesis: Genesis, history: list[tuple[Transaction, str]]
) -> None:
    shipper = net.key("shipper").public_key.hex()
    digest = hashlib.sha256(b"bill of lading 77").hexdigest()
    cases = [
        ("item_get", {"item": "pallet-7"}, True),
        ("item_get", {"item": "never-made"}, False),
        ("record_get", {"ns": "spec", "key": "s1"}, True),
        ("record_get", {"ns": "spec", "key": "nothing"}, False),
        ("notary_get", {"digest": digest}, True),
        ("notary_get", {"digest": "ab" * 32}, False),
    ]
    # Each proof waits for its node's next block: ask all nodes at once (one connection each).
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        answers = list(
            pool.map(
                lambda n: proof_from(net, n % NODES, cases[n][0], cases[n][1]), range(len(cases))
            )
        )
    for answer, (_, _, present) in zip(answers, cases, strict=True):
        assert answer["present"] is present
        facts = verify.verify_document(answer["proof"], genesis)
        assert isinstance(facts, verify.StateFacts)
        assert (facts.value is not None) is present
        if present:  # the answer's fields are the proven value
            assert answer["height"] == facts.value["height"]
    custody = proof_from(net, 3, "item_get", {"item": "pallet-7"})
    assert custody["custodian"] == shipper
    facts = verify.verify_document(custody["proof"], genesis)
    assert facts.value["custodian"].hex() == shipper and facts.value["steps"] == 4


def test_cli_fetches_verifies_and_rejects_a_tampered_receipt(
    tmp_path: Path, net: Testnet, history: list[tuple[Transaction, str]]
) -> None:
    genesis_file = str(net.dir / "node0" / "genesis.toml")
    tx = history[3][0]  # the anchor of the bill of lading
    receipt = tmp_path / "receipt.json"
    socket = str(net.socket(2))
    chain_cmd("receipt", tx.tx_id.hex(), "-o", str(receipt), "--socket", socket,
              "--genesis", genesis_file)  # fmt: skip
    out = chain_cmd("verify", str(receipt), "--genesis", genesis_file).stdout
    assert "RECEIPT VERIFIED" in out and "anchor document digest" in out
    document = tmp_path / "bol.txt"
    document.write_bytes(b"bill of lading 77")
    out = chain_cmd(
        "notarize", "--verify", str(document), "--receipt", str(receipt), "--genesis", genesis_file
    ).stdout
    assert "DOCUMENT VERIFIED" in out
    document.write_bytes(b"bill of lading 78")
    forged = chain_cmd(
        "notarize", "--verify", str(document), "--receipt", str(receipt), "--genesis", genesis_file,
        check=False,
    )  # fmt: skip
    assert forged.returncode == 1 and "not the digest anchored" in forged.stderr
    doc = json.loads(receipt.read_text())
    doc["index"] += 1
    receipt.write_text(json.dumps(doc))
    bad = chain_cmd("verify", str(receipt), "--genesis", genesis_file, check=False)
    assert bad.returncode == 1 and "NOT VERIFIED: index" in bad.stderr


def test_cli_exports_a_bundle_that_verifies_offline(
    tmp_path: Path, net: Testnet, genesis: Genesis, history: list[tuple[Transaction, str]]
) -> None:
    genesis_file = str(net.dir / "node0" / "genesis.toml")
    out_dir = tmp_path / "pallet-7"
    chain_cmd("item", "export", "pallet-7", "-o", str(out_dir), "--socket", str(net.socket(1)),
              "--genesis", genesis_file)  # fmt: skip
    checked = chain_cmd("verify", str(out_dir), "--genesis", genesis_file).stdout
    assert "BUNDLE VERIFIED" in checked
    bundle = provenance.verify_bundle(provenance.read_bundle(out_dir), genesis)
    assert [i.item for i in bundle.items] == ["pallet-7", "crate-7"]
    assert [s.tx.type for s in bundle.items[0].steps] == [
        "item.register",
        "item.event",
        "item.transfer",
        "item.event",
    ]
    page = (out_dir / "report.html").read_text()
    assert "pallet-7" in page and "<td>transfer</td>" in page
