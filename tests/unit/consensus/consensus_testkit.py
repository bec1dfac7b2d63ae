"""Helpers for message-by-message tests of the consensus core (imported by the tests;
conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus import (
    Action,
    Broadcast,
    Checkpoint,
    Commit,
    CommitCertificate,
    Deliver,
    PersistedState,
    Prepare,
    PrePrepare,
    Replica,
    ReplicaConfig,
    ViewChange,
    checkpoint_signing_bytes,
    vote_signing_bytes,
)

CHAIN_ID = "unit-chain"
ROOT0 = bytes(32)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Keys:
    """HMAC-SHA256 stand-in signatures: fast, deterministic, checkable."""

    def __init__(self, n: int) -> None:
        self.secrets = [sha256(b"unit-secret-%d" % i) for i in range(n)]
        self.public = tuple(sha256(b"unit-public-" + s) for s in self.secrets)
        self._by_public = dict(zip(self.public, self.secrets, strict=True))

    def sign(self, index: int, message: bytes) -> bytes:
        return hmac.new(self.secrets[index], message, "sha256").digest()

    def signer(self, index: int):  # type: ignore[no-untyped-def]
        return lambda message: self.sign(index, message)

    def verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        secret = self._by_public.get(public_key)
        if secret is None:
            return False
        return hmac.compare_digest(hmac.new(secret, message, "sha256").digest(), signature)


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
        return CommitCertificate(height, view, digest, sigs)

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
    """n replicas on a perfect FIFO network; blocks execute as soon as they are delivered.

    `cut` holds validator indices whose traffic (in and out) is dropped."""

    def __init__(self, n: int, **config: object) -> None:
        self.keys = Keys(n)
        self.config = {"chain_id": CHAIN_ID, "validators": self.keys.public, **config}
        self.apps = [RecordingApp() for _ in range(n)]
        self.persisted: list[PersistedState | None] = [None] * n
        self.chains: list[list[Deliver]] = [[] for _ in range(n)]
        self.cut: set[int] = set()
        self.replicas = [self._make(i) for i in range(n)]
        self._queue: list[tuple[int, object]] = []

    def _make(self, i: int) -> Replica:
        cfg = ReplicaConfig(my_index=i, **self.config)  # type: ignore[arg-type]
        chain = self.chains[i]
        return Replica(
            cfg,
            self.apps[i],
            self.keys.signer(i),
            self.keys.verify,
            committed_height=len(chain),
            committed_state_root=_root(len(chain)),
            persisted=self.persisted[i],
            committed_certificate=chain[-1].certificate if chain else None,
        )

    def restart(self, i: int) -> None:
        self.replicas[i] = self._make(i)

    def perform(self, i: int, actions: list[Action]) -> None:
        from consensus import FetchBlocks, Persist, Send

        for action in actions:
            if isinstance(action, Persist):
                self.persisted[i] = PersistedState.from_bytes(action.state.to_bytes())
            elif isinstance(action, Broadcast):
                for j in range(len(self.replicas)):
                    if j != i:
                        self._queue.append((j, (i, action.msg)))
            elif isinstance(action, Send):
                self._queue.append((action.to, (i, action.msg)))
            elif isinstance(action, Deliver):
                self.chains[i].append(action)
                self._queue.append((i, ("executed", action.height)))
            elif isinstance(action, FetchBlocks):
                self._queue.append((i, ("fetch", action.from_height, action.peers)))

    def settle(self, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            if not self._queue:
                return
            target, item = self._queue.pop(0)
            self._handle(target, item)
        raise AssertionError("the cluster did not settle")

    def _handle(self, target: int, item: object) -> None:
        assert isinstance(item, tuple)
        replica = self.replicas[target]
        if item[0] == "executed":
            height = item[1]
            chain = self.chains[target]
            if height == replica.executed_height + 1:
                self.perform(
                    target, replica.executed(height, _root(height), chain[height - 1].certificate)
                )
        elif item[0] == "fetch":
            self._fetch(target, item[1], item[2])
        else:
            sender, msg = item
            if sender in self.cut or target in self.cut:
                return
            self.perform(target, replica.receive(msg))

    def _fetch(self, target: int, from_height: int, peers: tuple[int, ...]) -> None:
        for peer in peers:
            if peer in self.cut or target in self.cut:
                continue
            source = self.chains[peer]
            for block in source[from_height - 1 :]:
                chain = self.chains[target]
                if block.height == len(chain) + 1:
                    chain.append(block)
                    self.perform(
                        target,
                        self.replicas[target].executed(
                            block.height, _root(block.height), block.certificate
                        ),
                    )
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
        return [len(chain) for chain in self.chains]


def _root(height: int) -> bytes:
    return ROOT0 if height == 0 else sha256(b"root %d" % height)
