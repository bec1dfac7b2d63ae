"""A run plan: everything about one simulated run, drawn from its seed.

Time is counted in units; one replica tick is TICK_UNITS units. Network latency is a few units,
so a healthy cluster commits a block within a tick or two.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from consensus import max_faulty
from simulator.epochs import ADD, PlannedChange, apply_change, draw_changes

TICK_UNITS = 100
# The share of the default ("mixed") runs that change the validator set (epochs.py); drawn
# from a stream of its own, so that the other runs are what they were before epochs.
RECONFIG_SHARE = 0.3
# A planted bug of the simulator itself (handled by the host, not by the Replica): one honest
# replica switches to the next validator set one height early.
MUTATION_EARLY_EPOCH = "early_epoch"
SIM_MUTATIONS = frozenset({MUTATION_EARLY_EPOCH})

# Behaviours a byzantine identity can have (at most f byzantine identities per run).
EQUIVOCATE = "equivocate"  # as leader, sends different pre-prepares to different replicas
WITHHOLD = "withhold"  # drops some kinds of its own votes
DOUBLE_VOTE = "double-vote"  # prepares and commits every proposal it sees, conflicting or not
TWIN = "twin"  # the identity runs twice (Twins), each copy with its own links and state
LYING_VIEW_CHANGE = "lying-view-change"  # its view changes hide what it prepared/committed
CENSOR = "censor"  # as leader, proposes blocks without the waiting transactions
CORRUPT = "corrupt"  # sometimes sends messages with broken signatures
# Votes for every proposal it sees, but never lets a fixed set of victims see its commits or
# commit notices: the victims stay prepared while others commit (a split brain to exploit).
SPLIT = "split"
BEHAVIOURS = (EQUIVOCATE, WITHHOLD, DOUBLE_VOTE, TWIN, LYING_VIEW_CHANGE, CENSOR, CORRUPT, SPLIT)


@dataclass(frozen=True)
class FaultEvent:
    at_tick: int
    # "partition", "heal", "crash", "restart", "crash-all", "restart-all", "join" (an added
    # identity's node starts, as a follower, when the vote to add it passes)
    kind: str
    targets: tuple[int, ...] = ()  # instance indices (crash) or group-1 instances (partition)
    cut: int = 0  # crash after carrying out this many actions of the next action list


@dataclass(frozen=True)
class RunPlan:
    seed: int
    n: int
    byzantine: dict[int, frozenset[str]]  # identity -> behaviours
    checkpoint_interval: int
    watermark_window: int
    view_timeout_ticks: int
    max_view_timeout_ticks: int
    retransmit_interval_ticks: int
    censorship_timeout_ticks: int
    drop_rate: float
    duplicate_rate: float
    slow_rate: float
    block_delay_units: tuple[int, int]
    exec_delay_units: tuple[int, int]
    fetch_delay_units: tuple[int, int]  # how long block sync takes to answer
    fault_ticks: int  # the network heals and every crashed node restarts at this tick
    faults: tuple[FaultEvent, ...]
    real_signatures: bool
    mutations: frozenset[str] = field(default_factory=frozenset)
    # False: a node takes no input while a block commits (node/daemon/driver.py holds its
    # lock). True: execution runs in the background and the replica keeps taking inputs until
    # executed() (allowed by the Replica's contract; more schedules to try).
    background_execution: bool = False
    liveness_slack_ticks: int = 60
    # Every k-th transaction has a nonce gap: no leader can propose it, so it must never be
    # taken for censorship (0: none).
    gap_tx_every: int = 0
    # Keep running this long after the heal even when every node committed (to watch for
    # view-change storms on a healthy network); 0 stops at the first commit after the heal.
    calm_ticks: int = 0
    # Membership changes in the order the chain may carry them (epochs.py), and how many keys
    # the keyring derives (added identities and rotated keys use keys n, n + 1, ...).
    changes: tuple[PlannedChange, ...] = ()
    key_count: int = 0
    # The replicas' leader_loss_ticks: the node tells its replica on every tick whether its
    # link to the leader is up (down: the leader crashed or sits across a partition).
    leader_loss_ticks: int = 5

    @property
    def f(self) -> int:
        """The most faulty validators any epoch of the run tolerates."""
        return max_faulty(max(self.n, *self.set_sizes()))

    def set_sizes(self) -> list[int]:
        """The size of every validator set the planned changes make, in order."""
        members = tuple((i, i) for i in range(self.n))
        sizes = [self.n]
        for planned in self.changes:
            members = apply_change(members, planned.change) or members
            sizes.append(len(members))
        return sizes

    @property
    def added(self) -> tuple[int, ...]:
        """The identities the changes add (each gets a node that joins as a follower)."""
        return tuple(p.change.identity for p in self.changes if p.change.kind == ADD)

    @property
    def liveness_bound_ticks(self) -> int:
        """After the heal, every honest node commits a new block within this many ticks."""
        return (self.f + 2) * self.max_view_timeout_ticks + self.liveness_slack_ticks

    def instances(self) -> list[tuple[int, int]]:
        """(identity, copy) of every simulated node: twins have copies 0 and 1."""
        result = [(identity, 0) for identity in range(self.n)]
        for identity in sorted(self.byzantine):
            if TWIN in self.byzantine[identity]:
                result.append((identity, 1))
        result += [(identity, 0) for identity in self.added]
        return result


def plan_for_seed(
    seed: int,
    *,
    validators: int | None = None,
    mutations: frozenset[str] = frozenset(),
    profile: str = "mixed",
    reconfig: bool | None = None,
) -> RunPlan:
    """Draw a run plan from `seed`. `profile` picks the fault mix (see PROFILES); `reconfig`
    says whether the validator set changes (None: for RECONFIG_SHARE of the "mixed" runs)."""
    rng = random.Random(seed)
    n = validators if validators is not None else rng.choice([4, 4, 4, 5, 6, 7, 7, 8, 10])
    f = max_faulty(n)
    tune = PROFILES[profile]
    if profile == "mixed" and rng.random() < 0.25:
        tune = PROFILES["adversarial"]  # a quarter of the default runs face the nastier mix
    byzantine: dict[int, frozenset[str]] = {}
    if f > 0 and rng.random() < tune.byzantine_chance:
        count = rng.randint(1, f)
        for identity in sorted(rng.sample(range(n), count)):
            kinds = tune.behaviours
            chosen = {rng.choice(kinds)}
            if rng.random() < 0.4:
                chosen.add(rng.choice(kinds))
            byzantine[identity] = frozenset(chosen)
    interval = rng.choice(tune.checkpoint_intervals)
    timeout = rng.choice([6, 8, 10])
    fault_ticks = rng.randint(*tune.fault_ticks)
    instance_count = n + sum(1 for b in byzantine.values() if TWIN in b)
    faults = _draw_faults(rng, tune, fault_ticks, instance_count)
    plan = RunPlan(
        seed=seed,
        n=n,
        byzantine=byzantine,
        checkpoint_interval=interval,
        watermark_window=interval * rng.choice([2, 3]),
        view_timeout_ticks=timeout,
        max_view_timeout_ticks=timeout * rng.choice([2, 4]),
        retransmit_interval_ticks=rng.choice([2, 3]),
        censorship_timeout_ticks=rng.choice([15, 25]),
        drop_rate=rng.choice(tune.drop_rates),
        duplicate_rate=rng.choice([0.0, 0.02, 0.1]),
        slow_rate=rng.choice([0.0, 0.05, 0.2]),
        block_delay_units=(10, rng.choice([60, 150])),
        exec_delay_units=(1, rng.choice([5, 40])),
        fetch_delay_units=rng.choice(tune.fetch_delay_units),
        fault_ticks=fault_ticks,
        faults=faults,
        real_signatures=seed % 50 == 7,
        mutations=mutations,
        gap_tx_every=rng.choice([0, 0, 3, 10]),
        background_execution=rng.random() < 0.5,  # drawn late: the draws above stay as they were
        leader_loss_ticks=rng.choice([2, 3, 5]),
    )
    if reconfig is None:
        share = random.Random(f"{seed}/reconfig-share").random()
        reconfig = profile == "mixed" and share < RECONFIG_SHARE
    return _with_changes(plan) if reconfig else plan


def _with_changes(plan: RunPlan) -> RunPlan:
    """The plan with membership changes, drawn from a stream of their own: a few adds,
    removes and rotations in the fault window, each added identity's node joining when its
    vote passes (and crashing sometimes while it catches up), and crashes near the changes."""
    rng = random.Random(f"{plan.seed}/reconfig")
    changes, key_count = draw_changes(rng, plan.n, sorted(plan.byzantine), plan.fault_ticks)
    with_changes = dataclasses.replace(plan, changes=changes, key_count=key_count)
    instances = with_changes.instances()
    first_added = len(instances) - len(with_changes.added)
    events = list(plan.faults)
    last = max(1, plan.fault_ticks - 5)
    for offset, planned in enumerate(p for p in changes if p.change.kind == ADD):
        target = first_added + offset
        events.append(FaultEvent(planned.at_tick, "join", (target,)))
        if rng.random() < 0.5:
            start = rng.randint(min(planned.at_tick + 1, last), last)
            events.append(FaultEvent(start, "crash", (target,), cut=rng.randint(0, 3)))
            events.append(
                FaultEvent(min(start + rng.randint(1, 30), plan.fault_ticks), "restart", (target,))
            )
    for planned in changes:
        if rng.random() < 0.5:  # a crash near the change: before, at or after its boundary
            start = min(planned.at_tick + rng.randint(0, 5), last)
            target = rng.randrange(first_added)
            events.append(FaultEvent(start, "crash", (target,), cut=rng.randint(0, 3)))
            events.append(
                FaultEvent(min(start + rng.randint(1, 30), plan.fault_ticks), "restart", (target,))
            )
    events.sort(key=lambda e: (e.at_tick, e.kind, e.targets))
    return dataclasses.replace(with_changes, faults=tuple(events))


def _draw_faults(
    rng: random.Random, tune: Profile, fault_ticks: int, instance_count: int
) -> tuple[FaultEvent, ...]:
    events: list[FaultEvent] = []
    for _ in range(rng.randint(0, tune.max_partitions)):
        start = rng.randint(1, max(1, fault_ticks - 5))
        length = rng.randint(*tune.partition_ticks)
        size = (
            rng.randint(1, instance_count - 1)
            if tune.isolate_one_in <= 0 or rng.randrange(tune.isolate_one_in)
            else 1
        )
        group = tuple(sorted(rng.sample(range(instance_count), size)))
        events.append(FaultEvent(start, "partition", group))
        events.append(FaultEvent(min(start + length, fault_ticks), "heal"))
    for _ in range(rng.randint(0, tune.max_crashes)):
        start = rng.randint(1, max(1, fault_ticks - 5))
        target = rng.randrange(instance_count)
        down = rng.randint(1, 50)
        events.append(FaultEvent(start, "crash", (target,), cut=rng.randint(0, 3)))
        events.append(FaultEvent(min(start + down, fault_ticks), "restart", (target,)))
    if rng.random() < tune.crash_all_chance:
        start = rng.randint(1, max(1, fault_ticks - 5))
        events.append(FaultEvent(start, "crash-all", cut=rng.randint(0, 3)))
        events.append(FaultEvent(min(start + rng.randint(1, 20), fault_ticks), "restart-all"))
    events.sort(key=lambda e: (e.at_tick, e.kind, e.targets))
    return tuple(events)


@dataclass(frozen=True)
class Profile:
    byzantine_chance: float
    behaviours: tuple[str, ...]
    checkpoint_intervals: tuple[int, ...]
    fault_ticks: tuple[int, int]
    drop_rates: tuple[float, ...]
    max_partitions: int
    max_crashes: int
    crash_all_chance: float
    isolate_one_in: int = 0  # when > 0, 1 in this many partitions cuts off a single node
    partition_ticks: tuple[int, int] = (3, 60)
    fetch_delay_units: tuple[tuple[int, int], ...] = ((5, 60), (5, 400))


PROFILES: dict[str, Profile] = {
    # The default: every fault kind, in moderate doses.
    "mixed": Profile(
        byzantine_chance=0.6,
        behaviours=BEHAVIOURS,
        checkpoint_intervals=(2, 3, 5),
        fault_ticks=(60, 160),
        drop_rates=(0.0, 0.02, 0.05, 0.1, 0.2),
        max_partitions=3,
        max_crashes=4,
        crash_all_chance=0.1,
    ),
    # A byzantine strategy aimed at the view change after garbage collection: split-brain
    # voters, lossy links, nodes cut off alone for short spells, a checkpoint at every
    # height or two. Safety must hold here too (scripts/simulate --profile adversarial).
    "adversarial": Profile(
        byzantine_chance=1.0,
        behaviours=(SPLIT, SPLIT, DOUBLE_VOTE, LYING_VIEW_CHANGE),
        checkpoint_intervals=(1, 2),
        fault_ticks=(60, 120),
        drop_rates=(0.05, 0.1, 0.2),
        max_partitions=30,
        max_crashes=1,
        crash_all_chance=0.0,
        isolate_one_in=1,
        partition_ticks=(3, 12),
        fetch_delay_units=((100, 1000),),
    ),
}
