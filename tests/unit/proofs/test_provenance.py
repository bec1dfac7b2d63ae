"""Provenance bundles: built from a Store, verified offline as one unit, complete, and every
tampering (a step left out, moved, borrowed, a report edited) is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from proofkit import CertifiedChain, StoreSource

from node.proofs import provenance, verify
from node.proofs.verify import VerificationError


@pytest.fixture
def bundle(busy_chain: CertifiedChain) -> dict[str, bytes]:
    return provenance.build_bundle(StoreSource(busy_chain), busy_chain.genesis, "pallet-1")


def manifest(files: dict[str, bytes]) -> dict:
    return json.loads(files["manifest.json"])


def with_manifest(files: dict[str, bytes], doc: dict) -> dict[str, bytes]:
    return {**files, "manifest.json": verify.dump_json(doc).encode()}


def refused(files: dict[str, bytes], chain: CertifiedChain) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        provenance.verify_parts(files, chain.genesis)
    return info.value


def test_bundle_holds_the_item_its_parents_and_every_step(
    busy_chain: CertifiedChain, bundle: dict[str, bytes]
) -> None:
    facts = provenance.verify_bundle(bundle, busy_chain.genesis)
    assert [i.item for i in facts.items] == ["pallet-1", "crate-1", "crate-2"]
    pallet = facts.items[0]
    assert [s.tx.type for s in pallet.steps] == [
        "item.register",
        "item.event",
        "item.transfer",
        "item.event",
        "item.transfer",
    ]
    assert pallet.state.value["custodian"] == busy_chain.accounts["retailer"].pub
    assert facts.step_count == 7
    assert sum(name.startswith("receipts/") for name in bundle) == 7


def test_written_bundle_reads_back_and_verifies(
    tmp_path: Path, busy_chain: CertifiedChain, bundle: dict[str, bytes]
) -> None:
    out = tmp_path / "bundle"
    provenance.write_bundle(bundle, out)
    assert provenance.read_bundle(out) == bundle
    provenance.verify_bundle(provenance.read_bundle(out), busy_chain.genesis)
    with pytest.raises(provenance.ExportError, match="not empty"):
        provenance.write_bundle(bundle, out)


def test_a_step_left_out_is_noticed(busy_chain: CertifiedChain, bundle: dict[str, bytes]) -> None:
    doc = manifest(bundle)
    dropped = doc["items"][0]["steps"].pop(2)
    files = {k: v for k, v in with_manifest(bundle, doc).items() if k != dropped}
    assert "the certified record counts 5" in refused(files, busy_chain).reason
    left_behind = with_manifest(bundle, doc)  # the file still there, but not named
    assert "the certified record counts 5" in refused(left_behind, busy_chain).reason
    extra = {**bundle, "notes.txt": b"trust me"}
    assert refused(extra, busy_chain).part == "notes.txt"


def test_steps_out_of_order(busy_chain: CertifiedChain, bundle: dict[str, bytes]) -> None:
    doc = manifest(bundle)
    steps = doc["items"][0]["steps"]
    steps[1], steps[2] = steps[2], steps[1]
    assert "out of order" in refused(with_manifest(bundle, doc), busy_chain).reason


def test_another_items_step_or_a_refused_transaction(
    busy_chain: CertifiedChain, bundle: dict[str, bytes]
) -> None:
    doc = manifest(bundle)
    crate_step = doc["items"][1]["steps"][0]
    borrowed = json.loads(json.dumps(doc))
    borrowed["items"][0]["steps"][3] = crate_step
    assert refused(with_manifest(bundle, borrowed), busy_chain).reason
    # The refused transfer by the retailer: a valid receipt, but not a step.
    failed = next(
        tx for tx in busy_chain.blocks[2].txs if tx.sender == busy_chain.accounts["retailer"].pub
    )
    source = StoreSource(busy_chain)
    path = f"receipts/{failed.tx_id.hex()}.json"
    files = dict(bundle)
    files[path] = verify.dump_json(source.receipt(failed.tx_id)).encode()
    doc = manifest(bundle)
    del files[doc["items"][0]["steps"][4]]
    doc["items"][0]["steps"][4] = path
    assert "refused transaction" in refused(with_manifest(files, doc), busy_chain).reason


def test_missing_parent_and_repeated_item(
    busy_chain: CertifiedChain, bundle: dict[str, bytes]
) -> None:
    doc = manifest(bundle)
    gone = doc["items"].pop(2)
    files = {k: v for k, v in bundle.items() if k not in {gone["state_proof"], *gone["steps"]}}
    assert "parent 'crate-2' is missing" in refused(with_manifest(files, doc), busy_chain).reason
    doc = manifest(bundle)
    doc["items"].append(doc["items"][1])
    assert "repeated" in refused(with_manifest(bundle, doc), busy_chain).reason


def test_a_tampered_receipt_inside_names_its_file(
    busy_chain: CertifiedChain, bundle: dict[str, bytes]
) -> None:
    path = manifest(bundle)["items"][0]["steps"][1]
    receipt = json.loads(bundle[path])
    receipt["index"] += 1
    files = {**bundle, path: verify.dump_json(receipt).encode()}
    error = refused(files, busy_chain)
    assert error.part.startswith(path)


def test_edited_report_is_refused(busy_chain: CertifiedChain, bundle: dict[str, bytes]) -> None:
    page = bundle["report.html"].replace(b"retailer", b"shipper")
    assert page != bundle["report.html"]
    with pytest.raises(VerificationError, match="does not match the verified data"):
        provenance.verify_bundle({**bundle, "report.html": page}, busy_chain.genesis)
    without = {k: v for k, v in bundle.items() if k != "report.html"}
    with pytest.raises(VerificationError, match="missing"):
        provenance.verify_bundle(without, busy_chain.genesis)


def test_unregistered_item_cannot_be_exported(busy_chain: CertifiedChain) -> None:
    with pytest.raises(provenance.ExportError, match="not registered"):
        provenance.build_bundle(StoreSource(busy_chain), busy_chain.genesis, "ghost")


def test_ancestry_is_bounded(monkeypatch: pytest.MonkeyPatch, busy_chain: CertifiedChain) -> None:
    monkeypatch.setattr(provenance, "MAX_ITEMS", 2)
    with pytest.raises(provenance.ExportError, match="more than 2 items"):
        provenance.build_bundle(StoreSource(busy_chain), busy_chain.genesis, "pallet-1")


def test_report_names_steps_custodians_and_escapes_text(busy_chain: CertifiedChain) -> None:
    chain = busy_chain
    chain.commit(
        [chain.tx("maker", "item.register", {"item": "<b>odd</b>", "meta": {"x": "<script>"}})]
    )
    files = provenance.build_bundle(StoreSource(chain), chain.genesis, "<b>odd</b>")
    page = files["report.html"].decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page
    page = provenance.build_bundle(StoreSource(chain), chain.genesis, "pallet-1")["report.html"]
    text = page.decode()
    for expected in ("transfer", "inspected", "Lyon", "retailer", "crate-2", "Verified"):
        assert expected in text
    assert "http://" not in text and "https://" not in text and "<script" not in text
