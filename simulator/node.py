"""A simulated node: its durable store and the volatile rest, and what it does for its host.

The world (world.py) owns the nodes and plays everything around them; a node reaches it only
through NodeWorld, so this module does not import the world (no import cycle).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from consensus import (
    UNATTRIBUTABLE,
    Broadcast,
    Deliver,
    FetchBlocks,
    Misbehaviour,
    PersistedState,
    Replica,
    Send,
)
from simulator.app import decode_body
from simulator.checks import Checker, SimViolation
from simulator.epochs import Change, EpochSchedule, SimEpoch
from simulator.host import Host, NodeIO
from simulator.plan import RunPlan
from simulator.store import SimStore, StoredBlock


class NodeWorld(Protocol):
    """What a node uses of the world that runs it (simulator.world.World)."""

    plan: RunPlan
    rng: random.Random
    now: int
    changes: tuple[Change, ...]
    checker: Checker

    def schedule(self, delay: int, *event: object) -> None: ...

    def count(self, name: str, amount: int = 1) -> None: ...

    def transmit(self, node: Node, action: Broadcast | Send) -> None: ...

    def on_decided(self, node: Node, action: Deliver, stored: StoredBlock | None) -> None: ...

    def after(self, node: Node) -> None: ...

    def crash(self, node: Node) -> None: ...


@dataclass(eq=False)
class Node(NodeIO):
    """One simulated node (a twin identity has two); the NodeIO of its host."""

    index: int
    identity: int
    honest: bool
    behaviours: frozenset[str]
    world: NodeWorld
    store: SimStore  # durable: survives crashes (with the epochs its chain defines)
    epoch: SimEpoch  # the epoch of the node's replica (of its last one while it is down)
    key_index: int  # the key the node signs and links with (a validator's key may rotate)
    born: bool = True  # False until an added identity's node starts
    tx_set: set[int] = field(default_factory=set)  # the tx ids in the stored chain
    # Volatile.
    host: Host | None = None
    incarnation: int = 0
    propose_scheduled: bool = False
    sync_scheduled: bool = False
    suspected_view: int = -1
    first_waiting_tx: int = 1  # every tx id below it is in the chain (or has a nonce gap)
    last_commit_time: int = 0
    _counted: tuple[bytes, int] = (b"", 0)  # the last payload tx_count_of decoded, its count

    def tx_count_of(self, payload: bytes) -> int:
        """How many txs a block carries (asked every tick for the head block: remembered)."""
        counted, count = self._counted
        if payload is not counted:
            count = len(tx_ids_of(payload))
            self._counted = (payload, count)
        return count

    @property
    def replica(self) -> Replica | None:
        return None if self.host is None else self.host.replica

    @property
    def up(self) -> bool:
        return self.host is not None

    @property
    def executed_height(self) -> int:
        return self.store.head_height

    @property
    def schedule(self) -> EpochSchedule:
        schedule = self.store.schedule
        if schedule is None:
            raise TypeError("a simulated node's store keeps its epochs")
        return schedule

    @property
    def planned_changes(self) -> tuple[Change, ...]:
        return self.world.changes

    @property
    def sender_index(self) -> int | None:
        """This node's validator index in its replica's epoch (None: it follows)."""
        return self.epoch.index_of(self.identity)

    def digest_at(self, height: int) -> bytes:
        return self.store.digest_at(height)

    def on_validate(self, height: int) -> None:
        if height != self.executed_height + 1:
            raise SimViolation(
                "node-rule",
                f"node {self.index} asked to validate {height} at executed {self.executed_height}",
            )

    # ----------------------------------------------------------------- NodeIO (host.py)

    def send(self, action: Send | Broadcast) -> None:
        self.world.transmit(self, action)

    def fetch(self, action: FetchBlocks) -> None:
        world = self.world
        delay = world.rng.randint(*world.plan.fetch_delay_units)
        peers = tuple(
            identity
            for identity in (self.epoch.identity_at(index) for index in action.peers)
            if identity is not None
        )
        world.schedule(delay, "fetch", self.index, self.incarnation, peers)

    def evidence(self, action: Misbehaviour, origin: int | None = None, epoch: int = 0) -> None:
        self.world.count(f"evidence.{action.kind}")
        if action.kind in UNATTRIBUTABLE:
            accused = origin  # names the claimed sender: the node blames the link
        else:
            reporter = self.schedule.epoch(epoch)
            accused = None if reporter is None else reporter.identity_at(action.validator)
        if accused is not None:
            self.world.checker.on_misbehaviour(self.identity, accused, action.kind, action.detail)

    def persisted(self, state: PersistedState) -> None:
        self.world.count("persists")

    def decided(self, action: Deliver, stored: StoredBlock | None) -> None:
        self.world.on_decided(self, action, stored)

    def committed(self, block: StoredBlock, *, synced: bool) -> None:
        self.tx_set.update(tx_ids_of(block.payload))
        self.last_commit_time = self.world.now

    def commit_delay(self) -> int:
        world = self.world
        delay = world.rng.randint(*world.plan.exec_delay_units)
        world.schedule(delay, "execute", self.index, self.incarnation)
        return delay

    def crashed(self) -> None:
        self.world.crash(self)

    def idle(self) -> None:
        self.world.after(self)


def tx_ids_of(payload: bytes) -> tuple[int, ...]:
    body = decode_body(payload)
    return () if body is None else body.tx_ids
