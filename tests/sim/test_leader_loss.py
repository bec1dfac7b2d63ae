"""A lost link to the leader starts the view change early (ReplicaConfig.leader_loss_ticks),
and the shortcut never drives a storm of view changes.

The node tells its replica on every tick whether its link to the leader is up; the
simulator reports it down while the leader is crashed or across a partition. Two sides:
links to the leader that flap (down for less than leader_loss_ticks at a time, again and
again) start no view change at all, and a leader that dies is replaced well within the
view timeout."""

from __future__ import annotations

import dataclasses

from simulator.plan import TICK_UNITS, FaultEvent, RunPlan, plan_for_seed
from simulator.world import World

LOSS_TICKS = 3
VIEW_TIMEOUT_TICKS = 10


def quiet_plan(seed: int, n: int, faults: tuple[FaultEvent, ...], fault_ticks: int) -> RunPlan:
    plan = plan_for_seed(seed, validators=n)
    return dataclasses.replace(
        plan,
        byzantine={},
        faults=faults,
        fault_ticks=fault_ticks,
        drop_rate=0.0,
        duplicate_rate=0.0,
        slow_rate=0.0,
        gap_tx_every=0,
        view_timeout_ticks=VIEW_TIMEOUT_TICKS,
        max_view_timeout_ticks=VIEW_TIMEOUT_TICKS * 4,
        leader_loss_ticks=LOSS_TICKS,
        calm_ticks=100,
    )


def flaps(leader: int, start: int, end: int, down: int, up: int) -> tuple[FaultEvent, ...]:
    """The leader cut off from everyone for `down` ticks, then back for `up`, repeatedly."""
    events: list[FaultEvent] = []
    tick = start
    while tick + down < end:
        events.append(FaultEvent(tick, "partition", (leader,)))
        events.append(FaultEvent(tick + down, "heal"))
        tick += down + up
    return tuple(events)


def leader_lost(world: World) -> int:
    """View changes the shortcut started, over every replica."""
    return sum(
        int(node.replica.status()["counters"].get("view_changes.leader_lost", 0))  # type: ignore[union-attr, attr-defined]
        for node in world.nodes
        if node.replica is not None
    )


def run(plan: RunPlan) -> tuple[World, dict[str, int]]:
    world = World(plan)
    result = world.run()
    assert result.ok, f"seed {plan.seed}: {result.violation}"
    return world, result.stats


def test_flapping_links_to_the_leader_start_no_view_change() -> None:
    """Down for one tick at a time, again and again (no replica sees leader_loss_ticks of
    it in a row): the shortcut starts nothing, and the views move no more than without it."""
    for seed, n in ((1, 4), (2, 4), (3, 7), (4, 5)):
        faults = flaps(0, 5, 300, down=1, up=3)
        plan = quiet_plan(seed, n, faults, fault_ticks=300)
        world, stats = run(plan)
        _, without = run(dataclasses.replace(plan, leader_loss_ticks=10**6))
        assert stats.get("faults.partition", 0) >= 60, stats
        assert leader_lost(world) == 0, (seed, stats)
        assert stats.get("views_changed", 0) <= without.get("views_changed", 0), (seed, stats)
        assert stats.get("blocks", 0) > 100, (seed, stats)


def test_links_down_longer_move_the_view_at_most_once_per_spell() -> None:
    """Spells longer than leader_loss_ticks: each may cost one view change, never more."""
    for seed, n in ((5, 4), (6, 7)):
        faults = flaps(0, 5, 300, down=LOSS_TICKS + 2, up=6)
        spells = len(faults) // 2
        world, stats = run(quiet_plan(seed, n, faults, fault_ticks=300))
        assert 1 <= stats.get("views_changed", 0) <= spells, (seed, spells, stats)
        assert leader_lost(world) >= 1, (seed, stats)


def test_a_crashed_leader_is_replaced_within_the_shortcut() -> None:
    crash_tick = 20
    for seed, n in ((7, 4), (8, 4), (9, 7)):
        faults = (FaultEvent(crash_tick, "crash", (0,)),)
        world, _ = run(quiet_plan(seed, n, faults, fault_ticks=80))
        crashed_at = crash_tick * TICK_UNITS
        takeover = min(
            when
            for digest, when in world.proposal_time.items()
            if when > crashed_at and world.checker.proposals.get(digest) == 1
        )
        # The leader-loss timeout plus a few ticks of view change, not the view timeout.
        assert takeover - crashed_at < (LOSS_TICKS + 3) * TICK_UNITS, (seed, takeover)
        assert takeover - crashed_at < VIEW_TIMEOUT_TICKS * TICK_UNITS
