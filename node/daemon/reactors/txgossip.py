"""The transaction gossip reactor: "txs" frames, batches of raw transactions.

Outgoing: what the node admitted is sent to every peer, a burst gathered into one frame per
peer (TX_BATCH_DELAY_S). Incoming: a batch is de-duplicated against a bounded seen-set and
admitted like a client's submission (decode, state checks, batched signature checks off the
event loop); what a full node sent is passed on to the validators. What has waited long in
the mempool is offered again, for a peer that was cut off when it was first sent.
"""

from __future__ import annotations

from collections import Counter
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
TX_BATCH_DELAY_S = 0.005
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


class TxGossipReactor:
    def __init__(
        self,
        peers: PeerManager,
        *,
        directory: ValidatorDirectory,
        admit: Admit,
        on_accepted: Callable[[], None],
        stale_txs: StaleTxs,
        counters: Counter[str],
    ) -> None:
        self._peers = peers
        self._directory = directory
        self._admit = admit
        self._on_accepted = on_accepted
        self._stale_txs = stale_txs
        self._counters = counters
        self._seen = SeenSet(SEEN_SET_SIZE)
        self._outgoing: list[bytes] = []
        self._flush = trio.Event()
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
        """Send transactions this node admitted to every peer (soon, batched)."""
        for raw in raws:
            self._seen.add(crypto.sha256(raw))
        self._outgoing.extend(raws)
        overflow = len(self._outgoing) - MAX_OUTGOING_TXS
        if overflow > 0:
            del self._outgoing[:overflow]
            self._counters["gossip_outgoing_dropped"] += overflow
        self._flush.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._incoming)
            nursery.start_soon(self._outgoing_loop)
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
                # From a full node: pass on to the validators (they form a full mesh).
                self._relay(accepted, exclude=peer)

    def _relay(self, raws: list[bytes], exclude: bytes | None) -> None:
        for i in range(0, len(raws), TX_BATCH_MAX):
            self._peers.broadcast_nowait(
                {"t": "txs", "txs": raws[i : i + TX_BATCH_MAX]}, exclude=exclude
            )

    async def _outgoing_loop(self) -> None:
        while True:
            await self._flush.wait()
            await trio.sleep(TX_BATCH_DELAY_S)  # let a burst gather into one frame per peer
            self._flush = trio.Event()
            raws, self._outgoing = self._outgoing, []
            self._relay(raws, exclude=None)

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
