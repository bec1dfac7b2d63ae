"""A whole PBFT cluster in one process, on a discrete-event loop driven by one seed.

The loop is a heap of (time, sequence, event); all randomness comes from one
random.Random(seed), drawn in event order, so a seed replays exactly, in any process. The
world plays the node for every replica: it carries out the actions in order (a crash can cut
a list in the middle), executes delivered blocks, serves FetchBlocks from other nodes' chains
after checking certificates, proposes blocks, and suspects censorship.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from sim_byzantine import ByzantineMixin
from sim_checks import Checker, SimViolation
from sim_plan import SPLIT, TICK_UNITS, FaultEvent, RunPlan, plan_for_seed
from sim_support import (
    GENESIS_DIGEST,
    GENESIS_ROOT,
    MAX_TXS_PER_BLOCK,
    BlockBody,
    Ed25519KeyRing,
    HmacKeyRing,
    SimApp,
    decode_body,
    sha256,
)

from consensus import (
    Broadcast,
    CertificateError,
    CommitCertificate,
    Deliver,
    FetchBlocks,
    Message,
    Misbehaviour,
    Persist,
    PersistedState,
    Replica,
    ReplicaConfig,
    Send,
    ViewChange,
    censorship_suspected,
    decode_message,
    encode_message,
    quorum_size,
    verify_certificate,
)

CHAIN_ID = "sim-chain"
MAX_EVENTS = 3_000_000
FETCH_BATCH = 20


@dataclass
class Block:
    payload: bytes
    digest: bytes
    certificate: CommitCertificate
    state_root: bytes


@dataclass
class Node:
    """One simulated node (a twin identity has two)."""

    index: int
    identity: int
    honest: bool
    behaviours: frozenset[str]
    world: World
    # Durable: survives crashes.
    chain: list[Block] = field(default_factory=list)
    tx_set: set[int] = field(default_factory=set)
    persisted: bytes | None = None
    # Volatile.
    replica: Replica | None = None
    incarnation: int = 0
    exec_queue: deque[tuple[int, bytes, CommitCertificate]] = field(default_factory=deque)
    exec_scheduled: bool = False
    propose_scheduled: bool = False
    delivered_height: int = 0
    crash_cut: int | None = None
    suspected_view: int = -1
    first_waiting_tx: int = 1  # every tx id below it is in the chain (or has a nonce gap)
    last_commit_time: int = 0

    @property
    def up(self) -> bool:
        return self.replica is not None

    @property
    def executed_height(self) -> int:
        return len(self.chain)

    def digest_at(self, height: int) -> bytes:
        return GENESIS_DIGEST if height == 0 else self.chain[height - 1].digest

    def root_at(self, height: int) -> bytes:
        return GENESIS_ROOT if height == 0 else self.chain[height - 1].state_root

    def on_validate(self, height: int) -> None:
        if height != self.executed_height + 1:
            raise SimViolation(
                "node-rule",
                f"node {self.index} asked to validate {height} at executed {self.executed_height}",
            )


@dataclass
class RunResult:
    seed: int
    ok: bool
    violation: str | None
    trace_hash: str
    stats: dict[str, int]
    end_tick: int


class World(ByzantineMixin):
    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        ring = Ed25519KeyRing if plan.real_signatures else HmacKeyRing
        self.keys = ring(plan.n, plan.seed)
        honest = frozenset(i for i in range(plan.n) if i not in plan.byzantine)
        self.checker = Checker(CHAIN_ID, plan.n, self.keys, honest)
        self.now = 0
        self._events: list[tuple[int, int, tuple[object, ...]]] = []
        self._sequence = 0
        self._trace = hashlib.sha256()
        self.stats: dict[str, int] = {}
        self.nodes: list[Node] = []
        for index, (identity, _copy) in enumerate(plan.instances()):
            behaviours = plan.byzantine.get(identity, frozenset())
            self.nodes.append(Node(index, identity, identity in honest, behaviours, self))
        self.by_identity: dict[int, list[Node]] = {}
        for node in self.nodes:
            self.by_identity.setdefault(node.identity, []).append(node)
        for identity in sorted(self.by_identity):
            if len(self.by_identity[identity]) > 1:
                self.count("byzantine.twin_identities")
        self.group: list[int] = [0] * len(self.nodes)  # partition side of each node
        self.healed = False
        self.tx_arrivals: dict[int, int] = {}  # tx id -> arrival time
        self.gap_txs: set[int] = set()  # txs with a nonce gap: never proposable
        self._next_tx = 1
        self._forged_tx = 10**9
        self.proposal_time: dict[bytes, int] = {}  # digest -> when it was first proposed
        self.max_view = 0
        self._calm_until = 0

    # -------------------------------------------------------------------------- event loop

    def schedule(self, delay: int, *event: object) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (self.now + max(0, delay), self._sequence, event))

    def count(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    def run(self) -> RunResult:
        try:
            self._run()
        except SimViolation as violation:
            return self._result(f"{violation.kind}: {violation.detail}")
        return self._result(None)

    def _result(self, violation: str | None) -> RunResult:
        self.stats["blocks"] = self.checker.max_height
        for node in self.nodes:
            if node.replica is not None and node.honest:
                counters = node.replica.status()["counters"]
                assert isinstance(counters, dict)
                for key in ("gc.prepared_not_delivered",):
                    if key in counters:
                        self.count(key, counters[key])
        return RunResult(
            self.plan.seed,
            violation is None,
            violation,
            self._trace.hexdigest(),
            dict(sorted(self.stats.items())),
            self.now // TICK_UNITS,
        )

    def _run(self) -> None:
        for node in self.nodes:
            self._start(node)
        for fault in self.plan.faults:
            self._sequence += 1
            heapq.heappush(
                self._events, (fault.at_tick * TICK_UNITS, self._sequence, ("fault", fault))
            )
        heal_at = self.plan.fault_ticks * TICK_UNITS
        self.schedule(heal_at, "heal-all")
        self.schedule(TICK_UNITS, "tx")
        deadline = heal_at + (self.plan.liveness_bound_ticks + self.plan.calm_ticks) * TICK_UNITS
        for _ in range(MAX_EVENTS):
            if not self._events:
                raise SimViolation("liveness", "no events left")
            time, _, event = heapq.heappop(self._events)
            self.now = time
            if self.healed and self._live_after_heal() and time >= self._calm_until:
                return
            if time > deadline:
                heights = [node.executed_height for node in self.nodes if node.honest]
                raise SimViolation(
                    "liveness",
                    f"no new commit within {self.plan.liveness_bound_ticks} ticks of the heal "
                    f"(heal height {self._heal_height}, honest heights {heights})",
                )
            self._dispatch(event)
        raise SimViolation("budget", f"more than {MAX_EVENTS} events")

    def _dispatch(self, event: tuple[object, ...]) -> None:
        kind = event[0]
        self._trace.update(f"{self.now}:{kind}:{event[1] if len(event) > 1 else ''};".encode())
        if kind == "msg":
            _, index, incarnation, msg = event
            node = self.nodes[index]  # type: ignore[index]
            if node.replica is not None and node.incarnation == incarnation:
                self.on_incoming(node, msg)  # type: ignore[arg-type]
                self.perform(node, node.replica.receive(msg))  # type: ignore[arg-type]
        elif kind in ("tick", "execute", "propose", "fetch"):
            node = self.nodes[event[1]]  # type: ignore[index]
            if node.replica is None or node.incarnation != event[2]:
                return
            getattr(self, f"_on_{kind}")(node, *event[3:])
        elif kind == "fault":
            self._on_fault(event[1])  # type: ignore[arg-type]
        elif kind == "heal-all":
            self._heal_all()
        elif kind == "tx":
            self.tx_arrivals[self._next_tx] = self.now
            if self.plan.gap_tx_every and self._next_tx % self.plan.gap_tx_every == 0:
                self.gap_txs.add(self._next_tx)
            self._next_tx += 1
            self.schedule(TICK_UNITS, "tx")

    # ------------------------------------------------------------------------------ nodes

    def _config(self, identity: int) -> ReplicaConfig:
        plan = self.plan
        return ReplicaConfig(
            chain_id=CHAIN_ID,
            validators=self.keys.public_keys,
            my_index=identity,
            checkpoint_interval=plan.checkpoint_interval,
            watermark_window=plan.watermark_window,
            view_timeout_ticks=plan.view_timeout_ticks,
            max_view_timeout_ticks=plan.max_view_timeout_ticks,
            censorship_timeout_ticks=plan.censorship_timeout_ticks,
            retransmit_interval_ticks=plan.retransmit_interval_ticks,
            fetch_retry_ticks=plan.retransmit_interval_ticks * 2,
            mutations=plan.mutations,
        )

    def _start(self, node: Node) -> None:
        persisted = None if node.persisted is None else PersistedState.from_bytes(node.persisted)
        node.replica = Replica(
            self._config(node.identity),
            SimApp(node, self.plan.n),
            self.keys.signer(node.identity),
            self.keys.verify,
            committed_height=node.executed_height,
            committed_state_root=node.root_at(node.executed_height),
            persisted=persisted,
            committed_certificate=node.chain[-1].certificate if node.chain else None,
        )
        node.incarnation += 1
        node.delivered_height = node.executed_height
        node.exec_queue.clear()
        node.exec_scheduled = False
        node.propose_scheduled = False
        node.crash_cut = None
        self.schedule(self.rng.randint(1, TICK_UNITS), "tick", node.index, node.incarnation)
        self._after(node)

    def crash(self, node: Node) -> None:
        if node.replica is None:
            return
        self.count("faults.crash")
        node.replica = None
        node.incarnation += 1
        node.exec_queue.clear()
        node.crash_cut = None

    def perform(self, node: Node, actions: list[object]) -> None:
        """Carry out a replica's actions in order, as the node would."""
        for position, action in enumerate(actions):
            if node.crash_cut is not None and position >= node.crash_cut:
                self.count("faults.crash_mid_actions")
                self.crash(node)
                return
            if isinstance(action, Persist):
                node.persisted = action.state.to_bytes()
            elif isinstance(action, Broadcast | Send):
                self._transmit(node, action)
            elif isinstance(action, Deliver):
                self._on_deliver(node, action)
            elif isinstance(action, FetchBlocks):
                delay = self.rng.randint(*self.plan.fetch_delay_units)
                self.schedule(
                    delay, "fetch", node.index, node.incarnation, action.from_height, action.peers
                )
            elif isinstance(action, Misbehaviour):
                self.count(f"evidence.{action.kind}")
                self.checker.on_misbehaviour(
                    node.identity, action.validator, action.kind, action.detail
                )
        if node.crash_cut is not None:
            self.crash(node)
            return
        self._after(node)

    def _after(self, node: Node) -> None:
        replica = node.replica
        if replica is None or node.propose_scheduled or not replica.can_propose:
            return
        if replica.next_height != node.executed_height + 1:
            raise SimViolation(
                "node-rule",
                f"node {node.index} may propose {replica.next_height}"
                f" at executed height {node.executed_height}",
            )
        node.propose_scheduled = True
        low, high = self.plan.block_delay_units
        self.schedule(self.rng.randint(low, high), "propose", node.index, node.incarnation)

    def _on_tick(self, node: Node) -> None:
        replica = node.replica
        assert replica is not None
        self.schedule(TICK_UNITS, "tick", node.index, node.incarnation)
        self.perform(node, replica.tick())
        replica = node.replica
        if replica is None:
            return
        status = replica.status()
        self.checker.on_log_sizes(node.identity, status["log"], replica.log_bounds())  # type: ignore[arg-type]
        self._maybe_suspect_censorship(node, replica)

    def _maybe_suspect_censorship(self, node: Node, replica: Replica) -> None:
        """The node's rule (consensus.censorship_suspected, once per view): a tx a leader
        could propose waited longer than the censorship timeout while blocks that were not
        full kept committing, in a view that has run longer than the timeout."""
        if not node.honest or replica.view == node.suspected_view or len(node.chain) < 2:
            return
        while node.first_waiting_tx in node.tx_set or node.first_waiting_tx in self.gap_txs:
            node.first_waiting_tx += 1
        arrived = self.tx_arrivals.get(node.first_waiting_tx)
        if arrived is None:
            return
        last_block_txs = len(_txs(node.chain[-1].payload))
        if not censorship_suspected(
            oldest_proposable_wait=self.now - arrived,
            since_last_commit=self.now - node.last_commit_time,
            view_age=replica.normal_for_ticks * TICK_UNITS,
            timeout=self.plan.censorship_timeout_ticks * TICK_UNITS,
            last_block_full=last_block_txs >= MAX_TXS_PER_BLOCK // 2,
        ):
            return
        node.suspected_view = replica.view
        self.count("censorship_suspected")
        self.perform(node, replica.suspect_censorship())

    def _on_propose(self, node: Node) -> None:
        node.propose_scheduled = False
        replica = node.replica
        assert replica is not None
        if not replica.can_propose:
            return
        height = replica.next_height
        txs = () if "censor" in node.behaviours else self._pending_txs(node)
        body = BlockBody(height, node.digest_at(height - 1), replica.view, node.identity, txs)
        payload = body.encode()
        self.checker.proposals.setdefault(sha256(payload), node.identity)
        self.proposal_time.setdefault(sha256(payload), self.now)
        self.count("proposals")
        self.perform(node, replica.propose(payload))

    def _pending_txs(self, node: Node) -> tuple[int, ...]:
        chosen: list[int] = []
        for tx in self.tx_arrivals:
            if tx not in node.tx_set and tx not in self.gap_txs:
                chosen.append(tx)
                if len(chosen) == MAX_TXS_PER_BLOCK // 2:
                    break
        return tuple(chosen)

    def forged_tx(self) -> int:
        self._forged_tx += 1
        return self._forged_tx

    # --------------------------------------------------------------------- blocks and fetch

    def _on_deliver(self, node: Node, action: Deliver) -> None:
        if action.height <= node.delivered_height:
            # Block sync fetched this height first (a race the node resolves): same block.
            queued = [p for h, p, _ in node.exec_queue if h == action.height]
            known = queued[0] if queued else node.chain[action.height - 1].payload
            if known != action.payload:
                raise SimViolation(
                    "agreement",
                    f"node {node.index} delivered another block at fetched height {action.height}",
                )
            self.count("deliver_already_fetched")
            return
        if action.height != node.delivered_height + 1:
            raise SimViolation(
                "node-rule",
                f"node {node.index} delivered {action.height} after {node.delivered_height}",
            )
        if node.honest:
            self.checker.on_block(
                node.identity, action.height, action.payload, action.certificate, "delivered"
            )
        self.count("delivered")
        node.delivered_height = action.height
        node.exec_queue.append((action.height, action.payload, action.certificate))
        self._schedule_execute(node)

    def _schedule_execute(self, node: Node) -> None:
        if node.exec_scheduled or not node.exec_queue:
            return
        node.exec_scheduled = True
        low, high = self.plan.exec_delay_units
        self.schedule(self.rng.randint(low, high), "execute", node.index, node.incarnation)

    def _on_execute(self, node: Node) -> None:
        node.exec_scheduled = False
        height, payload, certificate = node.exec_queue.popleft()
        if height != node.executed_height + 1:
            raise SimViolation(
                "node-rule", f"node {node.index} executes {height} after {node.executed_height}"
            )
        digest = sha256(payload)
        root = sha256(node.root_at(height - 1) + digest)
        node.chain.append(Block(payload, digest, certificate, root))
        node.last_commit_time = self.now
        node.tx_set.update(_txs(payload))
        replica = node.replica
        assert replica is not None
        self._schedule_execute(node)
        self.perform(node, replica.executed(height, root, certificate))

    def _on_fetch(self, node: Node, from_height: int, peers: tuple[int, ...]) -> None:
        self.count("fetches")
        expected = node.delivered_height + 1
        if from_height != expected:
            from_height = expected  # the replica asked before more blocks were delivered
        for peer in peers:
            for source in self.by_identity.get(peer, []):
                if source.replica is None or self.group[source.index] != self.group[node.index]:
                    continue
                if SPLIT in source.behaviours:
                    self.count("byzantine.fetch_refused")
                    continue
                blocks = source.chain[from_height - 1 : from_height - 1 + FETCH_BATCH]
                if blocks:
                    self._apply_fetched(node, from_height, blocks)
                    return

    def _apply_fetched(self, node: Node, from_height: int, blocks: list[Block]) -> None:
        for offset, block in enumerate(blocks):
            height = from_height + offset
            try:
                verify_certificate(
                    block.certificate,
                    CHAIN_ID,
                    self.keys.public_keys,
                    self.keys.verify,
                    quorum=quorum_size(self.plan.n),
                )
            except CertificateError:
                self.count("fetch_rejected")
                return
            if block.certificate.height != height or block.certificate.digest != block.digest:
                self.count("fetch_rejected")
                return
            if node.honest:
                self.checker.on_block(
                    node.identity, height, block.payload, block.certificate, "fetched"
                )
            self.count("fetched_blocks")
            node.delivered_height = height
            node.exec_queue.append((height, block.payload, block.certificate))
        self._schedule_execute(node)

    # ---------------------------------------------------------------------------- network

    def _transmit(self, node: Node, action: Broadcast | Send) -> None:
        msg = action.msg
        if node.honest and msg.sender == node.identity:  # not a forwarded new view
            self.checker.on_signed(node.identity, msg)
            if isinstance(msg, ViewChange) and msg.new_view > self.max_view:
                self.count("views_changed", msg.new_view - self.max_view)
                self.max_view = msg.new_view
        data = encode_message(msg)
        decoded = decode_message(data)
        if decoded != msg:
            raise SimViolation("codec", f"{type(msg).__name__} does not survive encode/decode")
        if isinstance(action, Send):
            targets = [action.to]
        else:
            targets = [i for i in range(self.plan.n) if i != node.identity]
        for target, outgoing in self.outgoing(node, decoded, targets):
            for receiver in self.by_identity.get(target, []):
                self.send_to(node, receiver, outgoing)

    def send_to(self, sender: Node, receiver: Node, msg: Message) -> None:
        self.count("messages")
        if not self.healed:
            if self.group[sender.index] != self.group[receiver.index]:
                self.count("faults.partitioned")
                return
            if self.rng.random() < self.plan.drop_rate:
                self.count("faults.drop")
                return
        copies = 1
        if self.rng.random() < self.plan.duplicate_rate:
            self.count("faults.duplicate")
            copies = 2
        for _ in range(copies):
            delay = self.rng.randint(1, 20)
            if self.rng.random() < self.plan.slow_rate:
                self.count("faults.delay")
                delay += self.rng.randint(20, 300)
            self.schedule(delay, "msg", receiver.index, receiver.incarnation, msg)

    # ----------------------------------------------------------------------------- faults

    def _on_fault(self, fault: object) -> None:
        assert isinstance(fault, FaultEvent)
        if self.healed:
            return
        if fault.kind == "partition":
            self.count("faults.partition")
            members = set(fault.targets)
            self.group = [1 if node.index in members else 0 for node in self.nodes]
        elif fault.kind == "heal":
            self.group = [0] * len(self.nodes)
        elif fault.kind == "crash":
            self._arm_crash(self.nodes[fault.targets[0]], fault.cut)
        elif fault.kind == "restart":
            node = self.nodes[fault.targets[0]]
            if node.replica is None:
                self.count("faults.restart")
                self._start(node)
        elif fault.kind == "crash-all":
            self.count("faults.crash_all")
            for node in self.nodes:
                self.crash(node)
        elif fault.kind == "restart-all":
            self._restart_all()

    def _arm_crash(self, node: Node, cut: int) -> None:
        """Crash at the next action list, after `cut` of its actions (or at once if cut = 0)."""
        if node.replica is None:
            return
        if cut == 0:
            self.crash(node)
        else:
            node.crash_cut = cut

    def _restart_all(self) -> None:
        for node in self.nodes:
            if node.replica is None:
                self.count("faults.restart")
                self._start(node)

    def _heal_all(self) -> None:
        self.group = [0] * len(self.nodes)
        self.healed = True
        for node in self.nodes:
            node.crash_cut = None
        self._restart_all()
        self._heal_height = max(node.executed_height for node in self.nodes if node.honest)
        self._calm_until = self.now + self.plan.calm_ticks * TICK_UNITS

    def _live_after_heal(self) -> bool:
        return all(node.executed_height > self._heal_height for node in self.nodes if node.honest)


def _txs(payload: bytes) -> tuple[int, ...]:
    body = decode_body(payload)
    return () if body is None else body.tx_ids


def run_seed(seed: int, **plan_options: object) -> RunResult:
    plan = plan_for_seed(seed, **plan_options)  # type: ignore[arg-type]
    return World(plan).run()
