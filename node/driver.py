"""The consensus driver: feeds the sans-I/O Replica and carries out its actions in order.

Every call into the Replica happens under one lock, so inputs are serialised as the state
machine expects. Persist actions are made durable (synced LMDB write) before any later
action of the same list is carried out: a vote never leaves before the state that guards it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from consensus import (
    Broadcast,
    CommitCertificate,
    Deliver,
    FetchBlocks,
    Message,
    MessageError,
    Misbehaviour,
    Persist,
    PrePrepare,
    Replica,
    ReplicaConfig,
    Send,
    decode_message,
    encode_message,
)
from node import crypto
from node.chain import Chain
from node.store import Divergence, StoreError

log = logging.getLogger("chain.consensus")

SendFn = Callable[[int, bytes], None]  # (validator index, encoded message)
BroadcastFn = Callable[[bytes], None]
FetchFn = Callable[[int, tuple[int, ...]], None]


class _App:
    def __init__(self, driver: ConsensusDriver) -> None:
        self._driver = driver

    def validate(self, height: int, payload: bytes) -> bool:
        replica = self._driver.replica
        return self._driver.chain.validate(
            height, payload, view=replica.view, leader=replica.leader
        )

    def digest(self, payload: bytes) -> bytes:
        return self._driver.chain.digest(payload)


class ConsensusDriver:
    def __init__(
        self,
        chain: Chain,
        *,
        key: crypto.SigningKey,
        send: SendFn,
        broadcast: BroadcastFn,
        fetch: FetchFn,
    ) -> None:
        genesis = chain.genesis
        params = genesis.consensus
        self.chain = chain
        self.tick_ms = params.tick_ms
        validators = genesis.validator_keys
        my_index = validators.index(key.public_key) if key.public_key in validators else None
        self.config = ReplicaConfig(
            chain_id=genesis.chain_id,
            validators=validators,
            my_index=my_index,
            checkpoint_interval=params.checkpoint_interval,
            watermark_window=params.checkpoint_interval * 2,
            view_timeout_ticks=max(2, params.view_timeout_ms // params.tick_ms),
            max_view_timeout_ticks=max(4, params.max_view_timeout_ms // params.tick_ms),
            censorship_timeout_ticks=max(2, params.censorship_timeout_ms // params.tick_ms),
        )
        persisted_raw = chain.store.load_consensus()
        persisted = None
        if persisted_raw is not None:
            from consensus import PersistedState

            persisted = PersistedState.from_bytes(persisted_raw)
        head = chain.store.head
        last_cert = chain.store.get_certificate(head.height) if head.height else None
        self.replica = Replica(
            self.config,
            _App(self),
            key.sign,
            crypto.verify,
            committed_height=head.height,
            committed_state_root=head.state_root,
            persisted=persisted,
            # Lets a restarted replica prove its height in view changes and to laggards.
            committed_certificate=(
                CommitCertificate.from_bytes(last_cert) if last_cert is not None else None
            ),
        )
        self._send = send
        self._broadcast = broadcast
        self._fetch = fetch
        self._lock = trio.Lock()
        self.misbehaviour: Counter[str] = Counter()
        self.last_commit_ms = chain.clock_ms()
        self.last_block_txs = 0
        self.round_ms = 0
        self._propose_started_ms = 0
        self.wakeup = trio.Event()
        self._complained_view = -1

    @property
    def is_validator(self) -> bool:
        return self.config.my_index is not None

    # --- inputs ------------------------------------------------------------------------------

    async def tick(self) -> None:
        async with self._lock:
            await self._carry_out(self.replica.tick())
            if self._censored():
                self._complained_view = self.replica.view
                log.warning(
                    "a transaction has waited %d ms while blocks commit: voting for a view change",
                    self.chain.mempool.oldest_age_ms(),
                )
                await self._carry_out(self.replica.suspect_censorship())
            await self._maybe_propose()

    def _censored(self) -> bool:
        """A backup that holds a valid tx longer than the bound while blocks commit without it."""
        if not self.is_validator or self.replica.leader == self.config.my_index:
            return False
        if self._complained_view == self.replica.view:
            return False
        limit_ms = self.chain.params.censorship_timeout_ms
        recent_commit = self.chain.clock_ms() - self.last_commit_ms < limit_ms
        return recent_commit and self.chain.mempool.oldest_age_ms() > limit_ms

    async def receive(self, raw: bytes) -> None:
        try:
            msg: Message = decode_message(raw)
        except MessageError as exc:
            self.misbehaviour["malformed_message"] += 1
            log.debug("dropping malformed consensus message: %s", exc)
            return
        if isinstance(msg, PrePrepare) and msg.height == self.chain.store.head.height + 1:
            # Signatures of txs this node has not seen are checked in worker threads now,
            # not one by one on the event loop inside the replica's call to validate.
            await self.chain.preverify(msg.payload)
        async with self._lock:
            await self._carry_out(self.replica.receive(msg))
            await self._maybe_propose()

    async def poke(self) -> None:
        """New transactions arrived: propose now if we lead and nothing is in flight."""
        async with self._lock:
            await self._maybe_propose()

    async def executed_by_sync(self, height: int, state_root: bytes) -> None:
        async with self._lock:
            await self._carry_out(self.replica.executed(height, state_root))
            await self._maybe_propose()

    async def apply_synced(self, payload: bytes, certificate: bytes, height: int) -> bool:
        """Commit a fetched block whose certificate the caller has verified."""
        async with self._lock:
            if height != self.chain.store.head.height + 1:
                return height <= self.chain.store.head.height
            committed = await self.chain.commit(payload, certificate)
            self.last_commit_ms = self.chain.clock_ms()
            self.last_block_txs = len(committed.block.txs)
            cert = CommitCertificate.from_bytes(certificate)
            await self._carry_out(
                self.replica.executed(height, committed.head.state_root, certificate=cert)
            )
            await self._maybe_propose()
            return True

    async def suspect_censorship(self) -> None:
        async with self._lock:
            await self._carry_out(self.replica.suspect_censorship())

    # --- proposing ---------------------------------------------------------------------------

    def _should_propose(self) -> bool:
        if not self.replica.can_propose or self.chain.halted:
            return False
        if self.last_block_txs > 0:  # certify the state root of a non-empty block at once
            return True
        if self.chain.mempool.has_ready():
            return True
        interval = self.chain.params.max_block_interval_ms
        return self.chain.clock_ms() - self.last_commit_ms >= interval

    async def _maybe_propose(self) -> None:
        if not self._should_propose():
            return
        block = self.chain.build_proposal(self.replica.view, self.replica.leader)
        self._propose_started_ms = self.chain.clock_ms()
        await self._carry_out(self.replica.propose(block.payload))

    # --- outputs -----------------------------------------------------------------------------

    async def _carry_out(self, actions: list[Any]) -> None:
        journaled: set[int] = set()
        for i, action in enumerate(actions):
            if isinstance(action, Persist):
                # Decided blocks delivered later in this list go into the same synced write:
                # a crash between the vote record and the block commit must not leave the
                # replica remembering a decision the store cannot replay (n = 1 has no peer
                # to fetch it from).
                decided = [
                    (a.height, a.payload, a.certificate.to_bytes())
                    for a in actions[i + 1 :]
                    if isinstance(a, Deliver) and a.height > self.chain.store.head.height
                ]
                journaled.update(h for h, _, _ in decided)
                await trio.to_thread.run_sync(
                    self.chain.store.save_consensus, action.state.to_bytes(), decided
                )
            elif isinstance(action, Deliver) and action.height not in journaled:
                head = self.chain.store.head.height
                if action.height > head:
                    await trio.to_thread.run_sync(
                        self.chain.store.journal_decided,
                        [(action.height, action.payload, action.certificate.to_bytes())],
                    )
                await self._deliver(action.height, action.payload, action.certificate)
            elif isinstance(action, Send):
                self._send(action.to, encode_message(action.msg))
            elif isinstance(action, Broadcast):
                self._broadcast(encode_message(action.msg))
            elif isinstance(action, Deliver):
                await self._deliver(action.height, action.payload, action.certificate)
            elif isinstance(action, FetchBlocks):
                self._fetch(action.from_height, tuple(action.peers))
            elif isinstance(action, Misbehaviour):
                self.misbehaviour[action.kind] += 1
                log.warning(
                    "validator %d misbehaved (%s): %s", action.validator, action.kind, action.detail
                )
            else:
                raise TypeError(f"unknown consensus action {action!r}")

    async def _deliver(self, height: int, payload: bytes, certificate: CommitCertificate) -> None:
        head = self.chain.store.head
        if height <= head.height:
            return  # already stored (re-delivery after restart, or block sync got there first)
        try:
            committed = await self.chain.commit(payload, certificate.to_bytes())
        except (StoreError, Divergence) as exc:
            log.critical("halting: %s", exc)
            raise
        now = self.chain.clock_ms()
        if self._propose_started_ms:
            self.round_ms = now - self._propose_started_ms
        else:
            self.round_ms = now - self.last_commit_ms
        self._propose_started_ms = 0
        self.last_commit_ms = now
        self.last_block_txs = len(committed.block.txs)
        await self._carry_out(self.replica.executed(height, committed.head.state_root))

    def status(self) -> dict[str, Any]:
        st = dict(self.replica.status())
        st.update(
            {
                "validator_index": self.config.my_index,
                "last_commit_age_ms": self.chain.clock_ms() - self.last_commit_ms,
                "round_ms": self.round_ms,
                "misbehaviour": dict(self.misbehaviour),
            }
        )
        return st

    async def run_ticker(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Tick at a fixed interval (deadline-based, so slow ticks do not drift the clock)."""
        task_status.started()
        deadline = trio.current_time()
        while True:
            deadline += self.tick_ms / 1000
            await trio.sleep_until(deadline)
            deadline = max(deadline, trio.current_time() - self.tick_ms / 1000)
            await self.tick()

    async def run_proposer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Propose as soon as transactions arrive, not only at the next tick."""
        task_status.started()
        while True:
            await self.wakeup.wait()
            self.wakeup = trio.Event()
            await self.poke()
