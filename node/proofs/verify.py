"""Offline verification of receipts and state proofs: no node, no LMDB, only the genesis.

A receipt or a state proof is one JSON document (docs/PROTOCOL.md sections 9-11). This module
checks every part of it against a genesis the verifier trusts, in a fixed order, and raises
VerificationError naming the first part that fails:

  1. the document's shape (strict JSON: exact key sets, lowercase hex, no floats, no
     duplicate keys);
  2. the binding to genesis: chain_id, genesis_hash and the validator list equal the genesis;
  3. the chain of epoch changes from genesis (version 2 documents): each change is the last
     header of an epoch, certified by that epoch's set, whose next_validators_hash names the
     next set; heights increase;
  4. each header: canonical encoding, chain_id, the epoch it names (version 2 headers) is the
     one the epoch chain gives for its height, its next_validators_hash is the set the chain
     gives for the height after it (so no change can be left out), and its commit
     certificate (canonical encoding, same height, digest = the header's hash, a quorum of
     distinct validators OF ITS OWN EPOCH, every signature valid over this chain's commit
     vote bytes);
  5. the hash chain between consecutive headers (height + 1, prev_hash = hash of the one
     before);
  6. the Merkle paths (RFC 6962 inclusion of the transaction and of its result; the sparse
     Merkle proof of the state key);
  7. the "statement": a readable restatement of what was proven, which must equal exactly
     what this module derives from the verified parts (so a reader of the raw JSON is not
     misled by an edited summary).

Nothing here reads a clock, the network or a database: the same document and genesis give
the same answer everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consensus.certificates import CertificateError, CommitCertificate, verify_certificate
from consensus.quorum import quorum_size
from node.ledger import crypto, encoding
from node.ledger.block import BlockHeader
from node.ledger.errors import BlockInvalid, TxInvalid
from node.ledger.genesis import Genesis
from node.ledger.governance import validator_set_hash
from node.ledger.merkle import verify_inclusion
from node.ledger.statetree import KEY_BITS, StateProof, verify_state_proof
from node.ledger.tx import Transaction, decode_tx, jsonable

# Version 2 documents carry "epochs", the chain of validator-set changes from genesis.
FORMAT_RECEIPT_V1 = "chain-receipt/1"
FORMAT_STATE_V1 = "chain-state-proof/1"
FORMAT_RECEIPT = "chain-receipt/2"
FORMAT_STATE = "chain-state-proof/2"
RECEIPT_FORMATS = (FORMAT_RECEIPT_V1, FORMAT_RECEIPT)
STATE_FORMATS = (FORMAT_STATE_V1, FORMAT_STATE)
MAX_EPOCH_CHANGES = 100_000
EPOCH_KEYS = frozenset({"header", "certificate", "validators"})
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_MERKLE_PATH = 64  # an RFC 6962 path over at most 2^64 leaves
MAX_STATE_KEY_BYTES = 1024
RESULT_KEYS = frozenset({"tx_id", "ok", "code", "reason", "data"})
COMMON_KEYS = frozenset({"format", "chain_id", "genesis_hash", "validators", "headers"})
RECEIPT_KEYS = COMMON_KEYS | {"tx", "index", "tx_proof", "result", "result_proof", "statement"}
STATE_KEYS = COMMON_KEYS | {"height", "key", "value", "proof", "statement"}
_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*")
_MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class VerificationError(Exception):
    """A document does not verify; `part` names the failed part, `reason` says why."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


@dataclass(frozen=True)
class KnownEpoch:
    number: int
    start_height: int
    names: tuple[str, ...]
    keys: tuple[bytes, ...]

    @property
    def set_hash(self) -> bytes:
        return validator_set_hash(
            [{"name": n, "public_key": k} for n, k in zip(self.names, self.keys, strict=True)]
        )


class EpochChain:
    """The validator sets from genesis on, as a document's epoch changes establish them."""

    def __init__(self, genesis: Genesis) -> None:
        self.epochs = [
            KnownEpoch(
                0,
                1,
                tuple(v.name for v in genesis.validators),
                tuple(v.public_key for v in genesis.validators),
            )
        ]

    def at(self, height: int) -> KnownEpoch:
        found = self.epochs[0]
        for epoch in self.epochs:
            if epoch.start_height <= height:
                found = epoch
        return found


