"""The node's p2p links: one PeerManager for the validators of genesis and the configured
full nodes, the router that hands each incoming message to its reactor, the peer table.

Who may connect: every validator of genesis (pinned to the certificate it lists) and the
full nodes of [p2p] allow / peers (their certificates in <home>/peers/<key hex>.pem).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from node.daemon.config import NodeConfig, split_address
from node.ledger.crypto import SigningKey
from node.ledger.genesis import ConfigError, Genesis
from p2p.identity import certificate_public_key, private_key_pem
from p2p.peers import PeerManager

log = logging.getLogger("chain.network")

Offer = Callable[[bytes, dict[str, Any]], None]


PeerSet = tuple[dict[bytes, bytes], dict[bytes, tuple[str, int]]]  # (pins, dial targets)


def peer_set(
    config: NodeConfig,
    validators: Sequence[dict[str, Any]],
    candidates: Sequence[dict[str, Any]] = (),
) -> PeerSet:
    """Whom to pin and whom to dial: the validators given (the current epoch's and the one
    scheduled next), candidates of passed additions (they connect as full nodes before they
    join; pinned, not dialled), and the full nodes of [p2p] allow / peers."""
    allowed: dict[bytes, bytes] = {}
    dial: dict[bytes, tuple[str, int]] = {}
    for v in validators:
        if not v["certificate"]:
            raise ConfigError(f"validator {v['name']!r} has no certificate (genesis or governance)")
        allowed[v["public_key"]] = v["certificate"].encode()
        dial[v["public_key"]] = split_address(v["address"], f"validator {v['name']!r} address")
    for c in candidates:
        allowed.setdefault(c["public_key"], c["certificate"].encode())
    for entry in config.p2p.allow:
        allowed[bytes.fromhex(entry)] = _peer_cert(config, entry)
    for entry in config.p2p.peers:
        pub_hex, _, address = entry.partition("@")
        allowed[bytes.fromhex(pub_hex)] = _peer_cert(config, pub_hex)
        dial[bytes.fromhex(pub_hex)] = split_address(address, f"{config.home}: [p2p] peers")
    return allowed, dial


def make_peer_manager(
    config: NodeConfig, chain_id: str, peers: PeerSet, key: SigningKey
) -> PeerManager:
    allowed, dial = peers
    host, port = config.listen_host_port
    cert_pem = config.path(config.node.cert_file).read_bytes()
    if certificate_public_key(cert_pem) != key.public_key:
        raise ConfigError(f"{config.path(config.node.cert_file)}: certificate is not for node_key")
    return PeerManager(
        node_id=key.public_key,
        cert_pem=cert_pem,
        key_pem=private_key_pem(key.private_key),
        listen_host=host,
        listen_port=port,
        chain_id=chain_id,
        allowed=allowed,
        dial=dial,
        max_frame_bytes=config.p2p.max_frame_bytes,
        send_queue_frames=config.p2p.send_queue_frames,
        send_queue_bytes=config.p2p.send_queue_bytes,
        handshake_timeout_ms=config.p2p.handshake_timeout_ms,
    )


def _peer_cert(config: NodeConfig, pub_hex: str) -> bytes:
    path = config.home / "peers" / f"{pub_hex}.pem"
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: certificate of allowed peer {pub_hex[:16]} missing") from exc


class Sender:
    """Best-effort sends to one peer: a full queue or a missing link drops (and counts)."""

    def __init__(self, peers: PeerManager, counters: Counter[str]) -> None:
        self.peers = peers
        self._counters = counters

    def send(self, peer: bytes, msg: dict[str, Any]) -> None:
        try:
            if not self.peers.send_nowait(peer, msg):
                self._counters["send_dropped"] += 1
        except (KeyError, ValueError) as exc:
            self._counters["send_refused"] += 1
            log.debug("cannot send to %s: %s", peer.hex()[:16], exc)


class Router:
    """Reads every link's messages and offers each to the reactor of its kind, never
    waiting on a reactor: one slow concern cannot hold up the others."""

    def __init__(
        self, peers: PeerManager, routes: Mapping[str, Offer], counters: Counter[str]
    ) -> None:
        self._peers = peers
        self._routes = dict(routes)
        self._counters = counters

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for peer, msg in self._peers.inbox:
            offer = self._routes.get(msg.get("t"))  # type: ignore[arg-type]
            if offer is None:
                self._counters["unknown_message"] += 1
            else:
                offer(peer, msg)


def peer_table(
    peers: PeerManager, genesis: Genesis, heads: Mapping[bytes, int]
) -> list[dict[str, Any]]:
    """One row per allowed peer: its name in genesis, last announced head, link statistics."""
    names = {v.public_key.hex(): v.name for v in genesis.validators}
    return [
        {
            "public_key": pub_hex,
            "name": names.get(pub_hex, "full-node"),
            "head": heads.get(bytes.fromhex(pub_hex)),
            **p,
        }
        for pub_hex, p in peers.statistics()["peers"].items()
    ]
