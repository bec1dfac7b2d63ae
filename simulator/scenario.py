"""A small interpreter for transcript-style scenario files (like etcd raft's testdata).

A file is a list of blocks:

    command arg key=value ...
    ----
    expected output

The interpreter runs each command on a hand-driven cluster (a FIFO network that delivers
only what a command says) and compares its output with the expected text. Each replica's
output is carried out by the simulator's host (host.py: the node's contract, journaling and
restart rules), which prints what it does: `persists` (the durable write of the replica's
record), the view changes, new views and commit notices it sends, `delivers` (a decided
block committed), `fetches` and `reports`. Commands:

    cluster n=4 [k=5 window=10 timeout=4 max_timeout=64 retransmit=3]
    propose PAYLOAD [by=i]          the leader (or replica i) proposes a block
    deliver [kind=A,B] [from=i,j] [to=i,j] [quiet]
                                    deliver matching queued messages (and what they cause)
                                    until none match; blocks commit as soon as decided;
                                    quiet hides the messages and the persists
    drop [kind=...] [from=...] [to=...]   drop matching queued messages
    isolate i,j / heal              cut replicas off the network / reconnect everyone
    crash i / restart i             lose a replica's memory / rebuild it from its store
                                    (journaled decided blocks are committed first)
    forge-pre-prepare PAYLOAD by=i view=v height=h to=j
                                    validator i signs a (conflicting) proposal and sends it to j
    tick N [quiet]                  every running replica ticks N times (messages queue);
                                    quiet hides the persists and the messages sent
    status                          view, mode, heights and checkpoints of every replica
    chains                          the payloads each replica has executed
    queue                           the queued messages
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from consensus import (
    Broadcast,
    Checkpoint,
    Commit,
    CommitNotice,
    FetchBlocks,
    Message,
    Misbehaviour,
    NewView,
    PersistedState,
    Prepare,
    PrePrepare,
    Replica,
    ReplicaConfig,
    Send,
    SignedVote,
    ViewChange,
    decode_message,
    encode_message,
    quorum_size,
    vote_signing_bytes,
)
from simulator.app import sha256
from simulator.host import Host, NodeIO
from simulator.keys import KeyRing
from simulator.store import SimStore, StoredBlock

CHAIN_ID = "scenario-chain"
MAX_STEPS = 100_000


class _App:
    def validate(self, height: int, payload: bytes) -> bool:
        return not payload.startswith(b"invalid")

    def digest(self, payload: bytes) -> bytes:
        return sha256(payload)


@dataclass(eq=False)
class _Replica(NodeIO):
    """One replica of the scenario: its store survives `crash`, its host does not."""

    index: int
    scenario: Scenario
    store: SimStore
    host: Host | None = None
    last_persisted: PersistedState | None = None  # what the previous write held

    @property
    def replica(self) -> Replica | None:
        return None if self.host is None else self.host.replica

    def send(self, action: Send | Broadcast) -> None:
        self.scenario.transmit(self.index, action)

    def fetch(self, action: FetchBlocks) -> None:
        self.scenario.fetch(self.index, action)

    def evidence(self, action: Misbehaviour, origin: int | None = None, epoch: int = 0) -> None:
        self.scenario.out.append(f"  {self.index} reports {action.validator}: {action.kind}")

    def persisted(self, state: PersistedState) -> None:
        if not self.scenario.quiet:
            described = self.scenario.describe_persist(state, self.last_persisted)
            self.scenario.out.append(f"  {self.index} {described}")
        self.last_persisted = state

    def committed(self, block: StoredBlock, *, synced: bool) -> None:
        if not synced:
            signers = ",".join(str(i) for i in block.certificate.signers())
            self.scenario.out.append(
                f"  {self.index} delivers height {block.height}: {block.payload.decode()} "
                f"(view {block.certificate.view}, signed by {signers})"
            )


class Scenario:
    def __init__(self) -> None:
        self.replicas: list[_Replica] = []
        self.queue: list[tuple[int, int, Message]] = []
        self.isolated: set[int] = set()
        self.names: dict[bytes, str] = {}
        self.config: dict[str, object] = {}
        self.out: list[str] = []
        self.quiet = False  # hide persists (and, for tick, the messages sent)
        self._quiet_sends = False
        self.keys = KeyRing(1)

    # ----------------------------------------------------------------------------- running

    def run_file(self, text: str) -> str:
        """Run every block of a scenario file; return the file as it should read."""
        blocks = [b for b in text.split("\n\n") if b.strip()]
        rendered: list[str] = []
        for block in blocks:
            lines = block.strip("\n").split("\n")
            comments = [line for line in lines if line.startswith("#")]
            rest = [line for line in lines if not line.startswith("#")]
            if not rest:
                rendered.append("\n".join(comments))
                continue
            command = rest[0]
            output = self.run(command)
            rendered.append("\n".join([*comments, command, "----", *output]))
        return "\n\n".join(rendered) + "\n"

    def run(self, command: str) -> list[str]:
        self.out = []
        words = command.split()
        name, args = words[0], words[1:]
        handler: Callable[[list[str]], None] | None = getattr(
            self, "_cmd_" + name.replace("-", "_"), None
        )
        if handler is None:
            raise ValueError(f"unknown scenario command {name!r}")
        self.quiet = "quiet" in args
        try:
            handler(args)
        finally:
            self.quiet = self._quiet_sends = False
        return self.out or ["ok"]

    # ----------------------------------------------------------------------------- commands

    def _cmd_cluster(self, args: list[str]) -> None:
        options = _options(args)
        n = int(options.get("n", "4"))
        self.keys = KeyRing(n)
        self.config = dict(
            chain_id=CHAIN_ID,
            validators=self.keys.public_keys,
            checkpoint_interval=int(options.get("k", "5")),
            watermark_window=int(options.get("window", "10")),
            view_timeout_ticks=int(options.get("timeout", "4")),
            max_view_timeout_ticks=int(options.get("max_timeout", "64")),
            retransmit_interval_ticks=int(options.get("retransmit", "3")),
        )
        self.replicas = [_Replica(i, self, SimStore()) for i in range(n)]
        for r in self.replicas:
            self._boot(r)
        self.out.append(f"{n} replicas, f = {(n - 1) // 3}, quorum = {quorum_size(n)}")

    def _boot(self, r: _Replica) -> int:
        """Start a replica as the node does: replay its journal, then rebuild it from its
        store. Returns how many journaled blocks were committed."""
        store = r.store
        replayed = len(store.recover())
        cfg = ReplicaConfig(my_index=r.index, **self.config)  # type: ignore[arg-type]
        replica = Replica(
            cfg,
            _App(),
            self.keys.signer(r.index),
            self.keys.verify,
            committed_height=store.head_height,
            committed_state_root=store.root_at(store.head_height),
            persisted=store.persisted(),
            committed_certificate=store.head_certificate(),
            checkpoint_state_root=store.last_checkpoint_root(cfg.checkpoint_interval),
        )
        r.host = Host(replica, store, r)
        r.last_persisted = store.persisted()
        return replayed

    def _cmd_propose(self, args: list[str]) -> None:
        options = _options(args[1:])
        payload = args[0].encode()
        self.names[sha256(payload)] = args[0]
        if "by" in options:
            candidates = [int(options["by"])]
        else:
            candidates = [r.index for r in self.replicas if r.host is not None]
        for index in candidates:
            host = self.replicas[index].host
            if host is not None and host.replica.can_propose:
                replica = host.replica
                self.out.append(
                    f"{index} proposes {args[0]} at height {replica.next_height} in view "
                    f"{replica.view}"
                )
                host.input(partial(replica.propose, payload))
                return
        self.out.append("no replica can propose")

    def _cmd_forge_pre_prepare(self, args: list[str]) -> None:
        options = _options(args[1:])
        payload = args[0].encode()
        digest = sha256(payload)
        self.names[digest] = args[0]
        sender, view, height = int(options["by"]), int(options["view"]), int(options["height"])
        signing = vote_signing_bytes(CHAIN_ID, "pre-prepare", view, height, digest)
        msg = PrePrepare(
            view, height, digest, payload, None, sender, self.keys.sign(sender, signing)
        )
        for target in (int(x) for x in options["to"].split(",")):
            self.queue.append((sender, target, msg))
        self.out.append(f"{sender} signs {self._describe(msg)}")

    def _cmd_deliver(self, args: list[str]) -> None:
        match = _matcher(args)
        for _ in range(MAX_STEPS):
            position = next((i for i, item in enumerate(self.queue) if match(*item)), None)
            if position is None:
                return
            sender, target, msg = self.queue.pop(position)
            host = self.replicas[target].host
            if host is None:
                continue
            if not self.quiet:
                self.out.append(f"{sender}->{target} {self._describe(msg)}")
            host.input(partial(host.replica.receive, msg))
        raise RuntimeError("deliver did not finish")

    def _cmd_drop(self, args: list[str]) -> None:
        match = _matcher(args)
        kept = [item for item in self.queue if not match(*item)]
        self.out.append(f"dropped {len(self.queue) - len(kept)} messages")
        self.queue = kept

    def _cmd_isolate(self, args: list[str]) -> None:
        self.isolated = {int(x) for x in args[0].split(",")}
        self.out.append(f"isolated {sorted(self.isolated)}")

    def _cmd_heal(self, args: list[str]) -> None:
        self.isolated = set()

    def _cmd_crash(self, args: list[str]) -> None:
        r = self.replicas[int(args[0])]
        if r.host is not None:
            r.host.stop()
        r.host = None
        self.queue = [item for item in self.queue if item[1] != r.index]
        self.out.append(f"{r.index} crashed at executed height {r.store.head_height}")

    def _cmd_restart(self, args: list[str]) -> None:
        r = self.replicas[int(args[0])]
        replayed = self._boot(r)
        replica = r.replica
        if replica is None:
            raise RuntimeError("a booted replica has a host")
        journal = f" ({replayed} journaled blocks committed)" if replayed else ""
        self.out.append(
            f"{r.index} restarted: view {replica.view} "
            f"{replica.status()['mode']}, executed height {r.store.head_height}{journal}"
        )

    def _cmd_tick(self, args: list[str]) -> None:
        self._quiet_sends = self.quiet
        for _ in range(int(args[0])):
            for r in self.replicas:
                if r.host is not None:
                    r.host.input(r.host.replica.tick)

    def _cmd_status(self, args: list[str]) -> None:
        for r in self.replicas:
            replica = r.replica
            if replica is None:
                self.out.append(f"{r.index}: down")
                continue
            s = replica.status()
            self.out.append(
                f"{r.index}: view {s['view']} {s['mode']}, executed {s['executed_height']}, "
                f"next {s['next_height']}, stable checkpoint {s['stable_checkpoint']}, "
                f"watermarks {s['low_watermark']}-{s['high_watermark']}"
            )

    def _cmd_chains(self, args: list[str]) -> None:
        for r in self.replicas:
            payloads = " ".join(block.payload.decode() for block in r.store.blocks)
            self.out.append(f"{r.index}: {payloads or '(empty)'}")

    def _cmd_queue(self, args: list[str]) -> None:
        for sender, target, msg in self.queue:
            self.out.append(f"{sender}->{target} {self._describe(msg)}")
        if not self.queue:
            self.out.append("(empty)")

    # ------------------------------------------------------------------- what hosts do

    def transmit(self, index: int, action: Send | Broadcast) -> None:
        msg = decode_message(encode_message(action.msg))
        if isinstance(msg, ViewChange | NewView | CommitNotice) and not self._quiet_sends:
            if isinstance(action, Send):
                self.out.append(f"  {index} answers {action.to}: {self._describe(msg)}")
            else:
                self.out.append(f"  {index} sends {self._describe(msg)}")
        targets = (
            [action.to]
            if isinstance(action, Send)
            else [i for i in range(len(self.replicas)) if i != index]
        )
        for target in targets:
            if index not in self.isolated and target not in self.isolated:
                self.queue.append((index, target, msg))

    def fetch(self, index: int, action: FetchBlocks) -> None:
        """Block sync: the first reachable peer with blocks serves them; the host commits
        them once it is idle (as the driver's apply_synced)."""
        host = self.replicas[index].host
        if host is None:
            return
        for peer in action.peers:
            if peer in self.isolated or index in self.isolated:
                continue
            blocks = self.replicas[peer].store.blocks[action.from_height - 1 :]
            if not blocks:
                continue
            self.out.append(
                f"  {index} fetches heights {action.from_height}-{blocks[-1].height} from {peer}"
            )
            for block in blocks:
                host.apply_synced(block.height, block.payload, block.certificate)
            return

    def describe_persist(self, state: PersistedState, previous: PersistedState | None) -> str:
        """`persists view V[ (view change)][, prepared hH NAME][: the signatures recorded
        since the previous write]`: what the write holds, and what it guards."""
        mode = " (view change)" if state.in_view_change else ""
        text = f"persists view {state.view}{mode}"
        if state.prepared is not None:
            text += f", prepared h{state.prepared.height} {self._name(state.prepared.digest)}"
        before = (None, None, None) if previous is None else _votes(previous)
        changed = [
            (phase, vote)
            for phase, vote, old in zip(_PHASES, _votes(state), before, strict=True)
            if vote is not None and vote != old
        ]
        signed: list[str] = []
        for position, (phase, vote) in enumerate(changed):
            if position and changed[position - 1][1] == vote:  # same block: one entry
                signed[-1] = signed[-1].replace(" h", f", {phase} h", 1)
            else:
                signed.append(f"{phase} h{vote.height} {self._name(vote.digest)}")
        if state.last_view_change != (previous.last_view_change if previous else 0):
            signed.append(f"view change v{state.last_view_change}")
        if state.last_new_view != (previous.last_new_view if previous else 0):
            signed.append(f"new view v{state.last_new_view}")
        return text + (": " + "; ".join(signed) if signed else "")

    def _describe(self, msg: Message) -> str:
        if isinstance(msg, PrePrepare):
            return f"PrePrepare v{msg.view} h{msg.height} {self._name(msg.digest)}"
        if isinstance(msg, Prepare | Commit):
            return f"{type(msg).__name__} v{msg.view} h{msg.height} {self._name(msg.digest)}"
        if isinstance(msg, Checkpoint):
            return f"Checkpoint h{msg.height}"
        if isinstance(msg, ViewChange):
            parts = [f"ViewChange v{msg.new_view}"]
            if msg.prepared is not None:
                parts.append(f"prepared h{msg.prepared.height} {self._name(msg.prepared.digest)}")
            if msg.last_commit is not None:
                parts.append(f"committed h{msg.last_commit.height}")
            return " ".join(parts)
        if isinstance(msg, NewView):
            proposal = msg.pre_prepare
            again = (
                ""
                if proposal is None
                else f" re-proposing {self._name(proposal.digest)} at h{proposal.height}"
            )
            senders = ",".join(str(vc.sender) for vc in msg.view_changes)
            return f"NewView v{msg.view} from view changes of {senders}{again}"
        if isinstance(msg, CommitNotice):
            return f"CommitNotice h{msg.certificate.height} {self._name(msg.certificate.digest)}"
        return type(msg).__name__

    def _name(self, digest: bytes) -> str:
        return self.names.get(digest, digest.hex()[:8])


_PHASES = ("pre-prepare", "prepare", "commit")


def _votes(state: PersistedState) -> tuple[SignedVote | None, ...]:
    return (state.last_pre_prepare, state.last_prepare, state.last_commit_vote)


def _options(args: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args if "=" in arg)


def _matcher(args: list[str]) -> Callable[[int, int, Message], bool]:
    options = _options(args)
    kinds = set(options["kind"].split(",")) if "kind" in options else None
    senders = {int(x) for x in options["from"].split(",")} if "from" in options else None
    targets = {int(x) for x in options["to"].split(",")} if "to" in options else None

    def match(sender: int, target: int, msg: Message) -> bool:
        return (
            (kinds is None or type(msg).__name__ in kinds)
            and (senders is None or sender in senders)
            and (targets is None or target in targets)
        )

    return match


__all__ = ["Scenario"]
