"""Helpers for message-by-message tests of the consensus core (imported by the tests;
conftest.py puts this folder on sys.path): message forging for one replica under test
(Harness), and SyncCluster, whose replicas are carried out by the simulator's host."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus import (
    Action,
    Broadcast,
    Checkpoint,
    Commit,
    CommitCertificate,
    Deliver,
    FetchBlocks,
    PersistedState,
    Prepare,
    PrePrepare,
    Replica,
    ReplicaConfig,
    Send,
    ViewChange,
    checkpoint_signing_bytes,
    vote_signing_bytes,
)
from simulator.host import Host, NodeIO
from simulator.keys import KeyRing
from simulator.store import SimStore, StoredBlock

CHAIN_ID = "unit-chain"
ROOT0 = bytes(32)
# The unit tests' validator keys: HMAC-SHA256 stand-ins (fast, deterministic, checkable).
Keys = KeyRing


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass
class RecordingApp:
    """Accepts every payload unless told otherwise; records what it was asked."""

    reject: set[bytes] = field(default_factory=set)
    validated: list[tuple[int, bytes]] = field(default_factory=list)

    def validate(self, height: int, payload: bytes) -> bool:
        self.validated.append((height, payload))
        return payload not in self.reject

    def digest(self, payload: bytes) -> bytes:
        return sha256(payload)


@dataclass
class Harness:
    """One replica under test plus the keys of all validators, to forge their messages."""

    n: int
    me: int | None
    keys: Keys
    app: RecordingApp
    replica: Replica
    config: ReplicaConfig

    def pre_prepare(
        self,
        view: int,
        height: int,
        payload: bytes,
        sender: int | None = None,
        last_commit: CommitCertificate | None = None,
    ) -> PrePrepare:
        sender = view % self.n if sender is None else sender
        digest = sha256(payload)
        sig = self.keys.sign(
            sender, vote_signing_bytes(CHAIN_ID, "pre-prepare", view, height, digest)
        )
        return PrePrepare(view, height, digest, payload, last_commit, sender, sig)

    def prepare(self, view: int, height: int, digest: bytes, sender: int) -> Prepare:
        sig = self.keys.sign(sender, vote_signing_bytes(CHAIN_ID, "prepare", view, height, digest))
        return Prepare(view, height, digest, sender, sig)

    def commit(self, view: int, height: int, digest: bytes, sender: int) -> Commit:
        sig = self.keys.sign(sender, vote_signing_bytes(CHAIN_ID, "commit", view, height, digest))
        return Commit(view, height, digest, sender, sig)

    def certificate(
        self, view: int, height: int, digest: bytes, signers: Sequence[int]
    ) -> CommitCertificate:
        sigs = tuple(
            (i, self.keys.sign(i, vote_signing_bytes(CHAIN_ID, "commit", view, height, digest)))
            for i in sorted(signers)
        )
        return CommitCertificate(height, view, digest, sigs, (0,) * len(sigs))

    def checkpoint(self, height: int, root: bytes, sender: int) -> Checkpoint:
        sig = self.keys.sign(sender, checkpoint_signing_bytes(CHAIN_ID, height, root))
        return Checkpoint(height, root, sender, sig)

    def view_change(self, new_view: int, sender: int, **fields: object) -> ViewChange:
        unsigned = ViewChange(
            new_view,
            fields.get("stable_checkpoint"),  # type: ignore[arg-type]
            fields.get("last_commit"),  # type: ignore[arg-type]
            fields.get("prepared"),  # type: ignore[arg-type]
            fields.get("prepared_payload"),  # type: ignore[arg-type]
            sender,
            b"",
        )
        sig = self.keys.sign(sender, unsigned.signing_bytes(CHAIN_ID))
        return ViewChange(
            unsigned.new_view,
            unsigned.stable_checkpoint,
            unsigned.last_commit,
            unsigned.prepared,
            unsigned.prepared_payload,
            sender,
            sig,
        )

    def feed(self, *msgs: object) -> list[Action]:
        actions: list[Action] = []
        for msg in msgs:
            actions += self.replica.receive(msg)  # type: ignore[arg-type]
        return actions

    def restart(
        self, persisted: PersistedState | None, committed_height: int, **overrides: object
    ) -> Replica:
        self.replica = Replica(
            self.config,
            self.app,
            self.keys.signer(self.me) if self.me is not None else (lambda m: b""),
            self.keys.verify,
            committed_height=committed_height,
            committed_state_root=ROOT0,
            persisted=persisted,
            **overrides,
        )  # type: ignore[arg-type]
        return self.replica


def make_harness(n: int = 4, me: int | None = 1, **config: object) -> Harness:
    keys = Keys(n)
    cfg = ReplicaConfig(chain_id=CHAIN_ID, validators=keys.public, my_index=me, **config)  # type: ignore[arg-type]
    app = RecordingApp()
    signer = keys.signer(me) if me is not None else (lambda m: b"")
    replica = Replica(
        cfg,
        app,
        signer,
        keys.verify,
        committed_height=0,
        committed_state_root=ROOT0,
        persisted=None,
    )
    return Harness(n, me, keys, app, replica, cfg)


def broadcasts(actions: Sequence[Action], kind: type) -> list[object]:
    return [a.msg for a in actions if isinstance(a, Broadcast) and isinstance(a.msg, kind)]


def delivered(actions: Sequence[Action]) -> list[Deliver]:
    return [a for a in actions if isinstance(a, Deliver)]


def kinds(actions: Sequence[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


class SyncCluster:
    """n replicas on a perfect FIFO network. Each replica's output is carried out by the
    simulator's host (simulator/host.py: the node's contract), so a decided block is
    journaled, then committed to the replica's store and reported with executed() before the
    next message is handled; block sync is served from the other stores.

    `cut` holds validator indices whose traffic (in and out) is dropped."""

    def __init__(self, n: int, **config: object) -> None:
        self.keys = Keys(n)
        self.config = {"chain_id": CHAIN_ID, "validators": self.keys.public, **config}
        self.apps = [RecordingApp() for _ in range(n)]
        self.stores = [SimStore() for _ in range(n)]
        self.cut: set[int] = set()
        self._queue: list[tuple[int, object]] = []
        self.hosts = [self._make(i) for i in range(n)]

    @property
    def replicas(self) -> list[Replica]:
        return [host.replica for host in self.hosts]

    @property
    def persisted(self) -> list[PersistedState | None]:
        return [store.persisted() for store in self.stores]

    @property
    def chains(self) -> list[list[StoredBlock]]:
        return [store.blocks for store in self.stores]

    def _make(self, i: int) -> Host:
        store = self.stores[i]
        store.recover()  # the node's restart rule: journaled decided blocks first
        cfg = ReplicaConfig(my_index=i, **self.config)  # type: ignore[arg-type]
        replica = Replica(
            cfg,
            self.apps[i],
            self.keys.signer(i),
            self.keys.verify,
            committed_height=store.head_height,
            committed_state_root=store.root_at(store.head_height),
            persisted=store.persisted(),
            committed_certificate=store.head_certificate(),
            checkpoint_state_root=store.last_checkpoint_root(cfg.checkpoint_interval),
        )
        return Host(replica, store, _ClusterIO(self, i))

    def restart(self, i: int) -> None:
        self.hosts[i].stop()
        self.hosts[i] = self._make(i)

    def perform(self, i: int, actions: list[Action]) -> None:
        self.hosts[i].carry_out(actions)

    def settle(self, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            if not self._queue:
                return
            target, item = self._queue.pop(0)
            self._handle(target, item)
        raise AssertionError("the cluster did not settle")

    def _handle(self, target: int, item: object) -> None:
        assert isinstance(item, tuple)
        if item[0] == "fetch":
            self._fetch(target, item[1], item[2])
            return
        sender, msg = item
        if sender in self.cut or target in self.cut:
            return
        self.perform(target, self.replicas[target].receive(msg))

    def _fetch(self, target: int, from_height: int, peers: tuple[int, ...]) -> None:
        for peer in peers:
            if peer in self.cut or target in self.cut:
                continue
            for block in self.stores[peer].blocks[from_height - 1 :]:
                self.hosts[target].apply_synced(block.height, block.payload, block.certificate)
            return

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            for i, replica in enumerate(self.replicas):  # cut replicas still tick
                self.perform(i, replica.tick())
            self.settle()

    def propose(self, payload: bytes) -> int:
        """Let the current leader propose; returns its index."""
        for i, replica in enumerate(self.replicas):
            if i not in self.cut and replica.can_propose:
                self.perform(i, replica.propose(payload))
                return i
        raise AssertionError("no replica can propose")

    def run_blocks(self, count: int, prefix: bytes = b"block") -> None:
        for k in range(count):
            self.propose(prefix + b" %d" % k)
            self.settle()

    def heights(self) -> list[int]:
        return [store.head_height for store in self.stores]


class _ClusterIO(NodeIO):
    def __init__(self, cluster: SyncCluster, index: int) -> None:
        self._cluster = cluster
        self._index = index

    def send(self, action: Send | Broadcast) -> None:
        queue, i = self._cluster._queue, self._index
        if isinstance(action, Send):
            queue.append((action.to, (i, action.msg)))
        else:
            queue += [(j, (i, action.msg)) for j in range(len(self._cluster.hosts)) if j != i]

    def fetch(self, action: FetchBlocks) -> None:
        self._cluster._queue.append((self._index, ("fetch", action.from_height, action.peers)))
