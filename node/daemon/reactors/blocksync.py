"""The block sync reactor: head announcements ("head"), block range requests ("breq") and
answers ("blks", blocks with their commit certificates).

Every node announces its head each HEAD_INTERVAL_S, and to the peers that are not
validators after each commit as well. A node that sees a peer ahead of it, or
whose replica asks for blocks (FetchBlocks), requests consecutive ranges of up to
SYNC_BATCH_BLOCKS from up to SYNC_PARALLEL peers at once (each range from another peer, the
next ones asked for while the current one commits), checks each block's certificate
against its header BEFORE decoding the rest (off the event loop), and commits each answer
through the driver in one write transaction (Chain.commit_certified). It serves others'
requests from its store, up to SYNC_MAX_BYTES per answer.
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
HEAD_CHECK_S = 0.1  # how often the head loop looks for newly connected peers
MAX_QUEUED_MESSAGES = 16
MAX_SYNC_ROUNDS = 10_000  # per wake-up; each round fetches up to SYNC_BATCH_BLOCKS
SYNC_PARALLEL = 3  # ranges requested at once, each from another peer when there are several
MAX_RANGES_PER_ROUND = 1_000  # answers handled per round (a round ends at the first bad one)

Apply = Callable[[Block, bytes], Awaitable[bool]]  # (block, certificate bytes) -> committed
# Consecutive certified blocks, from the head + 1 on -> how many were committed.
ApplyBatch = Callable[[list[tuple[Block, bytes]]], Awaitable[int]]


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
        self._apply_batch: ApplyBatch | None = None
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
        # Ranges asked for and not answered yet, (peer, from height) -> the answer once here.
        self._requested: dict[tuple[bytes, int], dict[str, Any] | None] = {}
        self._answered = trio.Event()

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
        self._peers.broadcast_nowait(self._head_message(height))

    def announce_commit(self, height: int) -> None:
        """A block committed: tell the peers that are not validators at once (a full node
        learns of new blocks from nothing else). Validators hear the periodic announcement
        only: consensus itself tells a validator that it is behind (a certificate, f + 1
        checkpoints), and a head frame per block to each of them was a sixth of a light-load
        round's frames."""
        validators = self._directory.accepted
        followers = [p for p in self._peers.connected_peers() if p not in validators]
        if followers:
            msg = self._head_message(height)
            for peer in followers:
                self._peers.send_nowait(peer, msg)

    def _head_message(self, height: int) -> dict[str, Any]:
        return {"t": "head", "h": height, "ms": self._chain.clock_ms()}

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
        self,
        apply: Apply,
        apply_batch: ApplyBatch | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve, sync and announce; `apply` commits a fetched block and `apply_batch` a run
        of them (the driver's)."""
        self._apply = apply
        self._apply_batch = apply_batch
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_loop)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._head_loop)
            task_status.started()

    async def _head_loop(self) -> None:
        """Announce the head every HEAD_INTERVAL_S, and at once when a peer connects (a
        restarted node behind us learns our height without waiting for the next round)."""
        known: set[bytes] = set()
        last = -HEAD_INTERVAL_S
        while True:
            connected = set(self._peers.connected_peers())
            now = trio.current_time()
            if connected - known or now - last >= HEAD_INTERVAL_S:
                self.announce_head(self._store.head.height)
                last = now
            known = connected
            await trio.sleep(HEAD_CHECK_S)

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
            elif (peer, msg.get("from")) in self._requested:
                key = (peer, msg["from"])
                if self._requested[key] is None:
                    self._requested[key] = msg
                    self._answered.set()
                else:
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
        """Fetch and commit from the head on, with up to SYNC_PARALLEL ranges in flight (each
        from the next peer known to have it); False when nothing was committed (no candidate,
        a timeout, a bad or empty answer)."""
        candidates = self._candidates()
        if not candidates:
            return False
        rng.shuffle(candidates)
        width = min(SYNC_PARALLEL, len(candidates))
        # (from height, peer, deadline) in height order; ranges of SYNC_BATCH_BLOCKS.
        flight: list[tuple[int, bytes, float]] = []
        turn = 0
        applied_any = False
        try:
            for _ in range(MAX_RANGES_PER_ROUND):
                next_from = (
                    flight[-1][0] + SYNC_BATCH_BLOCKS if flight else self._store.head.height + 1
                )
                while len(flight) < width:
                    peer = self._peer_for(candidates, next_from, turn, first=not flight)
                    if peer is None:
                        break
                    turn += 1
                    self._ask(peer, next_from)
                    flight.append((next_from, peer, trio.current_time() + SYNC_TIMEOUT_S))
                    next_from += SYNC_BATCH_BLOCKS
                if not flight:
                    return applied_any
                start, peer, deadline = flight.pop(0)
                response = await self._answer(peer, start, deadline)
                if response is None:
                    self._counters["sync_timeout"] += 1
                    return applied_any
                items = response.get("items")
                if not isinstance(items, list) or not items:
                    return applied_any
                applied, complete = await self._apply_range(start, items)
                applied_any = applied_any or applied > 0
                if not complete:
                    return applied_any
                if flight and self._store.head.height + 1 < flight[0][0]:
                    # A short answer (byte-bounded) left a gap before the next range asked
                    # for: forget those and ask again from the new head on.
                    self._forget(flight)
                    flight = []
            return applied_any
        finally:
            self._forget(flight)

    def _peer_for(
        self, candidates: list[bytes], start: int, turn: int, *, first: bool
    ) -> bytes | None:
        """The next candidate in turn that announced a head at or above `start` (or that the
        replica named and whose height it wants); any candidate for the first range."""
        for k in range(len(candidates)):
            peer = candidates[(turn + k) % len(candidates)]
            hinted = peer in self._hinted and self.sync_target >= start
            if first or hinted or self.peer_heads.get(peer, 0) >= start:
                return peer
        return None

    def _forget(self, flight: list[tuple[int, bytes, float]]) -> None:
        for start, peer, _ in flight:
            self._requested.pop((peer, start), None)

    def _ask(self, peer: bytes, start: int) -> None:
        self._requested[(peer, start)] = None
        self._sender.send(peer, {"t": "breq", "from": start, "max": SYNC_BATCH_BLOCKS})

    async def _answer(self, peer: bytes, start: int, deadline: float) -> dict[str, Any] | None:
        key = (peer, start)
        with trio.move_on_at(deadline):
            while self._requested.get(key) is None:
                if key not in self._requested:
                    return None
                self._answered = trio.Event()
                await self._answered.wait()
        return self._requested.pop(key, None)

    async def _apply_range(self, start: int, items: list[Any]) -> tuple[int, bool]:
        """Check and commit one answer's blocks (from height `start` on); (how many were
        committed, whether every one of them was good and is stored now)."""
        pairs: list[tuple[bytes, bytes]] = []
        for item in items:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(x, bytes) for x in item)
            ):
                self._counters["sync_bad_item"] += 1
                break
            pairs.append((item[0], item[1]))
        well_formed = len(pairs) == len(items)
        applied = 0
        while True:
            skip = self._store.head.height + 1 - start  # stored already (consensus, say)
            if skip < 0:
                return applied, False
            run = pairs[skip:]
            if not run:
                return applied, well_formed
            checked = await self._check_run(run)
            if not checked:
                self._counters["sync_rejected"] += 1
                return applied, False
            if self._apply_batch is not None:
                for _ in checked:  # counted per block, as on the one-block path
                    crash_point("sync-apply")
                count = await self._apply_batch(checked)
            else:
                count = 0
                for block, cert in checked:
                    if not await self._apply_if_set(block, cert):
                        break
                    count += 1
            if count == 0:
                return applied, False
            applied += count
            self._counters["sync_blocks_applied"] += count

    async def _apply_if_set(self, block: Block, cert: bytes) -> bool:
        return self._apply is not None and await self._apply(block, cert)

    async def _check_run(self, run: list[tuple[bytes, bytes]]) -> list[tuple[Block, bytes]]:
        """The longest prefix of `run` (which starts at head + 1) whose certificates verify
        against the set that signs head + 1, decoded: all of it when no epoch change is
        scheduled, else the first block alone (the next set is checked after it)."""
        chain = self._chain
        head = chain.store.head.height
        epoch = chain.epoch_for(head + 1)
        signers = epoch.keys
        chain_id = chain.genesis.chain_id
        max_block_bytes = chain.params.max_block_bytes
        if epoch.keys != chain.epoch_for(head + 2).keys:
            run = run[:1]

        def check() -> list[tuple[Block, bytes]]:
            ok: list[tuple[Block, bytes]] = []
            for offset, (payload, cert_raw) in enumerate(run):
                try:
                    cert = CommitCertificate.from_bytes(cert_raw)
                    if cert.height != head + 1 + offset:
                        raise BlockInvalid(f"block {cert.height} is not {head + 1 + offset}")
                    header = peek_header(payload, max_block_bytes=max_block_bytes)
                    if header.height != cert.height or header.hash() != cert.digest:
                        raise BlockInvalid("certificate is for another block")
                    verify_certificate(cert, chain_id, signers, crypto.verify)
                    block = chain.decode_detached(payload)
                    if block.hash != cert.digest:
                        raise BlockInvalid("certificate is for another block")
                except (BlockInvalid, CertificateError, ValueError) as exc:
                    log.warning("refusing synced block: %s", exc)
                    break
                ok.append((block, cert_raw))
            return ok

        # One worker-thread call for the whole run: certificates (libsodium releases the
        # GIL) and decoding, never on the event loop.
        return await trio.to_thread.run_sync(check)

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
