"""What a verified document establishes (the verifier's output; verify.py makes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.ledger.tx import Transaction
from node.proofs.epochs import CertifiedHeader
from node.proofs.tsa import TimestampFacts


@dataclass(frozen=True)
class ReceiptFacts:
    tx: Transaction
    index: int
    result: dict[str, Any]
    block: CertifiedHeader
    next_block: CertifiedHeader
    statement: dict[str, Any]
    rules: tuple[str, ...] = ()
    timestamps: tuple[TimestampFacts, ...] = field(default=())


@dataclass(frozen=True)
class StateFacts:
    key: bytes
    value: Any  # the decoded value, None when the proof shows absence
    height: int  # the state after executing block `height`
    certifying: CertifiedHeader  # block height + 1, whose state_root is the proven root
    statement: dict[str, Any]
    rules: tuple[str, ...] = ()
    timestamps: tuple[TimestampFacts, ...] = field(default=())


Facts = ReceiptFacts | StateFacts


@dataclass(frozen=True)
class ItemFacts:
    item: str
    state: StateFacts
    steps: tuple[ReceiptFacts, ...]


@dataclass(frozen=True)
class BundleFacts:
    root: str
    items: tuple[ItemFacts, ...]
    rules: tuple[str, ...] = ()

    @property
    def step_count(self) -> int:
        return sum(len(i.steps) for i in self.items)
