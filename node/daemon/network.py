"""The network reactor: consensus messages, transaction gossip and block sync over p2p links.

One reactor per concern, as CometBFT has, each fed by its own bounded channel so that a
flood of transactions never delays consensus messages:
  "c"    consensus message          -> consensus channel -> driver.receive
  "txs"  batch of transactions       -> gossip channel    -> chain admission (batched verify)
  "head" a peer's committed height   -> sync bookkeeping
  "breq" / "blks"  block range request / response with commit certificates
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from consensus import CertificateError, CommitCertificate, verify_certificate
from node.daemon.config import split_address
from node.ledger import crypto
from node.ledger.block import peek_header
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import ConfigError
from p2p.gossip import SeenSet
from p2p.identity import certificate_public_key, private_key_pem
from p2p.peers import PeerManager

if TYPE_CHECKING:
    from node.daemon.node import Node

log = logging.getLogger("chain.network")

TX_BATCH_MAX = 512
TX_BATCH_DELAY_S = 0.005
SYNC_BATCH_BLOCKS = 64
SYNC_MAX_BYTES = 8 * 1024 * 1024
SYNC_TIMEOUT_S = 5.0
HEAD_INTERVAL_S = 1.0
REGOSSIP_INTERVAL_S = 5.0
REGOSSIP_AGE_MS = 5000
REGOSSIP_MAX = 2000
GOSSIP_PEER_BYTES = 32 * 1024 * 1024  # tx batches waiting for admission, per peer


def _blocks_message_bytes(msg: dict[str, Any]) -> int:
    items = msg.get("items")
    if not isinstance(items, list):
        return 64
    sizes = (
        len(x) for item in items if isinstance(item, list) for x in item if isinstance(x, bytes)
    )
    return 64 + sum(sizes)


class ByteBudget:
    """Bytes waiting in one channel, per peer, with a ceiling: a peer whose messages fill its
    share has the next ones dropped (and counted) until the reactor catches up."""

    def __init__(self, per_peer_bytes: int) -> None:
        self.per_peer_bytes = per_peer_bytes
        self._held: Counter[bytes] = Counter()

    def take(self, peer: bytes, size: int) -> bool:
        if self._held[peer] + size > self.per_peer_bytes:
            return False
        self._held[peer] += size
        return True

    def give_back(self, peer: bytes, size: int) -> None:
        self._held[peer] -= size
        if self._held[peer] <= 0:
            del self._held[peer]


class Network:
    def __init__(self, node: Node) -> None:
        self.node = node
        cfg = node.config
        genesis = node.genesis
        self.validator_ids = [v.public_key for v in genesis.validators]
        allowed: dict[bytes, bytes] = {}
        dial: dict[bytes, tuple[str, int]] = {}
        for i, v in enumerate(genesis.validators):
            if not v.certificate:
                raise ConfigError(f"genesis: validators[{i}] has no certificate")
            allowed[v.public_key] = v.certificate.encode()
            dial[v.public_key] = split_address(v.address, f"genesis: validators[{i}].address")
        for entry in cfg.p2p.allow:
            allowed[bytes.fromhex(entry)] = self._peer_cert(entry)
        for entry in cfg.p2p.peers:
            pub_hex, _, address = entry.partition("@")
            allowed[bytes.fromhex(pub_hex)] = self._peer_cert(pub_hex)
            dial[bytes.fromhex(pub_hex)] = split_address(address, f"{cfg.home}: [p2p] peers")
        host, port = cfg.listen_host_port
        cert_pem = cfg.path(cfg.node.cert_file).read_bytes()
        if certificate_public_key(cert_pem) != node.key.public_key:
            raise ConfigError(f"{cfg.path(cfg.node.cert_file)}: certificate is not for node_key")
        self.peers_mgr = PeerManager(
            node_id=node.key.public_key,
            cert_pem=cert_pem,
            key_pem=private_key_pem(node.key.private_key),
            listen_host=host,
            listen_port=port,
            chain_id=genesis.chain_id,
            allowed=allowed,
            dial=dial,
            max_frame_bytes=cfg.p2p.max_frame_bytes,
            send_queue_frames=cfg.p2p.send_queue_frames,
            send_queue_bytes=cfg.p2p.send_queue_bytes,
            handshake_timeout_ms=cfg.p2p.handshake_timeout_ms,
        )
        self._consensus_send, self._consensus_recv = trio.open_memory_channel[
            tuple[bytes, bytes, int]
        ](4096)
        # The channels are bounded in items; these bound what the items hold, per peer, so
        # that one peer's 16 MiB frames cannot pile up in memory (4096 of them would).
        self._consensus_budget = ByteBudget(2 * genesis.consensus.max_block_bytes + (1 << 20))
        self._gossip_budget = ByteBudget(GOSSIP_PEER_BYTES)
        self._blocks_budget = ByteBudget(2 * cfg.p2p.max_frame_bytes)
        self._gossip_send, self._gossip_recv = trio.open_memory_channel[
            tuple[bytes, list[bytes], int]
        ](256)
        self._blocks_send, self._blocks_recv = trio.open_memory_channel[
            tuple[bytes, dict[str, Any], int]
        ](16)
        self._seen = SeenSet(200_000)
        self._outgoing_txs: list[bytes] = []
        self._tx_flush = trio.Event()
        self.peer_heads: dict[bytes, int] = {}
        self.sync_target = 0
        self._sync_wakeup = trio.Event()
        self._sync_peers: tuple[bytes, ...] = ()
        self._waiting_for: bytes | None = None
        self._response_send, self._response_recv = trio.open_memory_channel[
            tuple[bytes, dict[str, Any]]
        ](4)
        self.counters: Counter[str] = Counter()

    def _peer_cert(self, pub_hex: str) -> bytes:
        path = self.node.config.home / "peers" / f"{pub_hex}.pem"
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{path}: certificate of allowed peer {pub_hex[:16]} missing"
            ) from exc

    # --- outputs used by the node ---------------------------------------------------------------

    def send_consensus(self, to: int, raw: bytes) -> None:
        if 0 <= to < len(self.validator_ids):
            self._send(self.validator_ids[to], {"t": "c", "m": raw})

    def broadcast_consensus(self, raw: bytes) -> None:
        msg = {"t": "c", "m": raw}
        for peer in self.validator_ids:
            if peer != self.node.key.public_key:
                self._send(peer, msg)

    def _send(self, peer: bytes, msg: dict[str, Any]) -> None:
        try:
            if not self.peers_mgr.send_nowait(peer, msg):
                self.counters["send_dropped"] += 1
        except (KeyError, ValueError) as exc:
            self.counters["send_refused"] += 1
            log.debug("cannot send to %s: %s", peer.hex()[:16], exc)

    def gossip_txs(self, raws: list[bytes]) -> None:
        for raw in raws:
            self._seen.add(crypto.sha256(raw))
        self._outgoing_txs.extend(raws)
        self._tx_flush.set()

    def announce_head(self, height: int) -> None:
        self.peers_mgr.broadcast_nowait({"t": "head", "h": height})

    def request_blocks(self, from_height: int, peers: tuple[int, ...]) -> None:
        ids = tuple(self.validator_ids[i] for i in peers if 0 <= i < len(self.validator_ids))
        self._sync_peers = ids
        self.sync_target = max(self.sync_target, from_height)
        self._sync_wakeup.set()

    def connected(self) -> list[bytes]:
        return self.peers_mgr.connected_peers()

    def peers(self) -> list[dict[str, Any]]:
        stats = self.peers_mgr.statistics()
        names = {v.public_key.hex(): v.name for v in self.node.genesis.validators}
        out = []
        for pub_hex, p in stats["peers"].items():
            out.append(
                {
                    "public_key": pub_hex,
                    "name": names.get(pub_hex, "full-node"),
                    "head": self.peer_heads.get(bytes.fromhex(pub_hex)),
                    **p,
                }
            )
        return out

    def sync_status(self) -> dict[str, Any]:
        height = self.node.chain.store.head.height
        best = max(self.peer_heads.values(), default=0)
        target = max(self.sync_target, best)
        return {
            "syncing": target > height + 1,
            "height": height,
            "target_height": target,
            "p2p": self.peers_mgr.statistics()["counters"],
            "counters": dict(self.counters),
        }

    # --- tasks ------------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.peers_mgr.run)
            nursery.start_soon(self._dispatch)
            nursery.start_soon(self._consensus_loop)
            nursery.start_soon(self._gossip_in_loop)
            nursery.start_soon(self._gossip_out_loop)
            nursery.start_soon(self._serve_blocks_loop)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._head_loop)
            nursery.start_soon(self._regossip_loop)
            task_status.started()

    async def _dispatch(self) -> None:
        async for peer, msg in self.peers_mgr.inbox:
            kind = msg.get("t")
            if kind == "c" and isinstance(msg.get("m"), bytes):
                if peer not in self.validator_ids:
                    self.counters["consensus_from_non_validator"] += 1
                    continue
                raw = msg["m"]
                self._hand_over(
                    kind, self._consensus_send, self._consensus_budget, peer, raw, len(raw)
                )
            elif kind == "txs" and isinstance(msg.get("txs"), list):
                raws = [r for r in msg["txs"][:TX_BATCH_MAX] if isinstance(r, bytes)]
                size = sum(len(r) for r in raws)
                self._hand_over(kind, self._gossip_send, self._gossip_budget, peer, raws, size)
            elif kind == "head" and isinstance(msg.get("h"), int):
                self.peer_heads[peer] = msg["h"]
                if msg["h"] > self.node.chain.store.head.height + 1:
                    self._sync_wakeup.set()
            elif kind in ("breq", "blks"):
                size = _blocks_message_bytes(msg)
                self._hand_over(kind, self._blocks_send, self._blocks_budget, peer, msg, size)
            else:
                self.counters["unknown_message"] += 1

    def _hand_over(
        self,
        kind: str,
        channel: trio.MemorySendChannel[Any],
        budget: ByteBudget,
        peer: bytes,
        item: Any,
        size: int,
    ) -> None:
        """Queue a message for its reactor, or drop it (counted) when the reactor's channel
        or the peer's share of its bytes is full."""
        if not budget.take(peer, size):
            self.counters[f"dropped_{kind}_bytes"] += 1
            return
        try:
            channel.send_nowait((peer, item, size))
        except trio.WouldBlock:
            budget.give_back(peer, size)
            self.counters[f"dropped_{kind}_backlog"] += 1

    async def _consensus_loop(self) -> None:
        driver = self.node.driver
        if driver is not None:
            driver.peer_names.update({v.public_key: v.name for v in self.node.genesis.validators})
        async for peer, raw, size in self._consensus_recv:
            self._consensus_budget.give_back(peer, size)
            if driver is not None:
                await driver.receive(raw, origin=peer)

    async def _gossip_in_loop(self) -> None:
        async for peer, raws, size in self._gossip_recv:
            self._gossip_budget.give_back(peer, size)
            fresh = [r for r in raws if self._seen.add(crypto.sha256(r))]
            if not fresh:
                continue
            outcomes = await self.node.chain.submit_raw(fresh)
            accepted = [r for r, o in zip(fresh, outcomes, strict=True) if o.error is None]
            self.counters["gossip_txs_accepted"] += len(accepted)
            self.counters["gossip_txs_refused"] += len(fresh) - len(accepted)
            if accepted and self.node.driver is not None:
                self.node.driver.wakeup.set()
            if accepted and peer not in self.validator_ids:
                # From a full node: pass on to the validators (they form a full mesh).
                self._relay(accepted, exclude=peer)

    def _relay(self, raws: list[bytes], exclude: bytes | None) -> None:
        for i in range(0, len(raws), TX_BATCH_MAX):
            self.peers_mgr.broadcast_nowait(
                {"t": "txs", "txs": raws[i : i + TX_BATCH_MAX]}, exclude=exclude
            )

    async def _gossip_out_loop(self) -> None:
        while True:
            await self._tx_flush.wait()
            await trio.sleep(TX_BATCH_DELAY_S)  # let a burst gather into one frame per peer
            self._tx_flush = trio.Event()
            raws, self._outgoing_txs = self._outgoing_txs, []
            self._relay(raws, exclude=None)

    async def _regossip_loop(self) -> None:
        """Offer again what has waited long: a peer that was down or cut off when a tx was
        first gossiped (the next leader, say) would otherwise never see it. Peers drop what
        their seen-set already holds, so this costs little."""
        while True:
            await trio.sleep(REGOSSIP_INTERVAL_S)
            stale = self.node.chain.mempool.older_than(REGOSSIP_AGE_MS, REGOSSIP_MAX)
            if stale:
                self.counters["regossiped_txs"] += len(stale)
                self._relay([tx.raw for tx in stale], exclude=None)

    async def _head_loop(self) -> None:
        while True:
            self.announce_head(self.node.chain.store.head.height)
            await trio.sleep(HEAD_INTERVAL_S)

    # --- block sync -----------------------------------------------------------------------------

    async def _serve_blocks_loop(self) -> None:
        store = self.node.chain.store
        async for peer, msg, size in self._blocks_recv:
            self._blocks_budget.give_back(peer, size)
            if msg["t"] == "breq":
                start, count = msg.get("from"), msg.get("max")
                if not (isinstance(start, int) and isinstance(count, int) and start >= 1):
                    self.counters["bad_block_request"] += 1
                    continue
                items = await trio.to_thread.run_sync(
                    store.get_blocks, start, min(max(count, 1), SYNC_BATCH_BLOCKS), SYNC_MAX_BYTES
                )
                self._send(
                    peer,
                    {
                        "t": "blks",
                        "from": start,
                        "items": [list(i) for i in items],
                        "head": store.head.height,
                    },
                )
            elif peer == self._waiting_for:
                try:
                    self._response_send.send_nowait((peer, msg))
                except trio.WouldBlock:
                    self.counters["sync_response_dropped"] += 1
            else:
                self.counters["sync_unsolicited"] += 1

    async def _sync_loop(self) -> None:
        rng = random.Random()
        while True:
            await self._sync_wakeup.wait()
            self._sync_wakeup = trio.Event()
            for _ in range(10_000):  # bounded: each round fetches up to SYNC_BATCH_BLOCKS
                progressed = await self._sync_round(rng)
                if not progressed:
                    break

    def _sync_candidates(self) -> list[bytes]:
        height = self.node.chain.store.head.height
        connected = set(self.peers_mgr.connected_peers())
        ahead = [p for p, h in self.peer_heads.items() if h > height and p in connected]
        hinted = [p for p in self._sync_peers if p in connected]
        return sorted(set(ahead) | set(hinted))

    async def _sync_round(self, rng: random.Random) -> bool:
        chain = self.node.chain
        height = chain.store.head.height
        candidates = self._sync_candidates()
        if not candidates:
            return False
        peer = rng.choice(candidates)
        self._waiting_for = peer
        response: dict[str, Any] | None = None
        try:
            self._send(peer, {"t": "breq", "from": height + 1, "max": SYNC_BATCH_BLOCKS})
            with trio.move_on_after(SYNC_TIMEOUT_S):
                for _ in range(100):  # skip stale answers to earlier requests, bounded
                    got_peer, msg = await self._response_recv.receive()
                    if got_peer == peer and msg.get("from") == height + 1:
                        response = msg
                        break
        finally:
            self._waiting_for = None
        if response is None:
            self.counters["sync_timeout"] += 1
            return False
        items = response.get("items")
        if not isinstance(items, list) or not items:
            return False
        applied = 0
        for item in items:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(x, bytes) for x in item)
            ):
                self.counters["sync_bad_item"] += 1
                return applied > 0
            if not await self._apply_synced(item[0], item[1]):
                self.counters["sync_rejected"] += 1
                return applied > 0
            applied += 1
        self.counters["sync_blocks_applied"] += applied
        return True

    async def _apply_synced(self, payload: bytes, cert_raw: bytes) -> bool:
        """Check a fetched block's certificate first (its header is enough for that), then
        decode the rest off the event loop, then commit it. A block is never decoded in full
        on the word of a peer alone, and fetched blocks stay out of the proposal cache."""
        chain = self.node.chain
        params = chain.params
        try:
            cert = CommitCertificate.from_bytes(cert_raw)
            if cert.height <= chain.store.head.height:
                return True  # consensus got there first
            if cert.height != chain.store.head.height + 1:
                raise BlockInvalid(f"block {cert.height} does not follow our head")
            header = peek_header(payload, max_block_bytes=params.max_block_bytes)
            if header.height != cert.height or header.hash() != cert.digest:
                raise BlockInvalid("certificate is for another block")
            verify_certificate(
                cert, chain.genesis.chain_id, chain.genesis.validator_keys, crypto.verify
            )
            block = await chain.decode_off_loop(payload)
            if block.hash != cert.digest:
                raise BlockInvalid("certificate is for another block")
        except (BlockInvalid, CertificateError, ValueError) as exc:
            log.warning("refusing synced block: %s", exc)
            return False
        driver = self.node.driver
        if driver is None:
            return False
        return await driver.apply_synced(block, cert_raw)
