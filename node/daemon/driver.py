"""The consensus driver: feeds the sans-I/O Replica and carries out its output.

Every call into the Replica happens under one lock, so inputs are serialised as the state
machine expects. Each input's output is carried out by the host contract of
consensus/ready.py, one batch at a time: ONE synced write of the persist record together with
the decided blocks not yet stored (the journal), then the messages (a vote never leaves
before the state that guards it), then fetches and evidence, then the decided blocks
committed in height order, each reported with executed(), whose output is a further batch.
On start the node commits the journaled blocks first (node.py, consensus.ready.replay_on_start).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import trio

from consensus import (
    UNATTRIBUTABLE,
    Action,
    Broadcast,
    CommitCertificate,
    Deliver,
    Message,
    MessageError,
    Misbehaviour,
    PersistedState,
    Replica,
    ReplicaConfig,
    Send,
    censorship_suspected,
    decode_message,
    encode_message,
)
from consensus.checkpoints import last_checkpoint_height
from consensus.epochs import carry_over, follow_schedule
from consensus.ready import MAX_BATCHES_PER_INPUT, Batch, batch_of, journal_entries
from node.daemon.chain import Chain
from node.daemon.faults import crash_point
from node.daemon.store import Committed, Divergence, StoreError
from node.ledger import crypto
from node.ledger.block import Block, peek_header
from node.ledger.governance import Epoch

log = logging.getLogger("chain.consensus")

SendFn = Callable[[int, bytes], None]  # (validator index, encoded message)
BroadcastFn = Callable[[bytes], None]
FetchFn = Callable[[int, tuple[int, ...]], None]
# The censorship check scans the mempool: at most once per this interval.
CENSORSHIP_CHECK_INTERVAL_MS = 1000
# Room a full block may leave: the block-byte margin of build_proposal and one tx.
BLOCK_BYTES_MARGIN = 4096
# How long the link to the leader must stay down (with no commit meanwhile) before this
# validator votes to leave the view, instead of the whole view timeout (ReplicaConfig
# leader_loss_ticks; docs/CONSENSUS.md "Timeouts").
LEADER_LOSS_MS = 500


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
        key_for_epoch: Callable[[Epoch], crypto.SigningKey] | None = None,
        on_epoch: Callable[[Epoch, Epoch], None] | None = None,
        link_up: Callable[[bytes], bool] | None = None,
        batch_ms: int,
    ) -> None:
        """key_for_epoch: the node key to sign with in an epoch (a validator's key may rotate
        by governance); on_epoch(current, next): called when the replica moves to a new
        epoch, and when the next one is scheduled, so the reactors follow the set.
        batch_ms: [consensus] batch_ms, how long a proposal gathers transactions (the
        setting's comment in node/daemon/config.py says why it exists)."""
        if batch_ms < 0:
            raise ValueError("batch_ms must not be negative")
        self.batch_ms = batch_ms
        self.chain = chain
        self.tick_ms = chain.genesis.consensus.tick_ms
        self._key_for_epoch = key_for_epoch or (lambda epoch: key)
        self._on_epoch = on_epoch
        self._link_up = link_up
        self.key = key
        head = chain.store.head
        epoch = chain.epoch_for(head.height + 1)
        persisted_raw = chain.store.load_consensus()
        persisted = None if persisted_raw is None else PersistedState.from_bytes(persisted_raw)
        # Stopped between the last block of an epoch and the next epoch's first vote: the
        # state is carried over (consensus.epochs, the rule the simulator runs too).
        persisted = carry_over(persisted, epoch)
        last_cert = chain.store.get_certificate(head.height) if head.height else None
        self.replica = self._make_replica(
            epoch,
            persisted,
            # Lets a restarted replica prove its height in view changes and to laggards.
            CommitCertificate.from_bytes(last_cert) if last_cert is not None else None,
        )
        self._follow_schedule()
        self._send = send
        self._broadcast = broadcast
        self._fetch = fetch
        self._lock = trio.Lock()
        self.misbehaviour: Counter[str] = Counter()
        # Evidence that names no proven signer, by the link it came in on.
        self.misbehaving_links: Counter[str] = Counter()
        self.peer_names: dict[bytes, str] = {}
        self.last_commit_ms = chain.clock_ms()
        self.last_block_txs = 0
        self.last_block_full = False
        self._next_censorship_check_ms = 0
        self.round_ms = 0
        self._propose_started_ms = 0
        self.wakeup = trio.Event()
        # When the proposer task looks again for a batch that is not due yet (trio time).
        self._propose_at = math.inf
        self._proposer_scope: trio.CancelScope | None = None
        self._complained_view = -1

    # --- epochs ------------------------------------------------------------------------------

    def _make_replica(
        self,
        epoch: Epoch,
        persisted: PersistedState | None,
        committed_certificate: CommitCertificate | None,
    ) -> Replica:
        """The replica of one epoch: its set, its index in it, its live parameters."""
        chain = self.chain
        params = chain.params
        self.key = key = self._key_for_epoch(epoch)
        validators = epoch.keys
        my_index = validators.index(key.public_key) if key.public_key in validators else None
        self.config = ReplicaConfig(
            chain_id=chain.genesis.chain_id,
            validators=validators,
            my_index=my_index,
            checkpoint_interval=params.checkpoint_interval,
            watermark_window=params.checkpoint_interval * 2,
            view_timeout_ticks=max(2, params.view_timeout_ms // params.tick_ms),
            max_view_timeout_ticks=max(4, params.max_view_timeout_ms // params.tick_ms),
            censorship_timeout_ticks=max(2, params.censorship_timeout_ms // params.tick_ms),
            leader_loss_ticks=max(1, LEADER_LOSS_MS // params.tick_ms),
            max_payload_bytes=params.max_block_bytes,
            max_buffered_bytes_per_sender=params.max_block_bytes + (1 << 20),
            epoch=epoch.number,
            first_height=epoch.start_height,
        )
        head = chain.store.head
        return Replica(
            self.config,
            _App(self),
            key.sign,
            crypto.verify,
            committed_height=head.height,
            committed_state_root=head.state_root,
            persisted=persisted,
            committed_certificate=committed_certificate,
            checkpoint_state_root=self._checkpoint_state_root(head.height),
        )

    def _checkpoint_state_root(self, committed_height: int) -> bytes | None:
        """The state root after the last checkpoint height below committed_height: the
        header of the block after it carries it."""
        height = last_checkpoint_height(committed_height, self.chain.params.checkpoint_interval)
        if height <= 0 or height == committed_height:
            return None
        payload = self.chain.store.get_block(height + 1)
        if payload is None:
            return None
        header = peek_header(payload, max_block_bytes=self.chain.params.max_block_bytes)
        return header.state_root

    def _follow_schedule(self) -> None:
        """After a commit: move to the next epoch's replica when the current one has
        delivered its last height; tell the replica where its epoch ends once the next
        change is scheduled (the state after block H names the set that signs H + 2). The
        decision is consensus.epochs.follow_schedule, which the simulator's host runs too."""
        chain = self.chain
        head = chain.store.head.height
        current = chain.epoch_for(head + 1)
        upcoming = chain.epoch_for(head + 2)
        step = follow_schedule(self.config.epoch, self.replica.last_height, current, upcoming)
        if step.swap:
            if not self.replica.epoch_finished and self.replica.delivered_height < head:
                log.warning("moving to epoch %d before the replica saw its end", current.number)
            carried = carry_over(self.replica.persisted_state(), current)
            cert = chain.store.get_certificate(head)
            self.replica = self._make_replica(
                current, carried, CommitCertificate.from_bytes(cert) if cert else None
            )
            log.info(
                "epoch %d begins at height %d: %d validators, this node %s",
                current.number,
                current.start_height,
                len(current.validators),
                f"is validator {self.config.my_index}"
                if self.config.my_index is not None
                else "follows",
            )
        if step.end_at is not None:
            self.replica.end_epoch_at(step.end_at)
        if self._on_epoch is not None:
            self._on_epoch(current, upcoming)

    def _clocked(self) -> Replica:
        """The replica, told the time first: it reads no clock, and signs this reading into
        the commit votes the coming input makes (certified time, docs/PROTOCOL.md)."""
        self.replica.clock(self.chain.clock_ms())
        return self.replica

    @property
    def is_validator(self) -> bool:
        return self.config.my_index is not None

    # --- inputs ------------------------------------------------------------------------------

    def _halt(self, exc: Exception) -> None:
        """The store cannot take the next block (full map or disk, a write error, a certified
        block that does not fit our state): stop consensus, keep serving reads. The RPC
        answers writes with 1030 (halted), /healthz fails; a restart after the fix resumes
        and catches up. Nothing was half-written: LMDB aborted the transaction."""
        self.chain.halted = self.chain.halted or str(exc)
        log.critical(
            "halting: %s (data dir %s). This node stops voting and committing and keeps "
            "serving reads; fix the cause and restart it: it catches up from its peers",
            exc,
            self.chain.store.path,
        )

    async def tick(self) -> None:
        if self.chain.halted:
            return
        async with self._lock:
            await self._carry_out(self._clocked().tick(leader_reachable=self._leader_reachable()))
            if self._censored():
                self._complained_view = self.replica.view
                log.warning(
                    "a transaction has waited %d ms while blocks commit: voting for a view change",
                    self.chain.mempool.oldest_age_ms(),
                )
                await self._carry_out(self._clocked().suspect_censorship())
            await self._maybe_propose()

    def _leader_reachable(self) -> bool:
        if self._link_up is None or not self.is_validator:
            return True
        leader = self.replica.leader
        if leader == self.config.my_index:
            return True
        return self._link_up(self.config.validators[leader])

    def _censored(self) -> bool:
        """The node's censorship rule (consensus.censorship_suspected), at most once per view
        and once per CENSORSHIP_CHECK_INTERVAL_MS; only a backup suspects its leader."""
        if not self.is_validator or self.replica.leader == self.config.my_index:
            return False
        if self._complained_view == self.replica.view:
            return False
        limit_ms = self.chain.params.censorship_timeout_ms
        mempool = self.chain.mempool
        if mempool.oldest_age_ms() <= limit_ms:  # cheap: nothing has waited that long
            return False
        now = self.chain.clock_ms()
        if now < self._next_censorship_check_ms:
            return False
        self._next_censorship_check_ms = now + CENSORSHIP_CHECK_INTERVAL_MS
        return censorship_suspected(
            oldest_proposable_wait=mempool.oldest_proposable_age_ms(),
            since_last_commit=now - self.last_commit_ms,
            view_age=self.replica.normal_for_ticks * self.tick_ms,
            timeout=limit_ms,
            last_block_full=self.last_block_full,
        )

    async def receive(self, raw: bytes, origin: bytes | None = None) -> None:
        """A consensus message from the link of peer `origin` (its public key)."""
        try:
            msg: Message = decode_message(raw, max_payload_bytes=self.config.max_payload_bytes)
        except MessageError as exc:
            self.misbehaviour["malformed_message"] += 1
            self._blame_link(origin, "malformed_message", str(exc))
            return
        # Cheap checks first (sender, signature, leader, view and height windows); only a
        # payload that passes them is decoded and its transactions' signatures checked, in
        # worker threads, before the replica's synchronous digest and validate see it.
        payloads = self.replica.payloads_to_prepare(msg)
        if payloads:
            await self.chain.prepare_payloads(payloads)
        async with self._lock:
            if self.chain.halted:
                return
            await self._carry_out(self._clocked().receive(msg), origin)
            await self._maybe_propose()

    def _blame_link(self, origin: bytes | None, kind: str, detail: str) -> None:
        if origin is None:
            return
        name = self.peer_names.get(origin, origin.hex()[:16])
        self.misbehaving_links[f"{name}:{kind}"] += 1
        log.warning("peer %s (link) sent a bad consensus message (%s): %s", name, kind, detail)

    def wakeup_proposer(self) -> None:
        """Transactions arrived: the proposer task looks at once, not at the next tick."""
        self.wakeup.set()

    async def poke(self) -> None:
        """New transactions arrived: propose now if we lead and nothing is in flight."""
        async with self._lock:
            await self._maybe_propose()

    async def executed_by_sync(self, height: int, state_root: bytes) -> None:
        async with self._lock:
            await self._carry_out(self._clocked().executed(height, state_root))
            self._follow_schedule()
            await self._maybe_propose()

    async def apply_synced(self, block: Block, certificate: bytes) -> bool:
        """Commit a fetched block whose certificate the caller has verified."""
        payload, height = block.payload, block.height
        async with self._lock:
            if self.chain.halted:
                return False
            if height != self.chain.store.head.height + 1:
                return height <= self.chain.store.head.height
            try:
                committed = await self.chain.commit(payload, certificate, block=block)
            except (StoreError, Divergence) as exc:
                self._halt(exc)
                return False
            self._note_commit(committed)
            cert = CommitCertificate.from_bytes(certificate)
            await self._carry_out(
                self._clocked().executed(height, committed.head.state_root, certificate=cert)
            )
            self._follow_schedule()
            await self._maybe_propose()
            return True

    async def apply_synced_batch(self, items: list[tuple[Block, bytes]]) -> int:
        """Commit consecutive fetched blocks whose certificates the caller has verified (in
        one write, Chain.commit_certified), reporting each to the replica; how many."""
        async with self._lock:
            head = self.chain.store.head.height
            items = [(b, c) for b, c in items if b.height > head]
            if not items or items[0][0].height != head + 1:
                return 0
            done = await self.chain.commit_certified(items)
            certificates = dict((b.height, c) for b, c in items)
            for committed in done:
                self._note_commit(committed)
                height = committed.block.height
                cert = CommitCertificate.from_bytes(certificates[height])
                await self._carry_out(
                    self._clocked().executed(height, committed.head.state_root, certificate=cert)
                )
                self._follow_schedule()
            await self._maybe_propose()
            return len(done)

    async def suspect_censorship(self) -> None:
        async with self._lock:
            await self._carry_out(self._clocked().suspect_censorship())

    # --- proposing ---------------------------------------------------------------------------

    def _propose_due_in_ms(self) -> int | None:
        """0: propose now; n > 0: a batch is gathering, look again in n ms; None: nothing to
        propose (an input or the ticker asks again)."""
        if not self.replica.can_propose or self.chain.halted:
            return None
        chain = self.chain
        mempool = chain.mempool
        since_commit = chain.clock_ms() - self.last_commit_ms
        if mempool.has_ready():
            if len(mempool) >= chain.params.max_block_txs:
                return 0  # a full block is waiting
            return max(0, self.batch_ms - mempool.oldest_age_ms())
        if self.last_block_txs > 0:  # certify the state root of a non-empty block soon
            return max(0, self.batch_ms - since_commit)
        interval = chain.params.max_block_interval_ms
        return max(0, interval - since_commit)

    async def _maybe_propose(self) -> None:
        due = self._propose_due_in_ms()
        if due is None:
            return
        if due > 0:
            self._arm_proposer(due)
            return
        block = self.chain.build_proposal(self.replica.view, self.replica.leader)
        self._propose_started_ms = self.chain.clock_ms()
        await self._carry_out(self._clocked().propose(block.payload))

    def _arm_proposer(self, due_ms: int) -> None:
        """Have the proposer task look again in due_ms (a batch due then)."""
        at = trio.current_time() + due_ms / 1000
        if at < self._propose_at:
            self._propose_at = at
            if self._proposer_scope is not None:
                self._proposer_scope.deadline = at

    # --- outputs -----------------------------------------------------------------------------

    async def _carry_out(self, actions: list[Action], origin: bytes | None = None) -> None:
        """Carry out one input's output by the host contract (consensus/ready.py), with the
        lock held: a loop over a queue of batches, never recursion."""
        queue: deque[Batch] = deque([batch_of(actions)])
        for _ in range(MAX_BATCHES_PER_INPUT):
            if not queue:
                return
            batch = queue.popleft()
            self._send_all(batch.unguarded)  # only the planted bug persist_after_send
            try:
                await self._write(batch)
            except StoreError as exc:
                # Not durable: nothing of this batch may leave (its votes are unguarded).
                self._halt(exc)
                return
            if batch.persist is not None and batch.messages:
                crash_point("vote-persisted")
            self._send_all(batch.messages)
            for fetch in batch.fetches:
                self._fetch(fetch.from_height, tuple(fetch.peers))
            for evidence in batch.evidence:
                self._note_misbehaviour(evidence, origin)
            origin = None  # the batches executed() returns do not come from that link
            for deliver in batch.decided:
                executed = await self._commit_decided(deliver)
                if executed:
                    queue.append(batch_of(executed))
        raise RuntimeError(f"one consensus input produced over {MAX_BATCHES_PER_INPUT} batches")

    async def _write(self, batch: Batch) -> None:
        """Step 1: ONE synced write of the record with the decided blocks not yet stored, so
        that a restart commits them even when no peer can serve them (n = 1)."""
        store = self.chain.store
        journal = journal_entries(batch.decided, store.head.height)
        if batch.persist is not None:
            await trio.to_thread.run_sync(store.save_consensus, batch.persist.to_bytes(), journal)
        elif journal:
            await trio.to_thread.run_sync(store.journal_decided, journal)

    def _send_all(self, messages: Sequence[Send | Broadcast]) -> None:
        for message in messages:
            if isinstance(message, Send):
                self._send(message.to, encode_message(message.msg))
            else:
                self._broadcast(encode_message(message.msg))

    def _note_misbehaviour(self, action: Misbehaviour, origin: bytes | None) -> None:
        self.misbehaviour[action.kind] += 1
        if action.kind in UNATTRIBUTABLE:
            # Claims to come from action.validator, which nobody proved: the link did.
            self._blame_link(
                origin, action.kind, f"claims validator {action.validator}: {action.detail}"
            )
        else:
            log.warning(
                "validator %d misbehaved (%s): %s", action.validator, action.kind, action.detail
            )

    async def _commit_decided(self, deliver: Deliver) -> list[Action] | None:
        """Step 4 for one decided block: commit it and report it; None when the store has the
        height already (block sync got there first: the same block, its certificate says)."""
        height = deliver.height
        if height <= self.chain.store.head.height:
            return None
        crash_point("decided-before-commit")
        try:
            committed = await self.chain.commit(deliver.payload, deliver.certificate.to_bytes())
        except (StoreError, Divergence) as exc:
            self._halt(exc)
            return None
        now = self.chain.clock_ms()
        if self._propose_started_ms:
            self.round_ms = now - self._propose_started_ms
        else:
            self.round_ms = now - self.last_commit_ms
        self._propose_started_ms = 0
        self._note_commit(committed)
        actions = self._clocked().executed(height, committed.head.state_root)
        self._follow_schedule()  # the next epoch's replica takes over after its last height
        return actions

    def _note_commit(self, committed: Committed) -> None:
        params = self.chain.params
        block = committed.block
        self.last_commit_ms = self.chain.clock_ms()
        self.last_block_txs = len(block.txs)
        self.last_block_full = (
            len(block.txs) >= params.max_block_txs
            or len(block.payload)
            >= params.max_block_bytes - BLOCK_BYTES_MARGIN - params.max_tx_bytes
        )

    def status(self) -> dict[str, Any]:
        st = dict(self.replica.status())
        st.update(
            {
                "validator_index": self.config.my_index,
                "last_commit_age_ms": self.chain.clock_ms() - self.last_commit_ms,
                "round_ms": self.round_ms,
                "misbehaviour": dict(self.misbehaviour),
                "misbehaving_links": dict(self.misbehaving_links),
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
            with trio.move_on_at(self._propose_at) as scope:
                self._proposer_scope = scope
                await self.wakeup.wait()
            self._proposer_scope = None
            self.wakeup = trio.Event()
            self._propose_at = math.inf
            await self.poke()
