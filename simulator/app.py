"""The simulated application and its block bodies, for the consensus simulator.

A block body is msgpack [height, prev_digest, view, proposer, [tx ids]]; its digest is SHA-256
of the payload; the state root after block h is SHA-256(root(h - 1) || digest(h)).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import msgpack  # type: ignore[import-untyped]

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

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(
            [self.height, self.prev_digest, self.view, self.proposer, list(self.tx_ids)],
            use_bin_type=True,
        )
        return packed


def decode_body(payload: bytes) -> BlockBody | None:
    """The body of a payload, or None when it is not a well-formed body."""
    try:
        value = msgpack.unpackb(payload, raw=False)
    except Exception:  # garbage payloads are simply invalid blocks
        return None
    if not isinstance(value, list) or len(value) != 5:
        return None
    height, prev, view, proposer, txs = value
    if not all(type(x) is int for x in (height, view, proposer)):
        return None
    if not isinstance(prev, bytes) or len(prev) != 32 or not isinstance(txs, list):
        return None
    if not all(type(t) is int for t in txs):
        return None
    return BlockBody(height, prev, view, proposer, tuple(txs))


class ChainView(Protocol):
    """What the simulated app reads from its node."""

    tx_set: set[int]

    @property
    def executed_height(self) -> int: ...

    def digest_at(self, height: int) -> bytes: ...

    def on_validate(self, height: int) -> None: ...


class SimApp:
    """The application of one simulated node: checks a block against the node's own chain."""

    def __init__(self, node: ChainView, n: int) -> None:
        self._node = node
        self._n = n

    def digest(self, payload: bytes) -> bytes:
        return sha256(payload)

    def validate(self, height: int, payload: bytes) -> bool:
        self._node.on_validate(height)
        return block_is_valid(
            payload, height, self._node.digest_at(height - 1), self._node.tx_set, self._n
        )


def block_is_valid(
    payload: bytes, height: int, prev_digest: bytes, chain_tx_ids: set[int], n: int
) -> bool:
    body = decode_body(payload)
    if body is None or body.height != height or body.prev_digest != prev_digest:
        return False
    if body.proposer != body.view % n:
        return False
    if len(body.tx_ids) > MAX_TXS_PER_BLOCK or len(set(body.tx_ids)) != len(body.tx_ids):
        return False
    return not any(tx in chain_tx_ids for tx in body.tx_ids)
