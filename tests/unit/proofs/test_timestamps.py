"""RFC 3161 round trip with a real, local time-stamping authority: `openssl ts -reply` behind
an HTTP responder on 127.0.0.1 (tests/support/tsa.py). The node's reactor asks it for a
token over a checkpoint, the chain records it, a receipt carries it, and `chain verify
--tsa-cert` checks it offline against the authority's CA; tampering is refused by rule."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from proofkit import CertifiedChain
from support.tsa import LocalTsa, make_tsa, serve_tsa

from node.cli.main import main
from node.daemon.api import receipts
from node.daemon.reactors.timestamps import TimestampReactor, fetch_token
from node.ledger import encoding, timestamps
from node.ledger.genesis import render_genesis
from node.ledger.tx import decode_tx
from node.proofs import verify

# Under CI (scripts/test, CI=true) the round trip must run: a missing openssl fails there.
pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None and os.environ.get("CI") != "true",
    reason="needs the openssl command (scripts/test installs it)",
)
CHECKPOINT = 10  # the genesis default checkpoint_interval


@pytest.fixture(scope="module")
def tsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    tsa = make_tsa(tmp_path_factory.mktemp("tsa"))
    with serve_tsa(tsa):
        yield tsa


class _Mempool:
    def next_nonce(self, key: bytes, committed: int) -> int:
        return committed + 1


def reactor_for(chain: CertifiedChain, tsa: LocalTsa, sent: list[bytes]) -> TimestampReactor:
    async def submit(raws: Any) -> list[Any]:
        sent.extend(raws)
        return [SimpleNamespace(error=None) for _ in raws]

    fake_chain = SimpleNamespace(store=chain.store, genesis=chain.genesis, mempool=_Mempool())
    key = chain.accounts["retailer"].key  # an account used for nothing else here
    return TimestampReactor(fake_chain, url=tsa.url, key=key, submit=submit)  # type: ignore[arg-type]


def header_bytes(chain: CertifiedChain, height: int) -> bytes:
    payload = chain.store.get_block(height)
    assert payload is not None
    return encoding.pack(encoding.unpack(payload)[0])


def token_for(chain: CertifiedChain, tsa: LocalTsa, height: int) -> bytes:
    return fetch_token(tsa.url, timestamps.request_for_header(header_bytes(chain, height)), 10)


async def stamped_chain(chain: CertifiedChain, tsa: LocalTsa) -> tuple[bytes, dict[str, Any]]:
    """Block 1 holds a registration; block 10 (a checkpoint) is time-stamped by the node's
    reactor and the token recorded in block 11. Returns the tx id and the tsa/10 record."""
    tx = chain.tx("maker", "item.register", {"item": "pallet"})
    chain.commit([tx])
    while chain.store.head.height < CHECKPOINT:
        chain.commit([])
    sent: list[bytes] = []
    reactor = reactor_for(chain, tsa, sent)
    reactor.on_commit(SimpleNamespace(head=SimpleNamespace(height=9)))  # type: ignore[arg-type]
    reactor.on_commit(SimpleNamespace(head=SimpleNamespace(height=10)))  # type: ignore[arg-type]
    assert list(reactor._pending) == [10]  # only checkpoints
    await reactor._stamp(10)
    assert len(sent) == 1 and reactor.recorded == [10]
    stamp_tx = decode_tx(sent[0], max_tx_bytes=chain.genesis.consensus.max_tx_bytes)
    chain.commit([stamp_tx])
    chain.commit([])
    result = chain.store.get_result(11, 0)
    assert result is not None and result["ok"], result
    record = chain.store.get_state_obj(timestamps.tsa_key(10))
    assert record["block_hash"] == chain.blocks[9].hash
    return tx.tx_id, record


def stamped_receipt(chain: CertifiedChain, tx_id: bytes) -> dict[str, Any]:
    doc = receipts.build_receipt(chain.store, chain.genesis, tx_id, tsa=True)
    assert doc is not None
    return json.loads(verify.dump_json(doc))


async def test_round_trip_node_chain_receipt_and_offline_check(
    chain: CertifiedChain, tsa_dir: LocalTsa, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tx_id, record = await stamped_chain(chain, tsa_dir)
    doc = stamped_receipt(chain, tx_id)
    (entry,) = doc["timestamps"]
    assert len(entry["headers"]) == CHECKPOINT - 2  # blocks 3..10 link block 2 to block 10
    trust = verify.TsaTrust.from_pem(tsa_dir.ca_pem.read_bytes())
    facts = verify.verify_document(doc, chain.genesis, tsa=trust)
    (stamp,) = facts.timestamps
    assert (stamp.height, stamp.trusted, stamp.block_hash) == (10, True, chain.blocks[9].hash)
    assert stamp.gen_time_ms == record["gen_time_ms"] and "Test TSA" in stamp.authority
    assert {"tsa-chain", "tsa-imprint", "tsa-signature"} <= set(facts.rules)
    # Without the authority's certificate: the link and imprint are still checked, and the
    # entry says it was not checked against an authority.
    unchecked = verify.verify_document(doc, chain.genesis)
    assert not unchecked.timestamps[0].trusted and "tsa-signature" not in unchecked.rules
    # The same through the command line.
    genesis = tmp_path / "genesis.toml"
    genesis.write_text(render_genesis(chain.genesis))
    path = tmp_path / "receipt.json"
    path.write_text(verify.dump_json(doc))
    args = ["verify", str(path), "--genesis", str(genesis), "--tsa-cert", str(tsa_dir.ca_pem)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "time-stamped block 10 existed by" in out and "tsa-signature" in out
    assert "NOT checked" not in out


async def test_stock_openssl_verifies_the_recorded_token(
    chain: CertifiedChain, tsa_dir: LocalTsa, tmp_path: Path
) -> None:
    """The imprint is the block hash itself: `openssl ts -verify -digest` checks it."""
    _, record = await stamped_chain(chain, tsa_dir)
    token = tmp_path / "token.tsr"
    token.write_bytes(record["response"])
    check = subprocess.run(
        [
            "openssl", "ts", "-verify", "-digest", record["block_hash"].hex(), "-in", str(token),
            "-CAfile", str(tsa_dir.ca_pem), "-untrusted", str(tsa_dir.cert_pem),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert check.returncode == 0 and "Verification: OK" in check.stdout, check.stderr


async def test_tampered_timestamps_are_refused_by_rule(
    chain: CertifiedChain, tsa_dir: LocalTsa, tmp_path: Path
) -> None:
    tx_id, _ = await stamped_chain(chain, tsa_dir)
    doc = stamped_receipt(chain, tx_id)
    trust = verify.TsaTrust.from_pem(tsa_dir.ca_pem.read_bytes())

    def refused(changed: dict[str, Any], with_trust: verify.TsaTrust | None = trust) -> Any:
        with pytest.raises(verify.VerificationError) as info:
            verify.verify_document(changed, chain.genesis, tsa=with_trust)
        return info.value

    # Another authority's CA: the signature chain does not reach it.
    stranger = make_tsa(tmp_path / "stranger")
    error = refused(doc, verify.TsaTrust.from_pem(stranger.ca_pem.read_bytes()))
    assert (error.part, error.rule) == ("timestamps[0].response", "tsa-signature")
    # A header of the link left out: the chain breaks.
    short = copy.deepcopy(doc)
    del short["timestamps"][0]["headers"][3]
    error = refused(short)
    assert (error.part, error.rule) == ("timestamps[0].headers[3]", "tsa-chain")
    # A genuine token of the authority, over another block.
    other = copy.deepcopy(doc)
    other["timestamps"][0]["response"] = token_for(chain, tsa_dir, 9).hex()
    error = refused(other)
    assert (error.part, error.rule) == ("timestamps[0].response", "tsa-imprint")
    assert "another hash than block 10" in error.reason
    # One flipped byte of the token: not DER, or a signature that fails.
    flipped = copy.deepcopy(doc)
    raw = bytearray(bytes.fromhex(doc["timestamps"][0]["response"]))
    raw[-5] ^= 1
    flipped["timestamps"][0]["response"] = raw.hex()
    assert refused(flipped).rule in ("tsa-imprint", "tsa-signature")
    # A node with no timestamp recorded after the block says so.
    lone = receipts.build_receipt(chain.store, chain.genesis, tx_id)
    assert lone is not None and lone["timestamps"] == []
    chain.commit([chain.tx("maker", "item.register", {"item": "late"})])
    chain.commit([])
    late = chain.blocks[-2].txs[0].tx_id
    with pytest.raises(receipts.NoTimestamp):
        receipts.build_receipt(chain.store, chain.genesis, late, tsa=True)


@pytest.mark.parametrize(
    ("height", "token_height", "code"),
    [(10, 10, "already_stamped"), (10, 9, "wrong_block"), (1000, 10, "unknown_block")],
)
async def test_the_chain_records_only_a_first_true_token_of_a_recent_block(
    chain: CertifiedChain, tsa_dir: LocalTsa, height: int, token_height: int, code: str
) -> None:
    await stamped_chain(chain, tsa_dir)
    token = token_for(chain, tsa_dir, token_height)
    tx = chain.tx("maker", "checkpoint.timestamp", {"height": height, "response": token})
    block = chain.commit([tx])
    chain.commit([])
    result = chain.store.get_result(block.height, 0)
    assert result is not None and (result["ok"], result["code"]) == (False, code)
