"""The implementation against the published test vectors, tests/vectors/*.json.

Two kinds of check: every deterministic file must equal what the generator (vectorkit.py)
makes today, byte for byte, so code and vectors cannot drift; and every file is also read
the way an independent client would read it (decode the bytes, re-hash, verify the paths
and signatures) so that a vector which is wrong on its own terms fails too. documents.json
holds an RFC 3161 token made by a throwaway TSA, so it is verified rather than rebuilt.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import bundlevectors
import pytest
import vectorkit

from consensus import CommitCertificate, vote_signing_bytes
from consensus.bfttime import certified_time_of
from consensus.certificates import verify_certificate
from node.ledger import crypto, encoding, merkle
from node.ledger.apps import genesis_state
from node.ledger.block import HEADER_DOMAIN, BlockHeader, decode_block
from node.ledger.errors import TxInvalid
from node.ledger.genesis import parse_genesis
from node.ledger.stateroot import state_root
from node.ledger.statetree import EMPTY_ROOT, StateProof, key_hash, value_hash, verify_state_proof
from node.ledger.tx import TX_DOMAIN, decode_tx
from node.proofs import provenance, verify
from node.proofs.rules import RULES

FILES = [*vectorkit.DETERMINISTIC, "documents.json", "bundles.json"]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((vectorkit.VECTORS / name).read_text())
    return doc


@pytest.mark.parametrize("name", sorted(vectorkit.DETERMINISTIC))
def test_file_is_what_the_implementation_makes(name: str) -> None:
    text = (vectorkit.VECTORS / name).read_text()
    assert text == vectorkit.dump(vectorkit.DETERMINISTIC[name]()), (
        f"tests/vectors/{name} differs from the implementation: a protocol change? "
        "If deliberate, run scripts/make_vectors.py and review the diff"
    )


@pytest.mark.parametrize("name", FILES)
def test_every_file_has_the_vector_format(name: str) -> None:
    doc = load(name)
    assert doc["format"] == vectorkit.FORMAT
    assert doc["about"]


def test_transactions() -> None:
    doc = load("transactions.json")
    assert bytes.fromhex(doc["signing_domain"]) == b"chain-tx-v1\x00"
    assert len(doc["cases"]) >= 15
    for case in doc["cases"]:
        wire = bytes.fromhex(case["wire"])
        body, signature = bytes.fromhex(case["body"]), bytes.fromhex(case["signature"])
        assert encoding.pack([body, signature]) == wire
        assert crypto.sha256(body).hex() == case["tx_id"]
        key = crypto.SigningKey.from_seed(bytes.fromhex(case["seed"]))
        assert key.public_key.hex() == case["sender"]
        assert crypto.verify(key.public_key, signature, TX_DOMAIN + body)
        obj = encoding.unpack(body)
        assert obj == {
            "v": 1,
            "chain_id": doc["chain_id"],
            "sender": key.public_key,
            "nonce": case["nonce"],
            "type": case["type"],
            "args": vectorkit.untagged(case["args"]),
        }, case["name"]
        tx = decode_tx(wire)
        assert tx.tx_id.hex() == case["tx_id"] and tx.signature_ok()
    codes = {case["name"]: case["code"] for case in doc["invalid"]}
    assert len(codes) >= 8
    for case in doc["invalid"]:
        with pytest.raises(TxInvalid) as info:
            decode_tx(bytes.fromhex(case["wire"]))
        assert info.value.code == case["code"], case["name"]


def test_headers_blocks_and_results() -> None:
    doc = load("blocks.json")
    assert {h["name"] for h in doc["headers"]} == {"version 1", "version 2"}
    for case in doc["headers"]:
        raw = bytes.fromhex(case["bytes"])
        assert encoding.pack(vectorkit.untagged(case["header"])) == raw
        assert crypto.sha256(HEADER_DOMAIN + raw).hex() == case["block_hash"]
        header = BlockHeader.from_obj(encoding.unpack(raw))
        assert header.hash().hex() == case["block_hash"]
    payload = doc["payload"]
    block = decode_block(
        bytes.fromhex(payload["payload"]), max_block_bytes=1 << 20, max_tx_bytes=1 << 14
    )
    assert block.hash.hex() == payload["block_hash"]
    txs = [bytes.fromhex(t) for t in payload["txs"]]
    assert [t.raw for t in block.txs] == txs
    assert merkle.merkle_root(txs).hex() == payload["tx_root"] == block.header.tx_root.hex()
    results = [bytes.fromhex(r["bytes"]) for r in doc["results"]]
    for case, raw in zip(doc["results"], results, strict=True):
        assert encoding.pack(vectorkit.untagged(case["result"])) == raw
    assert merkle.merkle_root(results).hex() == doc["results_root"]


def test_votes_certificates_and_certified_time() -> None:
    doc = load("votes.json")
    keys = [bytes.fromhex(v["public_key"]) for v in doc["validators"]]
    for vote in doc["votes"]:
        signing = vote_signing_bytes(
            vote["chain_id"],
            vote["phase"],
            vote["view"],
            vote["height"],
            bytes.fromhex(vote["digest"]),
            vote["time_ms"] or 0,
        )
        assert signing.hex() == vote["bytes"]
        assert crypto.verify(keys[0], bytes.fromhex(vote["signature"]), signing)
    commit = next(v for v in doc["votes"] if v["phase"] == "commit")
    untimed = bytes.fromhex(doc["untimed_commit_bytes"])
    assert encoding.unpack(untimed) == [
        "chain-pbft-v1",
        commit["chain_id"],
        "commit",
        commit["view"],
        commit["height"],
        bytes.fromhex(commit["digest"]),
    ]
    for case in doc["certificates"]:
        raw = bytes.fromhex(case["bytes"])
        cert = CommitCertificate.from_bytes(raw)
        assert cert.to_bytes() == raw
        assert cert.timed == (case["version"] == 2)
        assert cert.digest.hex() == commit["digest"]
        verify_certificate(cert, commit["chain_id"], keys, crypto.verify)
        assert cert.signers() == (0, 1, 3)
    for case in doc["certified_times"]:
        median, window = certified_time_of(case["readings"], case["n"])
        assert (median, list(window)) == (case["median_ms"], case["window_ms"])


def test_rfc6962_roots_and_paths() -> None:
    doc = load("rfc6962.json")
    leaves = [bytes.fromhex(h) for h in doc["leaves"]]
    # RFC 6962's reference root of the 8 CT leaves, and the empty tree = SHA-256("").
    trees = {t["size"]: t for t in doc["trees"]}
    assert trees[0]["root"] == crypto.sha256(b"").hex()
    assert trees[8]["root"] == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    for size, tree in trees.items():
        root = bytes.fromhex(tree["root"])
        assert merkle.merkle_root(leaves[:size]) == root
        for index, path in enumerate(tree["inclusion"]):
            proof = [bytes.fromhex(p) for p in path]
            assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
            if proof:
                assert not merkle.verify_inclusion(leaves[index], index, size, proof[:-1], root)


def test_state_tree_proofs() -> None:
    doc = load("statetree.json")
    assert doc["empty_root"] == "00" * 32 == EMPTY_ROOT.hex()
    single = doc["single"]
    key, value = bytes.fromhex(single["key"]), bytes.fromhex(single["value"])
    assert crypto.sha256(key).hex() == single["key_hash"] == key_hash(key).hex()
    assert crypto.sha256(value).hex() == single["value_hash"] == value_hash(value).hex()
    leaf = crypto.sha256(b"\x00" + crypto.sha256(key) + crypto.sha256(value))
    assert leaf.hex() == single["leaf"] == single["root"]  # a lone key's leaf is the root
    items = {bytes.fromhex(k): bytes.fromhex(v) for k, v in doc["items"].items()}
    root = bytes.fromhex(doc["root"])
    assert state_root(items) == root
    kinds = {p["kind"] for p in doc["proofs"]}
    assert kinds == {"presence", "absence, empty", "absence, other leaf"}
    for case in doc["proofs"]:
        key = bytes.fromhex(case["key"])
        value = None if case["value"] is None else bytes.fromhex(case["value"])
        proof_obj = case["proof"]
        proof = StateProof.from_obj(
            {
                "depth": proof_obj["depth"],
                "bitmap": bytes.fromhex(proof_obj["bitmap"]),
                "siblings": [bytes.fromhex(s) for s in proof_obj["siblings"]],
                "leaf": None
                if proof_obj["leaf"] is None
                else [bytes.fromhex(h) for h in proof_obj["leaf"]],
            }
        )
        assert verify_state_proof(root, key, value, proof), case["key"]
        wrong = b"\x00" if value is None else None
        assert not verify_state_proof(root, key, wrong, proof)


def test_genesis_hash_of_the_example_genesis() -> None:
    doc = load("genesis.json")
    assert doc["toml"] == (vectorkit.CONFIGS / "genesis.example.toml").read_text()
    genesis = parse_genesis(tomllib.loads(doc["toml"]), "genesis.json")
    raw = bytes.fromhex(doc["bytes"])
    assert encoding.pack(vectorkit.untagged(doc["map"])) == raw
    assert crypto.sha256(b"chain-genesis-v1\x00" + raw).hex() == doc["genesis_hash"]
    assert genesis.hash.hex() == doc["genesis_hash"]
    state = {bytes.fromhex(k): bytes.fromhex(v) for k, v in doc["state"].items()}
    assert state == genesis_state(genesis)
    assert state_root(state).hex() == doc["state_root"]
    decoded = {k: encoding.unpack(v) for k, v in state.items()}
    accounts = [k for k in decoded if k.startswith(b"acct/")]
    assert len(accounts) == len(genesis.accounts)
    assert decoded[b"gov/epochs/" + bytes(8)] == decoded[b"gov/epoch"]


def _documents() -> tuple[dict[str, Any], Any, Any]:
    doc = load("documents.json")
    genesis = parse_genesis(tomllib.loads(doc["genesis_toml"]), "documents.json")
    trust = verify.TsaTrust.from_pem(doc["tsa_ca_pem"].encode()) if doc["tsa_ca_pem"] else None
    return doc, genesis, trust


def test_valid_documents_verify_with_the_rules_listed() -> None:
    doc, genesis, trust = _documents()
    names = {case["name"] for case in doc["valid"]}
    assert "receipt v1 (no epoch chain)" in names and "receipt v2 (untimed certificates)" in names
    assert "receipt v3 with an RFC 3161 timestamp" in names
    assert "receipt v3 after a validator-set change (epochs chain)" in names
    assert any(name.startswith("state proof v3, account") for name in names)
    for case in doc["valid"]:
        facts = verify.verify_document(case["document"], genesis, tsa=trust)
        assert list(facts.rules) == case["rules"], case["name"]


def test_invalid_documents_are_refused_by_the_rule_given() -> None:
    doc, genesis, _ = _documents()
    assert len(doc["invalid"]) >= 20
    covered = {case["rule"] for case in doc["invalid"]}
    assert covered >= {
        "shape", "genesis", "certificate", "quorum", "proposer", "commit-view", "time-order",
        "first-block", "hash-chain", "tx", "tx-inclusion", "result", "result-inclusion",
        "state-height", "state-inclusion", "tsa-chain", "tsa-imprint", "statement", "epochs",
    }  # fmt: skip
    for case in doc["invalid"]:
        assert case["rule"] in RULES, case["name"]
        with pytest.raises(verify.VerificationError) as info:
            verify.verify_document(case["document"], genesis)
        assert (info.value.part, info.value.rule) == (case["part"], case["rule"]), case["name"]


def test_a_timestamped_receipt_needs_the_authority() -> None:
    doc, genesis, _ = _documents()
    stamped = next(c for c in doc["valid"] if "RFC 3161" in c["name"])
    facts = verify.verify_document(stamped["document"], genesis)
    assert "tsa-signature" not in facts.rules  # without a trusted TSA it is not claimed


def _bundles() -> tuple[dict[str, Any], Any, dict[str, bytes]]:
    doc = load("bundles.json")
    genesis = parse_genesis(tomllib.loads(doc["genesis_toml"]), "bundles.json")
    files = {path: text.encode() for path, text in doc["files"].items()}
    return doc, genesis, files


def test_the_bundle_verifies_with_the_rules_listed() -> None:
    doc, genesis, files = _bundles()
    facts = provenance.verify_bundle(files, genesis)
    assert facts.root == doc["root"]
    assert list(facts.rules) == doc["rules"]
    assert {"bundle-report", "bundle-history", "bundle-complete"} <= set(facts.rules)


def test_bundle_edits_are_refused_by_the_rule_given() -> None:
    doc, genesis, files = _bundles()
    rules = {case["rule"] for case in doc["invalid"]}
    assert {"bundle-manifest", "bundle-state", "bundle-complete", "bundle-history"} <= rules
    assert "bundle-report" in rules
    for case in doc["invalid"]:
        with pytest.raises(verify.VerificationError) as info:
            provenance.verify_bundle(bundlevectors.apply(files, case["edits"]), genesis)
        assert (info.value.part, info.value.rule) == (case["part"], case["rule"]), case["name"]
