"""Helpers for receipt and proof tests (conftest.py puts this folder on sys.path): a Store in
tmp_path whose blocks carry real commit certificates (Ed25519 signatures over
consensus.vote_signing_bytes), no processes."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.ledger import CHAIN, Account

from consensus import CommitCertificate, vote_signing_bytes
from consensus.certificates import untimed_commit_signing_bytes
from node.daemon.api import receipts
from node.daemon.store import Store
from node.ledger import apps, crypto, encoding, governance
from node.ledger.block import HEADER_DOMAIN, Block, BlockHeader, build_block, tx_root_of
from node.ledger.genesis import (
    AccountInfo,
    Genesis,
    GovernanceConfig,
    ValidatorInfo,
    compute_hash,
)
from node.ledger.governance import Epoch
from node.ledger.tx import Transaction, make_tx

VALIDATOR_COUNT = 4
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ACCOUNT_ROLES = {
    "admin": ("admin",),
    "maker": ("member",),
    "shipper": ("member",),
    "retailer": ("member",),
    "inspector": ("member", "inspector"),
}


GOVERNORS = ("maker", "shipper", "retailer")


def validator_keys(count: int = VALIDATOR_COUNT, seed_base: int = 100) -> list[crypto.SigningKey]:
    return [crypto.SigningKey.from_seed(bytes([seed_base + i]) * 32) for i in range(count)]


def make_genesis(
    keys: Sequence[crypto.SigningKey], accounts: dict[str, Account], chain_id: str = CHAIN
) -> Genesis:
    g = Genesis(
        chain_id=chain_id,
        genesis_time="2026-01-01T00:00:00Z",
        validators=tuple(
            ValidatorInfo(f"v{i}", k.public_key, f"127.0.0.1:{20000 + i}", "")
            for i, k in enumerate(keys)
        ),
        accounts=tuple(
            AccountInfo(name, accounts[name].pub, roles) for name, roles in ACCOUNT_ROLES.items()
        ),
        governance=GovernanceConfig(governors=GOVERNORS),
    )
    return Genesis(**{**vars(g), "hash": compute_hash(g)})


def sign_certificate(
    keys: Sequence[crypto.SigningKey],
    chain_id: str,
    height: int,
    view: int,
    digest: bytes,
    signers: Sequence[int],
    *,
    times: Sequence[int] | None = None,
    timed: bool = True,
) -> CommitCertificate:
    """A commit certificate by `signers`: timed (each signer's clock reading in its vote,
    by default one second after the block's height in ms past 2026-01-01) or untimed (the
    version 1 certificates of chains made before commit votes carried a time)."""
    order = sorted(signers)
    if not timed:
        message = untimed_commit_signing_bytes(chain_id, view, height, digest)
        return CommitCertificate(
            height, view, digest, tuple((i, keys[i].sign(message)) for i in order)
        )
    readings = (
        list(times) if times is not None else [BASE_MS + height * 1000 + 400 + i for i in order]
    )
    sigs = tuple(
        (i, keys[i].sign(vote_signing_bytes(chain_id, "commit", view, height, digest, t)))
        for i, t in zip(order, readings, strict=True)
    )
    return CommitCertificate(height, view, digest, sigs, tuple(readings))


@dataclass
class CertifiedChain:
    """A store plus the validator keys that certify every block committed through it."""

    store: Store
    genesis: Genesis
    keys: list[crypto.SigningKey]
    accounts: dict[str, Account]
    signers: tuple[int, ...] = (0, 1, 2)
    timed: bool = True  # False: untimed certificates, as stored before certified time
    blocks: list[Block] = field(default_factory=list)

    def epoch_for(self, height: int) -> Epoch:
        return Epoch.from_state(governance.epoch_for_height(self.store.state_reader(), height))

    def next_block(self, txs: Sequence[Transaction], view: int = 0) -> Block:
        head = self.store.head
        epoch = self.epoch_for(head.height + 1)
        header = BlockHeader(
            version=2,
            chain_id=self.genesis.chain_id,
            height=head.height + 1,
            prev_hash=head.block_hash,
            view=view,
            proposer=view % len(epoch.validators),
            timestamp_ms=BASE_MS + (head.height + 1) * 1000,
            tx_root=tx_root_of(txs),
            tx_count=len(txs),
            state_root=head.state_root,
            results_root=head.results_root,
            epoch=epoch.number,
            next_validators_hash=self.epoch_for(head.height + 2).set_hash,
        )
        return build_block(header, txs)

    def commit(self, txs: Sequence[Transaction], view: int = 0) -> Block:
        block = self.next_block(txs, view)
        # Signed by the set of the block's own epoch (keys known to this kit by public key).
        by_public = {k.public_key: k for k in self.keys}
        epoch_keys = [by_public[pk] for pk in self.epoch_for(block.height).keys]
        signers = tuple(i for i in self.signers if i < len(epoch_keys))
        cert = sign_certificate(
            epoch_keys,
            self.genesis.chain_id,
            block.height,
            view,
            block.hash,
            signers,
            timed=self.timed,
        )
        self.store.commit_block(
            block,
            cert.to_bytes(),
            chain_id=self.genesis.chain_id,
            signature_ok=lambda t: t.signature_ok(),
        )
        self.blocks.append(block)
        return block

    def tx(self, name: str, tx_type: str, args: dict[str, Any]) -> Transaction:
        """A transaction signed by account `name` for this chain's chain_id, next nonce."""
        account = self.accounts[name]
        account.nonce += 1
        return make_tx(account.key, self.genesis.chain_id, account.nonce, tx_type, args)


