"""Replay a node's stored chain from genesis into a scratch store and compare state roots.

Used by crash tests and by operators who want to check a data dir: the state root a node
reports must equal what executing its blocks from genesis gives.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from node.daemon.config import load_config
from node.daemon.store import Head, Store
from node.ledger.block import decode_block
from node.ledger.genesis import load_genesis


def replay_home(home: Path) -> tuple[Head, Head]:
    """(the node's stored head, the head that replaying its blocks gives). Node must be stopped."""
    config = load_config(home)
    genesis = load_genesis(config.path(config.node.genesis_file))
    source = Store(
        config.path(config.node.data_dir), map_size_bytes=config.storage.map_size_mb << 20
    )
    try:
        stored = source.head
        with tempfile.TemporaryDirectory(prefix="replay") as scratch:
            target = Store(Path(scratch), map_size_bytes=1 << 32, sync=False)
            try:
                target.init_genesis(genesis)
                for height in range(1, stored.height + 1):
                    payload = source.get_block(height)
                    cert = source.get_certificate(height)
                    if payload is None or cert is None:
                        raise ValueError(f"block {height} missing from {home}")
                    block = decode_block(
                        payload,
                        max_block_bytes=genesis.consensus.max_block_bytes,
                        max_tx_bytes=genesis.consensus.max_tx_bytes,
                    )
                    target.commit_block(
                        block,
                        cert,
                        chain_id=genesis.chain_id,
                        signature_ok=lambda t: t.signature_ok(),
                    )
                replayed = target.head
            finally:
                target.close()
    finally:
        source.close()
    return stored, replayed
