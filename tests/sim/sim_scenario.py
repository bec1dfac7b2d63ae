"""A small interpreter for transcript-style scenario files (like etcd raft's testdata).

A file is a list of blocks:

    command arg key=value ...
    ----
    expected output

The interpreter runs each command on a hand-driven cluster (a FIFO network that delivers
only what a command says) and compares its output with the expected text. Commands:

    cluster n=4 [k=5 window=10 timeout=4 max_timeout=64 retransmit=3]
    propose PAYLOAD [by=i]          the leader (or replica i) proposes a block
    deliver [kind=A,B] [from=i,j] [to=i,j] [quiet]
                                    deliver matching queued messages (and what they cause)
                                    until none match; blocks execute as soon as delivered
    drop [kind=...] [from=...] [to=...]   drop matching queued messages
    isolate i,j / heal              cut replicas off the network / reconnect everyone
    crash i / restart i             lose a replica's memory / rebuild it from what it persisted
    forge-pre-prepare PAYLOAD by=i view=v height=h to=j
                                    validator i signs a (conflicting) proposal and sends it to j
    tick N [quiet]                  every running replica ticks N times (messages queue)
    status                          view, mode, heights and checkpoints of every replica
    chains                          the payloads each replica has executed
    queue                           the queued messages
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus import (
    Action,
    Broadcast,
    Checkpoint,
    Commit,
    CommitCertificate,
    CommitNotice,
    Deliver,
    FetchBlocks,
    Message,
    Misbehaviour,
    NewView,
    Persist,
    PersistedState,
    Prepare,
    PrePrepare,
    Replica,
    ReplicaConfig,
    Send,
    ViewChange,
    decode_message,
    encode_message,
    quorum_size,
    vote_signing_bytes,
)

CHAIN_ID = "scenario-chain"
ROOT0 = bytes(32)
MAX_STEPS = 100_000


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class _App:
    def validate(self, height: int, payload: bytes) -> bool:
        return not payload.startswith(b"invalid")

    def digest(self, payload: bytes) -> bytes:
        return _sha(payload)


@dataclass
class _Replica:
    index: int
    replica: Replica | None
    chain: list[Deliver] = field(default_factory=list)
    persisted: PersistedState | None = None


class Scenario:
    def __init__(self) -> None:
        self.replicas: list[_Replica] = []
        self.queue: list[tuple[int, int, Message]] = []
        self.isolated: set[int] = set()
        self.names: dict[bytes, str] = {}
        self.config: dict[str, object] = {}
        self.out: list[str] = []

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
        handler(args)
        return self.out or ["ok"]

    # ----------------------------------------------------------------------------- commands

    def _cmd_cluster(self, args: list[str]) -> None:
        options = _options(args)
        n = int(options.get("n", "4"))
        self._secrets = [_sha(b"scenario-%d" % i) for i in range(n)]
        self._public = tuple(_sha(b"pub" + s) for s in self._secrets)
        self.config = dict(
            chain_id=CHAIN_ID,
            validators=self._public,
            checkpoint_interval=int(options.get("k", "5")),
            watermark_window=int(options.get("window", "10")),
            view_timeout_ticks=int(options.get("timeout", "4")),
            max_view_timeout_ticks=int(options.get("max_timeout", "64")),
            retransmit_interval_ticks=int(options.get("retransmit", "3")),
        )
        self.replicas = [_Replica(i, None) for i in range(n)]
        for r in self.replicas:
            self._boot(r)
        self.out.append(f"{n} replicas, f = {(n - 1) // 3}, quorum = {quorum_size(n)}")

    def _boot(self, r: _Replica) -> None:
        cfg = ReplicaConfig(my_index=r.index, **self.config)  # type: ignore[arg-type]
        secret = self._secrets[r.index]
        height = len(r.chain)
        r.replica = Replica(
            cfg,
            _App(),
            lambda m: hmac.new(secret, m, "sha256").digest(),
            self._verify,
            committed_height=height,
            committed_state_root=_root(height),
            persisted=r.persisted,
            committed_certificate=r.chain[-1].certificate if r.chain else None,
        )

    def _verify(self, public: bytes, signature: bytes, message: bytes) -> bool:
        if public not in self._public:
            return False
        secret = self._secrets[self._public.index(public)]
        return hmac.compare_digest(hmac.new(secret, message, "sha256").digest(), signature)

    def _cmd_propose(self, args: list[str]) -> None:
        options = _options(args[1:])
        payload = args[0].encode()
        self.names[_sha(payload)] = args[0]
        if "by" in options:
            candidates = [int(options["by"])]
        else:
            candidates = [r.index for r in self.replicas if r.replica is not None]
        for index in candidates:
            replica = self.replicas[index].replica
            if replica is not None and replica.can_propose:
                self.out.append(
                    f"{index} proposes {args[0]} at height {replica.next_height} in view "
                    f"{replica.view}"
                )
                self._perform(index, replica.propose(payload))
                return
        self.out.append("no replica can propose")

    def _cmd_forge_pre_prepare(self, args: list[str]) -> None:
        options = _options(args[1:])
        payload = args[0].encode()
        digest = _sha(payload)
        self.names[digest] = args[0]
        sender, view, height = int(options["by"]), int(options["view"]), int(options["height"])
        signing = vote_signing_bytes(CHAIN_ID, "pre-prepare", view, height, digest)
        signature = hmac.new(self._secrets[sender], signing, "sha256").digest()
        msg = PrePrepare(view, height, digest, payload, None, sender, signature)
        for target in (int(x) for x in options["to"].split(",")):
            self.queue.append((sender, target, msg))
        self.out.append(f"{sender} signs {self._describe(msg)}")

    def _cmd_deliver(self, args: list[str]) -> None:
        match = _matcher(args)
        quiet = "quiet" in args
        for _ in range(MAX_STEPS):
            position = next((i for i, item in enumerate(self.queue) if match(*item)), None)
            if position is None:
                return
            sender, target, msg = self.queue.pop(position)
            r = self.replicas[target]
            if r.replica is None:
                continue
            if not quiet:
                self.out.append(f"{sender}->{target} {self._describe(msg)}")
            self._perform(target, r.replica.receive(msg))
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
        r.replica = None
        self.queue = [item for item in self.queue if item[1] != r.index]
        self.out.append(f"{r.index} crashed at executed height {len(r.chain)}")

    def _cmd_restart(self, args: list[str]) -> None:
        r = self.replicas[int(args[0])]
        self._boot(r)
        assert r.replica is not None
        self.out.append(
            f"{r.index} restarted: view {r.replica.view} "
            f"{r.replica.status()['mode']}, executed height {len(r.chain)}"
        )

    def _cmd_tick(self, args: list[str]) -> None:
        for _ in range(int(args[0])):
            for r in self.replicas:
                if r.replica is not None:
                    self._perform(r.index, r.replica.tick(), quiet="quiet" in args)

    def _cmd_status(self, args: list[str]) -> None:
        for r in self.replicas:
            if r.replica is None:
                self.out.append(f"{r.index}: down")
                continue
            s = r.replica.status()
            self.out.append(
                f"{r.index}: view {s['view']} {s['mode']}, executed {s['executed_height']}, "
                f"next {s['next_height']}, stable checkpoint {s['stable_checkpoint']}, "
                f"watermarks {s['low_watermark']}-{s['high_watermark']}"
            )

    def _cmd_chains(self, args: list[str]) -> None:
        for r in self.replicas:
            payloads = " ".join(d.payload.decode() for d in r.chain)
            self.out.append(f"{r.index}: {payloads or '(empty)'}")

    def _cmd_queue(self, args: list[str]) -> None:
        for sender, target, msg in self.queue:
            self.out.append(f"{sender}->{target} {self._describe(msg)}")
        if not self.queue:
            self.out.append("(empty)")

    # ------------------------------------------------------------------------------ actions

    def _perform(self, index: int, actions: list[Action], *, quiet: bool = False) -> None:
        for action in actions:
            if isinstance(action, Persist):
                r = self.replicas[index]
                r.persisted = PersistedState.from_bytes(action.state.to_bytes())
            elif isinstance(action, Broadcast | Send):
                msg = decode_message(encode_message(action.msg))
                if isinstance(msg, ViewChange | NewView | CommitNotice) and not quiet:
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
            elif isinstance(action, Deliver):
                self._deliver(index, action)
            elif isinstance(action, FetchBlocks):
                self._fetch(index, action)
            elif isinstance(action, Misbehaviour):
                self.out.append(f"  {index} reports {action.validator}: {action.kind}")

    def _deliver(self, index: int, action: Deliver) -> None:
        r = self.replicas[index]
        signers = ",".join(str(i) for i in action.certificate.signers())
        self.out.append(
            f"  {index} delivers height {action.height}: {action.payload.decode()} "
            f"(view {action.certificate.view}, signed by {signers})"
        )
        r.chain.append(action)
        assert r.replica is not None
        self._perform(
            index, r.replica.executed(action.height, _root(action.height), action.certificate)
        )

    def _fetch(self, index: int, action: FetchBlocks) -> None:
        r = self.replicas[index]
        for peer in action.peers:
            source = self.replicas[peer]
            if peer in self.isolated or index in self.isolated:
                continue
            blocks = source.chain[action.from_height - 1 :]
            if not blocks:
                continue
            self.out.append(
                f"  {index} fetches heights {action.from_height}-{blocks[-1].height} from {peer}"
            )
            for block in blocks:
                if block.height != len(r.chain) + 1 or r.replica is None:
                    continue
                r.chain.append(block)
                self._perform(
                    index, r.replica.executed(block.height, _root(block.height), block.certificate)
                )
            return

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


def _root(height: int) -> bytes:
    return ROOT0 if height == 0 else _sha(b"root %d" % height)


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


__all__ = ["CommitCertificate", "Scenario"]
