"""Offline verification of receipts and state proofs: no node, no LMDB, only the genesis.

A receipt or a state proof is one JSON document (docs/PROTOCOL.md sections 14-17). This module
checks every part of it against a genesis the verifier trusts, in a fixed order, and raises
VerificationError naming the first part that fails:

  1. the document's shape (jsondoc.py: strict JSON, exact key sets per format version);
  2. the binding to genesis: chain_id, genesis_hash and the validator list;
  3. the chain of epoch changes and each certified header (epochs.py: encoding, epoch, next
     set, block 1 after genesis, proposer = view mod n, certificate view, quorum of valid
     commit votes of the block's own epoch), the hash chain and increasing block times;
  4. the Merkle paths (RFC 6962 inclusion of the transaction and its result; the sparse
     Merkle proof of the state key);
  5. version 3: the certified time of the block from its commit votes' clocks (timing.py),
     and any RFC 3161 timestamps (tsa.py; the authority checked when the reader gives its
     CA certificate);
  6. the "statement": a readable restatement of what was proven, which must equal exactly
     what this module derives from the verified parts.

Each check belongs to a rule of rules.py; the facts returned list the rules applied. Nothing
here reads a clock, the network or a database.
"""

from __future__ import annotations

from typing import Any

from node.ledger import encoding
from node.ledger.errors import TxInvalid
from node.ledger.genesis import Genesis
from node.ledger.merkle import verify_inclusion
from node.ledger.statetree import KEY_BITS, StateProof, verify_state_proof
from node.ledger.tx import decode_tx, jsonable
from node.proofs.describe import (
    account_names,
    describe_state,
    describe_tx,
    summary_lines,
    who,
)
from node.proofs.epochs import CertifiedHeader, EpochChain, KnownEpoch, certified_chain
from node.proofs.facts import Facts, ReceiptFacts, StateFacts
from node.proofs.jsondoc import (
    MAX_DOCUMENT_BYTES,
    VerificationError,
    dump_json,
    exact_map,
    hash_list,
    hex_bytes,
    load_json,
    normalise,
    uint,
    utc_text,
)
from node.proofs.jsondoc import check_statement as statement_matches
from node.proofs.rules import RuleLog
from node.proofs.timing import time_statement
from node.proofs.tsa import TsaTrust, check_timestamps

__all__ = [
    "FORMAT_RECEIPT",
    "FORMAT_STATE",
    "MAX_DOCUMENT_BYTES",
    "CertifiedHeader",
    "EpochChain",
    "Facts",
    "KnownEpoch",
    "ReceiptFacts",
    "StateFacts",
    "TsaTrust",
    "VerificationError",
    "account_names",
    "describe_key",
    "describe_state",
    "describe_tx",
    "dump_json",
    "load_json",
    "summary_lines",
    "utc_text",
    "verify_bytes",
    "verify_document",
    "verify_receipt",
    "verify_state_document",
    "who",
]

# Version 2 documents carry "epochs", the chain of validator-set changes from genesis;
# version 3 ones have timed certificates (certified time) and "timestamps" (RFC 3161).
FORMAT_RECEIPT_V1 = "chain-receipt/1"
FORMAT_RECEIPT_V2 = "chain-receipt/2"
FORMAT_RECEIPT = "chain-receipt/3"
FORMAT_STATE_V1 = "chain-state-proof/1"
FORMAT_STATE_V2 = "chain-state-proof/2"
FORMAT_STATE = "chain-state-proof/3"
RECEIPT_FORMATS = (FORMAT_RECEIPT_V1, FORMAT_RECEIPT_V2, FORMAT_RECEIPT)
STATE_FORMATS = (FORMAT_STATE_V1, FORMAT_STATE_V2, FORMAT_STATE)
MAX_MERKLE_PATH = 64  # an RFC 6962 path over at most 2^64 leaves
MAX_STATE_KEY_BYTES = 1024
RESULT_KEYS = frozenset({"tx_id", "ok", "code", "reason", "data"})
COMMON_KEYS = frozenset({"format", "chain_id", "genesis_hash", "validators", "headers"})
RECEIPT_KEYS = COMMON_KEYS | {"tx", "index", "tx_proof", "result", "result_proof", "statement"}
STATE_KEYS = COMMON_KEYS | {"height", "key", "value", "proof", "statement"}
# The keys each version adds to those of version 1.
_VERSION_KEYS = {1: frozenset(), 2: frozenset({"epochs"}), 3: frozenset({"epochs", "timestamps"})}


