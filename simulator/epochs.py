"""Membership changes in the simulator: the sim's governance, derived from each chain.

A block body may carry one change (app.py): add identity X with key k, remove identity Y,
rotate identity Z to key k. The rules are the node's (node/ledger/governance.py): a change
carried by block H is scheduled for H + 2 (the set that signs block h is fixed by the chain
up to h - 2); at most one change is scheduled at a time (a block may carry one only when no
epoch starts after it); each change touches one validator; a change that would leave no
validator is refused. The changes a chain may carry, in order, are the run plan's (the
votes that passed); a block may carry only the next one.

Every node derives its own EpochSchedule from its own stored chain (store.py), and so does
the checker from the agreed chain: nobody reads another node's view of the set.

Identities are the simulated organisations (node.identity); a validator index is a position
in one epoch's member list; keys are KeyRing indices. Identities 0..n-1 start as the
validators with keys 0..n-1; added identities and rotated keys use keys beyond them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from consensus import max_faulty

ADD = "add"
REMOVE = "remove"
ROTATE = "rotate"
KINDS = (ADD, REMOVE, ROTATE)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # ADD, REMOVE or ROTATE
    identity: int
    key: int  # the key the identity signs with from its epoch on (0 for REMOVE)

    def to_wire(self) -> list[object]:
        return [self.kind, self.identity, self.key]

    @classmethod
    def from_wire(cls, value: object) -> Change | None:
        if not isinstance(value, list) or len(value) != 3:
            return None
        kind, identity, key = value
        if kind not in KINDS or type(identity) is not int or type(key) is not int:
            return None
        return cls(kind, identity, key)


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A change whose vote passes at `at_tick`: from then on leaders may carry it."""

    at_tick: int
    change: Change


Members = tuple[tuple[int, int], ...]  # (identity, key) by validator index


@dataclass(frozen=True, slots=True)
class SimEpoch:
    number: int
    start_height: int
    members: Members
    # Derived from members once (every delivered message asks them): not part of equality.
    identities: tuple[int, ...] = field(init=False, repr=False, compare=False)
    key_indices: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _index_of: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identities", tuple(identity for identity, _ in self.members))
        object.__setattr__(self, "key_indices", tuple(key for _, key in self.members))
        index_of = {identity: index for index, (identity, _) in enumerate(self.members)}
        object.__setattr__(self, "_index_of", index_of)

    @property
    def n(self) -> int:
        return len(self.members)

    def index_of(self, identity: int) -> int | None:
        return self._index_of.get(identity)

    def key_of(self, identity: int) -> int | None:
        for member, key in self.members:
            if member == identity:
                return key
        return None

    def identity_at(self, index: int) -> int | None:
        return self.members[index][0] if 0 <= index < len(self.members) else None

    def leader(self, view: int) -> int:
        """The identity that leads `view` (leader index = view mod n, as the replica)."""
        return self.members[view % len(self.members)][0]


def apply_change(members: Members, change: Change) -> Members | None:
    """The member list after `change`, or None when the change is refused."""
    identities = [identity for identity, _ in members]
    keys = [key for _, key in members]
    if change.kind == ADD:
        if change.identity in identities or change.key in keys:
            return None
        return (*members, (change.identity, change.key))
    if change.identity not in identities:
        return None
    if change.kind == REMOVE:
        kept = tuple(member for member in members if member[0] != change.identity)
        return kept or None  # a change that would leave no validator is refused
    if change.kind == ROTATE:
        if change.key in keys:
            return None
        return tuple(
            (identity, change.key if identity == change.identity else key)
            for identity, key in members
        )
    return None


@dataclass(frozen=True, slots=True)
class EpochSchedule:
    """The epochs a chain defines: every epoch begun, and the one scheduled (if any)."""

    epochs: tuple[SimEpoch, ...]
    applied: int = 0  # how many planned changes the chain has carried

    @classmethod
    def genesis(cls, n: int) -> EpochSchedule:
        return cls((SimEpoch(0, 1, tuple((i, i) for i in range(n))),))

    @property
    def latest(self) -> SimEpoch:
        return self.epochs[-1]

    def epoch_for(self, height: int) -> SimEpoch:
        """The epoch that signs `height`: right for heights up to the head + 2 of the chain
        this schedule was derived from (later changes are not known yet)."""
        for epoch in reversed(self.epochs):
            if epoch.start_height <= height:
                return epoch
        return self.epochs[0]

    def epoch(self, number: int) -> SimEpoch | None:
        return self.epochs[number] if 0 <= number < len(self.epochs) else None

    def schedulable(self, height: int) -> bool:
        """True when block `height` may carry a change (no epoch starts after it)."""
        return self.latest.start_height <= height

    def after(self, height: int, change: Change | None) -> EpochSchedule | None:
        """The schedule once block `height` carrying `change` is executed; None when the
        block may not carry it (another change is scheduled, or the change is refused)."""
        if change is None:
            return self
        if not self.schedulable(height):
            return None
        members = apply_change(self.latest.members, change)
        if members is None:
            return None
        epoch = SimEpoch(self.latest.number + 1, height + 2, members)
        return EpochSchedule((*self.epochs, epoch), self.applied + 1)

    def started(self, head: int) -> int:
        """How many epochs after genesis have begun at or below height `head`."""
        return sum(1 for epoch in self.epochs[1:] if epoch.start_height <= head)


def draw_changes(
    rng: random.Random, n: int, byzantine: Iterable[int], fault_ticks: int
) -> tuple[tuple[PlannedChange, ...], int]:
    """A few adds, removes and rotations at random times in the fault window, each valid
    when applied in order and keeping every set's byzantine members within its f. Returns
    the changes and how many keys the keyring needs."""
    bad = frozenset(byzantine)
    members: Members = tuple((i, i) for i in range(n))
    next_identity, next_key = n, n
    planned: list[PlannedChange] = []
    ticks = sorted(rng.randint(2, max(3, fault_ticks - 10)) for _ in range(rng.randint(1, 4)))
    for at_tick in ticks:
        kind = rng.choice(KINDS)
        identities = [identity for identity, _ in members]
        if kind == ADD and next_identity - n < 2:
            change = Change(ADD, next_identity, next_key)
        elif kind == REMOVE and len(members) > 1:
            change = Change(REMOVE, rng.choice(identities), 0)
        else:
            change = Change(ROTATE, rng.choice(identities), next_key)
        after = apply_change(members, change)
        if after is None or len(bad.intersection(i for i, _ in after)) > max_faulty(len(after)):
            continue  # this vote would not have passed
        members = after
        planned.append(PlannedChange(at_tick, change))
        if change.kind == ADD:
            next_identity += 1
        if change.kind != REMOVE:
            next_key += 1
    return tuple(planned), next_key