def open_chain(path: Path, chain_id: str = CHAIN, seed_base: int = 100) -> CertifiedChain:
    accounts = {name: Account(name, i + 1) for i, name in enumerate(ACCOUNT_ROLES)}
    keys = validator_keys(seed_base=seed_base)
    genesis = make_genesis(keys, accounts, chain_id)
    store = Store(path, map_size_bytes=1 << 26, sync=False)
    store.init_genesis(genesis)
    return CertifiedChain(store, genesis, keys, accounts)


class StoreSource:
    """provenance.ProofSource over a Store (what the CLI gets over RPC from a node)."""

    def __init__(self, chain: CertifiedChain) -> None:
        self.chain = chain

    def item_proofs(self, items: list[str]) -> list[dict[str, Any]]:
        store, genesis = self.chain.store, self.chain.genesis
        snapshots = [receipts.read_state(store, apps.item_key(item)) for item in items]
        self.chain.commit([])  # what a node gets by waiting for its next block
        docs = [receipts.finish_state_proof(store, genesis, s) for s in snapshots]
        assert all(doc is not None for doc in docs)
        return docs  # type: ignore[return-value]

    def item_tx_ids(self, item: str, count: int) -> list[bytes]:
        return [step["tx_id"] for step in self.chain.store.item_history(item, 0, count)]

    def receipt(self, tx_id: bytes) -> dict[str, Any]:
        doc = receipts.build_receipt(self.chain.store, self.chain.genesis, tx_id)
        assert doc is not None
        return doc


def reheader(
    chain: CertifiedChain, doc: dict[str, Any], changes: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """Rewrite headers[i] with changes[i], keep the hash chain, and re-sign every certificate
    with the same signers and times ("_cert_view" sets the certificate's view)."""
    doc = copy.deepcopy(doc)
    prev_hash = None
    for i, entry in enumerate(doc["headers"]):
        change = dict(changes.get(i, {}))
        cert_view = change.pop("_cert_view", None)
        obj = encoding.unpack(bytes.fromhex(entry["header"]))
        if prev_hash is not None and "prev_hash" not in change:
            obj["prev_hash"] = prev_hash
        obj.update(change)
        raw = encoding.pack(obj)
        block_hash = crypto.sha256(HEADER_DOMAIN + raw)
        cert = CommitCertificate.from_bytes(bytes.fromhex(entry["certificate"]))
        resigned = sign_certificate(
            chain.keys,
            chain.genesis.chain_id,
            obj["height"],
            cert.view if cert_view is None else cert_view,
            block_hash,
            cert.signers(),
            times=cert.times,
            timed=cert.timed,
        )
        entry["header"], entry["certificate"] = raw.hex(), resigned.to_bytes().hex()
        prev_hash = block_hash
    return doc


def fill_busy(chain: CertifiedChain) -> CertifiedChain:
    """Commit every transaction type, ok and refused, over several blocks."""
    a = chain.accounts
    chain.commit(
        [
            chain.tx("maker", "item.register", {"item": "crate-1", "meta": {"sku": "C"}}),
            chain.tx("maker", "item.register", {"item": "crate-2"}),
            chain.tx("admin", "account.grant", {"account": a["retailer"].pub, "roles": ["member"]}),
        ]
    )
    chain.commit(
        [
            chain.tx(
                "maker",
                "item.register",
                {"item": "pallet-1", "meta": {"origin": "Lyon"}, "parents": ["crate-1", "crate-2"]},
            ),
            chain.tx("maker", "record.put", {"ns": "spec", "key": "p1", "value": {"w": 12}}),
            chain.tx("shipper", "record.put", {"ns": "spec", "key": "p1", "value": "x"}),
            chain.tx("maker", "notary.anchor", {"digest": b"\x11" * 32, "meta": {"n": "doc"}}),
        ]
    )
    chain.commit(
        [
            chain.tx(
                "maker",
                "item.event",
                {"item": "pallet-1", "kind": "packed", "location": "Lyon", "note": "ok"},
            ),
            chain.tx("maker", "item.transfer", {"item": "pallet-1", "to": a["shipper"].pub}),
            chain.tx("inspector", "item.event", {"item": "pallet-1", "kind": "inspected"}),
            chain.tx("retailer", "item.transfer", {"item": "pallet-1", "to": a["retailer"].pub}),
            chain.tx("admin", "account.revoke", {"account": a["inspector"].pub}),
        ]
    )
    chain.commit(
        [chain.tx("shipper", "item.transfer", {"item": "pallet-1", "to": a["retailer"].pub})]
    )
    remove_v3 = {"type": "remove-validator", "name": "v3"}
    chain.commit(
        [
            chain.tx("maker", "gov.propose", {"action": remove_v3}),  # 1 of 3 governors
            chain.tx("shipper", "gov.vote", {"proposal": 1, "approve": True}),  # 2 of 3: open
            chain.tx("retailer", "account.rotate", {"new_key": b"\x42" * 32}),
            chain.tx(
                "maker", "validator.join", {"proposal": 1, "height": 1, "block_hash": b"\0" * 32}
            ),
            # Not an RFC 3161 response (test_timestamps.py records real ones).
            chain.tx("maker", "checkpoint.timestamp", {"height": 4, "response": b"\x30\x00"}),
        ]
    )
    chain.commit([])  # certifies the results and state of the block before
    return chain
