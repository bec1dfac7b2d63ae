"""Every change to a receipt or a state proof is rejected, with a reason naming the part.

Flips: every byte of every binary field, every other field, every character of the JSON
text. Swaps: a valid part from somewhere it does not belong (certificate of another height,
a real signature over another message, another block's header, one signature repeated,
another transaction's path or result, another key's proof). Signing sets: fewer than quorum,
keys outside the validator set, another chain_id.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from proofkit import CertifiedChain, open_chain, sign_certificate, validator_keys

from node.daemon.api import receipts
from node.ledger import apps, crypto
from node.proofs import jsondoc, verify

MAX_MEMO_ENTRIES = 200_000
Path_ = tuple[str | int, ...]


@pytest.fixture(autouse=True)
def memoised_signature_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ed25519 verification is a pure function: memoise it so that the parts a mutation did
    not touch are not re-verified thousands of times. Only the speed changes."""
    real = crypto.verify
    memo: dict[tuple[bytes, bytes, bytes], bool] = {}

    def verify_memoised(public_key: bytes, signature: bytes, message: bytes) -> bool:
        key = (public_key, signature, message)
        if key not in memo:
            if len(memo) >= MAX_MEMO_ENTRIES:
                memo.clear()
            memo[key] = real(public_key, signature, message)
        return memo[key]

    monkeypatch.setattr(crypto, "verify", verify_memoised)


def receipt_doc(chain: CertifiedChain, block: int, index: int) -> dict[str, Any]:
    doc = receipts.build_receipt(chain.store, chain.genesis, chain.blocks[block].txs[index].tx_id)
    assert doc is not None
    return json.loads(verify.dump_json(doc))


def state_doc(chain: CertifiedChain, key: bytes) -> dict[str, Any]:
    snapshot = receipts.read_state(chain.store, key)
    chain.commit([])
    doc = receipts.finish_state_proof(chain.store, chain.genesis, snapshot)
    assert doc is not None
    return json.loads(verify.dump_json(doc))


def rejected(doc: object, chain: CertifiedChain) -> verify.VerificationError:
    with pytest.raises(verify.VerificationError) as info:
        verify.verify_document(doc, chain.genesis)
    assert info.value.part and info.value.reason
    return info.value


def leaves(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, dict):
        for k in sorted(value):
            yield from leaves(value[k], (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))


