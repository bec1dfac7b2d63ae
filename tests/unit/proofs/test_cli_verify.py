"""`chain verify` and `chain notarize --verify` offline: exit 0 only when everything checks,
otherwise a reason naming the failed part. No node runs here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from proofkit import CertifiedChain, StoreSource

from node.cli.main import main
from node.daemon.api import receipts
from node.ledger import apps
from node.ledger.genesis import render_genesis
from node.proofs import provenance, verify

DOCUMENT = b"contract 2026-114, signed copy"


@pytest.fixture
def files(tmp_path: Path, busy_chain: CertifiedChain) -> dict[str, Path]:
    chain = busy_chain
    genesis = tmp_path / "genesis.toml"
    genesis.write_text(render_genesis(chain.genesis))
    digest = hashlib.sha256(DOCUMENT).digest()
    anchor = chain.commit([chain.tx("maker", "notary.anchor", {"digest": digest})])
    again = chain.commit([chain.tx("shipper", "notary.anchor", {"digest": digest})])
    chain.commit([])
    out = {"genesis": genesis, "document": tmp_path / "contract.pdf"}
    out["document"].write_bytes(DOCUMENT)
    for name, block in (("receipt", anchor), ("refused", again)):
        doc = receipts.build_receipt(chain.store, chain.genesis, block.txs[0].tx_id)
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(verify.dump_json(doc))
    snapshot = receipts.read_state(chain.store, apps.notary_key(digest))
    chain.commit([])
    out["state"] = tmp_path / "anchor-state.json"
    out["state"].write_text(
        verify.dump_json(receipts.finish_state_proof(chain.store, chain.genesis, snapshot))
    )
    bundle = provenance.build_bundle(StoreSource(chain), chain.genesis, "pallet-1")
    out["bundle"] = tmp_path / "bundle"
    provenance.write_bundle(bundle, out["bundle"])
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_receipt_state_proof_and_bundle(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    g = str(files["genesis"])
    code, out, _ = run(capsys, "verify", str(files["receipt"]), "--genesis", g)
    assert code == 0 and "RECEIPT VERIFIED" in out and "signed by    v0, v1, v2" in out
    code, out, _ = run(capsys, "verify", str(files["state"]), "--genesis", g)
    assert code == 0 and "was anchored at height" in out
    code, out, _ = run(capsys, "verify", str(files["bundle"]), "--genesis", g)
    assert code == 0 and "BUNDLE VERIFIED" in out and "pallet-1" in out
    code, out, _ = run(capsys, "verify", str(files["receipt"]), "--genesis", g, "--json")
    assert code == 0 and json.loads(out)["statement"]["type"] == "notary.anchor"


def test_verify_failures_name_the_part(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    g = str(files["genesis"])
    doc = json.loads(files["receipt"].read_text())
    doc["tx_proof"] = ["00" * 32]
    files["receipt"].write_text(json.dumps(doc))
    code, _, err = run(capsys, "verify", str(files["receipt"]), "--genesis", g)
    assert code == 1 and "NOT VERIFIED: tx_proof" in err
    code, out, _ = run(capsys, "verify", str(files["receipt"]), "--genesis", g, "--json")
    assert code == 1 and json.loads(out)["part"] == "tx_proof"
    report = files["bundle"] / "report.html"
    report.write_text(report.read_text().replace("Verified offline", "Checked"))
    code, _, err = run(capsys, "verify", str(files["bundle"]), "--genesis", g)
    assert code == 1 and "report.html" in err
    code, _, err = run(capsys, "verify", str(files["state"]), "--genesis", "/nonexistent.toml")
    assert code == 1 and "genesis file /nonexistent.toml not found" in err


def test_notarize_verify(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    g, doc = str(files["genesis"]), str(files["document"])
    for evidence in ("receipt", "state"):
        code, out, _ = run(
            capsys, "notarize", "--verify", doc, "--receipt", str(files[evidence]), "--genesis", g
        )
        assert code == 0 and "DOCUMENT VERIFIED" in out
    code, _, err = run(
        capsys, "notarize", "--verify", doc, "--receipt", str(files["refused"]), "--genesis", g
    )
    assert code == 1 and "already_anchored" in err and "get that receipt" in err
    files["document"].write_bytes(DOCUMENT + b" (edited)")
    for evidence in ("receipt", "state"):
        code, _, err = run(
            capsys, "notarize", "--verify", doc, "--receipt", str(files[evidence]), "--genesis", g
        )
        assert code == 1 and "NOT VERIFIED: document" in err