def format_version(doc: object, formats: tuple[str, ...]) -> int:
    kind = doc.get("format") if isinstance(doc, dict) else None
    return formats.index(kind) + 1 if kind in formats else 0


def _shape(doc: object, base: frozenset[str], formats: tuple[str, ...], part: str) -> int:
    version = format_version(doc, formats)
    if not version:
        if isinstance(doc, dict) and "format" in doc:
            raise VerificationError("format", f"expected one of {formats}")
        exact_map(doc, base, part)  # names the missing "format"
    exact_map(doc, base | _VERSION_KEYS[version], part)
    return version


def _check_genesis_binding(doc: dict[str, Any], genesis: Genesis, log: RuleLog) -> None:
    log.checked("genesis")
    if doc["chain_id"] != genesis.chain_id:
        raise VerificationError(
            "chain_id",
            f"document is for chain {doc['chain_id']!r}, the genesis is {genesis.chain_id!r}",
        )
    if hex_bytes(doc["genesis_hash"], "genesis_hash", 32) != genesis.hash:
        raise VerificationError("genesis_hash", "does not match the genesis file's hash")
    validators = doc["validators"]
    if not isinstance(validators, list) or len(validators) != len(genesis.validators):
        raise VerificationError(
            "validators", f"must list the genesis's {len(genesis.validators)} validators in order"
        )
    for i, (entry, info) in enumerate(zip(validators, genesis.validators, strict=True)):
        entry = exact_map(entry, frozenset({"name", "public_key"}), f"validators[{i}]")
        if entry["name"] != info.name or hex_bytes(entry["public_key"], f"validators[{i}]") != (
            info.public_key
        ):
            raise VerificationError(f"validators[{i}]", "is not the genesis's validator")


def _headers(
    doc: dict[str, Any], genesis: Genesis, version: int, count: int, log: RuleLog
) -> list[CertifiedHeader]:
    """Version 3 headers carry timed certificates; earlier versions untimed ones. An epoch
    change header of a version 3 document may be either (it may predate timed votes)."""
    timed = version >= 3
    chain = certified_chain(
        doc, genesis, count, log, timed=timed, epochs_timed=None if timed else False
    )
    if timed:
        log.checked("certified-time")
    return chain


# --- receipts -------------------------------------------------------------------------------


def _decode_result(raw: bytes) -> dict[str, Any]:
    try:
        result = encoding.unpack(raw)
    except encoding.EncodingError as exc:
        raise VerificationError("result", f"not canonical msgpack: {exc}") from None
    if not isinstance(result, dict) or set(result) != RESULT_KEYS:
        raise VerificationError("result", f"must be a map with keys {sorted(RESULT_KEYS)}")
    if not (
        isinstance(result["tx_id"], bytes)
        and isinstance(result["ok"], bool)
        and isinstance(result["code"], str)
        and isinstance(result["reason"], str)
        and isinstance(result["data"], dict)
    ):
        raise VerificationError("result", "a field has the wrong type")
    if result["ok"] != (result["code"] == "ok"):
        raise VerificationError("result", 'ok must be true exactly when code is "ok"')
    if result["ok"] and result["reason"]:
        raise VerificationError("result", "a successful result has an empty reason")
    return result


def verify_receipt(
    doc: object,
    genesis: Genesis,
    *,
    tsa: TsaTrust | None = None,
    check_statement: bool = True,
) -> ReceiptFacts:
    """Verify a receipt; check_statement=False when building one (the statement is added
    from the facts). tsa: the certificates trusted for RFC 3161 timestamps."""
    log = RuleLog()
    try:
        return _verify_receipt(doc, genesis, log, tsa, check_statement)
    except VerificationError as exc:
        exc.rule = exc.rule or log.current
        raise


