"""Twins enumerated for n = 4 (simulator/twins.py): the enumeration is what it claims to be,
every one-round case and a stride of the two-round cases keep safety and liveness, and the
enumeration finds planted bugs that an equivocating identity can exploit. The whole
enumeration runs from scripts/ (`scripts/simulate --twins 3`: 16,384 cases)."""

from __future__ import annotations

import pytest

from consensus.config import MUTATION_ACCEPT_SECOND_PRE_PREPARE, MUTATION_NEW_VIEW_SKIPS_PREPARED
from simulator.plan import TWIN
from simulator.twins import case_count, twins_case, twins_plan, twins_plans, two_way_partitions
from simulator.world import World


def test_two_way_partitions_are_every_split_once() -> None:
    splits = two_way_partitions(5)
    assert len(splits) == 2**4 - 1
    seen = set()
    for side in splits:
        other = tuple(i for i in range(5) if i not in side)
        assert side and other and 0 in other
        assert frozenset(side) not in seen and frozenset(other) not in seen
        seen.add(frozenset(side))


def test_cases_are_distinct_and_cover_every_placement() -> None:
    assert case_count(rounds=2) == 4 * 16**2
    cases = {(c.twin, c.shapes) for c in map(lambda k: twins_case(k, rounds=2), range(1024))}
    assert len(cases) == 1024
    assert {twin for twin, _ in cases} == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        twins_case(1024, rounds=2)


def test_a_plan_twins_one_identity_and_nothing_else_is_random() -> None:
    plan = twins_plan(77, rounds=2)
    assert list(plan.byzantine.values()) == [frozenset({TWIN})]
    assert (plan.drop_rate, plan.duplicate_rate, plan.slow_rate) == (0.0, 0.0, 0.0)
    assert len(plan.instances()) == 5
    assert World(twins_plan(77, rounds=2)).run().trace_hash == World(plan).run().trace_hash


def test_every_one_round_case_is_safe_and_live() -> None:
    failures = [
        (p.seed, r.violation) for p in twins_plans(rounds=1) if not (r := World(p).run()).ok
    ]
    assert failures == []


def test_a_stride_of_two_round_cases_is_safe_and_live() -> None:
    indices = range(0, case_count(rounds=2), 7)
    failures = []
    for index in indices:
        result = World(twins_plan(index, rounds=2)).run()
        if not result.ok:
            failures.append((index, result.violation))
    assert failures == []


@pytest.mark.parametrize(
    "mutation", [MUTATION_ACCEPT_SECOND_PRE_PREPARE, MUTATION_NEW_VIEW_SKIPS_PREPARED]
)
def test_the_enumeration_finds_an_equivocation_bug(mutation: str) -> None:
    for plan in twins_plans(rounds=2, mutations=frozenset({mutation})):
        result = World(plan).run()
        if not result.ok:
            print(f"{mutation}: {twins_case(plan.seed, rounds=2).describe()}: {result.violation}")
            return
    pytest.fail(f"{mutation} survived all {case_count(rounds=2)} two-round Twins cases")
