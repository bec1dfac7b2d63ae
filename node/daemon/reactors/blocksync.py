"""The block sync reactor: head announcements ("head"), block range requests ("breq") and
answers ("blks", blocks with their commit certificates).

Every node announces its head each HEAD_INTERVAL_S. A node that sees a peer ahead of it, or
whose replica asks for blocks (FetchBlocks), requests ranges of up to SYNC_BATCH_BLOCKS from
a peer that has them, checks each block's certificate against its header BEFORE decoding the
rest (off the event loop), and commits it through the driver. It serves others' requests
from its store, up to SYNC_MAX_BYTES per answer.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus import CertificateError, CommitCertificate, verify_certificate
from node.daemon.chain import Chain
from node.daemon.faults import crash_point
from node.daemon.reactors.directory import ValidatorDirectory
from node.daemon.reactors.inlet import Inlet
from node.daemon.reactors.links import Sender
from node.ledger import crypto
from node.ledger.block import Block, peek_header
from node.ledger.errors import BlockInvalid

log = logging.getLogger("chain.network")

SYNC_BATCH_BLOCKS = 64
SYNC_MAX_BYTES = 8 * 1024 * 1024
SYNC_TIMEOUT_S = 5.0
HEAD_INTERVAL_S = 1.0
MAX_QUEUED_MESSAGES = 16
MAX_SYNC_ROUNDS = 10_000  # per wake-up; each round fetches up to SYNC_BATCH_BLOCKS

Apply = Callable[[Block, bytes], Awaitable[bool]]  # (block, certificate bytes) -> committed


def _message_bytes(msg: dict[str, Any]) -> int:
    items = msg.get("items")
    if not isinstance(items, list):
        return 64
    sizes = (
        len(x) for item in items if isinstance(item, list) for x in item if isinstance(x, bytes)
    )
    return 64 + sum(sizes)


class BlockSyncReactor:
    def __init__(
        self,
        sender: Sender,
        *,
        chain: Chain,
        directory: ValidatorDirectory,
        max_frame_bytes: int,
        counters: Counter[str],
    ) -> None:
        self._sender = sender
        self._peers = sender.peers
        self._chain = chain
        self._store = chain.store
        self._directory = directory
        self._counters = counters
        self._apply: Apply | None = None
        self.inlet = Inlet(
            "blocks",
            max_items=MAX_QUEUED_MESSAGES,
            per_peer_bytes=2 * max_frame_bytes,
            counters=counters,
        )
        self.peer_heads: dict[bytes, int] = {}
        self.sync_target = 0
        self._wakeup = trio.Event()
        self._hinted: tuple[bytes, ...] = ()
        self._waiting_for: bytes | None = None
        self._response_send, self._response_recv = trio.open_memory_channel[
            tuple[bytes, dict[str, Any]]
        ](4)

    # --- inputs --------------------------------------------------------------------------

    def offer(self, peer: bytes, msg: dict[str, Any]) -> None:
        self.inlet.offer(peer, msg, _message_bytes(msg))

    def on_head(self, peer: bytes, msg: dict[str, Any]) -> None:
        height = msg.get("h")
        if not isinstance(height, int) or isinstance(height, bool):
            self._counters["unknown_message"] += 1
            return
        self.peer_heads[peer] = height
        clock = msg.get("ms")
        if isinstance(clock, int) and not isinstance(clock, bool) and 0 < clock < 2**53:
            self._chain.clock.peer_reading(peer, clock)
        if height > self._store.head.height + 1:
            self._wakeup.set()

    def request_blocks(self, from_height: int, peers: tuple[int, ...]) -> None:
        """The replica is behind (FetchBlocks): fetch from these validators first."""
        keys = (self._directory.key_of(i) for i in peers)
        self._hinted = tuple(k for k in keys if k is not None)
        self.sync_target = max(self.sync_target, from_height)
        self._wakeup.set()

    def announce_head(self, height: int) -> None:
        # With our clock: peers watch theirs against the others' (node/daemon/clockwatch.py).
        self._peers.broadcast_nowait({"t": "head", "h": height, "ms": self._chain.clock_ms()})

    def status(self) -> dict[str, Any]:
        height = self._store.head.height
        target = max(self.sync_target, max(self.peer_heads.values(), default=0))
        return {
            "syncing": target > height + 1,
            "height": height,
            "target_height": target,
            "p2p": self._peers.statistics()["counters"],
            "counters": dict(self._counters),
        }

    # --- tasks ---------------------------------------------------------------------------

    async def run(
        self, apply: Apply, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve, sync and announce; `apply` commits a fetched block (the driver's)."""
        self._apply = apply
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_loop)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._head_loop)
            task_status.started()

    async def _head_loop(self) -> None:
        while True:
            self.announce_head(self._store.head.height)
            await trio.sleep(HEAD_INTERVAL_S)

    async def _serve_loop(self) -> None:
        store = self._store
        async for peer, msg in self.inlet.items():
            if msg.get("t") == "breq":
                start, count = msg.get("from"), msg.get("max")
                if not (isinstance(start, int) and isinstance(count, int) and start >= 1):
                    self._counters["bad_block_request"] += 1
                    continue
                items = await trio.to_thread.run_sync(
                    store.get_blocks, start, min(max(count, 1), SYNC_BATCH_BLOCKS), SYNC_MAX_BYTES
                )
                self._sender.send(
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
                    self._counters["sync_response_dropped"] += 1
            else:
                self._counters["sync_unsolicited"] += 1

    async def _sync_loop(self) -> None:
        rng = random.Random()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            for _ in range(MAX_SYNC_ROUNDS):
                if not await self._sync_round(rng):
                    break

    def _candidates(self) -> list[bytes]:
        height = self._store.head.height
        connected = set(self._peers.connected_peers())
        ahead = [p for p, h in self.peer_heads.items() if h > height and p in connected]
        hinted = [p for p in self._hinted if p in connected]
        return sorted(set(ahead) | set(hinted))

    async def _sync_round(self, rng: random.Random) -> bool:
        height = self._store.head.height
        candidates = self._candidates()
        if not candidates:
            return False
        peer = rng.choice(candidates)
        self._waiting_for = peer
        response: dict[str, Any] | None = None
        try:
            self._sender.send(peer, {"t": "breq", "from": height + 1, "max": SYNC_BATCH_BLOCKS})
            with trio.move_on_after(SYNC_TIMEOUT_S):
                for _ in range(100):  # skip stale answers to earlier requests, bounded
                    got_peer, msg = await self._response_recv.receive()
                    if got_peer == peer and msg.get("from") == height + 1:
                        response = msg
                        break
        finally:
            self._waiting_for = None
        if response is None:
            self._counters["sync_timeout"] += 1
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
                self._counters["sync_bad_item"] += 1
                return applied > 0
            if not await self.apply_fetched(item[0], item[1]):
                self._counters["sync_rejected"] += 1
                return applied > 0
            applied += 1
        self._counters["sync_blocks_applied"] += applied
        return True

    async def apply_fetched(self, payload: bytes, cert_raw: bytes) -> bool:
        """Check a fetched block's certificate first (its header is enough for that), then
        decode the rest off the event loop, then commit it. A block is never decoded in full
        on the word of a peer alone, and fetched blocks stay out of the proposal cache."""
        chain = self._chain
        head = chain.store.head.height
        try:
            cert = CommitCertificate.from_bytes(cert_raw)
            if cert.height <= head:
                return True  # consensus got there first
            if cert.height != head + 1:
                raise BlockInvalid(f"block {cert.height} does not follow our head {head}")
            header = peek_header(payload, max_block_bytes=chain.params.max_block_bytes)
            if header.height != cert.height or header.hash() != cert.digest:
                raise BlockInvalid("certificate is for another block")
            # Checked against the set of its own epoch (known: it follows our head).
            signers = chain.epoch_for(cert.height).keys
            verify_certificate(cert, chain.genesis.chain_id, signers, crypto.verify)
            block = await chain.decode_off_loop(payload)
            if block.hash != cert.digest:
                raise BlockInvalid("certificate is for another block")
        except (BlockInvalid, CertificateError, ValueError) as exc:
            log.warning("refusing synced block: %s", exc)
            return False
        if self._apply is None:
            return False
        crash_point("sync-apply")
        return await self._apply(block, cert_raw)
