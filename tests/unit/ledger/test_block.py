"""Block payloads: decoding refuses what costs too much before paying for it, and a header
can be read (to check a certificate) without decoding the transactions."""

from __future__ import annotations

import pytest
from support.ledger import Account

from node.ledger import encoding
from node.ledger.block import BlockHeader, build_block, decode_block, peek_header, tx_root_of
from node.ledger.errors import BlockInvalid


def _block(n_txs: int) -> bytes:
    maker = Account("maker", 2)
    txs = [maker.tx("notary.anchor", {"digest": bytes([i]) * 32}) for i in range(n_txs)]
    header = BlockHeader(
        1, "test-chain", 1, bytes(32), 0, 0, 5, tx_root_of(txs), len(txs), bytes(32), bytes(32)
    )
    return build_block(header, txs).payload


def test_too_many_txs_refused_before_any_is_decoded() -> None:
    payload = _block(3)
    header, raws = encoding.unpack(payload)
    raws[2] = b"not a transaction"  # would fail when decoded: it never is
    broken = encoding.pack([header, raws])
    with pytest.raises(BlockInvalid, match="limit 2"):
        decode_block(broken, max_block_bytes=1 << 20, max_tx_bytes=4096, max_block_txs=2)
    with pytest.raises(BlockInvalid, match="tx 2"):
        decode_block(broken, max_block_bytes=1 << 20, max_tx_bytes=4096, max_block_txs=3)


def test_tx_count_must_match_before_decoding() -> None:
    header, raws = encoding.unpack(_block(2))
    short = encoding.pack([header, raws[:1]])
    with pytest.raises(BlockInvalid, match="header says 2"):
        decode_block(short, max_block_bytes=1 << 20, max_tx_bytes=4096)


def test_peek_header_reads_only_the_header() -> None:
    payload = _block(4)
    block = decode_block(payload, max_block_bytes=1 << 20, max_tx_bytes=4096)
    assert peek_header(payload, max_block_bytes=1 << 20).hash() == block.hash
    header, _ = encoding.unpack(payload)
    junk_txs = encoding.pack([header, [b"junk", 7]])
    assert peek_header(junk_txs, max_block_bytes=1 << 20).hash() == block.hash
    for bad in (b"", b"\x91\x01", encoding.pack([1, 2]), encoding.pack({"a": 1})):
        with pytest.raises(BlockInvalid):
            peek_header(bad, max_block_bytes=1 << 20)
    with pytest.raises(BlockInvalid, match="limit"):
        peek_header(payload, max_block_bytes=10)