def _verify_receipt(
    doc: object, genesis: Genesis, log: RuleLog, tsa: TsaTrust | None, check_statement: bool
) -> ReceiptFacts:
    keys = RECEIPT_KEYS if check_statement else RECEIPT_KEYS - {"statement"}
    log.checked("shape")
    version = _shape(doc, keys, RECEIPT_FORMATS, "receipt")
    if not isinstance(doc, dict):  # _shape refused anything else; this tells the type checker
        raise VerificationError("receipt", "must be a JSON object")
    _check_genesis_binding(doc, genesis, log)
    block, next_block = _headers(doc, genesis, version, 2, log)
    header = block.header
    max_tx = genesis.consensus.max_tx_bytes
    log.checked("tx")
    raw_tx = hex_bytes(doc["tx"], "tx", max_bytes=max_tx)
    try:
        tx = decode_tx(raw_tx, max_tx_bytes=max_tx)
    except TxInvalid as exc:
        raise VerificationError("tx", exc.message) from None
    if tx.chain_id != genesis.chain_id:
        raise VerificationError("tx", f"is for chain {tx.chain_id!r}")
    if not tx.signature_ok():
        raise VerificationError("tx", "the sender's signature does not verify")
    log.checked("tx-inclusion")
    index = uint(doc["index"], "index")
    if index >= header.tx_count:
        raise VerificationError("index", f"block {header.height} holds {header.tx_count} txs")
    tx_proof = hash_list(doc["tx_proof"], "tx_proof", MAX_MERKLE_PATH)
    if not verify_inclusion(raw_tx, index, header.tx_count, tx_proof, header.tx_root):
        raise VerificationError("tx_proof", f"does not lead to block {header.height}'s tx_root")
    log.checked("result")
    raw_result = hex_bytes(doc["result"], "result", max_bytes=1 << 20)
    result = _decode_result(raw_result)
    if result["tx_id"] != tx.tx_id:
        raise VerificationError("result", "is the result of another transaction")
    log.checked("result-inclusion")
    result_proof = hash_list(doc["result_proof"], "result_proof", MAX_MERKLE_PATH)
    if not verify_inclusion(
        raw_result, index, header.tx_count, result_proof, next_block.header.results_root
    ):
        raise VerificationError(
            "result_proof", f"does not lead to block {next_block.header.height}'s results_root"
        )
    stamps = (
        check_timestamps(doc["timestamps"], next_block, genesis, log, tsa) if version >= 3 else ()
    )
    facts = ReceiptFacts(tx, index, result, block, next_block, {})
    statement = receipt_statement(facts)
    if check_statement:
        log.checked("statement")
        statement_matches(doc["statement"], statement)
    return ReceiptFacts(tx, index, result, block, next_block, statement, log.ids, stamps)


def receipt_statement(facts: ReceiptFacts) -> dict[str, Any]:
    tx, header = facts.tx, facts.block.header
    statement = {
        "kind": "receipt",
        "tx_id": tx.tx_id.hex(),
        "type": tx.type,
        "sender": tx.sender.hex(),
        "nonce": tx.nonce,
        "args": jsonable(tx.args),
        "height": header.height,
        "index": facts.index,
        "block_hash": facts.block.block_hash.hex(),
        "timestamp_ms": header.timestamp_ms,
        "time_utc": utc_text(header.timestamp_ms),
        "ok": facts.result["ok"],
        "code": facts.result["code"],
        "reason": facts.result["reason"],
        "data": jsonable(facts.result["data"]),
        "committed_by": list(facts.block.signer_names),
        "results_certified_by": list(facts.next_block.signer_names),
    }
    if facts.block.certificate.timed:
        statement["certified_time"] = time_statement(facts.block)
    return normalise(statement)


# --- state proofs ---------------------------------------------------------------------------