def replaced(doc: Any, path: Path_, new: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def is_hex(value: object) -> bool:
    return isinstance(value, str) and value != "" and jsondoc._HEX_RE.fullmatch(value) is not None


def mutations(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every single-field change: each byte of each hex field, each other scalar, each list
    and map shape."""
    for path, value in leaves(doc):
        where = "/".join(map(str, path)) or "<root>"
        if is_hex(value):
            raw = bytes.fromhex(value)
            for i in range(len(raw)):
                flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
                yield f"{where} byte {i}", replaced(doc, path, flipped.hex())
            yield f"{where} truncated", replaced(doc, path, raw[:-1].hex())
            yield f"{where} extended", replaced(doc, path, (raw + b"\x00").hex())
            if value.upper() != value:
                yield f"{where} upper case", replaced(doc, path, value.upper())
        elif isinstance(value, bool):
            yield f"{where} negated", replaced(doc, path, not value)
        elif isinstance(value, int):
            yield f"{where} + 1", replaced(doc, path, value + 1)
            yield f"{where} as string", replaced(doc, path, str(value))
            if value > 0:
                yield f"{where} - 1", replaced(doc, path, value - 1)
        elif isinstance(value, str):
            yield f"{where} edited", replaced(doc, path, value + "x")
            if value:
                yield f"{where} emptied", replaced(doc, path, "")
        elif value is None and path:
            yield f"{where} filled", replaced(doc, path, "00" * 32)
        elif isinstance(value, list) and path:
            filler = copy.deepcopy(value[-1]) if value else "00" * 32
            yield f"{where} appended", replaced(doc, path, [*value, filler])
            if value:
                yield f"{where} dropped last", replaced(doc, path, value[:-1])
            if len({json.dumps(v) for v in value}) > 1:
                yield f"{where} reversed", replaced(doc, path, value[::-1])
        if isinstance(value, dict):
            for key in sorted(value):
                smaller = {k: v for k, v in value.items() if k != key}
                yield (
                    f"{where} without {key}",
                    smaller if not path else replaced(doc, path, smaller),
                )
            bigger = {**value, "extra": 1}
            yield f"{where} with extra", bigger if not path else replaced(doc, path, bigger)


def check_all_mutations_rejected(doc: dict[str, Any], chain: CertifiedChain) -> Counter[str]:
    verify.verify_document(doc, chain.genesis)  # the untouched document verifies
    parts: Counter[str] = Counter()
    count = 0
    for name, mutated in mutations(doc):
        try:
            verify.verify_document(mutated, chain.genesis)
        except verify.VerificationError as error:
            assert error.reason, name
            parts[error.part.split(".")[0].split("[")[0]] += 1
        else:
            pytest.fail(f"accepted after change: {name}")
        count += 1
    assert count > 500
    return parts


def test_every_field_flip_of_a_receipt_is_rejected(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 2, 1)  # a transfer in a block of five: non-empty paths
    assert doc["tx_proof"] and doc["result_proof"]
    parts = check_all_mutations_rejected(doc, busy_chain)
    for part in ("headers", "tx", "tx_proof", "result", "result_proof", "statement"):
        assert parts[part] > 0, parts


@pytest.mark.parametrize("key", [apps.item_key("pallet-1"), apps.notary_key(b"\x44" * 32)])
def test_every_field_flip_of_a_state_proof_is_rejected(
    busy_chain: CertifiedChain, key: bytes
) -> None:
    doc = state_doc(busy_chain, key)
    parts = check_all_mutations_rejected(doc, busy_chain)
    for part in ("headers", "proof", "key", "statement", "validators"):
        assert parts[part] > 0, parts


@pytest.mark.parametrize("kind", ["receipt", "state"])
def test_every_character_flip_of_the_json_text_is_rejected(
    busy_chain: CertifiedChain, kind: str
) -> None:
    if kind == "receipt":
        doc = receipt_doc(busy_chain, 1, 3)
    else:
        doc = state_doc(busy_chain, apps.record_key("spec", "p1"))
    text = verify.dump_json(doc).encode()
    verify.verify_bytes(text, busy_chain.genesis)
    for i in range(len(text)):
        flipped = text[:i] + bytes([text[i] ^ 0x01]) + text[i + 1 :]
        with pytest.raises(verify.VerificationError):
            verify.verify_bytes(flipped, busy_chain.genesis)


# --- swaps of valid parts that do not belong --------------------------------------------------


def cert_wire(doc: dict[str, Any], i: int) -> list[Any]:
    """A timed certificate: [2, height, view, digest, [[index, signature, time_ms], ...]]."""
    wire = msgpack.unpackb(bytes.fromhex(doc["headers"][i]["certificate"]), raw=False)
    assert wire[0] == 2
    return list(wire)


def with_cert(doc: dict[str, Any], i: int, wire: list[Any]) -> dict[str, Any]:
    packed = msgpack.packb(wire, use_bin_type=True)
    return replaced(doc, ("headers", i, "certificate"), packed.hex())


def test_certificate_from_another_height(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    other = receipt_doc(busy_chain, 0, 0)
    swapped = replaced(doc, ("headers", 0, "certificate"), other["headers"][0]["certificate"])
    assert "certifies height 1" in rejected(swapped, busy_chain).reason
    swapped = replaced(doc, ("headers", 0, "certificate"), doc["headers"][1]["certificate"])
    assert rejected(swapped, busy_chain).part == "headers[0].certificate"


def test_real_signature_over_another_message(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    wire = cert_wire(doc, 0)
    wire[4][1][1] = cert_wire(doc, 1)[4][1][1]  # validator 1's signature for block h + 1
    error = rejected(with_cert(doc, 0, wire), busy_chain)
    assert error.part == "headers[0].certificate" and "validator 1" in error.reason


def test_one_signature_repeated_to_quorum(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    wire = cert_wire(doc, 0)
    first = wire[4][0]
    repeated = [*wire[:4], [first, first, first]]
    assert "strictly increasing" in rejected(with_cert(doc, 0, repeated), busy_chain).reason
    relabelled = [*wire[:4], [[0, first[1], first[2]], [1, first[1], first[2]], [2, *first[1:]]]]
    assert "bad signature" in rejected(with_cert(doc, 0, relabelled), busy_chain).reason


def test_another_blocks_header(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    later = receipt_doc(busy_chain, 2, 0)
    one = replaced(doc, ("headers", 0), later["headers"][0])
    assert rejected(one, busy_chain).part == "headers[1]"  # the hash chain breaks
    both = replaced(doc, ("headers",), later["headers"])
    assert rejected(both, busy_chain).part == "tx_proof"  # a certified pair, wrong block


def test_a_fork_header_with_its_own_quorum(tmp_path: Path, busy_chain: CertifiedChain) -> None:
    """Same validators, same height, another block (what equivocating validators could sign)."""
    fork = open_chain(tmp_path / "fork")
    try:
        fork.commit([fork.tx("maker", "item.register", {"item": "forked"})])
        fork.commit([])
        forged = receipt_doc(fork, 0, 0)
    finally:
        fork.store.close()
    doc = receipt_doc(busy_chain, 0, 0)
    swapped = replaced(doc, ("headers", 0), forged["headers"][0])
    assert rejected(swapped, busy_chain).part in ("headers[1]", "tx_proof")


def test_another_transactions_path_and_result(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 2, 1)
    other = receipt_doc(busy_chain, 2, 3)
    assert rejected(replaced(doc, ("tx_proof",), other["tx_proof"]), busy_chain).part == "tx_proof"
    swapped = replaced(doc, ("result",), other["result"])
    assert "another transaction" in rejected(swapped, busy_chain).reason
    swapped = replaced(swapped, ("result_proof",), other["result_proof"])
    assert rejected(swapped, busy_chain).part == "result"
    swapped = replaced(doc, ("tx",), other["tx"])
    assert rejected(swapped, busy_chain).part == "tx_proof"


def test_state_proof_swaps(busy_chain: CertifiedChain) -> None:
    item = state_doc(busy_chain, apps.item_key("pallet-1"))
    absent = state_doc(busy_chain, apps.item_key("ghost"))
    as_absent = replaced(item, ("value",), None)
    assert rejected(as_absent, busy_chain).part == "proof"
    moved = replaced(absent, ("key",), item["key"])
    assert rejected(moved, busy_chain).part == "proof"
    other_proof = replaced(item, ("proof",), absent["proof"])
    assert rejected(other_proof, busy_chain).part == "proof"
    # A header from a later block after the state changed: the height no longer matches,
    # and adjusting the height leaves a proof against the wrong root.
    maker = busy_chain.accounts["maker"]
    busy_chain.commit([maker.tx("item.register", {"item": "late"})])
    later = state_doc(busy_chain, apps.item_key("late"))
    moved = replaced(item, ("headers",), later["headers"])
    assert rejected(moved, busy_chain).part == "height"
    moved = replaced(moved, ("height",), later["height"])
    assert rejected(moved, busy_chain).part == "proof"


# --- who signed -------------------------------------------------------------------------------


def test_fewer_than_quorum_signers(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    wire = cert_wire(doc, 0)
    chain_id = busy_chain.genesis.chain_id
    weak = sign_certificate(busy_chain.keys, chain_id, wire[1], wire[2], wire[3], (1, 3))
    swapped = replaced(doc, ("headers", 0, "certificate"), weak.to_bytes().hex())
    assert "2 signatures, a quorum of 4 is 3" in rejected(swapped, busy_chain).reason
    # A node whose stored certificate is short refuses to hand out the receipt at all.
    busy_chain.signers = (1, 3)
    block = busy_chain.commit([busy_chain.tx("maker", "item.register", {"item": "weak"})])
    busy_chain.signers = (0, 1, 2)
    busy_chain.commit([])
    with pytest.raises(receipts.EvidenceError, match="2 signatures, a quorum of 4 is 3"):
        receipts.build_receipt(busy_chain.store, busy_chain.genesis, block.txs[0].tx_id)


def test_keys_outside_the_validator_set(busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 1, 0)
    outsiders = validator_keys(seed_base=200)
    wire = cert_wire(doc, 0)
    forged = sign_certificate(
        outsiders, busy_chain.genesis.chain_id, wire[1], wire[2], wire[3], (0, 1, 2)
    )
    swapped = replaced(doc, ("headers", 0, "certificate"), forged.to_bytes().hex())
    assert "bad signature from validator 0" in rejected(swapped, busy_chain).reason
    keys = [*busy_chain.keys, *outsiders]
    beyond = sign_certificate(
        keys, busy_chain.genesis.chain_id, wire[1], wire[2], wire[3], (0, 1, 5)
    )
    swapped = replaced(doc, ("headers", 0, "certificate"), beyond.to_bytes().hex())
    assert "signer 5 is not a validator" in rejected(swapped, busy_chain).reason
    # The whole document re-signed by outsiders who list themselves as the validators.
    relisted = replaced(
        swapped,
        ("validators",),
        [{"name": f"v{i}", "public_key": k.public_key.hex()} for i, k in enumerate(outsiders)],
    )
    assert rejected(relisted, busy_chain).part == "validators[0]"


def test_another_chain_id(tmp_path: Path, busy_chain: CertifiedChain) -> None:
    other = open_chain(tmp_path / "other", chain_id="other-chain")
    try:
        other.commit([other.tx("maker", "item.register", {"item": "x"})])
        other.commit([])
        foreign = receipt_doc(other, 0, 0)
    finally:
        other.store.close()
    assert rejected(foreign, busy_chain).part == "chain_id"
    relabelled = replaced(foreign, ("chain_id",), busy_chain.genesis.chain_id)
    relabelled = replaced(relabelled, ("genesis_hash",), busy_chain.genesis.hash.hex())
    assert rejected(relabelled, busy_chain).part == "headers[0].header"
    # Our own header, but its votes signed for another chain id: the domain tag differs.
    doc = receipt_doc(busy_chain, 1, 0)
    wire = cert_wire(doc, 0)
    cross = sign_certificate(busy_chain.keys, "other-chain", wire[1], wire[2], wire[3], (0, 1, 2))
    swapped = replaced(doc, ("headers", 0, "certificate"), cross.to_bytes().hex())
    assert "bad signature" in rejected(swapped, busy_chain).reason


def test_a_different_genesis_is_refused(tmp_path: Path, busy_chain: CertifiedChain) -> None:
    doc = receipt_doc(busy_chain, 0, 0)
    stranger = open_chain(tmp_path / "stranger", seed_base=50)
    try:
        with pytest.raises(verify.VerificationError) as info:
            verify.verify_document(doc, stranger.genesis)
    finally:
        stranger.store.close()
    assert info.value.part == "genesis_hash"
