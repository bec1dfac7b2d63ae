"""Block sync checks a fetched block's certificate against its header before it decodes the
block (a faulty peer's 8 MiB of junk costs a header parse, not a full decode)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.chainkit import next_block, open_store
from support.ledger import Account

from consensus import CommitCertificate, vote_signing_bytes
from node.daemon.chain import Chain
from node.daemon.mempool import Mempool
from node.daemon.reactors.blocksync import BlockSyncReactor
from node.daemon.reactors.directory import ValidatorDirectory
from node.ledger import crypto, encoding
from node.ledger.block import Block, BlockHeader
from node.ledger.genesis import AccountInfo, Genesis, ValidatorInfo, compute_hash

CHAIN = "test-chain"


class _Peers:
    def broadcast_nowait(self, msg: Any) -> int:
        return 0

    def connected_peers(self) -> list[bytes]:
        return []

    def statistics(self) -> dict[str, Any]:
        return {"counters": {}, "peers": {}}


class _Sender:
    peers = _Peers()

    def send(self, peer: bytes, msg: Any) -> None:
        pass


def _setup(tmp_path: Path) -> tuple[Chain, crypto.SigningKey, BlockSyncReactor, list[Block]]:
    validator = crypto.SigningKey.from_seed(b"\x05" * 32)
    maker = Account("maker", 2)
    g = Genesis(
        chain_id=CHAIN,
        genesis_time="2026-01-01T00:00:00Z",
        validators=(ValidatorInfo("v0", validator.public_key, "127.0.0.1:1", ""),),
        accounts=(AccountInfo("maker", maker.pub, ("member",)),),
    )
    genesis = Genesis(**{**vars(g), "hash": compute_hash(g)})
    store = open_store(tmp_path / "db", genesis)
    mempool = Mempool(chain_id=CHAIN, account_of=lambda pk: store.get_state_obj(b"acct/" + pk))
    chain = Chain(genesis, store, mempool)
    applied: list[Block] = []

    async def apply(block: Block, cert: bytes) -> bool:
        applied.append(block)
        return True

    reactor = BlockSyncReactor(
        _Sender(),
        chain=chain,
        directory=ValidatorDirectory(genesis.validator_keys),
        max_frame_bytes=1 << 24,
        counters=Counter(),
    )
    reactor._apply = apply
    return chain, validator, reactor, applied


def _certificate(key: crypto.SigningKey, height: int, digest: bytes) -> bytes:
    signature = key.sign(vote_signing_bytes(CHAIN, "commit", 0, height, digest, 5))
    return CommitCertificate(height, 0, digest, ((0, signature),), (5,)).to_bytes()


async def test_a_good_block_is_applied(tmp_path: Path) -> None:
    chain, key, reactor, applied = _setup(tmp_path)
    block = next_block(
        chain.store, [Account("maker", 2).tx("notary.anchor", {"digest": b"\1" * 32})]
    )
    assert await reactor.apply_fetched(block.payload, _certificate(key, 1, block.hash))
    assert [b.hash for b in applied] == [block.hash]


async def test_junk_is_refused_before_it_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, key, reactor, applied = _setup(tmp_path)
    decoded: list[bytes] = []
    real = chain.decode_off_loop

    async def counting(payload: bytes) -> Block:
        decoded.append(payload)
        return await real(payload)

    monkeypatch.setattr(chain, "decode_off_loop", counting)
    good = next_block(chain.store, [])
    header = good.header.to_obj()
    junk = encoding.pack([header, [b"\x00" * 180] * 40_000])  # the header of a real block
    other = BlockHeader(**{**header, "timestamp_ms": header["timestamp_ms"] + 1})
    cases = [
        (junk, _certificate(key, 1, other.hash())),  # certificate for another header
        (junk, _certificate(crypto.SigningKey.generate(), 1, good.hash)),  # not a validator
        (junk, _certificate(key, 2, good.hash)),  # not the next height
        (b"\x93" + b"\x00" * 100, _certificate(key, 1, good.hash)),  # not even a header
    ]
    for payload, cert in cases:
        assert not await reactor.apply_fetched(payload, cert)
    assert decoded == [] and applied == []
    # The header matches the certificate: only now is the rest decoded, and refused.
    assert not await reactor.apply_fetched(junk, _certificate(key, 1, good.hash))
    assert decoded == [junk] and applied == []
    assert chain.statistics()["decoded_blocks"] == 0  # fetched blocks stay out of the cache


def _served_chain(tmp_path: Path, key: crypto.SigningKey, count: int) -> list[list[bytes]]:
    """`count` certified blocks of another node's store, as a "blks" answer carries them."""
    source, _, _, _ = _setup(tmp_path / "source")
    maker = Account("maker", 2)
    items = []
    for height in range(1, count + 1):
        tx = maker.tx("notary.anchor", {"digest": bytes([height]) * 32})
        block = next_block(source.store, [tx])
        cert = _certificate(key, height, block.hash)
        source.store.commit_block(block, cert, chain_id=CHAIN, signature_ok=lambda t: True)
        items.append([block.payload, cert])
    return items


async def test_a_range_is_committed_in_one_batch_up_to_a_bad_certificate(
    tmp_path: Path,
) -> None:
    chain, key, reactor, applied = _setup(tmp_path / "node")
    items = _served_chain(tmp_path, key, 6)
    items[4] = [items[4][0], _certificate(crypto.SigningKey.generate(), 5, b"\0" * 32)]
    batches: list[int] = []

    async def apply_batch(run: list[tuple[Block, bytes]]) -> int:
        batches.append(len(run))
        return len(await chain.commit_certified(run))

    reactor._apply_batch = apply_batch
    count, complete = await reactor._apply_range(1, items)
    assert (count, complete) == (4, False)
    assert batches == [4] and chain.store.head.height == 4
    assert reactor._counters["sync_rejected"] == 1
    assert applied == []  # the one-block path was not used
    # The rest, from a good peer, continues from the new head (stored blocks skipped).
    good = _served_chain(tmp_path / "again", key, 6)
    assert await reactor._apply_range(1, good) == (2, True)
    assert chain.store.head.height == 6 and batches == [4, 2]
