"""The host of one simulated replica: carries out its output as node/daemon/driver.py does.

One contract for every harness (the simulator's world, the transcript interpreter, the unit
tests' SyncCluster), written down in consensus/ready.py: each input's actions become one
Batch; the host makes ONE durable write of the persist record with the decided blocks not yet
stored (SimStore.save), then sends the messages, then starts fetches and records evidence,
then commits the decided blocks in height order, calling executed() after each; executed()'s
output is a further batch, carried out after the ones already waiting. No input reaches the
replica while that work is unfinished: like the driver's lock, the host queues inputs (and
synced blocks) until it is idle (but see `background` below).

Time: a commit may take simulated time (`NodeIO.commit_delay`); the host then pauses and the
surroundings call `resume()` when the time has passed. By default nothing else happens
meanwhile (the driver holds its lock while a block commits). With `background=True` the
replica keeps taking inputs while a commit runs, as the Replica's contract allows (executed()
may come any time after Deliver): more schedules for the simulator to try, with the same
write, journal and restart rules (later decided blocks queue behind the running commit).

Crashes: `arm_crash(steps)` crashes the node after that many steps of its next work, where a
step is a message sent, the durable write, a fetch started or a block committed. What the
store holds survives; the host, its replica and its queues are lost.

Epochs: given a `make_replica` and a store that keeps its chain's epochs, the host runs one
replica per epoch by the node's rule (consensus.epochs.follow_schedule, as the driver): after
each commit, and on start, it swaps in the next epoch's replica once the epoch of head + 1 is
not the replica's (carrying the state over), and tells the replica where its epoch ends once
the epoch of head + 2 differs. `early_epoch` is a planted bug of the simulator: this host
swaps to the next set one height early (at the last height of the old epoch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from consensus import (
    Action,
    Broadcast,
    CommitCertificate,
    Deliver,
    FetchBlocks,
    Message,
    Misbehaviour,
    PersistedState,
    Replica,
    Send,
)
from consensus.epochs import carry_over, follow_schedule
from consensus.ready import MAX_BATCHES_PER_INPUT, Batch, batch_of, journal_entries
from simulator.checks import SimViolation
from simulator.epochs import SimEpoch
from simulator.store import SimStore, StoredBlock

Input = Callable[[], list[Action]]
# Work items one drain may handle before the host gives up (a replica that never settles).
MAX_DRAIN_ITEMS = 1_000_000


class NodeIO:
    """What a host needs from its surroundings. Every method has a do-nothing default."""

    def send(self, action: Send | Broadcast) -> None:
        """Put a message on the (simulated) network."""

    def fetch(self, action: FetchBlocks) -> None:
        """Start block sync; its blocks come back through Host.apply_synced."""

    def evidence(self, action: Misbehaviour, origin: int | None = None, epoch: int = 0) -> None:
        """Record evidence against a validator: `action.validator` is an index in `epoch`,
        the epoch of the replica that reported it; `origin` names the link the message came
        in on (None: not a message), which the node blames for UNATTRIBUTABLE kinds."""

    def persisted(self, state: PersistedState) -> None:
        """The record was made durable (after the write)."""

    def decided(self, action: Deliver, stored: StoredBlock | None) -> None:
        """A decided block was journaled (`stored`: the block the store already has there)."""

    def committed(self, block: StoredBlock, *, synced: bool) -> None:
        """A block was committed to the store (decided, or fetched when `synced`)."""

    def commit_delay(self) -> int:
        """The simulated time the next commit takes. When > 0, the surroundings call
        Host.resume() once it has passed; 0 commits at once."""
        return 0

    def crashed(self) -> None:
        """The host crashed (an armed crash was reached)."""

    def idle(self) -> None:
        """The host has carried out everything it was given."""


class ReplicaMaker(Protocol):
    def __call__(
        self,
        epoch: SimEpoch,
        persisted: PersistedState | None,
        certificate: CommitCertificate | None,
    ) -> Replica:
        """The replica of `epoch`, at the store's head, from `persisted` (carried over)."""
        ...


