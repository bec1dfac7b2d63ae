"""tests/vectors/documents.json: receipts and state proofs over a 4-validator test chain,
valid (format versions 1 to 3, one with an RFC 3161 timestamp from a local openssl TSA) and
tampered with the part and rule a verifier must give (docs/PROTOCOL.md sections 14-16, 20).
Verified by test_vectors.py rather than rebuilt: its timestamp token differs every run."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from vectorkit import CHAIN, FORMAT

from node.ledger import encoding
from node.proofs import verify

# --- documents --------------------------------------------------------------------------------


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def _flip(hex_text: str, at: int = -1) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[at] ^= 0x01
    return raw.hex()


def _invalid_receipts(chain: Any, doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    from proofkit import reheader

    cert = doc["headers"][0]["certificate"]
    wire = encoding.unpack(bytes.fromhex(cert))
    result = encoding.unpack(bytes.fromhex(doc["result"]))
    moved = copy.deepcopy(wire)
    moved[4][0][2] += 1
    return [
        ("format unknown", _set(doc, ("format",), "chain-receipt/9")),
        ("a key too many", {**doc, "memo": "trust me"}),
        ("upper-case hex", _set(doc, ("tx",), doc["tx"].upper())),
        ("another genesis hash", _set(doc, ("genesis_hash",), "00" * 32)),
        ("a validator renamed", _set(doc, ("validators", 0, "name"), "mallory")),
        ("header byte flipped",
         _set(doc, ("headers", 0, "header"), _flip(doc["headers"][0]["header"]))),
        ("certificate signature flipped", _set(doc, ("headers", 0, "certificate"), _flip(cert))),
        ("a signer's time moved",
         _set(doc, ("headers", 0, "certificate"), encoding.pack(moved).hex())),
        ("fewer than a quorum", _set(doc, ("headers", 0, "certificate"),
                                     encoding.pack([*wire[:4], wire[4][:2]]).hex())),
        ("proposer not the leader of the view", reheader(chain, doc, {0: {"proposer": 2}})),
        ("certificate view before the header's",
         reheader(chain, doc, {0: {"view": 1, "proposer": 1, "_cert_view": 0}})),
        ("block time not increasing", reheader(chain, doc, {1: {"timestamp_ms": 5}})),
        ("block 1 not after genesis", reheader(chain, doc, {0: {"prev_hash": b"\x07" * 32}})),
        ("hash chain broken", _set(doc, ("headers", 1), _header_of(chain, 3))),
        ("tx signature flipped", _set(doc, ("tx",), _flip(doc["tx"]))),
        ("index out of the block", _set(doc, ("index",), 9)),
        ("tx path with a stray hash", _set(doc, ("tx_proof",), ["11" * 32])),
        ("result path wrong", _set(doc, ("result_proof",), ["00" * 32])),
        ("result says ok with a refusal code",
         _set(doc, ("result",), encoding.pack({**result, "ok": False}).hex())),
        ("another chain_id", _set(doc, ("chain_id",), "other-chain")),
        ("statement edited", _set(doc, ("statement", "ok"), False)),
        ("certified time edited", _set(doc, ("statement", "certified_time", "median_ms"), 0)),
    ]  # fmt: skip


def _invalid_stamps(doc: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    if doc is None:
        return []
    links = doc["timestamps"][0]["headers"]
    response = doc["timestamps"][0]["response"]
    return [
        ("timestamp link header edited",
         _set(doc, ("timestamps", 0, "headers", 0), _flip(links[0]))),
        ("timestamp token of another block (last link header left out)",
         _set(doc, ("timestamps", 0, "headers"), links[:-1])),
        ("timestamp response truncated",
         _set(doc, ("timestamps", 0, "response"), response[: len(response) // 4 * 2])),
        ("timestamps in a version 2 receipt",
         _set(doc, ("format",), "chain-receipt/2")),
    ]  # fmt: skip


def _epoch_receipt(path: Path) -> dict[str, Any]:
    """A receipt of a transaction in epoch 1: governance removed validator v3, so the
    document carries the hand-over header certified by the genesis set."""
    from proofkit import open_chain

    from node.daemon.api import receipts

    chain = open_chain(path, chain_id=CHAIN)
    try:
        chain.commit(
            [
                chain.tx(
                    "maker", "gov.propose", {"action": {"type": "remove-validator", "name": "v3"}}
                )
            ]
        )
        chain.commit(
            [
                chain.tx(g, "gov.vote", {"proposal": 1, "approve": True})
                for g in ("shipper", "retailer")
            ]
        )
        for _ in range(5):
            if chain.store.epochs()[-1].number >= 1:
                break
            chain.commit([])
        else:
            raise AssertionError("epoch 1 did not begin")
        block = chain.commit([chain.tx("maker", "notary.anchor", {"digest": b"\x44" * 32})])
        chain.commit([])
        built = receipts.build_receipt(chain.store, chain.genesis, block.txs[0].tx_id)
        if built is None or len(built["epochs"]) != 1:
            raise AssertionError("the receipt does not carry one epoch change")
        return dict(json.loads(verify.dump_json(built)))
    finally:
        chain.store.close()


def _invalid_epochs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    change = doc["epochs"][0]
    return [
        ("the epoch change left out", _set(doc, ("epochs",), [])),
        ("the new set edited (a validator renamed)",
         _set(doc, ("epochs", 0, "validators", 0, "name"), "mallory")),
        ("the new set given back the removed validator",
         _set(doc, ("epochs", 0, "validators"), doc["validators"])),
        ("the hand-over header's certificate flipped",
         _set(doc, ("epochs", 0, "certificate"), _flip(change["certificate"]))),
    ]  # fmt: skip


def _header_of(chain: Any, height: int) -> dict[str, str]:
    from node.daemon.api.receipts import certified_header

    evidence = chain.store.read_block_evidence(height)
    return certified_header(evidence[0], evidence[1])


def _invalid_states(
    doc: dict[str, Any], absent: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("value swapped for absence", _set(doc, ("value",), None)),
        ("key of another item", _set(doc, ("key",), absent["key"])),
        ("proof of another key", _set(doc, ("proof",), absent["proof"])),
        ("height not certified by the header", _set(doc, ("height",), doc["height"] + 1)),
        ("bitmap with a bit past the depth", _set(doc, ("proof", "bitmap"), "ff" * 32)),
        ("statement edited", _set(doc, ("statement", "present"), False)),
    ]  # fmt: skip


def documents(tsa: Any = None) -> dict[str, Any]:
    """Valid and tampered receipts and state proofs over a 4-validator test chain; with
    `tsa` (a support.tsa.LocalTsa serving on 127.0.0.1) also a time-stamped receipt."""
    from proofkit import open_chain

    from node.daemon.api import receipts
    from node.ledger import apps
    from node.ledger.genesis import render_genesis

    with tempfile.TemporaryDirectory() as tmp:
        chain = open_chain(Path(tmp) / "db", chain_id=CHAIN)
        try:
            maker = "maker"
            chain.commit(
                [chain.tx(maker, "item.register", {"item": "pallet-1", "meta": {"sku": "P"}})]
            )
            chain.commit(
                [
                    chain.tx(maker, "record.put", {"ns": "spec", "key": "p1", "value": 1}),
                    chain.tx("shipper", "record.put", {"ns": "spec", "key": "p1", "value": 2}),
                ]
            )
            chain.commit([])
            docs: dict[str, dict[str, Any]] = {}

            def receipt(block: int, index: int, **kw: Any) -> dict[str, Any]:
                tx_id = chain.blocks[block].txs[index].tx_id
                built = receipts.build_receipt(chain.store, chain.genesis, tx_id, **kw)
                return dict(json.loads(verify.dump_json(built)))

            def state(key: bytes) -> dict[str, Any]:
                snapshot = receipts.read_state(chain.store, key)
                chain.commit([])
                built = receipts.finish_state_proof(chain.store, chain.genesis, snapshot)
                return dict(json.loads(verify.dump_json(built)))

            docs["receipt v3, block 1"] = receipt(0, 0)
            docs["receipt v3, refused by the rules (not_owner)"] = receipt(1, 1)
            docs["state proof v3, item present"] = state(apps.item_key("pallet-1"))
            docs["state proof v3, item absent"] = state(apps.item_key("ghost"))
            docs["state proof v3, account"] = state(b"acct/" + chain.accounts[maker].pub)
            chain.timed = False
            chain.commit([chain.tx(maker, "notary.anchor", {"digest": b"\x33" * 32})])
            chain.commit([])
            old = receipt(len(chain.blocks) - 2, 0)
            docs["receipt v2 (untimed certificates)"] = old
            docs["receipt v1 (no epoch chain)"] = {
                **{k: v for k, v in old.items() if k != "epochs"},
                "format": "chain-receipt/1",
            }
            chain.timed = True
            ca_pem = ""
            if tsa is not None:
                _stamp_checkpoint(chain, tsa)
                docs["receipt v3 with an RFC 3161 timestamp"] = receipt(0, 0, tsa=True)
                ca_pem = tsa.ca_pem.read_text()
            epoch_receipt = _epoch_receipt(Path(tmp) / "epochs")
            docs["receipt v3 after a validator-set change (epochs chain)"] = epoch_receipt
            valid = []
            for name, doc in docs.items():
                facts = verify.verify_document(doc, chain.genesis, tsa=_trust(ca_pem))
                valid.append({"name": name, "document": doc, "rules": list(facts.rules)})
            invalid = []
            stamped = docs.get("receipt v3 with an RFC 3161 timestamp")
            cases = (
                _invalid_receipts(chain, docs["receipt v3, block 1"])
                + _invalid_stamps(stamped)
                + _invalid_epochs(epoch_receipt)
                + _invalid_states(
                    docs["state proof v3, item present"], docs["state proof v3, item absent"]
                )
            )
            for name, doc in cases:
                try:
                    verify.verify_document(doc, chain.genesis)
                except verify.VerificationError as exc:
                    invalid.append(
                        {"name": name, "document": doc, "part": exc.part, "rule": exc.rule,
                         "reason": exc.reason}
                    )  # fmt: skip
                    continue
                raise AssertionError(f"invalid document vector {name!r} verifies")
            genesis_toml = render_genesis(chain.genesis)
        finally:
            chain.store.close()
    return {
        "format": FORMAT,
        "about": "receipts and state proofs over the genesis below: each valid one verifies "
        "(with the rules listed), each invalid one is refused naming `part` and `rule` "
        "(normative; `reason` is this implementation's wording). The timestamped receipt "
        "verifies against tsa_ca_pem.",
        "genesis_toml": genesis_toml,
        "tsa_ca_pem": ca_pem,
        "valid": valid,
        "invalid": invalid,
    }


def _trust(ca_pem: str) -> Any:
    return verify.TsaTrust.from_pem(ca_pem.encode()) if ca_pem else None


def _stamp_checkpoint(chain: Any, tsa: Any) -> None:
    """Commit up to the next checkpoint (a multiple of 10), time-stamp it, record it."""
    from node.daemon.reactors.timestamps import fetch_token
    from node.ledger import timestamps

    while chain.store.head.height % 10:
        chain.commit([])
    height = chain.store.head.height
    payload = chain.store.get_block(height)
    header = encoding.pack(encoding.unpack(payload)[0])
    token = fetch_token(tsa.url, timestamps.request_for_header(header), 10.0)
    chain.commit([chain.tx("admin", "checkpoint.timestamp", {"height": height, "response": token})])
    chain.commit([])
