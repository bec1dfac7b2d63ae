"""The transaction gossip reactor: "txs" frames, batches of raw transactions.

Outgoing, at two speeds. What the node admitted goes to the current leader at once (a burst
gathered into one frame, TX_BATCH_DELAY_S): only the leader needs it to propose. The other
peers get it LAZY_GOSSIP_S later, and only what is still pending then: at light and moderate
load the block has carried it by that time, so its frame to every backup (a frame per tx at
light load, three quarters of a node's gossip frames) is never sent, and a backup checks
the tx once, when it decodes the proposal. Still-pending txs reach everyone, so a backup's
censorship check and a new leader after a view change see them. Without a known leader
(a full node whose replica has no view yet) everything goes the lazy way, to every peer.

Incoming: a batch is de-duplicated against a bounded seen-set and admitted like a client's
submission (decode, state checks, batched signature checks off the event loop); what a full
node sent is passed on to the validators. What has waited long in the mempool is offered
again, for a peer that was cut off when it was first sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio

from node.daemon.reactors.directory import ValidatorDirectory
from node.daemon.reactors.inlet import Inlet
from node.ledger import crypto
from node.ledger.tx import Transaction
from p2p.gossip import SeenSet
from p2p.peers import PeerManager

TX_BATCH_MAX = 512
TX_BATCH_DELAY_S = 0.005  # eager frames to the leader: gathers a burst, adds ~nothing
LAZY_GOSSIP_S = 0.25  # to the other peers, what is still pending after this long
LAZY_GATHER_S = 0.02
REGOSSIP_INTERVAL_S = 5.0
REGOSSIP_AGE_MS = 5000
REGOSSIP_MAX = 2000
SEEN_SET_SIZE = 200_000
GOSSIP_PEER_BYTES = 32 * 1024 * 1024  # tx batches waiting for admission, per peer
MAX_QUEUED_BATCHES = 256
# Admitted txs waiting for the next outgoing frame; beyond this the oldest are left to the
# re-gossip of stale txs (they are in the mempool either way).
MAX_OUTGOING_TXS = 50_000


class Outcome(Protocol):
    @property
    def error(self) -> object | None: ...


Admit = Callable[[Sequence[bytes]], Awaitable[Sequence[Outcome]]]
StaleTxs = Callable[[int, int], list[Transaction]]  # (age_ms, limit) -> oldest waiting
Pending = Callable[[bytes], bool]  # raw tx -> still in the mempool
LeaderKey = Callable[[], bytes | None]  # the current leader's peer key, if known


class TxGossipReactor:
    def __init__(
        self,
        peers: PeerManager,
        *,
        directory: ValidatorDirectory,
        admit: Admit,
        on_accepted: Callable[[], None],
        stale_txs: StaleTxs,
        pending: Pending,
        leader: LeaderKey,
        counters: Counter[str],
    ) -> None:
        self._peers = peers
        self._directory = directory
        self._admit = admit
        self._on_accepted = on_accepted
        self._stale_txs = stale_txs
        self._pending = pending
        self._leader = leader
        self._counters = counters
        self._seen = SeenSet(SEEN_SET_SIZE)
        self._outgoing: list[bytes] = []  # for the leader, soon
        # For every other peer, if still pending LAZY_GOSSIP_S after it was queued:
        # (queued at, raw, the leader it went to at once), oldest first.
        self._lazy: deque[tuple[float, bytes, bytes | None]] = deque()
        self._flush = trio.Event()
        self._lazy_flush = trio.Event()
        self.inlet = Inlet(
            "txs",
            max_items=MAX_QUEUED_BATCHES,
            per_peer_bytes=GOSSIP_PEER_BYTES,
            counters=counters,
        )

    def offer(self, peer: bytes, msg: dict[str, Any]) -> None:
        txs = msg.get("txs")
        if not isinstance(txs, list):
            self._counters["unknown_message"] += 1
            return
        raws = [r for r in txs[:TX_BATCH_MAX] if isinstance(r, bytes)]
        self.inlet.offer(peer, raws, sum(len(r) for r in raws))

    def gossip(self, raws: Sequence[bytes]) -> None:
        """Send transactions this node admitted: to the leader soon, to the others lazily."""
        for raw in raws:
            self._seen.add(crypto.sha256(raw))
        self._queue(raws)

    def _queue(self, raws: Sequence[bytes]) -> None:
        """Queue raws (already in the seen-set) for the leader and for the lazy round."""
        leader = self._leader_peer()
        if leader is not None:
            self._outgoing.extend(raws)
            self._flush.set()
        now = trio.current_time()
        self._lazy.extend((now, raw, leader) for raw in raws)
        self._lazy_flush.set()
        overflow = len(self._outgoing) - MAX_OUTGOING_TXS
        if overflow > 0:
            del self._outgoing[:overflow]  # left to the re-gossip of stale txs
            self._counters["gossip_outgoing_dropped"] += overflow
        for _ in range(len(self._lazy) - MAX_OUTGOING_TXS):
            self._lazy.popleft()
            self._counters["gossip_outgoing_dropped"] += 1

    def _leader_peer(self) -> bytes | None:
        """The current leader's key when it is another node (None: unknown, or this one)."""
        leader = self._leader()
        return None if leader == self._peers.node_id else leader

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._incoming)
            nursery.start_soon(self._outgoing_loop)
            nursery.start_soon(self._lazy_loop)
            nursery.start_soon(self._regossip_loop)
            task_status.started()

    async def _incoming(self) -> None:
        async for peer, raws in self.inlet.items():
            fresh = [r for r in raws if self._seen.add(crypto.sha256(r))]
            if not fresh:
                continue
            outcomes = await self._admit(fresh)
            accepted = [r for r, o in zip(fresh, outcomes, strict=True) if o.error is None]
            self._counters["gossip_txs_accepted"] += len(accepted)
            self._counters["gossip_txs_refused"] += len(fresh) - len(accepted)
            if accepted:
                self._on_accepted()
            if accepted and peer not in self._directory.accepted:
                # From a full node: pass on as if a client had sent them here (the
                # validators form a full mesh, so their own txs need no passing on).
                # The seen-set has them already, from the check above.
                self._queue(accepted)

    def _relay(self, raws: list[bytes], exclude: bytes | None) -> None:
        for frame in _frames(raws):
            self._peers.broadcast_nowait(frame, exclude=exclude)

    async def _outgoing_loop(self) -> None:
        while True:
            await self._flush.wait()
            await trio.sleep(TX_BATCH_DELAY_S)  # let a burst gather into one frame
            self._flush = trio.Event()
            raws, self._outgoing = self._outgoing, []
            leader = self._leader_peer()
            if leader is None:
                continue  # the lazy round sends them to everyone
            for frame in _frames(raws):
                self._peers.send_nowait(leader, frame)

    async def _lazy_loop(self) -> None:
        lazy = self._lazy
        while True:
            if not lazy:
                await self._lazy_flush.wait()
                self._lazy_flush = trio.Event()
                continue
            # A little past the oldest's due time, so that its neighbours go in its frame.
            await trio.sleep_until(lazy[0][0] + LAZY_GOSSIP_S + LAZY_GATHER_S)
            due = trio.current_time() - LAZY_GOSSIP_S
            by_leader: dict[bytes | None, list[bytes]] = {}
            taken = 0
            while lazy and lazy[0][0] <= due:
                _, raw, leader = lazy.popleft()
                taken += 1
                if self._pending(raw):
                    by_leader.setdefault(leader, []).append(raw)
            sent = sum(len(raws) for raws in by_leader.values())
            self._counters["gossip_lazy_skipped"] += taken - sent
            for leader, raws in by_leader.items():
                # That leader had them at once (a new leader since then has not).
                self._relay(raws, exclude=leader)

    async def _regossip_loop(self) -> None:
        """Offer again what has waited long: a peer that was down or cut off when a tx was
        first gossiped (the next leader, say) would otherwise never see it. Peers drop what
        their seen-set already holds, so this costs little."""
        while True:
            await trio.sleep(REGOSSIP_INTERVAL_S)
            stale = self._stale_txs(REGOSSIP_AGE_MS, REGOSSIP_MAX)
            if stale:
                self._counters["regossiped_txs"] += len(stale)
                self._relay([tx.raw for tx in stale], exclude=None)


def _frames(raws: list[bytes]) -> list[dict[str, Any]]:
    """raws as "txs" frames of at most TX_BATCH_MAX each."""
    return [
        {"t": "txs", "txs": raws[i : i + TX_BATCH_MAX]} for i in range(0, len(raws), TX_BATCH_MAX)
    ]
