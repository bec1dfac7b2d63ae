"""The daemon: one root nursery; each part is a `run(*, task_status)` task.

`Node` only wires (setup.py builds the parts) and runs them: the RPC server, the p2p links
and their router, one reactor per concern (consensus, tx gossip, block sync), the consensus
ticker and proposer. SIGINT/SIGTERM cancel the root scope; the node closes its sockets, lets
the current LMDB commit finish (commits run shielded in a worker thread), removes its control
socket and exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import trio

from node.daemon import setup
from node.daemon.config import NodeConfig, load_config
from node.daemon.store import StoreError
from node.ledger import crypto
from node.ledger.genesis import Genesis, load_genesis

log = logging.getLogger("chain.node")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line ([node] log_format = "json"), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis: Genesis = load_genesis(config.path(config.node.genesis_file))
        self.key = crypto.read_key_file(config.path(config.node.key_file))
        self.parts: setup.Parts | None = None

    @classmethod
    def from_home(cls, home: Path | str) -> Node:
        return cls(load_config(Path(home)))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        chain = await trio.to_thread.run_sync(setup.open_chain, self.config, self.genesis)
        try:
            parts = self.parts = setup.build(self.config, self.genesis, self.key, chain)
            async with trio.open_nursery() as nursery:
                await nursery.start(parts.rpc.run)
                network = parts.network
                if network is not None:
                    await nursery.start(network.peers.run)
                    await nursery.start(network.router.run)
                    await nursery.start(network.consensus.run, parts.driver.receive)
                    await nursery.start(network.gossip.run)
                    await nursery.start(network.sync.run, parts.driver.apply_synced)
                await nursery.start(parts.membership.run)
                await nursery.start(parts.driver.run_ticker)
                await nursery.start(parts.driver.run_proposer)
                await nursery.start(parts.diagnosis.run)
                if parts.gateway is not None:
                    await nursery.start(parts.gateway.run)
                log.info(
                    "node %s started: chain %s, height %d, validator %s, socket %s",
                    self.config.node.name,
                    self.genesis.chain_id,
                    chain.store.head.height,
                    parts.driver.config.my_index,
                    self.config.socket_path,
                )
                task_status.started(self)
        finally:
            chain.store.close()


async def serve(home: Path | str, log_level: str | None = None) -> int:
    """Run a node until SIGINT/SIGTERM; exit status 0 on a clean stop, 2 when it halted."""
    node = Node.from_home(home)
    setup_logging(log_level or node.config.node.log_level, node.config.node.log_format)
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
