"""A whole PBFT cluster in one process, on a discrete-event loop driven by one seed.

The loop is a heap of (time, sequence, event); all randomness comes from one
random.Random(seed), drawn in event order, so a seed replays exactly, in any process. The
world plays the network, the clocks and the faults. Each node's host (host.py) carries out
its replica's output by the node's contract (consensus/ready.py) on a store with the node's
journaling and restart rules (store.py): a crash can cut that work between any two steps, and
loses everything the store does not hold. The world also serves FetchBlocks from other nodes'
stores after checking certificates, proposes blocks, and suspects censorship like the node.
Membership changes (epochs.py, members.py): a block may carry one; every node derives its
epochs from its own chain, and its host runs one replica per epoch by the node's rule.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from consensus import (
    Action,
    Broadcast,
    CertificateError,
    CommitCertificate,
    Deliver,
    Message,
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
from consensus.epochs import carry_over
from consensus.invariants import InvariantViolation
from simulator.app import MAX_TXS_PER_BLOCK, BlockBody, SimApp, decode_body, sha256
from simulator.byzantine import ByzantineMixin
from simulator.checks import Checker, SimViolation
from simulator.epochs import ADD, EpochSchedule, SimEpoch
from simulator.host import Host
from simulator.keys import KeyRing
from simulator.members import SYNC_POLL_TICKS, MembershipMixin
from simulator.node import Node
from simulator.plan import (
    MUTATION_EARLY_EPOCH,
    SIM_MUTATIONS,
    SPLIT,
    TICK_UNITS,
    FaultEvent,
    RunPlan,
    plan_for_seed,
)
from simulator.store import SimStore, StoredBlock, StoreRuleError

CHAIN_ID = "sim-chain"
MAX_EVENTS = 3_000_000
TRACE_BATCH_EVENTS = 1024
SEQUENCE_BITS = 48  # schedule() refuses a run that numbers more events than this holds
FETCH_BATCH = 20


@dataclass
class RunResult:
    seed: int
    ok: bool
    violation: str | None
    trace_hash: str
    stats: dict[str, int]
    end_tick: int


class World(MembershipMixin["Node"], ByzantineMixin["Node"]):
    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        # randint(a, b) is a + _randbelow(b - a + 1) in CPython 3.11-3.13: the same draws
        # without randint's and randrange's frames, for the per-message delays.
        self._randbelow: Callable[[int], int] = getattr(self.rng, "_randbelow")  # noqa: B009
        self.keys = KeyRing(max(plan.n, plan.key_count), plan.seed, real=plan.real_signatures)
        self.planned = plan.changes
        self.changes = tuple(planned.change for planned in plan.changes)
        self.added_at = {
            p.change.identity: p.at_tick * TICK_UNITS for p in plan.changes if p.change.kind == ADD
        }
        self._directories = {}
        added_keys = {p.change.identity: p.change.key for p in plan.changes if p.change.kind == ADD}
        identities = sorted({identity for identity, _ in plan.instances()})
        honest = frozenset(i for i in identities if i not in plan.byzantine)
        genesis = EpochSchedule.genesis(plan.n)
        self.checker = Checker(CHAIN_ID, self.keys, honest, genesis, self.changes)
        self.now = 0
        # (time << SEQUENCE_BITS | sequence, event): one int orders the heap, a cheaper
        # comparison than a (time, sequence) tuple, in the same order.
        self._events: list[tuple[int, tuple[object, ...]]] = []
        self._sequence = 0
        self._trace = hashlib.sha256()
        self._trace_parts: list[str] = []
        self.stats: dict[str, int] = {}
        self.nodes: list[Node] = []
        for index, (identity, _copy) in enumerate(plan.instances()):
            behaviours = plan.byzantine.get(identity, frozenset())
            node = Node(
                index,
                identity,
                identity in honest,
                behaviours,
                self,
                SimStore(genesis),
                genesis.epochs[0],
                added_keys.get(identity, identity),
                born=identity < plan.n,
            )
            self.nodes.append(node)
        # The planted bug early_epoch: the first honest validator's host swaps sets early.
        early = MUTATION_EARLY_EPOCH in plan.mutations
        self._early_identity = min(honest) if early and honest else -1
        self._epoch_keys: dict[SimEpoch, tuple[bytes, ...]] = {}
        self.by_identity: dict[int, list[Node]] = {}
        for node in self.nodes:
            self.by_identity.setdefault(node.identity, []).append(node)
        for identity in sorted(self.by_identity):
            if len(self.by_identity[identity]) > 1:
                self.count("byzantine.twin_identities")
        if plan.background_execution:
            self.count("runs.background_execution")
        if plan.changes:
            self.count("runs.reconfiguring")
            self.count("reconfig.changes_planned", len(plan.changes))
        self.group: list[int] = [0] * len(self.nodes)  # partition side of each node
        self.healed = False
        self._heal_height = 0
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
        if self._sequence >> SEQUENCE_BITS:
            raise SimViolation("budget", f"more than 2**{SEQUENCE_BITS} events scheduled")
        at = self.now + delay if delay > 0 else self.now
        heapq.heappush(self._events, ((at << SEQUENCE_BITS) | self._sequence, event))

    def count(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    def run(self) -> RunResult:
        try:
            self._run()
        except SimViolation as violation:
            return self._result(f"{violation.kind}: {violation.detail}")
        except (InvariantViolation, StoreRuleError) as error:  # the replica or node rules broke
            return self._result(f"{type(error).__name__}: {error}")
        return self._result(None)

    def _result(self, violation: str | None) -> RunResult:
        self.stats["blocks"] = self.checker.max_height
        epochs = self.checker.schedule.started(self.checker.max_height)
        if epochs:
            self.stats["epochs_changed"] = epochs
        for node in self.nodes:
            if node.replica is not None and node.honest:
                counters = node.replica.status()["counters"]
                if not isinstance(counters, dict):
                    raise TypeError("replica status counters are not a dict")
                for key in ("gc.prepared_not_delivered",):
                    if key in counters:
                        self.count(key, counters[key])
        return RunResult(
            self.plan.seed,
            violation is None,
            violation,
            self._trace_digest(),
            dict(sorted(self.stats.items())),
            self.now // TICK_UNITS,
        )

    def _trace_digest(self) -> str:
        self._trace.update("".join(self._trace_parts).encode())
        self._trace_parts.clear()
        return self._trace.hexdigest()

    def _run(self) -> None:
        for node in self.nodes:
            if node.born:
                self._start(node)
        for fault in self.plan.faults:
            self.schedule(fault.at_tick * TICK_UNITS, "fault", fault)  # now is 0: at that time
        heal_at = self.plan.fault_ticks * TICK_UNITS
        self.schedule(heal_at, "heal-all")
        self.schedule(TICK_UNITS, "tx")
        deadline = heal_at + (self.plan.liveness_bound_ticks + self.plan.calm_ticks) * TICK_UNITS
        for _ in range(MAX_EVENTS):
            if not self._events:
                raise SimViolation("liveness", "no events left")
            key, event = heapq.heappop(self._events)
            time = key >> SEQUENCE_BITS
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
        trace = self._trace_parts
        trace.append(f"{self.now}:{kind}:{event[1] if len(event) > 1 else ''};")
        if len(trace) >= TRACE_BATCH_EVENTS:  # one hash update per batch: the same digest
            self._trace.update("".join(trace).encode())
            trace.clear()
        if kind == "msg":
            node = self.nodes[event[1]]  # type: ignore[call-overload]
            host = node.host
            if host is None:
                return
            # The node's clock is the virtual time: its commits sign it (certified time).
            host.replica.clock(self.now)
            if node.incarnation == event[2]:
                msg: Message = event[3]  # type: ignore[assignment]
                if not self.accepts(node, event[4]):  # type: ignore[arg-type]
                    self.count("links.refused")  # not a key of its sets: unpinned
                    return
                self.on_incoming(node, msg)
                host.receive(msg, event[5])
        elif kind in ("tick", "execute", "propose", "fetch", "sync"):
            node = self.nodes[event[1]]  # type: ignore[call-overload]
            if node.host is None:
                return
            if kind != "sync":
                node.host.replica.clock(self.now)
            if node.incarnation != event[2]:
                return
            getattr(self, f"_on_{kind}")(node, node.host, *event[3:])
        elif kind == "fault":
            self._on_fault(event[1])
        elif kind == "heal-all":
            self._heal_all()
        elif kind == "tx":
            self.tx_arrivals[self._next_tx] = self.now
            if self.plan.gap_tx_every and self._next_tx % self.plan.gap_tx_every == 0:
                self.gap_txs.add(self._next_tx)
            self._next_tx += 1
            self.schedule(TICK_UNITS, "tx")

    # ------------------------------------------------------------------------------ nodes

    def _config(self, epoch: SimEpoch, my_index: int | None) -> ReplicaConfig:
        plan = self.plan
        keys = self._epoch_keys.get(epoch)
        if keys is None:
            keys = tuple(self.keys.public_keys[key] for key in epoch.key_indices)
            self._epoch_keys[epoch] = keys
        return ReplicaConfig(
            chain_id=CHAIN_ID,
            validators=keys,
            my_index=my_index,
            checkpoint_interval=plan.checkpoint_interval,
            watermark_window=plan.watermark_window,
            view_timeout_ticks=plan.view_timeout_ticks,
            max_view_timeout_ticks=plan.max_view_timeout_ticks,
            censorship_timeout_ticks=plan.censorship_timeout_ticks,
            retransmit_interval_ticks=plan.retransmit_interval_ticks,
            fetch_retry_ticks=plan.retransmit_interval_ticks * 2,
            epoch=epoch.number,
            first_height=epoch.start_height,
            leader_loss_ticks=plan.leader_loss_ticks,
            mutations=plan.mutations - SIM_MUTATIONS,
        )

    def _replica(
        self,
        node: Node,
        epoch: SimEpoch,
        persisted: PersistedState | None,
        certificate: CommitCertificate | None,
    ) -> Replica:
        """The node's replica of `epoch` (the host's ReplicaMaker): its index and key in
        that set, or a follower (no index) that keeps its last key."""
        index = epoch.index_of(node.identity)
        key = epoch.key_of(node.identity)
        if key is not None:
            node.key_index = key  # a rotated key signs from its epoch on
        if node.epoch.number != epoch.number:
            self.count("epochs.replicas_swapped")
        node.epoch = epoch
        store = node.store
        config = self._config(epoch, index)
        return Replica(
            config,
            SimApp(node),
            self.keys.signer(node.key_index),
            self.keys.verify,
            committed_height=store.head_height,
            committed_state_root=store.root_at(store.head_height),
            persisted=persisted,
            committed_certificate=certificate,
            checkpoint_state_root=store.last_checkpoint_root(config.checkpoint_interval),
        )

    def _start(self, node: Node) -> None:
        """Start (or restart) a node as the daemon does: replay the journal, then rebuild
        the replica from the store."""
        store = node.store
        for block in store.recover():
            self.count("journal_replayed")
            if node.honest:
                # A crash right after the durable write (before the delivery was reported)
                # leaves a decided block only in the journal: it is delivered now.
                self.checker.on_block(
                    node.identity, block.height, block.payload, block.certificate, "replayed"
                )
            node.committed(block, synced=False)
        epoch = node.schedule.epoch_for(store.head_height + 1)
        persisted = carry_over(store.persisted(), epoch)  # the driver's rule on start
        replica = self._replica(node, epoch, persisted, store.head_certificate())
        node.incarnation += 1
        node.host = Host(
            replica,
            store,
            node,
            background=self.plan.background_execution,
            make_replica=partial(self._replica, node),
            early_epoch=node.identity == self._early_identity,
        )
        node.host.follow_schedule()
        node.propose_scheduled = False
        node.sync_scheduled = False
        self.schedule(self.rng.randint(1, TICK_UNITS), "tick", node.index, node.incarnation)
        self.after(node)

    def crash(self, node: Node) -> None:
        """Lose everything of the node but its store (also called by its host's armed crash)."""
        host = node.host
        if host is None:
            return
        self.count("faults.crash")
        if host.cut_short:
            self.count("faults.crash_mid_actions")
        host.stop()
        node.host = None
        node.incarnation += 1

    def after(self, node: Node) -> None:
        """The node is idle: schedule a proposal when its replica may propose."""
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

    def nodes_of(self, identity: int) -> list[Node]:
        return self.by_identity.get(identity, [])

    def _on_tick(self, node: Node, host: Host) -> None:
        self.schedule(TICK_UNITS, "tick", node.index, node.incarnation)
        if (
            self.planned
            and not node.sync_scheduled
            and self.now // TICK_UNITS % SYNC_POLL_TICKS == 0
        ) and self.sync_sources(node, self.nodes):  # block sync: a linked peer is ahead
            node.sync_scheduled = True
            delay = self.rng.randint(*self.plan.fetch_delay_units)
            self.schedule(delay, "sync", node.index, node.incarnation)
        if host.waiting("tick"):
            self.count("ticks_coalesced")  # the driver's ticker waits for the one before
            return
        # Bound when the input runs, not now: by then the host may run the next epoch's.
        host.input(
            lambda: host.replica.tick(leader_reachable=self._leader_reachable(node, host.replica)),
            "tick",
        )
        host.input(lambda: self._after_tick(node, host.replica), "after-tick")

    def _on_sync(self, node: Node, host: Host) -> None:
        node.sync_scheduled = False
        self.count("sync_polls")
        self._on_fetch(node, host, tuple(self.sync_sources(node, self.nodes)))

    def _leader_reachable(self, node: Node, replica: Replica) -> bool:
        """What the node's p2p would report: a link to some live instance of the leader's
        identity (the leader's index in the replica's epoch), on this side of any partition."""
        identity = node.epoch.identity_at(replica.leader)
        for leader in self.by_identity.get(identity, []) if identity is not None else []:
            if (
                leader.host is not None
                and (self.healed or self.group[leader.index] == self.group[node.index])
                and self.linked(node, leader)
            ):
                return True
        return False

    def _after_tick(self, node: Node, replica: Replica) -> list[Action]:
        self.checker.on_log_sizes(node.identity, replica.log_sizes(), replica.log_bounds())
        if not self._suspects_censorship(node, replica):
            return []
        node.suspected_view = replica.view
        self.count("censorship_suspected")
        return replica.suspect_censorship()

    def _suspects_censorship(self, node: Node, replica: Replica) -> bool:
        """The node's rule (consensus.censorship_suspected, once per view): a tx a leader
        could propose waited longer than the censorship timeout while blocks that were not
        full kept committing, in a view that has run longer than the timeout."""
        if not node.honest or replica.view == node.suspected_view or node.executed_height < 2:
            return False
        while node.first_waiting_tx in node.tx_set or node.first_waiting_tx in self.gap_txs:
            node.first_waiting_tx += 1
        arrived = self.tx_arrivals.get(node.first_waiting_tx)
        if arrived is None:
            return False
        last_block_txs = node.tx_count_of(node.store.blocks[-1].payload)
        return censorship_suspected(
            oldest_proposable_wait=self.now - arrived,
            since_last_commit=self.now - node.last_commit_time,
            view_age=replica.normal_for_ticks * TICK_UNITS,
            timeout=self.plan.censorship_timeout_ticks * TICK_UNITS,
            last_block_full=last_block_txs >= MAX_TXS_PER_BLOCK // 2,
        )

    def _on_propose(self, node: Node, host: Host) -> None:
        host.input(lambda: self._propose(node, host.replica), "propose")

    def _propose(self, node: Node, replica: Replica) -> list[Action]:
        node.propose_scheduled = False
        if not replica.can_propose:
            return []
        height = replica.next_height
        txs = () if "censor" in node.behaviours else self._pending_txs(node)
        change = self.next_change(node, height)
        if change is not None:
            self.count(f"reconfig.proposed_{change.kind}")
        body = BlockBody(
            height, node.digest_at(height - 1), replica.view, node.identity, txs, change
        )
        payload = body.encode()
        self.checker.proposals.setdefault(sha256(payload), node.identity)
        self.proposal_time.setdefault(sha256(payload), self.now)
        self.count("proposals")
        return replica.propose(payload)

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

    def on_decided(self, node: Node, action: Deliver, stored: StoredBlock | None) -> None:
        """A node journaled a decided block (its host's durable write)."""
        if stored is not None:
            # Block sync stored this height first (a race the node resolves): same block.
            if stored.payload != action.payload:
                raise SimViolation(
                    "agreement",
                    f"node {node.index} decided another block at stored height {action.height}",
                )
            self.count("deliver_already_fetched")
            return
        if node.honest:
            self.checker.on_block(
                node.identity, action.height, action.payload, action.certificate, "delivered"
            )
        self.count("delivered")

    def _on_execute(self, node: Node, host: Host) -> None:
        host.resume()

    def _on_fetch(self, node: Node, host: Host, peers: tuple[int, ...]) -> None:
        """Block sync answers: blocks from the node's head on, from the first peer (an
        identity) that has any and serves them (checked here, committed by the host as the
        driver does). Only linked peers answer: a removed validator is unpinned."""
        self.count("fetches")
        from_height = node.executed_height + 1
        for peer in peers:
            for source in self.by_identity.get(peer, []):
                if source.host is None or self.group[source.index] != self.group[node.index]:
                    continue
                if not self.linked(node, source):
                    self.count("links.fetch_refused")
                    continue
                if SPLIT in source.behaviours:
                    self.count("byzantine.fetch_refused")
                    continue
                blocks = source.store.blocks[from_height - 1 : from_height - 1 + FETCH_BATCH]
                if blocks:
                    self._apply_fetched(node, host, from_height, blocks)
                    return

    def _apply_fetched(
        self, node: Node, host: Host, from_height: int, blocks: list[StoredBlock]
    ) -> None:
        """The node's block sync: each certificate is checked against the set of its own
        height's epoch, as the fetching node's chain defines it, block by block (the epochs
        the blocks before it schedule included), with that set's quorum."""
        schedule = node.schedule
        for offset, block in enumerate(blocks):
            height = from_height + offset
            epoch = schedule.epoch_for(height)
            try:
                verify_certificate(
                    block.certificate,
                    CHAIN_ID,
                    self._config(epoch, None).validators,
                    self.keys.verify,
                    quorum=quorum_size(epoch.n),
                )
            except CertificateError:
                self.count("fetch_rejected")
                return
            if block.certificate.height != height or block.certificate.digest != block.digest:
                self.count("fetch_rejected")
                return
            body = decode_body(block.payload)
            if body is not None and body.change is not None:
                schedule = schedule.after(height, body.change) or schedule
            if node.honest:
                self.checker.on_block(
                    node.identity, height, block.payload, block.certificate, "fetched"
                )
            self.count("fetched_blocks")
            host.apply_synced(height, block.payload, block.certificate)

    # ---------------------------------------------------------------------------- network

    def transmit(self, node: Node, action: Broadcast | Send) -> None:
        msg = action.msg
        if node.honest and msg.sender == node.sender_index:  # not a forwarded new view
            self.checker.on_signed(node.identity, msg)
            if isinstance(msg, ViewChange) and msg.new_view > self.max_view:
                self.count("views_changed", msg.new_view - self.max_view)
                self.max_view = msg.new_view
        self.checker.on_message_certificates(msg)
        data = encode_message(msg)
        decoded = decode_message(data)
        if decoded != msg:
            raise SimViolation("codec", f"{type(msg).__name__} does not survive encode/decode")
        if isinstance(action, Send):
            to = node.epoch.identity_at(action.to)
            targets: tuple[int, ...] = () if to is None else (to,)
        else:
            targets = self.broadcast_targets(node)
        for target, outgoing in self.outgoing(node, decoded, targets):
            for receiver in self.by_identity.get(target, []):
                self.send_to(node, receiver, outgoing)

    def _randint(self, low: int, high: int) -> int:
        return low + self._randbelow(high - low + 1)

    def send_to(self, sender: Node, receiver: Node, msg: Message) -> None:
        stats = self.stats
        stats["messages"] = stats.get("messages", 0) + 1  # count(), inlined: per message
        random = self.rng.random
        plan = self.plan
        if not self.healed:
            if self.group[sender.index] != self.group[receiver.index]:
                self.count("faults.partitioned")
                return
            if random() < plan.drop_rate:
                self.count("faults.drop")
                return
        copies = 1
        if random() < plan.duplicate_rate:
            self.count("faults.duplicate")
            copies = 2
        for _ in range(copies):
            delay = self._randint(1, 20)
            if random() < plan.slow_rate:
                self.count("faults.delay")
                delay += self._randint(20, 300)
            self.schedule(
                delay,
                "msg",
                receiver.index,
                receiver.incarnation,
                msg,
                sender.key_index,
                sender.identity,
            )

    # ----------------------------------------------------------------------------- faults

    def _on_fault(self, fault: object) -> None:
        if not isinstance(fault, FaultEvent):
            raise TypeError(f"not a fault event: {fault!r}")
        if self.healed:
            return
        if fault.kind == "partition":
            self.count("faults.partition")
            members = set(fault.targets)
            self.group = [1 if node.index in members else 0 for node in self.nodes]
        elif fault.kind == "heal":
            self.group = [0] * len(self.nodes)
        elif fault.kind == "crash":
            host = self.nodes[fault.targets[0]].host
            if host is not None:
                host.arm_crash(fault.cut)  # cut 0 crashes at once
        elif fault.kind == "restart":
            node = self.nodes[fault.targets[0]]
            if node.host is None and node.born:
                self.count("faults.restart")
                self._start(node)
        elif fault.kind == "join":
            node = self.nodes[fault.targets[0]]
            if not node.born:
                self.count("reconfig.nodes_joined")
                node.born = True
                self._start(node)
        elif fault.kind == "crash-all":
            self.count("faults.crash_all")
            for node in self.nodes:
                self.crash(node)
        elif fault.kind == "restart-all":
            self._restart_all()

    def _restart_all(self) -> None:
        for node in self.nodes:
            if node.host is None and node.born:
                self.count("faults.restart")
                self._start(node)

    def _heal_all(self) -> None:
        self.group = [0] * len(self.nodes)
        self.healed = True
        for node in self.nodes:
            if node.host is not None:
                node.host.disarm_crash()
        self._restart_all()
        self._heal_height = max(node.executed_height for node in self.nodes if node.honest)
        self._calm_until = self.now + self.plan.calm_ticks * TICK_UNITS

    def _live_after_heal(self) -> bool:
        """Every honest node the chain still needs (members.py must_stay_live) executed a
        block above the heal height."""
        checker = self.checker
        return all(
            node.executed_height > self._heal_height
            for node in self.nodes
            if node.honest and self.must_stay_live(node, checker.schedule, checker.max_height)
        )


def run_seed(seed: int, **plan_options: object) -> RunResult:
    plan = plan_for_seed(seed, **plan_options)  # type: ignore[arg-type]
    return World(plan).run()
