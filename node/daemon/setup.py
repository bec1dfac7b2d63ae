"""Builds a node's parts and hands each the parts it uses (CometBFT's node/setup.go): the
store, mempool and chain; the consensus driver; the p2p links and one reactor per concern;
the RPC server with the API. Nothing here runs anything: node.py does.

Wiring at a glance (arrows: "is given"):
  driver     <- chain, key, and the consensus reactor's send / broadcast, block sync's fetch
  reactors   <- the peer manager (links), the chain (block sync), the intake (tx gossip)
  intake     <- chain, tx gossip, the driver's wake-up
  api        <- chain, intake.submit, status report
  observe    <- status report, chain, driver (metrics, health, node_diagnose)
  gateway    <- the RPC server (its one method registry), metrics, health
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from consensus.ready import replay_on_start
from node.daemon.api.events import allow_topics, publish_commit
from node.daemon.api.methods import HANDLER_TIMEOUT_S, Api
from node.daemon.chain import Chain
from node.daemon.config import NodeConfig
from node.daemon.driver import ConsensusDriver
from node.daemon.faults import wall_clock_ms
from node.daemon.gateway.server import Gateway
from node.daemon.intake import TxIntake
from node.daemon.membership import Membership
from node.daemon.mempool import Mempool
from node.daemon.observe.diagnose import Diagnosis
from node.daemon.observe.health import Health
from node.daemon.observe.metrics import Metrics
from node.daemon.reactors.blocksync import BlockSyncReactor
from node.daemon.reactors.consensus import ConsensusReactor
from node.daemon.reactors.directory import ValidatorDirectory
from node.daemon.reactors.links import Router, Sender, make_peer_manager
from node.daemon.reactors.timestamps import TimestampReactor
from node.daemon.reactors.txgossip import TxGossipReactor
from node.daemon.replay import quick_check
from node.daemon.status import StatusReport
from node.daemon.store import Store, StoreError
from node.ledger.accounts import account_for_key
from node.ledger.crypto import SigningKey, read_key_file
from node.ledger.genesis import Genesis
from node.ledger.governance import Epoch
from node.rpc.server import RpcServer
from p2p.peers import PeerManager

log = logging.getLogger("chain.node")

SUBSCRIBER_QUEUE = 4096


def open_chain(config: NodeConfig, genesis: Genesis) -> Chain:
    """Open (or create) the store, commit what the replica decided before the last stop,
    and build the mempool and chain over it. Blocking: run it in a worker thread."""
    store = Store(
        config.path(config.node.data_dir),
        map_size_bytes=config.storage.map_size_mb * 1024 * 1024,
        sync=config.storage.sync,
    )
    try:
        store.init_genesis(genesis)
        mempool = Mempool(
            chain_id=genesis.chain_id,
            account_of=lambda pk: account_for_key(store.get_state, pk),
            max_txs=config.mempool.max_txs,
            max_bytes=config.mempool.max_bytes,
            nonce_window=config.mempool.nonce_window,
        )
        chain = Chain(genesis, store, mempool, clock_ms=wall_clock_ms)
        problems = quick_check(store, genesis)
        if problems:
            raise StoreError(
                f"the store in {config.path(config.node.data_dir)} is damaged: "
                f"{'; '.join(problems[:3])}. This node refuses to serve wrong state: restore "
                "it from a backup (`chain restore FILE --home HOME`) or resync it (stop, move "
                "the data dir aside, start: it fetches the chain from its peers)"
            )
        replay_decided(chain)
    except BaseException:
        store.close()
        raise
    return chain


def replay_decided(chain: Chain) -> None:
    """Commit blocks our replica decided just before a crash that the store lacks."""
    store = chain.store
    # The restart rule the simulator runs too (consensus.ready.replay_on_start).
    for height, payload, cert in replay_on_start(store.load_decided(), store.head.height):
        block = chain.decode_payload(payload)
        store.commit_block(
            block, cert, chain_id=chain.genesis.chain_id, signature_ok=lambda t: t.signature_ok()
        )
        log.info("committed journaled block %d decided before the last stop", height)


@dataclass
class Network:
    """The p2p side: links, the router, and one reactor per concern."""

    peers: PeerManager
    router: Router
    directory: ValidatorDirectory
    consensus: ConsensusReactor
    gossip: TxGossipReactor
    sync: BlockSyncReactor


@dataclass
class Parts:
    config: NodeConfig
    genesis: Genesis
    chain: Chain
    driver: ConsensusDriver
    network: Network | None
    intake: TxIntake
    status: StatusReport
    rpc: RpcServer
    membership: Membership
    diagnosis: Diagnosis
    metrics: Metrics
    gateway: Gateway | None
    timestamps: TimestampReactor | None = None


def _link_up(peers: PeerManager) -> Callable[[bytes], bool]:
    def up(key: bytes) -> bool:
        return key in peers.connected_peers()

    return up


def may_need_network(config: NodeConfig, genesis: Genesis) -> bool:
    """needs_network without the store (for checks made before it opens)."""
    return (
        len(genesis.validators) > 1
        or bool(config.p2p.peers or config.p2p.allow)
        or bool(genesis.governance.governors)
    )


def needs_network(config: NodeConfig, genesis: Genesis, chain: Chain) -> bool:
    """A lone validator with no peers and no governance runs without p2p; any other node
    listens (a chain with governors may gain validators)."""
    validators = len(chain.epoch_for(chain.store.head.height + 1).validators)
    return (
        validators > 1
        or bool(config.p2p.peers or config.p2p.allow)
        or bool(genesis.governance.governors)
    )


def build(config: NodeConfig, genesis: Genesis, key: SigningKey, chain: Chain) -> Parts:
    membership = Membership(config, chain, key)
    links = (
        build_links(config, genesis, key, chain, membership)
        if needs_network(config, genesis, chain)
        else None
    )
    driver = ConsensusDriver(
        chain,
        key=key,
        send=links.consensus.send if links else _nowhere_to,
        broadcast=links.consensus.broadcast if links else _nowhere,
        fetch=links.sync.request_blocks if links else _nowhere_to,
        key_for_epoch=membership.key_for_epoch,
        on_epoch=_follow_epochs(links) if links else None,
        link_up=_link_up(links.peers) if links else None,
        batch_ms=config.consensus.batch_ms,
    )
    driver.peer_names.update({v.public_key: v.name for v in genesis.validators})
    network = None
    if links is not None:
        network = finish_network(links, chain, driver)
        sync = network.sync
        chain.on_commit.append(lambda committed: sync.announce_commit(committed.head.height))
    intake = TxIntake(
        chain,
        gossip=network.gossip.gossip if network else None,
        wake_proposer=driver.wakeup_proposer,
    )
    if network is not None:
        heads = network.sync.peer_heads
        membership.attach(network.peers, lambda: max(heads.values(), default=0), intake.submit)
    chain.on_commit.append(membership.on_commit)
    status = StatusReport(
        name=config.node.name,
        public_key=key.public_key,
        genesis=genesis,
        chain=chain,
        driver=driver,
        peers=network.peers if network else None,
        sync=network.sync if network else None,
    )
    rpc = RpcServer(
        config.socket_path,
        max_line_bytes=config.rpc.max_line_bytes,
        max_connections=config.rpc.max_connections,
        line_timeout_s=config.rpc.line_timeout_ms / 1000,
        handler_timeout_s=HANDLER_TIMEOUT_S,
        subscriber_queue=SUBSCRIBER_QUEUE,
    )
    api = Api(chain, submit=intake.submit, node_status=status.status, peers=status.peers)
    for name, (handler, names) in api.methods().items():
        rpc.method(name, handler, params=names)
    allow_topics(rpc.hub)
    hub = rpc.hub
    chain.on_commit.append(lambda committed: publish_commit(hub, committed))
    diagnosis, metrics, health = build_observe(genesis, key, chain, driver, status, rpc)
    timestamps = None
    if config.tsa.url:
        timestamps = TimestampReactor(
            chain,
            url=config.tsa.url,
            key=read_key_file(config.path(config.tsa.key_file)),
            submit=intake.submit,
            timeout_s=config.tsa.timeout_ms / 1000,
        )
        chain.on_commit.append(timestamps.on_commit)
    gateway = None
    if config.gateway.enabled:
        gateway = Gateway(config.home, config.gateway, rpc, metrics=metrics, health=health)
    return Parts(
        config,
        genesis,
        chain,
        driver,
        network,
        intake,
        status,
        rpc,
        membership,
        diagnosis,
        metrics,
        gateway,
        timestamps,
    )


def build_observe(
    genesis: Genesis,
    key: SigningKey,
    chain: Chain,
    driver: ConsensusDriver,
    status: StatusReport,
    rpc: RpcServer,
) -> tuple[Diagnosis, Metrics, Health]:
    """Metrics, health checks and node_diagnose (registered in the one method registry, so
    the control socket and the gateway both carry it)."""
    diagnosis = Diagnosis(chain=chain, driver=driver, status=status, genesis=genesis)
    chain.on_commit.append(diagnosis.on_commit)
    rpc.method("node_diagnose", diagnosis.rpc_node_diagnose, params=())
    health = Health(status=status, chain=chain, own_key=key.public_key)
    metrics = Metrics(
        status=status, chain=chain, health=health, diagnosis=diagnosis, rpc_stats=rpc.statistics
    )
    chain.on_commit.append(lambda committed: metrics.on_commit(committed, time.monotonic()))
    return diagnosis, metrics, health


@dataclass
class Links:
    """The parts of the network the driver is given (built before it)."""

    peers: PeerManager
    counters: Counter[str]
    directory: ValidatorDirectory
    consensus: ConsensusReactor
    sync: BlockSyncReactor


def build_links(
    config: NodeConfig, genesis: Genesis, key: SigningKey, chain: Chain, membership: Membership
) -> Links:
    counters: Counter[str] = Counter()
    peers = make_peer_manager(config, genesis.chain_id, membership.wanted_peers(), key)
    sender = Sender(peers, counters)
    head = chain.store.head.height
    directory = ValidatorDirectory(chain.epoch_for(head + 1).keys)
    directory.update(chain.epoch_for(head + 1).keys, chain.epoch_for(head + 2).keys)
    consensus = ConsensusReactor(
        sender,
        directory=directory,
        own_id=key.public_key,
        max_block_bytes=genesis.consensus.max_block_bytes,
        counters=counters,
    )
    sync = BlockSyncReactor(
        sender,
        chain=chain,
        directory=directory,
        max_frame_bytes=config.p2p.max_frame_bytes,
        counters=counters,
    )
    return Links(peers, counters, directory, consensus, sync)


def finish_network(links: Links, chain: Chain, driver: ConsensusDriver) -> Network:
    gossip = TxGossipReactor(
        links.peers,
        directory=links.directory,
        admit=chain.submit_raw,
        on_accepted=driver.wakeup_proposer,
        stale_txs=chain.mempool.older_than,
        pending=lambda raw: chain.mempool.by_raw(raw) is not None,
        leader=lambda: links.directory.key_of(driver.replica.leader),
        counters=links.counters,
    )
    router = Router(
        links.peers,
        {
            "c": links.consensus.offer,
            "txs": gossip.offer,
            "head": links.sync.on_head,
            "breq": links.sync.offer,
            "blks": links.sync.offer,
        },
        links.counters,
    )
    return Network(links.peers, router, links.directory, links.consensus, gossip, links.sync)


def _follow_epochs(links: Links) -> Callable[[Epoch, Epoch], None]:
    def follow(current: Epoch, upcoming: Epoch) -> None:
        links.directory.update(current.keys, upcoming.keys)
        links.consensus.own_id = links.peers.node_id

    return follow


def _nowhere(raw: bytes) -> None:
    """A lone validator has nobody to send to."""


def _nowhere_to(to: int, payload: object) -> None:
    """A lone validator has nobody to send to or fetch from."""
