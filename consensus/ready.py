"""How a host carries out a Replica's output: one batch per input (etcd raft's Ready).

Every input of the Replica returns a list of actions. A host does not walk that list action
by action: it groups it with `batch_of` and carries the batch out by one contract, the same
in the node (node/daemon/driver.py) and in the simulator (simulator/host.py):

1. ONE durable (synced) write of the persist record, if there is one, together with the
   decided blocks not yet stored (`journal_entries`). A write without a record only
   journals; a batch with neither writes nothing. The record and the blocks it decided are
   never apart on disk.
2. Then send the messages, in order: every signature in them is guarded by that write.
3. Then start the fetches and record the evidence.
4. Then commit the decided blocks in height order, each in its own write, skipping a height
   the store already has (block sync got there first: the same block), and call
   `executed(height, state_root)` after each. What `executed` returns is a further batch,
   carried out by this same contract after the batches already waiting (first in, first
   out: a later batch only decides higher heights, so blocks are committed in height
   order). A host runs this as a loop over a queue of batches, bounded by
   MAX_BATCHES_PER_INPUT, never by recursion; no further input reaches the replica until
   the queue is empty. (The Replica itself would accept inputs between a Deliver and its
   executed(); half of the simulator's runs feed it so, to try more schedules.)

On start, before the Replica is rebuilt, the host commits the journaled blocks that continue
its stored chain (`replay_on_start`), so a block decided before a crash is never lost
between the decision and its commit, even when no peer can serve it (n = 1).

`Batch.unguarded` exists for one planted bug: MUTATION_PERSIST_AFTER_SEND lists the Persist
after the messages, and a host that reordered them would hide the bug from the simulator.
A correct replica never produces unguarded messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.actions import (
    Action,
    Broadcast,
    Deliver,
    FetchBlocks,
    Misbehaviour,
    Persist,
    Send,
)
from consensus.persisted import PersistedState

# A journaled decided block, as the node's store keeps it: (height, payload, certificate
# bytes, CommitCertificate.to_bytes()).
JournalEntry = tuple[int, bytes, bytes]

# An input's batches (its own and those executed() returns for the blocks it committed):
# one per committed block plus one, so this bound is only reached by a replica that never
# stops producing output.
MAX_BATCHES_PER_INPUT = 10_000


@dataclass(frozen=True, slots=True)
class Batch:
    """One input's output, grouped by what the host does with it (in this order)."""

    unguarded: tuple[Send | Broadcast, ...]  # sent before the write (planted bug only)
    persist: PersistedState | None  # written durably, with the journal, first
    decided: tuple[Deliver, ...]  # journaled in that write; committed last, by height
    messages: tuple[Send | Broadcast, ...]  # sent after the write
    fetches: tuple[FetchBlocks, ...]
    evidence: tuple[Misbehaviour, ...]

    @property
    def empty(self) -> bool:
        return not (
            self.unguarded
            or self.persist is not None
            or self.decided
            or self.messages
            or self.fetches
            or self.evidence
        )


def batch_of(actions: Sequence[Action]) -> Batch:
    """Group one input's actions. Raise ValueError on output no replica produces: two
    Persists, or deliveries out of height order; TypeError on an unknown action."""
    unguarded: list[Send | Broadcast] = []
    messages: list[Send | Broadcast] = []
    persist: PersistedState | None = None
    seen_persist = False
    decided: list[Deliver] = []
    fetches: list[FetchBlocks] = []
    evidence: list[Misbehaviour] = []
    for action in actions:
        if isinstance(action, Persist):
            if seen_persist:
                raise ValueError("one input produced two Persist actions")
            seen_persist = True
            persist = action.state
        elif isinstance(action, Send | Broadcast):
            # Before the Persist of its own list, a message is not guarded by the write.
            (messages if seen_persist else unguarded).append(action)
        elif isinstance(action, Deliver):
            if decided and action.height != decided[-1].height + 1:
                raise ValueError(f"Deliver({action.height}) after Deliver({decided[-1].height})")
            decided.append(action)
        elif isinstance(action, FetchBlocks):
            fetches.append(action)
        elif isinstance(action, Misbehaviour):
            evidence.append(action)
        else:
            raise TypeError(f"unknown consensus action {action!r}")
    if persist is None:
        messages, unguarded = unguarded, []  # nothing to guard: plain messages
    return Batch(
        tuple(unguarded), persist, tuple(decided), tuple(messages), tuple(fetches), tuple(evidence)
    )


def journal_entries(decided: Sequence[Deliver], stored_height: int) -> list[JournalEntry]:
    """What the batch's one write journals: its decided blocks above the stored chain."""
    return [
        (deliver.height, deliver.payload, deliver.certificate.to_bytes())
        for deliver in decided
        if deliver.height > stored_height
    ]


def replay_on_start(journal: Sequence[JournalEntry], head_height: int) -> list[JournalEntry]:
    """The journaled blocks to commit on start, in order: those that continue the stored
    chain from head_height + 1 without a gap. Blocks at or below the head are stored already;
    after a gap nothing can be committed (the replica fetches what it lacks)."""
    by_height = {entry[0]: entry for entry in journal if entry[0] > head_height}
    replay: list[JournalEntry] = []
    height = head_height + 1
    while height in by_height:
        replay.append(by_height[height])
        height += 1
    return replay
