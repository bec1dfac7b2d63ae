"""The world's side of membership changes: who is linked to whom, who follows, who joins.

What the node does, modelled here (docs/CONSENSUS.md "Epochs"):

- each node runs one replica per epoch (host.py, the node's rule); its consensus messages go
  to the members of its replica's epoch and of the one scheduled next (the driver's
  directory), and it accepts consensus messages only from keys of those two sets: a removed
  validator's links are cut, a rotated identity's old key is no longer heard;
- an added identity's node starts when the vote to add it passes, follows as a non-validator
  and catches up by block sync; the change is carried by a block only once that node has
  executed a recent height (it "reports ready", as validator.join);
- block sync (the node's blocksync reactor, which learns peers' heads from announcements):
  in runs with changes, every node polls its linked peers' heads and fetches when behind;
  each fetched block's certificate is checked against the set of its own height's epoch,
  derived from the fetching node's chain block by block (world.py `_apply_fetched`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from consensus import Replica
from simulator.epochs import ADD, Change, EpochSchedule, PlannedChange, SimEpoch
from simulator.plan import TICK_UNITS, RunPlan
from simulator.store import SimStore

# A candidate reports ready once it has executed a block this close to the one proposed.
READY_LAG = 3
# How often (in ticks) a node in a run with changes compares its head with its peers'.
SYNC_POLL_TICKS = 4


class Member(Protocol):
    """What this part reads of a simulated node (simulator.node.Node)."""

    index: int
    identity: int
    honest: bool
    born: bool
    epoch: SimEpoch
    key_index: int
    store: SimStore

    @property
    def replica(self) -> Replica | None: ...

    @property
    def up(self) -> bool: ...

    @property
    def executed_height(self) -> int: ...


N = TypeVar("N", bound=Member)


class MembershipMixin(Generic[N]):
    plan: RunPlan
    now: int
    group: list[int]
    planned: tuple[PlannedChange, ...]
    added_at: dict[int, int]  # added identity -> when its vote passes (units)
    # node index -> (its epoch, its chain's latest, broadcast targets, accepted keys): asked
    # per message, changed only when either epoch object does (compared by identity).
    _directories: dict[int, tuple[SimEpoch, SimEpoch, tuple[int, ...], frozenset[int]]]

    def directory(self, node: N) -> tuple[SimEpoch, ...]:
        """The sets whose members this node sends to and hears: its replica's epoch and the
        one its chain schedules next (the driver's ValidatorDirectory)."""
        schedule = node.store.schedule
        latest = schedule.latest if schedule is not None else node.epoch
        return (node.epoch, latest) if latest.number > node.epoch.number else (node.epoch,)

    def broadcast_targets(self, node: N) -> tuple[int, ...]:
        """The identities a Broadcast of this node goes to, in order."""
        return self._directory_of(node)[0]

    def accepts(self, node: N, key: int) -> bool:
        """True when this node takes consensus messages from a link with this key."""
        return key in self._directory_of(node)[1]

    def _directory_of(self, node: N) -> tuple[tuple[int, ...], frozenset[int]]:
        schedule = node.store.schedule
        epoch = node.epoch
        latest = schedule.latest if schedule is not None else epoch
        known = self._directories.get(node.index)
        if known is not None and known[0] is epoch and known[1] is latest:
            return known[2], known[3]
        targets: set[int] = set()
        keys: set[int] = set()
        for member_of in self.directory(node):
            targets.update(member_of.identities)
            keys.update(member_of.key_indices)
        targets.discard(node.identity)
        found = tuple(sorted(targets)), frozenset(keys)
        self._directories[node.index] = (epoch, latest, *found)
        return found

    def wants(self, node: N, identity: int) -> bool:
        """True when this node pins `identity` (p2p): a member of its current or scheduled
        set, or a candidate whose addition passed and is not in its chain yet."""
        if any(identity in epoch.identities for epoch in self.directory(node)):
            return True
        passed = self.added_at.get(identity)
        if passed is None or passed > self.now:
            return False
        schedule = node.store.schedule
        return schedule is None or all(identity not in e.identities for e in schedule.epochs)

    def linked(self, a: N, b: N) -> bool:
        return self.wants(a, b.identity) and self.wants(b, a.identity)

    def next_change(self, node: N, height: int) -> Change | None:
        """The change a leader's block `height` carries: the next passed one, when the chain
        can schedule it and (for an addition) the candidate's node is caught up."""
        schedule = node.store.schedule
        if schedule is None or schedule.applied >= len(self.planned):
            return None
        planned = self.planned[schedule.applied]
        if planned.at_tick * TICK_UNITS > self.now or not schedule.schedulable(height):
            return None
        change = planned.change
        if change.kind == ADD and not any(
            candidate.up and candidate.executed_height >= height - 1 - READY_LAG
            for candidate in self.nodes_of(change.identity)
        ):
            return None
        return change

    def nodes_of(self, identity: int) -> Sequence[N]:
        raise NotImplementedError

    def sync_sources(self, node: N, nodes: Sequence[N]) -> list[int]:
        """The identities block sync would fetch from: linked peers on this node's side of
        the network, up, with a higher head (lowest identity first)."""
        head = node.executed_height
        found = {
            peer.identity
            for peer in nodes
            if peer.identity != node.identity
            and peer.up
            and peer.executed_height > head
            and self.group[peer.index] == self.group[node.index]
            and self.linked(node, peer)
        }
        return sorted(found)

    def must_stay_live(self, node: N, schedule: EpochSchedule, height: int) -> bool:
        """Whether the liveness check waits for this honest node: a member of the set that
        signs the next block of the agreed chain, or a candidate still catching up (removed
        validators are unpinned by everyone and stop)."""
        if not node.born:
            return False
        if node.identity in schedule.epoch_for(height + 1).identities:
            return True
        passed = self.added_at.get(node.identity)
        return passed is not None and all(
            node.identity not in epoch.identities for epoch in schedule.epochs
        )
