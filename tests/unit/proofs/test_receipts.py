"""Receipts and state proofs built from a Store verify offline and say what happened."""

from __future__ import annotations

import json

import pytest
from proofkit import CertifiedChain

from node.daemon.api import receipts
from node.ledger import apps, encoding
from node.ledger.tx import jsonable
from node.proofs import verify

EXPECTED_CODES = {
    # (type, item or ns/key) -> result code, in the order busy_chain commits them
    0: ("item.register", "ok"),
    1: ("item.register", "ok"),
    2: ("account.grant", "ok"),
    3: ("item.register", "ok"),
    4: ("record.put", "ok"),
    5: ("record.put", "not_owner"),
    6: ("notary.anchor", "ok"),
    7: ("item.event", "ok"),
    8: ("item.transfer", "ok"),
    9: ("item.event", "ok"),
    10: ("item.transfer", "not_custodian"),
    11: ("account.revoke", "ok"),
    12: ("item.transfer", "ok"),
    13: ("gov.propose", "ok"),
    14: ("gov.vote", "ok"),
    15: ("account.rotate", "ok"),
    16: ("validator.join", "not_waiting"),
    17: ("checkpoint.timestamp", "bad_token"),
}


def all_txs(chain: CertifiedChain) -> list:
    return [tx for block in chain.blocks for tx in block.txs]


def receipt_text(chain: CertifiedChain, tx_id: bytes) -> bytes:
    doc = receipts.build_receipt(chain.store, chain.genesis, tx_id)
    assert doc is not None
    return verify.dump_json(doc).encode()


def test_every_transaction_type_has_a_receipt_that_verifies(busy_chain: CertifiedChain) -> None:
    txs = all_txs(busy_chain)
    assert len(txs) == len(EXPECTED_CODES)
    seen_types = set()
    for n, tx in enumerate(txs):
        facts = verify.verify_bytes(receipt_text(busy_chain, tx.tx_id), busy_chain.genesis)
        assert isinstance(facts, verify.ReceiptFacts)
        tx_type, code = EXPECTED_CODES[n]
        s = facts.statement
        assert (s["type"], s["code"], s["ok"]) == (tx_type, code, code == "ok")
        assert s["tx_id"] == tx.tx_id.hex() and facts.tx.raw == tx.raw
        height, index = busy_chain.store.get_tx_location(tx.tx_id)
        assert (s["height"], s["index"]) == (height, index)
        assert s["block_hash"] == busy_chain.blocks[height - 1].hash.hex()
        assert s["committed_by"] == ["v0", "v1", "v2"]
        assert s["args"] == jsonable(tx.args)
        seen_types.add(tx_type)
    assert seen_types == set(apps.HANDLERS)


def test_refused_transaction_receipt_carries_the_reason(busy_chain: CertifiedChain) -> None:
    tx = all_txs(busy_chain)[5]
    facts = verify.verify_bytes(receipt_text(busy_chain, tx.tx_id), busy_chain.genesis)
    assert facts.statement["code"] == "not_owner"
    assert "belongs to another account" in facts.statement["reason"]
    lines = "\n".join(verify.summary_lines(facts, busy_chain.genesis))
    assert "refused by the rules: not_owner" in lines
    assert "shipper" in lines  # the sender, named from genesis


def test_receipt_waits_for_the_next_block(chain: CertifiedChain) -> None:
    block = chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\x01" * 32})])
    tx_id = block.txs[0].tx_id
    assert receipts.build_receipt(chain.store, chain.genesis, tx_id) is None
    chain.commit([])
    doc = receipts.build_receipt(chain.store, chain.genesis, tx_id)
    assert doc is not None
    assert [e["header"] for e in doc["headers"]] != []
    assert verify.verify_document(doc, chain.genesis).statement["height"] == 1


def test_unknown_transaction_is_not_committed(chain: CertifiedChain) -> None:
    with pytest.raises(receipts.NotCommitted):
        receipts.build_receipt(chain.store, chain.genesis, b"\x00" * 32)


def test_receipt_in_a_large_block_has_a_logarithmic_path(chain: CertifiedChain) -> None:
    maker = chain.accounts["maker"]
    txs = [maker.tx("record.put", {"ns": "bulk", "key": f"k{i}", "value": i}) for i in range(300)]
    chain.commit(txs)
    chain.commit([])
    for index in (0, 1, 150, 255, 256, 299):
        doc = receipts.build_receipt(chain.store, chain.genesis, txs[index].tx_id)
        assert doc is not None and doc["index"] == index
        assert len(doc["tx_proof"]) <= 9 and len(doc["result_proof"]) <= 9
        verify.verify_document(json.loads(verify.dump_json(doc)), chain.genesis)


