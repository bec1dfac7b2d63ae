"""node_status and peers_list: what the node reports about itself, from the parts it reads."""

from __future__ import annotations

import time
from typing import Any

from node.daemon.chain import Chain
from node.daemon.driver import ConsensusDriver
from node.daemon.reactors.blocksync import BlockSyncReactor
from node.daemon.reactors.links import peer_table
from node.ledger.genesis import Genesis
from p2p.peers import PeerManager


class StatusReport:
    def __init__(
        self,
        *,
        name: str,
        public_key: bytes,
        genesis: Genesis,
        chain: Chain,
        driver: ConsensusDriver,
        peers: PeerManager | None,
        sync: BlockSyncReactor | None,
    ) -> None:
        self._name = name
        self._public_key = public_key
        self._genesis = genesis
        self._chain = chain
        self._driver = driver
        self._peers = peers
        self._sync = sync
        self._started_ms = int(time.time() * 1000)

    def peers(self) -> list[dict[str, Any]]:
        if self._peers is None or self._sync is None:
            return []
        return peer_table(self._peers, self._genesis, self._sync.peer_heads)

    def status(self) -> dict[str, Any]:
        chain = self._chain
        head = chain.store.head
        mempool = chain.mempool.statistics()
        return {
            "node": self._name,
            "chain_id": self._genesis.chain_id,
            "genesis_hash": self._genesis.hash.hex(),
            "public_key": self._driver.key.public_key.hex(),  # follows a key rotation
            "height": head.height,
            "block_hash": head.block_hash.hex(),
            "state_root": head.state_root.hex(),
            "last_block_time_ms": head.timestamp_ms,
            "uptime_ms": int(time.time() * 1000) - self._started_ms,
            "halted": chain.halted,
            "mempool": {
                "size": len(chain.mempool),
                **{k: v for k, v in mempool.items() if k in ("bytes", "oldest_age_ms")},
            },
            "counters": dict(chain.counters),
            "clock": {
                "offset_ms": chain.clock.offset_ms,  # ours minus the chain's (None: too early)
                "own_clock_off": chain.clock.own_clock_is_off(),
                "corrected_checks": chain.clock.corrected_checks,
                "peer_offsets_ms": {
                    peer.hex(): offset for peer, offset in chain.clock.peer_offsets_ms().items()
                },
            },
            "validators": len(self._genesis.validators),
            "storage": chain.store.statistics(),
            "consensus": self._driver.status(),
            "syncing": self._sync.status() if self._sync is not None else {"syncing": False},
            "peers": len(self._peers.connected_peers()) if self._peers is not None else 0,
        }
