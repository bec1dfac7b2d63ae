"""Receipts and state proofs built from a node's Store (formats: docs/PROTOCOL.md 14-15).

Everything here is blocking (LMDB reads, hashing): the RPC layer runs it in a worker thread.
Each document is checked with the offline verifier (node/proofs) before it is handed out,
so a node never serves evidence that would not verify; the verifier also derives the
document's readable "statement".

Results and state are certified one block late (the header of block h+1 carries the results
root of block h and the state root after block h), so a document about block h needs block
h+1. While h+1 is not committed the builders return None and the caller waits (bounded: a
block comes at least every max_block_interval_ms).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from consensus import CommitCertificate
from node.daemon.store import Store, StoreError
from node.ledger import encoding
from node.ledger.genesis import Genesis
from node.ledger.merkle import inclusion_proof
from node.ledger.statetree import StateProof
from node.ledger.timestamps import TSA
from node.proofs.tsa import MAX_LINK_HEADERS
from node.proofs.verify import (
    FORMAT_RECEIPT,
    FORMAT_RECEIPT_V2,
    FORMAT_STATE,
    FORMAT_STATE_V2,
    VerificationError,
    verify_receipt,
    verify_state_document,
)


class NotCommitted(Exception):
    """The transaction asked for is not in the chain (yet)."""


class EvidenceError(Exception):
    """This node's own stored evidence does not verify: its data or certificates are bad."""


def genesis_fields(genesis: Genesis) -> dict[str, Any]:
    """The fields that tie a document to one genesis (the validator set signs under it)."""
    return {
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash.hex(),
        "validators": [
            {"name": v.name, "public_key": v.public_key.hex()} for v in genesis.validators
        ],
    }


def certified_header(payload: bytes, certificate: bytes) -> dict[str, str]:
    # The stored payload is canonical, so re-packing its header map gives the hashed bytes.
    header_obj = encoding.unpack_fast(payload)[0]
    return {"header": encoding.pack(header_obj).hex(), "certificate": certificate.hex()}


def epoch_changes(store: Store, up_to_height: int) -> list[dict[str, Any]]:
    """The chain of epoch changes from genesis to the epoch of block `up_to_height`: for each,
    the last header of the epoch before (certified by that epoch's set, naming the new set in
    next_validators_hash) and the new set's names and keys."""
    out = []
    for epoch in store.epochs()[1:]:
        if epoch.start_height > up_to_height:
            break
        evidence = store.read_block_evidence(epoch.start_height - 1)
        if evidence is None:
            raise StoreError(
                f"epoch {epoch.number} began at {epoch.start_height}; the block "
                "before it is missing"
            )
        out.append(
            {
                **certified_header(evidence[0], evidence[1]),
                "validators": [
                    {"name": v["name"], "public_key": v["public_key"].hex()}
                    for v in epoch.validators
                ],
            }
        )
    return out


def _timed(*certificates: bytes) -> bool:
    """Version 3 documents need timed certificates; blocks committed before commit votes
    carried a time keep their untimed ones, and their documents stay version 2."""
    return all(CommitCertificate.from_bytes(c).timed for c in certificates)


class NoTimestamp(Exception):
    """No RFC 3161 timestamp is recorded yet for a checkpoint at or after the block."""


def timestamp_chain(store: Store, after_height: int) -> list[dict[str, Any]]:
    """The "timestamps" entry from block after_height to the first time-stamped block at or
    after it: the headers in between (after after_height, up to the stamped one) and the
    recorded RFC 3161 response. NoTimestamp when none is recorded (yet)."""
    found = store._prefix_scan("state", TSA, struct.pack(">Q", after_height), 1)
    if not found:
        raise NoTimestamp(f"no timestamp is recorded at or after block {after_height} yet")
    record = found[0]
    stamped = store.get_height_by_hash(record["block_hash"])
    if stamped is None or stamped < after_height:
        raise StoreError("a recorded timestamp names a block this store lacks")
    if stamped - after_height > MAX_LINK_HEADERS:
        raise NoTimestamp(f"the next timestamp is more than {MAX_LINK_HEADERS} blocks later")
    headers = []
    for height in range(after_height + 1, stamped + 1):
        payload = store.get_block(height)
        if payload is None:
            raise StoreError(f"block {height} is missing")
        headers.append(encoding.pack(encoding.unpack_fast(payload)[0]).hex())
    return [{"headers": headers, "response": bytes(record["response"]).hex()}]


