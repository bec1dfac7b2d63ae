"""Receipts and state proofs built from a node's Store (formats: docs/PROTOCOL.md 9-10).

Everything here is blocking (LMDB reads, hashing): the RPC layer runs it in a worker thread.
Each document is checked with the offline verifier (node/verify.py) before it is handed out,
so a node never serves evidence that would not verify; the verifier also derives the
document's readable "statement".

Results and state are certified one block late (the header of block h+1 carries the results
root of block h and the state root after block h), so a document about block h needs block
h+1. While h+1 is not committed the builders return None and the caller waits (bounded: a
block comes at least every max_block_interval_ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.daemon.store import Store, StoreError
from node.ledger import encoding
from node.ledger.genesis import Genesis
from node.ledger.merkle import inclusion_proof
from node.ledger.statetree import StateProof
from node.proofs.verify import (
    FORMAT_RECEIPT,
    FORMAT_STATE,
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


def build_receipt(store: Store, genesis: Genesis, tx_id: bytes) -> dict[str, Any] | None:
    """The receipt of a committed transaction, or None while block h+1 is not committed.

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
    doc: dict[str, Any] = {
        "format": FORMAT_RECEIPT,
        **genesis_fields(genesis),
        "epochs": epoch_changes(store, height + 1),
        "headers": [certified_header(payload, certificate), certified_header(after[0], after[1])],
        "tx": raw_txs[index].hex(),
        "index": index,
        "tx_proof": [h.hex() for h in inclusion_proof(raw_txs, index)],
        "result": results[index].hex(),
        "result_proof": [h.hex() for h in inclusion_proof(results, index)],
    }
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
    store: Store, genesis: Genesis, snapshot: StateSnapshot
) -> dict[str, Any] | None:
    """The state proof document for `snapshot`, or None while block height+1 is not committed."""
    after = store.read_block_evidence(snapshot.height + 1)
    if after is None:
        return None
    doc: dict[str, Any] = {
        "format": FORMAT_STATE,
        **genesis_fields(genesis),
        "epochs": epoch_changes(store, snapshot.height + 1),
        "headers": [certified_header(after[0], after[1])],
        "height": snapshot.height,
        "key": snapshot.key.hex(),
        "value": None if snapshot.value is None else snapshot.value.hex(),
        "proof": proof_json(snapshot.proof),
    }
    try:
        facts = verify_state_document(doc, genesis, check_statement=False)
    except VerificationError as exc:
        raise EvidenceError(f"state proof does not verify: {exc}") from exc
    doc["statement"] = facts.statement
    return doc
