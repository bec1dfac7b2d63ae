"""The daemon: one root nursery; each part is a `run(*, task_status)` task.

`Node` only wires (setup.py builds the parts) and runs them: the RPC server, the p2p links
and their router, one reactor per concern (consensus, tx gossip, block sync), the consensus
ticker and proposer. SIGINT/SIGTERM/SIGHUP cancel the root scope; the node closes its
sockets, lets the current LMDB commit finish (commits run shielded in a worker thread),
removes its control socket and exits 0. So does the end of a supervisor's lifeline pipe
(`chain start --stop-on-eof FD`): a foreground testnet's nodes stop when it dies, even by
SIGKILL.

What keeps a node from starting (its p2p port or control socket taken, its home held by
another process) is a StartError with the address and what to do, raised before the store
is opened where it can be: exit status 1 and one line, not a traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import trio

from node.daemon import setup
from node.daemon.config import CONFIG_FILE, NodeConfig, StartError, load_config
from node.daemon.home import lock_home
from node.daemon.store import StoreError
from node.ledger import crypto
from node.ledger.genesis import ConfigError, Genesis, load_genesis

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
        genesis_path = config.path(config.node.genesis_file)
        if not genesis_path.exists():
            raise ConfigError(
                f"{genesis_path}: this home has no genesis yet: install the consortium's with "
                f"`chain genesis install --home {config.home} genesis.toml` (docs/OPERATIONS.md)"
            )
        self.genesis: Genesis = load_genesis(genesis_path)
        self.key = crypto.read_key_file(config.path(config.node.key_file))
        self.parts: setup.Parts | None = None

    @classmethod
    def from_home(cls, home: Path | str) -> Node:
        return cls(load_config(Path(home)))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if setup.may_need_network(self.config, self.genesis):
            check_listen_free(self.config)  # before the store: a taken port fails at once
        chain = await trio.to_thread.run_sync(setup.open_chain, self.config, self.genesis)
        try:
            parts = self.parts = setup.build(self.config, self.genesis, self.key, chain)
            async with trio.open_nursery() as nursery:
                try:
                    await nursery.start(parts.rpc.run)
                except (OSError, ValueError) as exc:  # SocketPathError is a ValueError
                    raise StartError(f"control socket: {exc}") from exc
                network = parts.network
                if network is not None:
                    try:
                        await nursery.start(network.peers.run)
                    except OSError as exc:  # taken between the check and the bind
                        raise StartError(listen_error(self.config, exc)) from exc
                    await nursery.start(network.router.run)
                    await nursery.start(network.consensus.run, parts.driver.receive)
                    await nursery.start(network.gossip.run)
                    await nursery.start(
                        network.sync.run, parts.driver.apply_synced, parts.driver.apply_synced_batch
                    )
                await nursery.start(parts.membership.run)
                if parts.timestamps is not None:
                    await nursery.start(parts.timestamps.run)
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


def listen_error(config: NodeConfig, exc: OSError) -> str:
    address = config.p2p.listen
    where = config.home / CONFIG_FILE
    if exc.errno == errno.EADDRINUSE:
        return (
            f"p2p address {address} is already in use (another node or program listens "
            f"there: `ss -ltnp 'sport = :{config.listen_host_port[1]}'` shows which); stop it, "
            f"or change [p2p] listen in {where}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"p2p address {address} is not an address of this host; fix [p2p] listen in {where}"
    if exc.errno == errno.EACCES:
        return f"p2p address {address}: permission denied (ports below 1024 need privileges)"
    return f"cannot listen on p2p address {address} ([p2p] listen in {where}): {exc}"


def check_listen_free(config: NodeConfig) -> None:
    """StartError unless every address [p2p] listen names can be bound right now, with the
    options trio's listener uses (SO_REUSEADDR: a port in TIME_WAIT is free, one with a
    listener is not)."""
    host, port = config.listen_host_port
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartError(
            f"p2p address {config.p2p.listen}: host {host!r} does not resolve ({exc.strerror}); "
            f"fix [p2p] listen in {config.home / CONFIG_FILE}"
        ) from exc
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise StartError(listen_error(config, exc)) from exc


async def _stop_on_eof(fd: int, cancel: trio.CancelScope) -> None:
    """Cancel `cancel` when `fd` (the read end of a supervisor's pipe) reaches end of file:
    the kernel closes the write end when the supervisor exits, however it exits."""
    os.set_blocking(fd, False)
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            if os.read(fd, 4096):
                continue  # nothing is ever written; ignore it if something is
        except BlockingIOError:
            continue
        except OSError as exc:
            log.warning("lifeline fd %d: %s; treating it as closed", fd, exc)
        log.info("supervisor gone (lifeline fd %d closed): shutting down", fd)
        cancel.cancel()
        return


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def serve(
    home: Path | str, log_level: str | None = None, *, stop_on_eof: int | None = None
) -> int:
    """Run a node until SIGINT, SIGTERM or SIGHUP (or until `stop_on_eof` closes); exit
    status 0 on a clean stop, 2 when it halted. StartError when it cannot start."""
    node = Node.from_home(home)
    setup_logging(log_level or node.config.node.log_level, node.config.node.log_format)
    halted: str | None = None
    failed: StartError | None = None
    lock = lock_home(node.config.home)
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            try:
                async with trio.open_nursery() as nursery:

                    async def stop_on_signal() -> None:
                        async for signum in signals:
                            log.info("received %s: shutting down", signal.Signals(signum).name)
                            nursery.cancel_scope.cancel()
                            return

                    nursery.start_soon(stop_on_signal)
                    if stop_on_eof is not None:
                        nursery.start_soon(_stop_on_eof, stop_on_eof, nursery.cancel_scope)
                    await nursery.start(node.run)
            except* StartError as group:
                failed = group.exceptions[0]  # type: ignore[assignment]
            except* StoreError as group:
                # A full map or disk, or a certified block that does not fit our state: stop
                # committing rather than corrupt or fork. LMDB aborted the half-done write.
                halted = "; ".join(str(e) for e in group.exceptions)
    finally:
        os.close(lock)
    if failed is not None:
        log.error("node did not start: %s", failed)
        raise failed
    if halted is None and node.parts is not None and node.parts.chain.halted:
        halted = node.parts.chain.halted  # halted earlier, served reads until stopped
    if halted:
        log.critical("node halted: %s", halted)
        return 2
    log.info("node stopped cleanly")
    return 0