STATE_CASES = [
    (apps.item_key("pallet-1"), True),
    (apps.item_key("crate-1"), True),
    (apps.item_key("never-registered"), False),
    (apps.record_key("spec", "p1"), True),
    (apps.record_key("spec", "nothing"), False),
    (apps.notary_key(b"\x11" * 32), True),
    (apps.notary_key(b"\x22" * 32), False),
]


@pytest.mark.parametrize(("key", "present"), STATE_CASES)
def test_state_proofs_of_presence_and_absence(
    busy_chain: CertifiedChain, key: bytes, present: bool
) -> None:
    snapshot = receipts.read_state(busy_chain.store, key)
    assert snapshot.height == busy_chain.store.head.height
    assert receipts.finish_state_proof(busy_chain.store, busy_chain.genesis, snapshot) is None
    busy_chain.commit([])
    doc = receipts.finish_state_proof(busy_chain.store, busy_chain.genesis, snapshot)
    assert doc is not None
    facts = verify.verify_bytes(verify.dump_json(doc).encode(), busy_chain.genesis)
    assert isinstance(facts, verify.StateFacts)
    assert facts.statement["present"] is present
    assert facts.height == snapshot.height
    stored = busy_chain.store.get_state(key)
    assert (facts.value is not None) == present
    if present:
        assert encoding.pack(facts.value) == stored


def test_item_proof_states_the_custodian(busy_chain: CertifiedChain) -> None:
    snapshot = receipts.read_state(busy_chain.store, apps.item_key("pallet-1"))
    busy_chain.commit([])
    doc = receipts.finish_state_proof(busy_chain.store, busy_chain.genesis, snapshot)
    facts = verify.verify_document(doc, busy_chain.genesis)
    retailer = busy_chain.accounts["retailer"].pub
    assert facts.value["custodian"] == retailer
    assert facts.statement["subject"] == {"type": "item", "item": "pallet-1"}
    text = "\n".join(verify.summary_lines(facts, busy_chain.genesis))
    assert "custodian is retailer" in text and "5 step(s)" in text


def test_absence_proof_reads_as_never_anchored(busy_chain: CertifiedChain) -> None:
    snapshot = receipts.read_state(busy_chain.store, apps.notary_key(b"\x33" * 32))
    busy_chain.commit([])
    doc = receipts.finish_state_proof(busy_chain.store, busy_chain.genesis, snapshot)
    facts = verify.verify_document(doc, busy_chain.genesis)
    text = "\n".join(verify.summary_lines(facts, busy_chain.genesis))
    assert f"digest {'33' * 32} was never anchored as of height {snapshot.height}" in text


def test_proof_of_an_old_snapshot_still_verifies_after_later_writes(
    busy_chain: CertifiedChain,
) -> None:
    """The value and proof come from one snapshot; later blocks change the value, yet the
    proof is against the root that block snapshot.height + 1 certifies."""
    key = apps.record_key("spec", "p1")
    snapshot = receipts.read_state(busy_chain.store, key)
    maker = busy_chain.accounts["maker"]
    busy_chain.commit([maker.tx("record.put", {"ns": "spec", "key": "p1", "value": "v2"})])
    busy_chain.commit([])
    assert busy_chain.store.get_state(key) != snapshot.value
    doc = receipts.finish_state_proof(busy_chain.store, busy_chain.genesis, snapshot)
    facts = verify.verify_document(doc, busy_chain.genesis)
    assert facts.value["value"] == {"w": 12} and facts.value["version"] == 1


def test_store_snapshot_pairs_value_with_its_own_root(busy_chain: CertifiedChain) -> None:
    head, value, proof = busy_chain.store.read_state_with_proof(apps.item_key("pallet-1"))
    from node.ledger.statetree import verify_state_proof

    assert head == busy_chain.store.head
    assert verify_state_proof(head.state_root, apps.item_key("pallet-1"), value, proof)


def test_genesis_state_is_provable_from_block_one(chain: CertifiedChain) -> None:
    admin = chain.accounts["admin"].pub
    snapshot = receipts.read_state(chain.store, apps.acct_key(admin))
    assert snapshot.height == 0
    chain.commit([])
    doc = receipts.finish_state_proof(chain.store, chain.genesis, snapshot)
    facts = verify.verify_document(doc, chain.genesis)
    assert facts.value["roles"] == ["admin"]
    assert "account admin" in verify.summary_lines(facts, chain.genesis)[1]
