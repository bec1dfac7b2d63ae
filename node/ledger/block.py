"""Blocks: header, transaction list, hash, and the consensus payload encoding.

Payload (what consensus orders and what the store keeps) = canonical msgpack array
[header map, [tx wire bytes, ...]]. Block hash = SHA-256(b"chain-header-v1\\x00" + canonical
msgpack of the header map). tx_root = RFC 6962 Merkle root over the tx wire bytes.
state_root and results_root are those after executing the PREVIOUS block (block 1 carries
the genesis state root and the empty results root).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.ledger import crypto, encoding
from node.ledger.errors import BlockInvalid, TxInvalid
from node.ledger.merkle import merkle_root
from node.ledger.tx import Transaction, decode_tx

HEADER_DOMAIN = b"chain-header-v1\x00"
# Version 2 adds the epoch that signs the block and the hash of the validator set that signs
# the next one (governance.validator_set_hash). Nodes make and accept only version 2; the
# offline verifier still reads version 1 (chains made before epochs: the genesis set signs).
BLOCK_VERSION = 2
V1_HEADER_KEYS = (
    "version",
    "chain_id",
    "height",
    "prev_hash",
    "view",
    "proposer",
    "timestamp_ms",
    "tx_root",
    "tx_count",
    "state_root",
    "results_root",
)
HEADER_KEYS = (*V1_HEADER_KEYS, "epoch", "next_validators_hash")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    chain_id: str
    height: int
    prev_hash: bytes
    view: int
    proposer: int
    timestamp_ms: int
    tx_root: bytes
    tx_count: int
    state_root: bytes
    results_root: bytes
    epoch: int = 0
    next_validators_hash: bytes = b""  # empty in a version 1 header

    def to_obj(self) -> dict[str, Any]:
        keys = V1_HEADER_KEYS if self.version == 1 else HEADER_KEYS
        return {k: getattr(self, k) for k in keys}

    def encode(self) -> bytes:
        return encoding.pack(self.to_obj())

    def hash(self) -> bytes:
        return crypto.sha256(HEADER_DOMAIN + self.encode())

    def to_json(self) -> dict[str, Any]:
        out = self.to_obj()
        for k in ("prev_hash", "tx_root", "state_root", "results_root", "next_validators_hash"):
            if k in out:
                out[k] = out[k].hex()
        return out

    @classmethod
    def from_obj(cls, obj: Any) -> BlockHeader:
        version = obj.get("version") if isinstance(obj, dict) else None
        keys = V1_HEADER_KEYS if version == 1 else HEADER_KEYS
        if not isinstance(obj, dict) or set(obj) != set(keys):
            raise BlockInvalid(f"header must be a map with keys {list(keys)}")
        for k in ("prev_hash", "tx_root", "state_root", "results_root", "next_validators_hash"):
            if k in keys and (not isinstance(obj[k], bytes) or len(obj[k]) != 32):
                raise BlockInvalid(f"header field {k} must be 32 bytes")
        ints = ("version", "height", "view", "proposer", "timestamp_ms", "tx_count", "epoch")
        for k in (k for k in ints if k in keys):
            if isinstance(obj[k], bool) or not isinstance(obj[k], int) or obj[k] < 0:
                raise BlockInvalid(f"header field {k} must be a non-negative integer")
        if not isinstance(obj["chain_id"], str):
            raise BlockInvalid("header field chain_id must be a string")
        if obj["version"] not in (1, BLOCK_VERSION):
            raise BlockInvalid(f"unsupported block version {obj['version']}")
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...]
    payload: bytes = field(default=b"", compare=False)
    hash: bytes = field(default=b"", compare=False)

    @property
    def height(self) -> int:
        return self.header.height


def tx_root_of(txs: Sequence[Transaction]) -> bytes:
    return merkle_root([t.raw for t in txs])


def build_block(header: BlockHeader, txs: Sequence[Transaction]) -> Block:
    payload = encoding.pack([header.to_obj(), [t.raw for t in txs]])
    return Block(header=header, txs=tuple(txs), payload=payload, hash=header.hash())


TxDecoder = Callable[[bytes], Transaction]


def decode_block(
    payload: bytes,
    *,
    max_block_bytes: int,
    max_tx_bytes: int,
    tx_cache: Callable[[bytes], Transaction | None] | None = None,
    max_block_txs: int | None = None,
) -> Block:
    """Decode a payload and check it is self-consistent (tx_root, tx_count).

    tx_cache maps a tx's wire bytes to an already-decoded Transaction (the mempool's), so a
    transaction the node has seen is not parsed twice. With max_block_txs, a block with more
    transactions is refused before any of them is decoded (that is the costly part).
    """
    if len(payload) > max_block_bytes:
        raise BlockInvalid(f"block is {len(payload)} bytes, limit {max_block_bytes}")
    try:
        obj = encoding.unpack(payload, max_len=max_block_bytes)
    except encoding.EncodingError as exc:
        raise BlockInvalid(f"block encoding: {exc}") from exc
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], list)):
        raise BlockInvalid("block must be [header, [tx, ...]]")
    header = BlockHeader.from_obj(obj[0])
    if header.tx_count != len(obj[1]):
        raise BlockInvalid(f"header says {header.tx_count} txs, block has {len(obj[1])}")
    if max_block_txs is not None and header.tx_count > max_block_txs:
        raise BlockInvalid(f"{header.tx_count} txs, limit {max_block_txs}")
    txs: list[Transaction] = []
    for i, raw in enumerate(obj[1]):
        if not isinstance(raw, bytes):
            raise BlockInvalid(f"tx {i} is not bytes")
        cached = tx_cache(raw) if tx_cache is not None else None
        if cached is None:
            try:
                cached = decode_tx(raw, max_tx_bytes=max_tx_bytes)
            except TxInvalid as exc:
                raise BlockInvalid(f"tx {i}: {exc.message}") from exc
        txs.append(cached)
    if tx_root_of(txs) != header.tx_root:
        raise BlockInvalid("tx_root does not match the transactions")
    return Block(header=header, txs=tuple(txs), payload=payload, hash=header.hash())


def peek_header(payload: bytes, *, max_block_bytes: int) -> BlockHeader:
    """The header of a payload, without decoding its transactions: enough to compare the
    block hash with a certificate before spending anything on the rest."""
    if len(payload) > max_block_bytes:
        raise BlockInvalid(f"block is {len(payload)} bytes, limit {max_block_bytes}")
    try:
        header_obj = encoding.unpack_first_of_pair(payload, max_len=max_block_bytes)
    except encoding.EncodingError as exc:
        raise BlockInvalid(f"block encoding: {exc}") from exc
    return BlockHeader.from_obj(header_obj)