@dataclass(frozen=True)
class CertifiedHeader:
    header: BlockHeader
    block_hash: bytes
    certificate: CommitCertificate
    signer_names: tuple[str, ...]


@dataclass(frozen=True)
class ReceiptFacts:
    tx: Transaction
    index: int
    result: dict[str, Any]
    block: CertifiedHeader
    next_block: CertifiedHeader
    statement: dict[str, Any]


@dataclass(frozen=True)
class StateFacts:
    key: bytes
    value: Any  # the decoded value, None when the proof shows absence
    height: int  # the state after executing block `height`
    certifying: CertifiedHeader  # block height + 1, whose state_root is the proven root
    statement: dict[str, Any]


Facts = ReceiptFacts | StateFacts


# --- strict JSON -------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise VerificationError("document", f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise VerificationError("document", f"number {text} is not an integer")


def _no_constant(text: str) -> Any:
    raise VerificationError("document", f"{text} is not allowed")


def load_json(data: bytes | str) -> Any:
    """Parse JSON strictly: no duplicate keys, no floats, no NaN/Infinity, bounded size."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VerificationError("document", f"larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, VerificationError):
            raise
        raise VerificationError("document", f"not valid JSON: {exc}") from None


def dump_json(doc: Any) -> str:
    """The one text form documents are written in (sorted keys, two-space indent)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _map(value: object, keys: frozenset[str], part: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError(part, "must be an object")
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise VerificationError(part, f"wrong keys (missing {missing}, unexpected {extra})")
    return value


def _hex(value: object, part: str, length: int | None = None, max_bytes: int = 0) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise VerificationError(part, "must be lowercase hex with an even number of digits")
    if max_bytes and len(value) > 2 * max_bytes:
        raise VerificationError(part, f"longer than {max_bytes} bytes")
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise VerificationError(part, f"must be {length} bytes, got {len(raw)}")
    return raw


def _int(value: object, part: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VerificationError(part, f"must be an integer >= {minimum}")
    return value


def _hash_list(value: object, part: str, max_count: int) -> list[bytes]:
    if not isinstance(value, list) or len(value) > max_count:
        raise VerificationError(part, f"must be a list of at most {max_count} hashes")
    return [_hex(v, f"{part}[{i}]", 32) for i, v in enumerate(value)]


# --- the parts ------------------------------------------------------------------------------


def _check_genesis_binding(doc: dict[str, Any], genesis: Genesis) -> None:
    if doc["chain_id"] != genesis.chain_id:
        raise VerificationError(
            "chain_id",
            f"document is for chain {doc['chain_id']!r}, the genesis is {genesis.chain_id!r}",
        )
    if _hex(doc["genesis_hash"], "genesis_hash", 32) != genesis.hash:
        raise VerificationError("genesis_hash", "does not match the genesis file's hash")
    validators = doc["validators"]
    if not isinstance(validators, list) or len(validators) != len(genesis.validators):
        raise VerificationError(
            "validators", f"must list the genesis's {len(genesis.validators)} validators in order"
        )
    for i, (entry, info) in enumerate(zip(validators, genesis.validators, strict=True)):
        entry = _map(entry, frozenset({"name", "public_key"}), f"validators[{i}]")
        if entry["name"] != info.name or _hex(entry["public_key"], f"validators[{i}]") != (
            info.public_key
        ):
            raise VerificationError(f"validators[{i}]", "is not the genesis's validator")


def _certified_header(
    entry: object, part: str, genesis: Genesis, epochs: EpochChain, *, check_next: bool
) -> CertifiedHeader:
    """check_next: the document also covers the height after this header, so the epoch
    chain knows the set that signs it and next_validators_hash must name that set."""
    entry = _map(entry, frozenset({"header", "certificate"}), part)
    raw_header = _hex(entry["header"], f"{part}.header", max_bytes=4096)
    try:
        header = BlockHeader.from_obj(encoding.unpack(raw_header))
    except (encoding.EncodingError, BlockInvalid) as exc:
        raise VerificationError(f"{part}.header", f"not a canonical block header: {exc}") from None
    if header.chain_id != genesis.chain_id:
        raise VerificationError(f"{part}.header", f"is for chain {header.chain_id!r}")
    block_hash = header.hash()
    raw_cert = _hex(entry["certificate"], f"{part}.certificate", max_bytes=1 << 20)
    try:
        certificate = CommitCertificate.from_bytes(raw_cert)
    except CertificateError as exc:
        raise VerificationError(f"{part}.certificate", exc.reason) from None
    if certificate.to_bytes() != raw_cert:
        raise VerificationError(f"{part}.certificate", "is not canonically encoded")
    if certificate.height != header.height:
        raise VerificationError(
            f"{part}.certificate",
            f"certifies height {certificate.height}, the header is height {header.height}",
        )
    if certificate.digest != block_hash:
        raise VerificationError(f"{part}.certificate", "certifies another block (digest differs)")
    epoch = epochs.at(header.height)
    if header.version >= 2:
        if header.epoch != epoch.number:
            raise VerificationError(
                f"{part}.header",
                f"names epoch {header.epoch}, but the epoch chain gives epoch {epoch.number} "
                f"for height {header.height} (an epoch change is missing from the document?)",
            )
        if check_next and header.next_validators_hash != epochs.at(header.height + 1).set_hash:
            raise VerificationError(
                f"{part}.header",
                "its next_validators_hash is not the set the epoch chain gives for the next "
                "height (an epoch change is missing from the document?)",
            )
    elif len(epochs.epochs) > 1 and epoch.number > 0:
        raise VerificationError(f"{part}.header", "a version 1 header in a later epoch")
    try:
        verify_certificate(certificate, genesis.chain_id, epoch.keys, crypto.verify)
    except CertificateError as exc:
        raise VerificationError(
            f"{part}.certificate", f"{exc.reason} (epoch {epoch.number}'s set)"
        ) from None
    names = tuple(epoch.names[i] for i in certificate.signers())
    return CertifiedHeader(header, block_hash, certificate, names)


def _epoch_chain(doc: dict[str, Any], genesis: Genesis) -> EpochChain:
    """Walk the document's epoch changes from genesis: each is the last header of an epoch,
    certified by that epoch's set, naming the next set in next_validators_hash."""
    chain = EpochChain(genesis)
    entries = doc.get("epochs", [])
    if not isinstance(entries, list) or len(entries) > MAX_EPOCH_CHANGES:
        raise VerificationError("epochs", f"must be a list of at most {MAX_EPOCH_CHANGES}")
    for i, raw in enumerate(entries):
        part = f"epochs[{i}]"
        entry = _map(raw, EPOCH_KEYS, part)
        current = chain.epochs[-1]
        validators = entry["validators"]
        if not isinstance(validators, list) or not validators:
            raise VerificationError(f"{part}.validators", "must list the new set")
        names, keys = [], []
        for j, v in enumerate(validators):
            v = _map(v, frozenset({"name", "public_key"}), f"{part}.validators[{j}]")
            if not isinstance(v["name"], str):
                raise VerificationError(f"{part}.validators[{j}].name", "must be a string")
            names.append(v["name"])
            keys.append(_hex(v["public_key"], f"{part}.validators[{j}].public_key", 32))
        if len(set(keys)) != len(keys):
            raise VerificationError(f"{part}.validators", "two validators share a key")
        new = KnownEpoch(current.number + 1, 0, tuple(names), tuple(keys))
        header_part = {"header": entry["header"], "certificate": entry["certificate"]}
        # The hand-over header: certified by the old set, naming the new one.
        certified = _certified_header(header_part, part, genesis, chain, check_next=False)
        header = certified.header
        if header.version < 2 or header.height + 1 <= current.start_height:
            raise VerificationError(part, "is not a later version-2 header")
        if header.next_validators_hash != new.set_hash:
            raise VerificationError(part, "its next_validators_hash is not the listed set")
        if new.set_hash == current.set_hash:
            raise VerificationError(part, "changes nothing: the set is the one before it")
        chain.epochs.append(KnownEpoch(new.number, header.height + 1, new.names, new.keys))
    return chain


def _certified_chain(doc: dict[str, Any], genesis: Genesis, count: int) -> list[CertifiedHeader]:
    entries = doc["headers"]
    if not isinstance(entries, list) or len(entries) != count:
        raise VerificationError("headers", f"must hold exactly {count} certified header(s)")
    epochs = _epoch_chain(doc, genesis)
    chain = [
        _certified_header(e, f"headers[{i}]", genesis, epochs, check_next=i + 1 < count)
        for i, e in enumerate(entries)
    ]
    for i in range(1, count):
        before, after = chain[i - 1], chain[i]
        if after.header.height != before.header.height + 1:
            raise VerificationError(f"headers[{i}]", "does not follow the header before it")
        if after.header.prev_hash != before.block_hash:
            raise VerificationError(
                f"headers[{i}]", "prev_hash is not the hash of the header before it"
            )
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
    return result


def verify_receipt(doc: object, genesis: Genesis, *, check_statement: bool = True) -> ReceiptFacts:
    keys = RECEIPT_KEYS if check_statement else RECEIPT_KEYS - {"statement"}
    if isinstance(doc, dict) and doc.get("format") == FORMAT_RECEIPT:
        keys = keys | {"epochs"}
    doc = _map(doc, keys, "receipt")
    if doc["format"] not in RECEIPT_FORMATS:
        raise VerificationError("format", f"expected one of {RECEIPT_FORMATS}")
    _check_genesis_binding(doc, genesis)
    block, next_block = _certified_chain(doc, genesis, 2)
    header = block.header
    raw_tx = _hex(doc["tx"], "tx", max_bytes=genesis.consensus.max_tx_bytes)
    try:
        tx = decode_tx(raw_tx, max_tx_bytes=genesis.consensus.max_tx_bytes)
    except TxInvalid as exc:
        raise VerificationError("tx", exc.message) from None
    if tx.chain_id != genesis.chain_id:
        raise VerificationError("tx", f"is for chain {tx.chain_id!r}")
    if not tx.signature_ok():
        raise VerificationError("tx", "the sender's signature does not verify")
    index = _int(doc["index"], "index")
    if index >= header.tx_count:
        raise VerificationError("index", f"block {header.height} holds {header.tx_count} txs")
    tx_proof = _hash_list(doc["tx_proof"], "tx_proof", MAX_MERKLE_PATH)
    if not verify_inclusion(raw_tx, index, header.tx_count, tx_proof, header.tx_root):
        raise VerificationError("tx_proof", f"does not lead to block {header.height}'s tx_root")
    raw_result = _hex(doc["result"], "result", max_bytes=1 << 20)
    result = _decode_result(raw_result)
    if result["tx_id"] != tx.tx_id:
        raise VerificationError("result", "is the result of another transaction")
    result_proof = _hash_list(doc["result_proof"], "result_proof", MAX_MERKLE_PATH)
    if not verify_inclusion(
        raw_result, index, header.tx_count, result_proof, next_block.header.results_root
    ):
        raise VerificationError(
            "result_proof", f"does not lead to block {next_block.header.height}'s results_root"
        )
    facts = ReceiptFacts(tx, index, result, block, next_block, {})
    statement = receipt_statement(facts)
    if check_statement:
        _check_statement(doc["statement"], statement)
    return ReceiptFacts(tx, index, result, block, next_block, statement)


def receipt_statement(facts: ReceiptFacts) -> dict[str, Any]:
    tx, header = facts.tx, facts.block.header
    return _normalise(
        {
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
    )


# --- state proofs ---------------------------------------------------------------------------


def _parse_state_proof(value: object) -> StateProof:
    obj = _map(value, frozenset({"depth", "bitmap", "siblings", "leaf"}), "proof")
    leaf = obj["leaf"]
    if leaf is not None and not (isinstance(leaf, list) and len(leaf) == 2):
        raise VerificationError("proof.leaf", "must be null or [key_hash, value_hash]")
    parsed = {
        "depth": _int(obj["depth"], "proof.depth"),
        "bitmap": _hex(obj["bitmap"], "proof.bitmap", max_bytes=KEY_BITS // 8),
        "siblings": _hash_list(obj["siblings"], "proof.siblings", KEY_BITS),
        "leaf": None if leaf is None else _hash_list(leaf, "proof.leaf", 2),
    }
    try:
        return StateProof.from_obj(parsed)
    except ValueError as exc:
        raise VerificationError("proof", str(exc)) from None


def verify_state_document(
    doc: object, genesis: Genesis, *, check_statement: bool = True
) -> StateFacts:
    keys = STATE_KEYS if check_statement else STATE_KEYS - {"statement"}
    if isinstance(doc, dict) and doc.get("format") == FORMAT_STATE:
        keys = keys | {"epochs"}
    doc = _map(doc, keys, "state proof")
    if doc["format"] not in STATE_FORMATS:
        raise VerificationError("format", f"expected one of {STATE_FORMATS}")
    _check_genesis_binding(doc, genesis)
    (certifying,) = _certified_chain(doc, genesis, 1)
    height = _int(doc["height"], "height")
    if height + 1 != certifying.header.height:
        raise VerificationError(
            "height",
            f"the state after block {height} is certified by block {height + 1}, "
            f"not by block {certifying.header.height}",
        )
    key = _hex(doc["key"], "key", max_bytes=MAX_STATE_KEY_BYTES)
    if not key:
        raise VerificationError("key", "must not be empty")
    raw_value = None if doc["value"] is None else _hex(doc["value"], "value", max_bytes=1 << 22)
    proof = _parse_state_proof(doc["proof"])
    if not verify_state_proof(certifying.header.state_root, key, raw_value, proof):
        what = "absence" if raw_value is None else "this value"
        raise VerificationError(
            "proof", f"does not show {what} under block {certifying.header.height}'s state_root"
        )
    value = None
    if raw_value is not None:
        try:
            value = encoding.unpack(raw_value)
        except encoding.EncodingError as exc:
            raise VerificationError("value", f"not canonical msgpack: {exc}") from None
    facts = StateFacts(key, value, height, certifying, {})
    statement = state_statement(facts)
    if check_statement:
        _check_statement(doc["statement"], statement)
    return StateFacts(key, value, height, certifying, statement)


def describe_key(key: bytes) -> dict[str, str]:
    """What a state key names (docs/PROTOCOL.md section 6)."""
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
    return _normalise(
        {
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
    )


# --- entry points ---------------------------------------------------------------------------


def verify_document(doc: object, genesis: Genesis) -> Facts:
    """Verify a parsed receipt or state proof (by its "format"); raise VerificationError."""
    if not isinstance(doc, dict):
        raise VerificationError("document", "must be a JSON object")
    kind = doc.get("format")
    if kind in RECEIPT_FORMATS:
        return verify_receipt(doc, genesis)
    if kind in STATE_FORMATS:
        return verify_state_document(doc, genesis)
    raise VerificationError("format", f"unknown format {kind!r}")


def verify_bytes(data: bytes, genesis: Genesis) -> Facts:
    return verify_document(load_json(data), genesis)


def _normalise(value: dict[str, Any]) -> dict[str, Any]:
    """The statement as it reads back from JSON (tuples become lists, and so on)."""
    normal: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True))
    return normal


def _check_statement(given: object, derived: dict[str, Any]) -> None:
    try:
        given_text = json.dumps(given, sort_keys=True)
    except (TypeError, ValueError):
        raise VerificationError("statement", "is not plain JSON") from None
    if given_text != json.dumps(derived, sort_keys=True):
        raise VerificationError("statement", "does not match what the verified parts show")


def utc_text(timestamp_ms: int) -> str:
    if not 0 <= timestamp_ms <= _MAX_TIME_MS:
        return f"{timestamp_ms} ms since 1970 (out of calendar range)"
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp_ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


# --- what a person reads --------------------------------------------------------------------


def account_names(genesis: Genesis) -> dict[str, str]:
    """Names of the genesis accounts by public key hex (accounts granted later show as hex)."""
    return {a.public_key.hex(): a.name for a in genesis.accounts}


def who(account_hex: str, names: dict[str, str]) -> str:
    name = names.get(account_hex)
    short = account_hex[:16] + "…"
    return f"{name} ({short})" if name else short


def describe_tx(statement: dict[str, Any], names: dict[str, str]) -> str:
    """One sentence for what a transaction asked for."""
    kind, a = statement["type"], statement["args"]
    if kind == "record.put":
        return f"set record {a['ns']}/{a['key']} to {json.dumps(a['value'])}"
    if kind == "item.register":
        parents = f", made from {', '.join(a['parents'])}" if a.get("parents") else ""
        return f"register item {a['item']!r}{parents}"
    if kind == "item.transfer":
        return f"hand custody of item {a['item']!r} to {who(a['to'], names)}"
    if kind == "item.event":
        where = f" at {a['location']}" if a.get("location") else ""
        return f"record event {a['kind']!r} on item {a['item']!r}{where}"
    if kind == "notary.anchor":
        return f"anchor document digest {a['digest']}"
    if kind == "account.grant":
        return f"grant roles {', '.join(a['roles'])} to account {who(a['account'], names)}"
    if kind == "account.revoke":
        return f"revoke account {who(a['account'], names)}"
    return str(kind)


def _signers(names: Sequence[str], genesis: Genesis) -> str:
    n = len(genesis.validators)
    return f"{', '.join(names)} ({len(names)} of {n} validators; quorum {quorum_size(n)})"


def summary_lines(facts: Facts, genesis: Genesis) -> list[str]:
    names = account_names(genesis)
    s = facts.statement
    if isinstance(facts, ReceiptFacts):
        outcome = "ok" if s["ok"] else f"refused by the rules: {s['code']} ({s['reason']})"
        lines = [
            "RECEIPT VERIFIED",
            f"  transaction  {s['tx_id']}",
            f"  asked        {describe_tx(s, names)}",
            f"  sender       {who(s['sender'], names)}, nonce {s['nonce']}",
            f"  result       {outcome}",
            f"  recorded     block {s['height']}, position {s['index']}, at {s['time_utc']}",
            f"  block hash   {s['block_hash']}",
            f"  signed by    {_signers(s['committed_by'], genesis)}",
            f"  result in    block {s['height'] + 1}, signed by "
            f"{_signers(s['results_certified_by'], genesis)}",
        ]
    else:
        lines = [
            "STATE PROOF VERIFIED",
            f"  fact         {describe_state(s, names)}",
            f"  as of        the state after block {s['as_of_height']}",
            f"  certified by block {s['certified_by_block']} at {s['time_utc']}, signed by "
            f"{_signers(s['certified_by'], genesis)}",
        ]
    lines.append(f"  chain        {genesis.chain_id}, genesis {genesis.hash.hex()}")
    return lines


def describe_state(s: dict[str, Any], names: dict[str, str]) -> str:
    try:
        return _describe_state(s, names)
    except (KeyError, TypeError, AttributeError):  # a value of an unexpected shape
        return f"key {json.dumps(s['subject'])} holds {json.dumps(s['value'])}"


def _describe_state(s: dict[str, Any], names: dict[str, str]) -> str:
    subject, v, height = s["subject"], s["value"], s["as_of_height"]
    kind = subject["type"]
    if kind == "item":
        if v is None:
            return f"item {subject['item']!r} is not registered as of height {height}"
        return (
            f"item {subject['item']!r}: custodian is {who(v['custodian'], names)}, registered "
            f"at height {v['height']} by {who(v['registrant'], names)}, {v['steps']} step(s)"
        )
    if kind == "notary":
        if v is None:
            return f"digest {subject['digest']} was never anchored as of height {height}"
        return (
            f"digest {subject['digest']} was anchored at height {v['height']} "
            f"({utc_text(v['timestamp_ms'])}) by {who(v['submitter'], names)}"
        )
    if kind == "record":
        label = f"record {subject['ns']}/{subject['key']}"
        if v is None:
            return f"{label} does not exist as of height {height}"
        return (
            f"{label} = {json.dumps(v['value'])} (version {v['version']}, owner "
            f"{who(v['owner'], names)}, written at height {v['height']})"
        )
    if kind == "account":
        label = f"account {who(subject['account'], names)}"
        if v is None:
            return f"{label} does not exist as of height {height}"
        return f"{label}: roles {v['roles'] or 'none (revoked)'}, nonce {v['nonce']}"
    return f"key {subject['key']} is {'set' if v is not None else 'absent'}"