@dataclass(frozen=True, slots=True)
class _Commit:
    height: int
    payload: bytes
    certificate: CommitCertificate
    synced: bool  # a fetched block (block sync) rather than one this replica decided


class Host:
    def __init__(
        self,
        replica: Replica,
        store: SimStore,
        io: NodeIO,
        *,
        background: bool = False,
        make_replica: ReplicaMaker | None = None,
        early_epoch: bool = False,
    ) -> None:
        self.replica = replica
        self._make_replica = make_replica
        self._early_epoch = early_epoch
        self.store = store
        self.io = io
        self.background = background
        self.crashed = False
        self.cut_short = False  # crashed by an armed crash in the middle of its work
        self._inbox: deque[tuple[str, Input | _Commit | Message, int | None]] = deque()
        # Each batch with the link its input came in on and the epoch of the replica that
        # produced it (the driver's origin; a swap may come between the two).
        self._batches: deque[tuple[Batch, int | None, int]] = deque()
        self._commits: deque[_Commit] = deque()
        self._running = False
        self._paused = False  # waiting for resume(): a commit is taking its time
        self._commit_timed = False  # the first queued commit has had its time
        self._input_batches = 0
        self._crash_left: int | None = None
        self._crash_started = False

    # ------------------------------------------------------------------------ interface

    def waiting(self, kind: str) -> bool:
        """True when an input of this kind waits in the inbox."""
        return any(queued == kind for queued, _, _ in self._inbox)

    def input(self, produce: Input, kind: str = "input", origin: int | None = None) -> None:
        """Give the replica an input (`produce` calls it and returns its actions) as soon as
        the host is idle: at once, or after the work in progress. `origin`: the link a
        message came in on."""
        if not self.crashed:
            self._inbox.append((kind, produce, origin))
            self._drain()

    def receive(self, msg: Message, origin: int) -> None:
        """A message from the link `origin`, for the replica the host runs when it is taken
        (input(), without a closure per message)."""
        if not self.crashed:
            self._inbox.append(("msg", msg, origin))
            self._drain()

    def apply_synced(self, height: int, payload: bytes, certificate: CommitCertificate) -> None:
        """A fetched block whose certificate the caller checked: commit it if it follows the
        head (the driver's apply_synced), then report it with executed(h, root, cert)."""
        if not self.crashed:
            self._inbox.append(("synced", _Commit(height, payload, certificate, synced=True), None))
            self._drain()

    def carry_out(self, actions: list[Action]) -> None:
        """Carry out the output of an input the caller gave the replica itself."""
        if not self.crashed:
            self._crash_started = self._crash_left is not None
            self._input_batches = 0
            self._queue_batch(actions)
            self._drain()

    def resume(self) -> None:
        """The time the paused commit takes has passed."""
        if self._paused and not self.crashed:
            self._paused = False
            self._drain()

    def arm_crash(self, steps: int) -> None:
        """Crash after `steps` steps of the next work, or when that work ends (0: now)."""
        if steps <= 0:
            self._crash()
            return
        self._crash_left = steps
        self._crash_started = False

    def follow_schedule(self) -> None:
        """The node's epoch rule after a commit or on start (see the module docstring)."""
        schedule = self.store.schedule
        if schedule is None or self._make_replica is None:
            return
        head = self.store.head_height
        current, upcoming = schedule.epoch_for(head + 1), schedule.epoch_for(head + 2)
        if self._early_epoch and upcoming.number != current.number:
            # The planted bug: the new set takes over at the old epoch's last height.
            current = replace(upcoming, start_height=upcoming.start_height - 1)
        replica = self.replica
        step = follow_schedule(replica.epoch, replica.last_height, current, upcoming)
        if step.swap:
            carried = carry_over(replica.persisted_state(), current)
            self.replica = self._make_replica(current, carried, self.store.head_certificate())
        if step.end_at is not None:
            self._queue_batch(self.replica.end_epoch_at(step.end_at))

    def disarm_crash(self) -> None:
        self._crash_left = None

    def stop(self) -> None:
        """The node crashed: drop every queue (the store keeps what it holds)."""
        self.crashed = True
        self._inbox.clear()
        self._batches.clear()
        self._commits.clear()

    # ------------------------------------------------------------------------ the loop

    def _drain(self) -> None:
        if self._running or self._paused or self.crashed:
            return
        self._running = True
        try:
            for _ in range(MAX_DRAIN_ITEMS):
                if self.crashed or (self._paused and not self.background):
                    return
                if self._commits and not self._paused:
                    self._next_commit()
                elif self._batches:
                    self._carry_out(*self._batches.popleft())
                elif self._inbox and (self.background or not self._commits):
                    self._take_input()
                elif self._commits:
                    return  # background: the running commit resumes the loop
                else:
                    if self._crash_left is not None and self._crash_started:
                        self._crash()
                        return
                    self.io.idle()
                    if not self._inbox:
                        return
            raise SimViolation("host", f"more than {MAX_DRAIN_ITEMS} work items in one drain")
        finally:
            self._running = False

    def _take_input(self) -> None:
        kind, item, origin = self._inbox.popleft()
        self._crash_started = self._crash_left is not None
        self._input_batches = 0
        if kind == "msg":
            self._queue_batch(self.replica.receive(item), origin)  # type: ignore[arg-type]
        elif isinstance(item, _Commit):
            self._commits.append(item)
        else:
            self._queue_batch(item(), origin)  # type: ignore[operator]

    def _queue_batch(self, actions: list[Action], origin: int | None = None) -> None:
        self._input_batches += 1
        if self._input_batches > MAX_BATCHES_PER_INPUT:
            raise SimViolation("host", f"one input produced {self._input_batches} batches")
        if actions:  # most inputs produce nothing: no batch to carry out
            self._batches.append((batch_of(actions), origin, self.replica.epoch))

    def _step(self) -> bool:
        """Count one step towards an armed crash; True when the node crashed."""
        if self._crash_left is None:
            return False
        self._crash_started = True
        self._crash_left -= 1
        if self._crash_left <= 0:
            self.cut_short = True
            self._crash()
            return True
        return False

    def _crash(self) -> None:
        self.stop()
        self.io.crashed()

    def _carry_out(self, batch: Batch, origin: int | None = None, epoch: int = 0) -> None:
        """Steps 1-3 of the contract; the decided blocks are queued for step 4."""
        io = self.io
        for message in batch.unguarded:  # only the planted bug persist_after_send
            io.send(message)
            if self._step():
                return
        stored = self.store.head_height
        journal = journal_entries(batch.decided, stored)
        if batch.persist is not None or journal:
            self.store.save(batch.persist, journal)
            if batch.persist is not None:
                io.persisted(batch.persist)
            if self._step():
                return
        for deliver in batch.decided:
            io.decided(
                deliver, self.store.blocks[deliver.height - 1] if deliver.height <= stored else None
            )
        for message in batch.messages:
            io.send(message)
            if self._step():
                return
        for fetch in batch.fetches:
            io.fetch(fetch)
            if self._step():
                return
        for evidence in batch.evidence:
            io.evidence(evidence, origin, epoch)
        for deliver in batch.decided:
            self._commits.append(
                _Commit(deliver.height, deliver.payload, deliver.certificate, synced=False)
            )

    def _next_commit(self) -> None:
        """Step 4 for the first queued block: commit it, then report it to the replica."""
        item = self._commits[0]
        head = self.store.head_height
        if item.height <= head:
            self._commits.popleft()  # stored already (block sync got there first): same block
            return
        if item.height != head + 1:
            if item.synced:
                self._commits.popleft()  # a fetched block that does not follow the head
                return
            raise SimViolation(
                "node-rule", f"decided block {item.height} does not follow stored head {head}"
            )
        if not self._commit_timed:
            delay = self.io.commit_delay()
            if delay > 0:
                self._commit_timed = True
                self._paused = True
                return
        self._commit_timed = False
        self._commits.popleft()
        block = self.store.commit(item.height, item.payload, item.certificate)
        self.io.committed(block, synced=item.synced)
        if self._step():
            return
        certificate = item.certificate if item.synced else None
        self._queue_batch(self.replica.executed(block.height, block.state_root, certificate))
        self.follow_schedule()  # the next epoch's replica takes over after its last height
