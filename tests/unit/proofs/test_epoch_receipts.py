"""Receipts across validator-set changes: a receipt carries the chain of epoch changes from
genesis, each certified by the set before it, and verifies offline against the original
genesis; a certificate by a set outside its epoch, or a document that leaves a change out,
is rejected with a reason."""

from __future__ import annotations

import copy
import json

import pytest
from proofkit import CertifiedChain, sign_certificate

from node.daemon.api import receipts
from node.ledger import crypto, encoding
from node.ledger.block import BlockHeader
from node.proofs import verify
from p2p.identity import make_certificate


def _pass(chain: CertifiedChain, action: dict) -> None:
    chain.commit([chain.tx("maker", "gov.propose", {"action": action})])
    chain.commit(
        [
            chain.tx(
                g,
                "gov.vote",
                {
                    "proposal": chain.store.state_reader().get(b"gov/seq")["next"] - 1,
                    "approve": True,
                },
            )
            for g in ("shipper", "retailer")
        ]
    )


def _advance_to_epoch(chain: CertifiedChain, epoch: int) -> None:
    for _ in range(5):
        if chain.store.epochs()[-1].number >= epoch:
            return
        chain.commit([])
    raise AssertionError("the epoch did not begin")


def receipt(chain: CertifiedChain, tx_id: bytes) -> dict:
    doc = receipts.build_receipt(chain.store, chain.genesis, tx_id)
    assert doc is not None
    return doc


@pytest.fixture
def two_changes(chain: CertifiedChain) -> tuple[CertifiedChain, list[bytes]]:
    """Epoch 1 removes v3; epoch 2 rotates v0's key. A tx in each epoch."""
    txs = [chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\1" * 32})]).txs[0]]
    _pass(chain, {"type": "remove-validator", "name": "v3"})
    _advance_to_epoch(chain, 1)
    txs.append(chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\2" * 32})]).txs[0])
    new_v0 = crypto.SigningKey.from_seed(b"\x99" * 32)
    chain.keys.append(new_v0)
    cert = make_certificate(new_v0.private_key, "v0").decode()
    _pass(
        chain,
        {
            "type": "update-validator",
            "name": "v0",
            "public_key": new_v0.public_key,
            "certificate": cert,
        },
    )
    _advance_to_epoch(chain, 2)
    txs.append(chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\3" * 32})]).txs[0])
    chain.commit([])
    return chain, [tx.tx_id for tx in txs]


def test_receipts_before_and_after_the_changes_verify_against_the_original_genesis(
    two_changes: tuple[CertifiedChain, list[bytes]],
) -> None:
    chain, tx_ids = two_changes
    epochs = [len(receipt(chain, t)["epochs"]) for t in tx_ids]
    assert epochs == [0, 1, 2]
    for tx_id in tx_ids:
        doc = json.loads(verify.dump_json(receipt(chain, tx_id)))
        facts = verify.verify_document(doc, chain.genesis)
        assert isinstance(facts, verify.ReceiptFacts)
    last = verify.verify_document(receipt(chain, tx_ids[2]), chain.genesis)
    assert last.block.header.epoch == 2
    assert set(last.block.signer_names) <= {"v0", "v1", "v2"}


def test_a_document_that_leaves_out_an_epoch_change_is_rejected(
    two_changes: tuple[CertifiedChain, list[bytes]],
) -> None:
    chain, tx_ids = two_changes
    doc = receipt(chain, tx_ids[2])
    for drop in (0, 1):
        bad = copy.deepcopy(doc)
        del bad["epochs"][drop]
        with pytest.raises(verify.VerificationError):
            verify.verify_document(bad, chain.genesis)
    bad = copy.deepcopy(doc)
    bad["epochs"] = []
    with pytest.raises(verify.VerificationError, match="epoch"):
        verify.verify_document(bad, chain.genesis)


def test_a_certificate_by_a_set_outside_its_epoch_is_rejected(
    two_changes: tuple[CertifiedChain, list[bytes]],
) -> None:
    """After v3 left and v0 rotated, the OLD keys (v3, old v0) sign a block in epoch 2."""
    chain, tx_ids = two_changes
    doc = receipt(chain, tx_ids[2])
    header = BlockHeader.from_obj(encoding.unpack(bytes.fromhex(doc["headers"][0]["header"])))
    genesis_keys = chain.keys[:4]  # v0 (old key), v1, v2, v3 (removed)
    forged = sign_certificate(
        genesis_keys, chain.genesis.chain_id, header.height, header.view, header.hash(), (0, 2, 3)
    )
    bad = copy.deepcopy(doc)
    bad["headers"][0]["certificate"] = forged.to_bytes().hex()
    with pytest.raises(verify.VerificationError, match="epoch 2's set"):
        verify.verify_document(bad, chain.genesis)


def test_an_epoch_change_must_be_certified_by_the_set_before_it(
    two_changes: tuple[CertifiedChain, list[bytes]],
) -> None:
    chain, tx_ids = two_changes
    doc = receipt(chain, tx_ids[2])
    bad = copy.deepcopy(doc)
    bad["epochs"][1]["validators"][0]["public_key"] = "ab" * 32  # claims another new set
    with pytest.raises(verify.VerificationError, match="not the listed set"):
        verify.verify_document(bad, chain.genesis)
    bad = copy.deepcopy(doc)
    bad["epochs"][0], bad["epochs"][1] = bad["epochs"][1], bad["epochs"][0]
    with pytest.raises(verify.VerificationError):
        verify.verify_document(bad, chain.genesis)


def test_version_1_receipts_still_verify(chain: CertifiedChain) -> None:
    chain.timed = False  # documents made before commit votes carried a time
    tx = chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\7" * 32})]).txs[0]
    chain.commit([])
    doc = receipt(chain, tx.tx_id)
    assert doc["format"] == verify.FORMAT_RECEIPT_V2  # untimed certificates: version 2
    verify.verify_document(doc, chain.genesis)
    assert doc.pop("epochs") == []
    doc["format"] = verify.FORMAT_RECEIPT_V1
    # A v1 document of a v2 chain: same parts, no epoch chain; it verifies (epoch 0).
    verify.verify_document(doc, chain.genesis)
