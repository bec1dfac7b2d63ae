"""Fixtures for receipt and proof tests; the helpers live in proofkit.py (tests/ has no
packages under importlib mode, so this folder goes on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from proofkit import CertifiedChain, open_chain  # noqa: E402


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[CertifiedChain]:
    c = open_chain(tmp_path / "db")
    yield c
    c.store.close()


@pytest.fixture
def busy_chain(chain: CertifiedChain) -> CertifiedChain:
    """A chain holding every transaction type, ok and refused, over several blocks."""
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