def build_receipt(
    store: Store, genesis: Genesis, tx_id: bytes, *, tsa: bool = False
) -> dict[str, Any] | None:
    """The receipt of a committed transaction, or None while block h+1 is not committed.
    tsa: add the RFC 3161 timestamp chain (NoTimestamp while there is none).

    Raises NotCommitted for an unknown or pending transaction."""
    location = store.get_tx_location(tx_id)
    if location is None:
        raise NotCommitted(f"transaction {tx_id.hex()} is not committed")
    height, index = location
    here = store.read_block_evidence(height)
    if here is None:
        raise StoreError(f"tx index points at block {height}, which this store lacks")
    after = store.read_block_evidence(height + 1)
    if after is None:
        return None
    payload, certificate, results = here
    raw_txs: list[bytes] = encoding.unpack_fast(payload)[1]
    if index >= len(raw_txs) or len(raw_txs) != len(results):
        raise StoreError(f"block {height} holds {len(raw_txs)} txs and {len(results)} results")
    timed = _timed(certificate, after[1])
    doc: dict[str, Any] = {
        "format": FORMAT_RECEIPT if timed else FORMAT_RECEIPT_V2,
        **genesis_fields(genesis),
        "epochs": epoch_changes(store, height + 1),
        "headers": [certified_header(payload, certificate), certified_header(after[0], after[1])],
        "tx": raw_txs[index].hex(),
        "index": index,
        "tx_proof": [h.hex() for h in inclusion_proof(raw_txs, index)],
        "result": results[index].hex(),
        "result_proof": [h.hex() for h in inclusion_proof(results, index)],
    }
    if timed:
        doc["timestamps"] = timestamp_chain(store, height + 1) if tsa else []
    elif tsa:
        raise NoTimestamp("timestamps need a version 3 receipt (a block with timed votes)")
    try:
        facts = verify_receipt(doc, genesis, check_statement=False)
    except VerificationError as exc:
        raise EvidenceError(f"receipt for {tx_id.hex()} does not verify: {exc}") from exc
    doc["statement"] = facts.statement
    return doc


@dataclass(frozen=True)
class StateSnapshot:
    """A key's value and proof against the state after block `height` (one LMDB snapshot)."""

    height: int
    key: bytes
    value: bytes | None
    proof: StateProof


def read_state(store: Store, key: bytes) -> StateSnapshot:
    head, value, proof = store.read_state_with_proof(key)
    return StateSnapshot(head.height, key, value, proof)


def proof_json(proof: StateProof) -> dict[str, Any]:
    obj = proof.to_obj()
    return {
        "depth": obj["depth"],
        "bitmap": obj["bitmap"].hex(),
        "siblings": [s.hex() for s in obj["siblings"]],
        "leaf": None if obj["leaf"] is None else [h.hex() for h in obj["leaf"]],
    }


def finish_state_proof(
    store: Store, genesis: Genesis, snapshot: StateSnapshot, *, tsa: bool = False
) -> dict[str, Any] | None:
    """The state proof document for `snapshot`, or None while block height+1 is not committed."""
    after = store.read_block_evidence(snapshot.height + 1)
    if after is None:
        return None
    timed = _timed(after[1])
    doc: dict[str, Any] = {
        "format": FORMAT_STATE if timed else FORMAT_STATE_V2,
        **genesis_fields(genesis),
        "epochs": epoch_changes(store, snapshot.height + 1),
        "headers": [certified_header(after[0], after[1])],
        "height": snapshot.height,
        "key": snapshot.key.hex(),
        "value": None if snapshot.value is None else snapshot.value.hex(),
        "proof": proof_json(snapshot.proof),
    }
    if timed:
        doc["timestamps"] = timestamp_chain(store, snapshot.height + 1) if tsa else []
    elif tsa:
        raise NoTimestamp("timestamps need a version 3 proof (a block with timed votes)")
    try:
        facts = verify_state_document(doc, genesis, check_statement=False)
    except VerificationError as exc:
        raise EvidenceError(f"state proof does not verify: {exc}") from exc
    doc["statement"] = facts.statement
    return doc
