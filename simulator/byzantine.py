"""Byzantine behaviours of the simulated nodes (at most f identities per run).

A byzantine node runs the real Replica; the world rewrites what it sends (equivocating
pre-prepares, withheld votes, lying view changes, broken signatures) and adds votes it should
not cast (double voting). Twins are two nodes with one identity (see RunPlan.instances).
What it forges names its index and signs with its key in the epoch its replica runs (a
validator set may change during a run); while it is no validator it forges nothing.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from consensus import (
    Checkpoint,
    Commit,
    CommitNotice,
    Message,
    Prepare,
    PrePrepare,
    ViewChange,
    vote_signing_bytes,
)
from simulator.app import decode_body, sha256
from simulator.checks import Checker
from simulator.epochs import SimEpoch
from simulator.keys import KeyRing
from simulator.plan import (
    CORRUPT,
    DOUBLE_VOTE,
    EQUIVOCATE,
    LYING_VIEW_CHANGE,
    SPLIT,
    WITHHOLD,
    RunPlan,
)


class SimNode(Protocol):
    """What a byzantine behaviour reads of a simulated node (simulator.node.Node)."""

    identity: int
    honest: bool
    behaviours: frozenset[str]
    epoch: SimEpoch  # the epoch its replica runs
    key_index: int  # the key it signs with

    @property
    def sender_index(self) -> int | None: ...


CHAIN_ID = "sim-chain"
WITHHELD_KIND_CHOICES: tuple[tuple[type, ...], ...] = (
    (Prepare,),
    (Commit,),
    (Prepare, Commit),
    (Commit, Checkpoint, CommitNotice),
    (ViewChange,),
)


Node = TypeVar("Node", bound=SimNode)


class ByzantineMixin(Generic[Node]):
    rng: random.Random
    keys: KeyRing
    plan: RunPlan
    by_identity: dict[int, list[Node]]
    checker: Checker

    def count(self, name: str, amount: int = 1) -> None:
        raise NotImplementedError

    def send_to(self, sender: Node, receiver: Node, msg: Message) -> None:
        raise NotImplementedError

    def forged_tx(self) -> int:
        raise NotImplementedError

    def broadcast_targets(self, node: Node) -> tuple[int, ...]:
        raise NotImplementedError

    def _signer(self, node: Node) -> Callable[[bytes], bytes]:
        return self.keys.signer(node.key_index)

    def _withheld_kinds(self, node: Node) -> tuple[type, ...]:
        # Fixed per identity and seed, without touching the run's random stream.
        chooser = random.Random(f"{self.plan.seed}/withhold/{node.identity}")
        return chooser.choice(WITHHELD_KIND_CHOICES)

    def _victims(self, node: Node) -> frozenset[int]:
        """The identities a split-brain voter starves of its commits (fixed per seed)."""
        chooser = random.Random(f"{self.plan.seed}/victims/{node.identity}")
        others = [i for i in sorted(self.by_identity) if i != node.identity]
        return frozenset(chooser.sample(others, max(1, len(others) - 1)))

    def _starves(self, node: Node, view: int) -> frozenset[int]:
        """Whom a split-brain voter hides its commits from for a block of `view`: the victims,
        unless a victim leads that view (then it helps the victims decide their own block)."""
        victims = self._victims(node)
        leader = node.epoch.leader(view)
        return frozenset() if leader in victims else victims

    def on_incoming(self, node: Node, msg: Message) -> None:
        """A double voter prepares and commits every proposal it sees."""
        voter = DOUBLE_VOTE in node.behaviours or SPLIT in node.behaviours
        me = node.sender_index
        if not voter or not isinstance(msg, PrePrepare) or me is None:
            return
        self.count("byzantine.double_votes")
        sign = self._signer(node)
        for phase, kind in (("prepare", Prepare), ("commit", Commit)):
            signature = sign(vote_signing_bytes(CHAIN_ID, phase, msg.view, msg.height, msg.digest))
            vote = kind(msg.view, msg.height, msg.digest, me, signature)
            self._to_all(
                node,
                vote,
                skip=self._victims(node)
                if kind is Commit and SPLIT in node.behaviours
                else frozenset(),
            )

    def _to_all(self, node: Node, msg: Message, skip: frozenset[int] = frozenset()) -> None:
        for identity in self.broadcast_targets(node):
            if identity not in skip:
                for receiver in self.by_identity.get(identity, []):
                    self.send_to(node, receiver, msg)

    def outgoing(
        self, node: Node, msg: Message, targets: Sequence[int]
    ) -> list[tuple[int, Message]]:
        """What a node really sends for `msg` to `targets`."""
        if node.honest:
            return [(target, msg) for target in targets]
        behaviours = node.behaviours
        if SPLIT in behaviours and isinstance(msg, Commit | CommitNotice):
            view = msg.view if isinstance(msg, Commit) else msg.certificate.view
            starved = self._starves(node, view)
            kept = [t for t in targets if t not in starved]
            self.count("byzantine.split_withheld", len(targets) - len(kept))
            targets = kept
        if WITHHOLD in behaviours and isinstance(msg, self._withheld_kinds(node)):
            kept = [t for t in targets if self.rng.random() < 0.3]
            self.count("byzantine.withheld", len(targets) - len(kept))
            targets = kept
        if LYING_VIEW_CHANGE in behaviours and isinstance(msg, ViewChange):
            msg = self._lie(node, msg)
        me = node.sender_index
        if EQUIVOCATE in behaviours and isinstance(msg, PrePrepare) and msg.sender == me:
            return self._equivocate(node, msg, targets)
        # Only its own messages: a broken signature on a relayed message would name the
        # original (honest) sender, and a bad signature is no evidence against anyone.
        if CORRUPT in behaviours and msg.sender == me and self.rng.random() < 0.1:
            self.count("byzantine.corrupted")
            if self.rng.random() < 0.5:
                broken = bytes([msg.signature[0] ^ 0xFF]) + msg.signature[1:]
                msg = dataclasses.replace(msg, signature=broken)
            else:
                msg = dataclasses.replace(msg, sender=node.epoch.n + 3)
        return [(target, msg) for target in targets]

    def _lie(self, node: Node, msg: ViewChange) -> ViewChange:
        """A view change that hides the sender's prepared block and commits."""
        self.count("byzantine.lying_view_changes")
        unsigned = ViewChange(msg.new_view, None, None, None, None, msg.sender, b"", msg.epoch)
        signature = self._signer(node)(unsigned.signing_bytes(CHAIN_ID))
        return dataclasses.replace(unsigned, signature=signature)

    def _equivocate(
        self, node: Node, msg: PrePrepare, targets: Sequence[int]
    ) -> list[tuple[int, Message]]:
        body = decode_body(msg.payload)
        if body is None:
            return [(target, msg) for target in targets]
        self.count("byzantine.equivocations")
        other = dataclasses.replace(body, tx_ids=(self.forged_tx(),))
        payload = other.encode()
        digest = sha256(payload)
        self.checker.proposals.setdefault(digest, node.identity)
        sign = self._signer(node)
        other_proposal = PrePrepare(
            msg.view,
            msg.height,
            digest,
            payload,
            msg.last_commit,
            msg.sender,
            sign(vote_signing_bytes(CHAIN_ID, "pre-prepare", msg.view, msg.height, digest)),
        )
        other_prepare = Prepare(
            msg.view,
            msg.height,
            digest,
            msg.sender,
            sign(vote_signing_bytes(CHAIN_ID, "prepare", msg.view, msg.height, digest)),
        )
        sent: list[tuple[int, Message]] = []
        for target in targets:
            draw = self.rng.random()
            if draw < 0.45:
                sent.append((target, msg))
            elif draw < 0.9:
                sent += [(target, other_proposal), (target, other_prepare)]
            else:
                sent += [(target, msg), (target, other_proposal), (target, other_prepare)]
        return sent
