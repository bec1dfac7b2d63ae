"""The catalogue of offline rules, and the log of those a verification applied.

Every check the verifier makes belongs to one rule of docs/PROTOCOL.md section 16; the id
and the title here are the ones the document uses. `chain verify` prints the rules it
checked for a document (a rule that does not apply, say first-block for a later block, is
not listed), so a reader sees what was established and what was not.
"""

from __future__ import annotations

RULES: dict[str, str] = {
    # Every document.
    "shape": "strict JSON with exactly the keys of its format and version",
    "genesis": "chain_id, genesis_hash and the validator list are the trusted genesis's",
    "epochs": "each epoch change is certified by the set before it and names the next set",
    "header": "each header is canonical, of a known version, for this chain and its epoch",
    "next-set": "a header's next_validators_hash names the set the epoch chain gives next",
    "first-block": "block 1 follows genesis (prev_hash, genesis state root, empty results)",
    "certificate": "each certificate is canonical, of its header's height and hash",
    "quorum": "a quorum of distinct validators of the block's epoch signed the commit",
    "proposer": "the header's proposer leads its view (proposer = view mod n)",
    "commit-view": "the certificate's view is not before the header's view",
    "hash-chain": "consecutive headers: height + 1 and prev_hash = hash of the one before",
    "time-order": "block times strictly increase from one header to the next",
    "certified-time": "the commit votes' clock readings give the certified time and window",
    # Receipts.
    "tx": "the transaction is canonical, for this chain, signed by its sender",
    "tx-inclusion": "RFC 6962 inclusion of the transaction in the block's tx_root",
    "result": "the result is canonical, of this transaction, and ok exactly when code is ok",
    "result-inclusion": "RFC 6962 inclusion of the result in the next block's results_root",
    # State proofs.
    "state-height": "the state after block H is certified by block H + 1",
    "state-inclusion": "the sparse Merkle proof gives the key's value (or absence)",
    "value": "a present value is canonical msgpack",
    "statement": "the statement equals what the verified parts show",
    # RFC 3161 timestamps.
    "tsa-chain": "headers link the block to the time-stamped checkpoint by prev_hash",
    "tsa-imprint": "the token's message imprint is the checkpoint's block hash (SHA-256)",
    "tsa-signature": "the token is signed by the given time-stamping authority",
    # Provenance bundles.
    "bundle-manifest": "the manifest names every file once, for this chain",
    "bundle-state": "each item's record is a certified presence proof",
    "bundle-complete": "the receipts are exactly the item's steps, in order",
    "bundle-history": "registration, parents and custody replay to the certified record",
    "bundle-report": "report.html shows exactly the verified data",
}


class RuleLog:
    """The rules a verification applied, in the order it first applied them. A check names
    its rule before it runs, so `current` is the rule a failure breaks."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self.current = "shape"

    def checked(self, *rule_ids: str) -> None:
        for rule_id in rule_ids:
            if rule_id not in RULES:
                raise KeyError(f"unknown rule {rule_id!r}")
            if rule_id not in self._ids:
                self._ids.append(rule_id)
            self.current = rule_id

    def merge(self, ids: tuple[str, ...]) -> None:
        self.checked(*ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ids)


def rule_lines(ids: tuple[str, ...]) -> list[str]:
    """What `chain verify` prints under "rules checked"."""
    return [f"    {rule_id:<17} {RULES[rule_id]}" for rule_id in ids]
