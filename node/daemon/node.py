"""The daemon: one root nursery; each part is a `run(*, task_status)` task.

Parts: RPC server, consensus ticker and proposer, p2p links and the network reactor (gossip
and block sync). SIGINT/SIGTERM cancel the root scope; the node closes its sockets, lets the
current LMDB commit finish (commits run shielded in a worker thread), removes its control
socket and exits 0.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

import trio

from consensus import CommitCertificate
from consensus.ready import replay_on_start
from node.daemon.api.methods import Api
from node.daemon.chain import Chain, SubmitOutcome
from node.daemon.config import NodeConfig, load_config
from node.daemon.driver import ConsensusDriver
from node.daemon.mempool import Mempool
from node.daemon.store import Committed, Store, StoreError
from node.ledger import crypto
from node.ledger.genesis import Genesis, load_genesis
from node.rpc.server import RpcServer

log = logging.getLogger("chain.node")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis: Genesis = load_genesis(config.path(config.node.genesis_file))
        self.key = crypto.read_key_file(config.path(config.node.key_file))
        self.started_ms = int(time.time() * 1000)
        self.store: Store | None = None
        self.network: Any = None  # node.daemon.network.Network when there are peers
        self._chain: Chain | None = None
        self.driver: ConsensusDriver | None = None
        self.rpc: RpcServer | None = None

    @classmethod
    def from_home(cls, home: Any) -> Node:
        return cls(load_config(home))

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            raise RuntimeError("node is not started")
        return self._chain

    # --- wiring --------------------------------------------------------------------------------

    def _open(self) -> None:
        cfg = self.config
        store = Store(
            cfg.path(cfg.node.data_dir),
            map_size_bytes=cfg.storage.map_size_mb * 1024 * 1024,
            sync=cfg.storage.sync,
        )
        store.init_genesis(self.genesis)
        self.store = store
        mempool = Mempool(
            chain_id=self.genesis.chain_id,
            account_of=lambda pk: store.get_state_obj(b"acct/" + pk),
            max_txs=cfg.mempool.max_txs,
            max_bytes=cfg.mempool.max_bytes,
            nonce_window=cfg.mempool.nonce_window,
        )
        self._chain = Chain(self.genesis, store, mempool)
        self._replay_decided()

    def _replay_decided(self) -> None:
        """Commit blocks our replica decided just before a crash that the store lacks (the
        restart rule the simulator runs too: consensus.ready.replay_on_start)."""
        store = self.chain.store
        for height, payload, cert in replay_on_start(store.load_decided(), store.head.height):
            block = self.chain.decode_payload(payload)
            store.commit_block(
                block, cert, chain_id=self.genesis.chain_id, signature_ok=lambda t: t.signature_ok()
            )
            log.info("committed journaled block %d decided before the last stop", height)

    def _needs_network(self) -> bool:
        return len(self.genesis.validators) > 1 or bool(self.config.p2p.peers)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self._open)
        chain = self.chain
        try:
            if self._needs_network():
                from node.daemon.network import Network

                self.network = Network(self)
            self.driver = ConsensusDriver(
                chain,
                key=self.key,
                send=self._send_consensus,
                broadcast=self._broadcast_consensus,
                fetch=self._fetch_blocks,
            )
            self.rpc = RpcServer(
                self.config.socket_path,
                max_line_bytes=self.config.rpc.max_line_bytes,
                max_connections=self.config.rpc.max_connections,
                handler_timeout_s=130.0,  # tx_wait may wait up to 120 s
                subscriber_queue=4096,
            )
            api = Api(self)
            for name, (handler, names) in api.methods().items():
                self.rpc.method(name, handler, params=names)
            self.rpc.hub.allow_topic("blocks")
            self.rpc.hub.allow_topic_prefix("tx:")
            chain.on_commit.append(self._publish_commit)
            if self.network is not None:
                network = self.network
                chain.on_commit.append(lambda c: network.announce_head(c.head.height))
            async with trio.open_nursery() as nursery:
                await nursery.start(self.rpc.run)
                if self.network is not None:
                    await nursery.start(self.network.run)
                await nursery.start(self.driver.run_ticker)
                await nursery.start(self.driver.run_proposer)
                log.info(
                    "node %s started: chain %s, height %d, validator %s, socket %s",
                    self.config.node.name,
                    self.genesis.chain_id,
                    chain.store.head.height,
                    self.driver.config.my_index,
                    self.config.socket_path,
                )
                task_status.started(self)
        finally:
            if self.store is not None:
                self.store.close()

    # --- consensus I/O ------------------------------------------------------------------------

    def _send_consensus(self, to: int, raw: bytes) -> None:
        if self.network is not None:
            self.network.send_consensus(to, raw)

    def _broadcast_consensus(self, raw: bytes) -> None:
        if self.network is not None:
            self.network.broadcast_consensus(raw)

    def _fetch_blocks(self, from_height: int, peers: tuple[int, ...]) -> None:
        if self.network is not None:
            self.network.request_blocks(from_height, peers)

    # --- transactions --------------------------------------------------------------------------

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]:
        outcomes = await self.chain.submit_raw(raws)
        accepted = [raw for raw, o in zip(raws, outcomes, strict=True) if o.error is None]
        if accepted:
            if self.network is not None:
                self.network.gossip_txs(accepted)
            if self.driver is not None:
                self.driver.wakeup.set()
        return outcomes

    def _publish_commit(self, committed: Committed) -> None:
        if self.rpc is None:
            return
        block = committed.block
        hub = self.rpc.hub
        hub.publish(
            "blocks",
            {
                "height": block.height,
                "hash": block.hash.hex(),
                "txs": len(block.txs),
                "timestamp_ms": block.header.timestamp_ms,
            },
        )
        for tx, result in zip(block.txs, committed.outcome.results, strict=True):
            topic = "tx:" + tx.tx_id.hex()
            if hub.subscriber_count(topic):
                hub.publish(
                    topic,
                    {
                        "tx_id": tx.tx_id.hex(),
                        "height": block.height,
                        "status": "committed" if result.ok else "failed",
                        "code": result.code,
                        "reason": result.reason,
                    },
                )

    # --- views -----------------------------------------------------------------------------------

    def certificate_json(self, raw: bytes | None) -> Any:
        if raw is None:
            return None
        cert = CommitCertificate.from_bytes(raw)
        names = self.genesis.validators
        return {
            "height": cert.height,
            "view": cert.view,
            "digest": cert.digest.hex(),
            "signatures": [
                {
                    "validator": i,
                    "name": names[i].name if i < len(names) else "?",
                    "signature": s.hex(),
                }
                for i, s in cert.signatures
            ],
        }

    def peers(self) -> list[dict[str, Any]]:
        return [] if self.network is None else self.network.peers()

    def status(self) -> dict[str, Any]:
        chain = self.chain
        head = chain.store.head
        out: dict[str, Any] = {
            "node": self.config.node.name,
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash.hex(),
            "public_key": self.key.public_key.hex(),
            "height": head.height,
            "block_hash": head.block_hash.hex(),
            "state_root": head.state_root.hex(),
            "last_block_time_ms": head.timestamp_ms,
            "uptime_ms": int(time.time() * 1000) - self.started_ms,
            "halted": chain.halted,
            "mempool": {
                "size": len(chain.mempool),
                **{
                    k: v
                    for k, v in chain.mempool.statistics().items()
                    if k in ("bytes", "oldest_age_ms")
                },
            },
            "counters": dict(chain.counters),
            "validators": len(self.genesis.validators),
            "storage": chain.store.statistics(),
        }
        if self.driver is not None:
            out["consensus"] = self.driver.status()
        out["syncing"] = (
            self.network.sync_status() if self.network is not None else {"syncing": False}
        )
        out["peers"] = len(self.network.connected()) if self.network is not None else 0
        return out


async def serve(home: Any, log_level: str | None = None) -> int:
    """Run a node until SIGINT/SIGTERM; exit status 0 on a clean stop, 2 when it halted."""
    node = Node.from_home(home)
    setup_logging(log_level or node.config.node.log_level)
    halted: str | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        log.info("received %s: shutting down", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                await nursery.start(node.run)
        except* StoreError as group:
            # A full map or disk, or a certified block that does not fit our state: stop
            # committing rather than corrupt or fork. LMDB aborted the half-done write.
            halted = "; ".join(str(e) for e in group.exceptions)
    if halted:
        log.critical("node halted: %s", halted)
        return 2
    log.info("node stopped cleanly")
    return 0