def _parse_state_proof(value: object) -> StateProof:
    obj = exact_map(value, frozenset({"depth", "bitmap", "siblings", "leaf"}), "proof")
    leaf = obj["leaf"]
    if leaf is not None and not (isinstance(leaf, list) and len(leaf) == 2):
        raise VerificationError("proof.leaf", "must be null or [key_hash, value_hash]")
    parsed = {
        "depth": uint(obj["depth"], "proof.depth"),
        "bitmap": hex_bytes(obj["bitmap"], "proof.bitmap", max_bytes=KEY_BITS // 8),
        "siblings": hash_list(obj["siblings"], "proof.siblings", KEY_BITS),
        "leaf": None if leaf is None else hash_list(leaf, "proof.leaf", 2),
    }
    try:
        return StateProof.from_obj(parsed)
    except ValueError as exc:
        raise VerificationError("proof", str(exc)) from None


def verify_state_document(
    doc: object,
    genesis: Genesis,
    *,
    tsa: TsaTrust | None = None,
    check_statement: bool = True,
) -> StateFacts:
    log = RuleLog()
    try:
        return _verify_state(doc, genesis, log, tsa, check_statement)
    except VerificationError as exc:
        exc.rule = exc.rule or log.current
        raise


def _verify_state(
    doc: object, genesis: Genesis, log: RuleLog, tsa: TsaTrust | None, check_statement: bool
) -> StateFacts:
    keys = STATE_KEYS if check_statement else STATE_KEYS - {"statement"}
    log.checked("shape")
    version = _shape(doc, keys, STATE_FORMATS, "state proof")
    if not isinstance(doc, dict):  # _shape refused anything else; this tells the type checker
        raise VerificationError("state proof", "must be a JSON object")
    _check_genesis_binding(doc, genesis, log)
    (certifying,) = _headers(doc, genesis, version, 1, log)
    log.checked("state-height")
    height = uint(doc["height"], "height")
    if height + 1 != certifying.header.height:
        raise VerificationError(
            "height",
            f"the state after block {height} is certified by block {height + 1}, "
            f"not by block {certifying.header.height}",
        )
    log.checked("state-inclusion")
    key = hex_bytes(doc["key"], "key", max_bytes=MAX_STATE_KEY_BYTES)
    if not key:
        raise VerificationError("key", "must not be empty")
    raw_value = (
        None if doc["value"] is None else hex_bytes(doc["value"], "value", max_bytes=1 << 22)
    )
    proof = _parse_state_proof(doc["proof"])
    if not verify_state_proof(certifying.header.state_root, key, raw_value, proof):
        what = "absence" if raw_value is None else "this value"
        raise VerificationError(
            "proof", f"does not show {what} under block {certifying.header.height}'s state_root"
        )
    value = None
    if raw_value is not None:
        log.checked("value")
        try:
            value = encoding.unpack(raw_value)
        except encoding.EncodingError as exc:
            raise VerificationError("value", f"not canonical msgpack: {exc}") from None
    stamps = (
        check_timestamps(doc["timestamps"], certifying, genesis, log, tsa) if version >= 3 else ()
    )
    facts = StateFacts(key, value, height, certifying, {})
    statement = state_statement(facts)
    if check_statement:
        log.checked("statement")
        statement_matches(doc["statement"], statement)
    return StateFacts(key, value, height, certifying, statement, log.ids, stamps)


def describe_key(key: bytes) -> dict[str, str]:
    """What a state key names (docs/PROTOCOL.md section 15)."""
    try:
        if key.startswith(b"item/"):
            return {"type": "item", "item": key[5:].decode()}
        if key.startswith(b"rec/") and b"\x00" in key[4:]:
            ns, _, name = key[4:].partition(b"\x00")
            return {"type": "record", "ns": ns.decode(), "key": name.decode()}
    except UnicodeDecodeError:
        pass
    if key.startswith(b"notary/") and len(key) == 7 + 32:
        return {"type": "notary", "digest": key[7:].hex()}
    if key.startswith(b"acct/") and len(key) == 5 + 32:
        return {"type": "account", "account": key[5:].hex()}
    return {"type": "other", "key": key.hex()}


def state_statement(facts: StateFacts) -> dict[str, Any]:
    header = facts.certifying.header
    statement = {
        "kind": "state",
        "subject": describe_key(facts.key),
        "present": facts.value is not None,
        "value": jsonable(facts.value),
        "as_of_height": facts.height,
        "certified_by_block": header.height,
        "block_hash": facts.certifying.block_hash.hex(),
        "timestamp_ms": header.timestamp_ms,
        "time_utc": utc_text(header.timestamp_ms),
        "certified_by": list(facts.certifying.signer_names),
    }
    if facts.certifying.certificate.timed:
        statement["certified_time"] = time_statement(facts.certifying)
    return normalise(statement)


# --- entry points ---------------------------------------------------------------------------


def verify_document(doc: object, genesis: Genesis, *, tsa: TsaTrust | None = None) -> Facts:
    """Verify a parsed receipt or state proof (by its "format"); raise VerificationError."""
    if not isinstance(doc, dict):
        raise VerificationError("document", "must be a JSON object", "shape")
    kind = doc.get("format")
    if kind in RECEIPT_FORMATS:
        return verify_receipt(doc, genesis, tsa=tsa)
    if kind in STATE_FORMATS:
        return verify_state_document(doc, genesis, tsa=tsa)
    raise VerificationError("format", f"unknown format {kind!r}", "shape")


def verify_bytes(data: bytes, genesis: Genesis, *, tsa: TsaTrust | None = None) -> Facts:
    try:
        doc = load_json(data)
    except VerificationError as exc:
        exc.rule = "shape"
        raise
    return verify_document(doc, genesis, tsa=tsa)
