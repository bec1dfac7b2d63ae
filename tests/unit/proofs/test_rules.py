"""Every offline rule that needs more than a flipped byte to break: forged headers re-signed
by a quorum (so that only the rule under test fails), certified time, format versions.
Each is rejected naming the part and the rule (docs/PROTOCOL.md section 16)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from proofkit import CertifiedChain, reheader, sign_certificate

from consensus import CommitCertificate
from node.daemon.api import receipts
from node.ledger import apps, encoding
from node.ledger.merkle import merkle_root
from node.proofs import verify


def receipt_of(chain: CertifiedChain, block: int, index: int = 0) -> dict[str, Any]:
    tx_id = chain.blocks[block].txs[index].tx_id
    doc = receipts.build_receipt(chain.store, chain.genesis, tx_id)
    assert doc is not None
    return json.loads(verify.dump_json(doc))


def rejection(doc: dict[str, Any], chain: CertifiedChain) -> verify.VerificationError:
    with pytest.raises(verify.VerificationError) as info:
        verify.verify_document(doc, chain.genesis)
    return info.value


@pytest.fixture
def two_blocks(chain: CertifiedChain) -> CertifiedChain:
    chain.commit([chain.tx("maker", "item.register", {"item": "a"})])
    chain.commit([chain.tx("maker", "item.register", {"item": "b"})])
    chain.commit([])
    return chain


def test_the_rules_applied_are_listed(two_blocks: CertifiedChain) -> None:
    first = verify.verify_document(receipt_of(two_blocks, 0), two_blocks.genesis)
    later = verify.verify_document(receipt_of(two_blocks, 1), two_blocks.genesis)
    common = {"shape", "genesis", "epochs", "header", "next-set", "certificate", "quorum"}
    common |= {"proposer", "commit-view", "hash-chain", "time-order", "certified-time", "tx"}
    common |= {"tx-inclusion", "result", "result-inclusion", "statement"}
    assert set(later.rules) == common
    assert set(first.rules) == common | {"first-block"}  # block 1 is checked against genesis
    lines = "\n".join(verify.summary_lines(later, two_blocks.genesis))
    assert "rules checked" in lines and "proposer = view mod n" in lines


def test_untouched_forgery_helper_still_verifies(two_blocks: CertifiedChain) -> None:
    verify.verify_document(reheader(two_blocks, receipt_of(two_blocks, 1), {}), two_blocks.genesis)


@pytest.mark.parametrize(
    ("changes", "part", "rule", "reason"),
    [
        ({0: {"proposer": 1}}, "headers[0].header", "proposer", "does not lead view 0"),
        (
            {0: {"view": 2, "proposer": 2, "_cert_view": 1}},
            "headers[0].certificate",
            "commit-view",
            "commits in view 1, before the header's view 2",
        ),
        ({1: {"timestamp_ms": 0}}, "headers[1]", "time-order", "is not after the block before"),
    ],
)
def test_header_rules(
    two_blocks: CertifiedChain,
    changes: dict[int, dict[str, Any]],
    part: str,
    rule: str,
    reason: str,
) -> None:
    error = rejection(reheader(two_blocks, receipt_of(two_blocks, 1), changes), two_blocks)
    assert (error.part, error.rule) == (part, rule) and reason in error.reason


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("prev_hash", "block 1's prev_hash is not the genesis hash"),
        ("state_root", "block 1's state_root is not the genesis state root"),
        ("results_root", "block 1's results_root is not the empty tree's root"),
    ],
)
def test_block_1_follows_genesis(two_blocks: CertifiedChain, field: str, reason: str) -> None:
    doc = reheader(two_blocks, receipt_of(two_blocks, 0), {0: {field: b"\x07" * 32}})
    error = rejection(doc, two_blocks)
    assert (error.part, error.rule, error.reason) == ("headers[0].header", "first-block", reason)


def test_a_result_whose_ok_and_code_disagree(two_blocks: CertifiedChain) -> None:
    """Certified by a quorum, but not a result an honest node makes: ok with a refusal code."""
    doc = receipt_of(two_blocks, 1)
    result = encoding.unpack(bytes.fromhex(doc["result"]))
    for bad in ({**result, "code": "not_owner"}, {**result, "reason": "but why"}):
        raw = encoding.pack(bad)
        forged = reheader(two_blocks, doc, {1: {"results_root": merkle_root([raw])}})
        forged["result"], forged["result_proof"] = raw.hex(), []
        error = rejection(forged, two_blocks)
        assert (error.part, error.rule) == ("result", "result")


def test_certified_time_is_in_the_statement_and_bound_to_the_signatures(
    two_blocks: CertifiedChain,
) -> None:
    doc = receipt_of(two_blocks, 1)
    facts = verify.verify_document(doc, two_blocks.genesis)
    ct = facts.statement["certified_time"]
    times = [r["time_ms"] for r in ct["readings"]]
    assert times == sorted(times) and len(times) == 3  # proofkit: signers 0, 1, 2
    assert ct["median_ms"] == times[1] and ct["window_ms"] == [times[0], times[1]]
    assert "certified" in "\n".join(verify.summary_lines(facts, two_blocks.genesis))
    # A reading moved without its signer: the signature no longer matches.
    wire = encoding.unpack(bytes.fromhex(doc["headers"][0]["certificate"]))
    wire[4][1][2] += 1
    moved = copy.deepcopy(doc)
    moved["headers"][0]["certificate"] = encoding.pack(wire).hex()
    error = rejection(moved, two_blocks)
    assert (error.part, error.rule) == ("headers[0].certificate", "quorum")
    assert "bad signature from validator 1" in error.reason
    # An edited certified time in the statement is refused like any edited statement.
    edited = copy.deepcopy(doc)
    edited["statement"]["certified_time"]["median_ms"] += 1
    assert (rejection(edited, two_blocks).rule) == "statement"


def test_skewed_readings_cannot_move_the_time_outside_the_honest_ones(
    chain: CertifiedChain,
) -> None:
    """One faulty signer (f = 1 of 4) reporting year 2100: median and window stay honest."""
    chain.commit([chain.tx("maker", "item.register", {"item": "a"})])
    chain.commit([])
    doc = receipt_of(chain, 0)
    cert = CommitCertificate.from_bytes(bytes.fromhex(doc["headers"][0]["certificate"]))
    honest = [1_767_225_601_100, 1_767_225_601_200]
    resigned = sign_certificate(
        chain.keys,
        chain.genesis.chain_id,
        cert.height,
        cert.view,
        cert.digest,
        (0, 1, 2),
        times=[*honest, 4_102_444_800_000],
    )
    doc["headers"][0]["certificate"] = resigned.to_bytes().hex()
    del doc["statement"]
    facts = verify.verify_receipt(doc, chain.genesis, check_statement=False)
    ct = facts.statement["certified_time"]
    assert ct["median_ms"] == honest[1] and ct["window_ms"] == honest


def test_format_versions_and_certificate_versions_must_agree(chain: CertifiedChain) -> None:
    chain.commit([chain.tx("maker", "item.register", {"item": "a"})])
    chain.commit([])
    v3 = receipt_of(chain, 0)
    assert v3["format"] == "chain-receipt/3" and v3["timestamps"] == []
    as_v2 = {k: v for k, v in v3.items() if k != "timestamps"} | {"format": "chain-receipt/2"}
    error = rejection(as_v2, chain)
    assert (error.part, error.rule) == ("headers[0].certificate", "certificate")
    assert "needs document format version 3" in error.reason
    chain.timed = False
    chain.commit([chain.tx("maker", "item.register", {"item": "b"})])
    chain.commit([])
    v2 = receipt_of(chain, 2)
    assert v2["format"] == "chain-receipt/2"
    verify.verify_document(v2, chain.genesis)  # old documents keep verifying
    as_v3 = {**v2, "format": "chain-receipt/3", "timestamps": []}
    error = rejection(as_v3, chain)
    assert (error.part, error.rule) == ("headers[0].certificate", "certificate")
    assert "must be a timed (version 2) certificate" in error.reason
    missing = {k: v for k, v in v3.items() if k != "timestamps"}
    assert rejection(missing, chain).rule == "shape"


def test_untimed_state_proofs_stay_version_2(chain: CertifiedChain) -> None:
    chain.timed = False
    chain.commit([chain.tx("maker", "item.register", {"item": "a"})])
    snapshot = receipts.read_state(chain.store, apps.item_key("a"))
    chain.commit([])
    doc = receipts.finish_state_proof(chain.store, chain.genesis, snapshot)
    assert doc is not None and doc["format"] == "chain-state-proof/2"
    facts = verify.verify_document(json.loads(verify.dump_json(doc)), chain.genesis)
    assert "certified_time" not in facts.statement
