"""The simulated application and its block bodies, for the consensus simulator.

A block body is msgpack [height, prev_digest, view, proposer, [tx ids]], followed by a
membership change [kind, identity, key] when it carries one (epochs.py); its digest is
SHA-256 of the payload; the state root after block h is SHA-256(root(h - 1) || digest(h)).
The proposer is an identity: the one that leads the body's view in the epoch of its height.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import msgpack  # type: ignore[import-untyped]

from simulator.epochs import Change, EpochSchedule

GENESIS_DIGEST = bytes(32)
GENESIS_ROOT = bytes(32)
MAX_TXS_PER_BLOCK = 8


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class BlockBody:
    height: int
    prev_digest: bytes
    view: int
    proposer: int
    tx_ids: tuple[int, ...]
    change: Change | None = None

    def encode(self) -> bytes:
        fields: list[object] = [
            self.height,
            self.prev_digest,
            self.view,
            self.proposer,
            list(self.tx_ids),
        ]
        if self.change is not None:
            fields.append(self.change.to_wire())
        packed: bytes = msgpack.packb(fields, use_bin_type=True)
        return packed


@lru_cache(maxsize=4096)  # every node decodes each proposal several times; bodies are frozen
def decode_body(payload: bytes) -> BlockBody | None:
    """The body of a payload, or None when it is not a well-formed body."""
    try:
        value = msgpack.unpackb(payload, raw=False)
    except Exception:  # garbage payloads are simply invalid blocks
        return None
    if not isinstance(value, list) or len(value) not in (5, 6):
        return None
    height, prev, view, proposer, txs = value[:5]
    change = None
    if len(value) == 6:
        change = Change.from_wire(value[5])
        if change is None:
            return None
    if not all(type(x) is int for x in (height, view, proposer)):
        return None
    if not isinstance(prev, bytes) or len(prev) != 32 or not isinstance(txs, list):
        return None
    if not all(type(t) is int for t in txs):
        return None
    return BlockBody(height, prev, view, proposer, tuple(txs), change)


class ChainView(Protocol):
    """What the simulated app reads from its node."""

    tx_set: set[int]

    @property
    def executed_height(self) -> int: ...

    @property
    def schedule(self) -> EpochSchedule:
        """The epochs the node's own chain defines."""
        ...

    @property
    def planned_changes(self) -> tuple[Change, ...]:
        """The changes a chain may carry, in order (the votes that passed)."""
        ...

    def digest_at(self, height: int) -> bytes: ...

    def on_validate(self, height: int) -> None: ...


class SimApp:
    """The application of one simulated node: checks a block against the node's own chain."""

    def __init__(self, node: ChainView) -> None:
        self._node = node

    def digest(self, payload: bytes) -> bytes:
        return sha256(payload)

    def validate(self, height: int, payload: bytes) -> bool:
        node = self._node
        node.on_validate(height)
        return block_is_valid(
            payload,
            height,
            node.digest_at(height - 1),
            node.tx_set,
            node.schedule,
            node.planned_changes,
        )


def block_is_valid(
    payload: bytes,
    height: int,
    prev_digest: bytes,
    chain_tx_ids: set[int],
    schedule: EpochSchedule,
    changes: tuple[Change, ...],
) -> bool:
    """Block `height` on a chain (its previous digest, its tx ids, the epochs it defines up
    to height - 1, the planned changes): a valid body, by its view's leader of the epoch."""
    body = decode_body(payload)
    if body is None or body.height != height or body.prev_digest != prev_digest:
        return False
    if body.proposer != schedule.epoch_for(height).leader(body.view):
        return False
    if len(body.tx_ids) > MAX_TXS_PER_BLOCK or len(set(body.tx_ids)) != len(body.tx_ids):
        return False
    if body.change is not None and (
        schedule.applied >= len(changes)
        or changes[schedule.applied] != body.change
        or schedule.after(height, body.change) is None
    ):
        return False  # only the next passed change, and only when it can be scheduled
    return not any(tx in chain_tx_ids for tx in body.tx_ids)
