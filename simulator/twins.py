"""Twins, enumerated rather than drawn (Bano et al., "Twins: BFT Systems Made Robust").

One validator identity runs twice: two honest replicas with one key and separate state, the
cheapest way to get every equivocation a byzantine node could produce. With n = 4 that is
f = 1, so safety must hold whatever the network does. A case is:

- which identity is twinned (n choices);
- for each of `rounds` rounds, the network's shape during it: whole, or one of the two-way
  partitions of the n + 1 instances (2**n - 1 of them, counted without mirror images).

The network heals after the last round; then every honest replica must commit a new block
within the plan's liveness bound (the world's liveness phase), so a case that wedges the
cluster fails as surely as one that forks it. Every other source of noise is switched off
(no drops, duplicates or slow links; one fixed block delay range), so the enumeration is of
partitions and placements, and case K always replays the same run (its seed is K).

    for plan in twins_plans(rounds=2): World(plan).run()
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from simulator.plan import TWIN, FaultEvent, RunPlan

TWINS_VALIDATORS = 4
VIEW_TIMEOUT_TICKS = 6
ROUND_TICKS = VIEW_TIMEOUT_TICKS + 2  # long enough for a view change inside one round
MAX_ROUNDS = 6  # (2**n)**rounds * n cases: 6 rounds of n = 4 is already 67 million


@dataclass(frozen=True)
class TwinsCase:
    index: int
    twin: int  # the identity that runs twice
    shapes: tuple[tuple[int, ...], ...]  # per round: the instances cut off, () = whole

    def describe(self) -> str:
        rounds = " ".join("whole" if not s else "cut" + ",".join(map(str, s)) for s in self.shapes)
        return f"twins case {self.index}: identity {self.twin} twinned; rounds {rounds}"


def two_way_partitions(instance_count: int) -> list[tuple[int, ...]]:
    """Every split of the instances into two non-empty sides, as the side without instance 0
    (so a split and its mirror image are counted once), in a fixed order."""
    if instance_count < 2 or instance_count > 16:
        raise ValueError(f"instance count {instance_count} outside 2..16")
    others = range(1, instance_count)
    result = []
    for mask in range(1, 1 << (instance_count - 1)):
        result.append(tuple(i for bit, i in enumerate(others) if mask >> bit & 1))
    return result


def case_count(*, rounds: int, n: int = TWINS_VALIDATORS) -> int:
    _check_rounds(rounds)
    shapes: int = 1 + len(two_way_partitions(n + 1))
    total: int = n * pow(shapes, rounds)
    return total


def twins_case(index: int, *, rounds: int, n: int = TWINS_VALIDATORS) -> TwinsCase:
    """Case `index` of the enumeration (mixed radix: twin identity, then one shape per round)."""
    total = case_count(rounds=rounds, n=n)
    if not 0 <= index < total:
        raise ValueError(f"case {index} outside 0..{total - 1}")
    shapes = [(), *two_way_partitions(n + 1)]
    twin, rest = index % n, index // n
    chosen = []
    for _ in range(rounds):
        chosen.append(shapes[rest % len(shapes)])
        rest //= len(shapes)
    return TwinsCase(index, twin, tuple(chosen))


def twins_plan(
    index: int, *, rounds: int, n: int = TWINS_VALIDATORS, mutations: frozenset[str] = frozenset()
) -> RunPlan:
    case = twins_case(index, rounds=rounds, n=n)
    faults = []
    for number, shape in enumerate(case.shapes):
        at_tick = 1 + number * ROUND_TICKS
        faults.append(
            FaultEvent(at_tick, "partition", shape) if shape else FaultEvent(at_tick, "heal")
        )
    return RunPlan(
        seed=index,
        n=n,
        byzantine={case.twin: frozenset({TWIN})},
        checkpoint_interval=2,
        watermark_window=4,
        view_timeout_ticks=VIEW_TIMEOUT_TICKS,
        max_view_timeout_ticks=VIEW_TIMEOUT_TICKS * 4,
        retransmit_interval_ticks=2,
        censorship_timeout_ticks=15,
        drop_rate=0.0,
        duplicate_rate=0.0,
        slow_rate=0.0,
        block_delay_units=(10, 60),
        exec_delay_units=(1, 5),
        fetch_delay_units=(5, 60),
        fault_ticks=1 + rounds * ROUND_TICKS,
        faults=tuple(faults),
        real_signatures=False,
        mutations=mutations,
    )


def twins_plans(
    *,
    rounds: int,
    n: int = TWINS_VALIDATORS,
    start: int = 0,
    count: int | None = None,
    mutations: frozenset[str] = frozenset(),
) -> Iterator[RunPlan]:
    total = case_count(rounds=rounds, n=n)
    stop = total if count is None else min(total, start + count)
    for index in range(start, stop):
        yield twins_plan(index, rounds=rounds, n=n, mutations=mutations)


def _check_rounds(rounds: int) -> None:
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds {rounds} outside 1..{MAX_ROUNDS}")
