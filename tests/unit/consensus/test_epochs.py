"""The host's epoch rule (consensus/epochs.py), shared by the driver and the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from consensus_testkit import make_harness

from consensus.epochs import EpochStep, carry_over, follow_schedule


@dataclass(frozen=True)
class E:
    number: int
    start_height: int


def test_nothing_while_no_change_is_scheduled() -> None:
    assert follow_schedule(0, None, E(0, 1), E(0, 1)) == EpochStep(swap=False, end_at=None)


def test_a_change_scheduled_at_h_plus_2_ends_the_epoch_at_h_plus_1() -> None:
    # Block 7 executed: it scheduled epoch 1 from height 9.
    assert follow_schedule(0, None, E(0, 1), E(1, 9)) == EpochStep(swap=False, end_at=8)
    # Told already: nothing more.
    assert follow_schedule(0, 8, E(0, 1), E(1, 9)) == EpochStep(swap=False, end_at=None)


def test_the_last_height_executed_swaps_the_replica() -> None:
    assert follow_schedule(0, 8, E(1, 9), E(1, 9)) == EpochStep(swap=True, end_at=None)


def test_a_restart_between_two_changes_swaps_and_ends_at_once() -> None:
    # Stopped with epoch 0's state; the chain is past epoch 1's start and schedules epoch 2.
    assert follow_schedule(0, None, E(1, 9), E(2, 11)) == EpochStep(swap=True, end_at=10)
    # An old replica that knew its end: the new one has not been told its own.
    assert follow_schedule(0, 8, E(1, 9), E(2, 11)) == EpochStep(swap=True, end_at=10)


def test_carry_over_keeps_the_view_and_guard_only_across_epochs() -> None:
    h = make_harness(n=4, me=1)
    h.feed(h.pre_prepare(0, 1, b"a"))
    state = h.replica.persisted_state()
    assert carry_over(None, E(1, 3)) is None
    assert carry_over(state, E(0, 1)) is state
    carried = carry_over(state, E(1, 3))
    assert carried == state.for_next_epoch(1, 3)
    assert carried is not None and carried.epoch == 1 and carried.view_floor_height == 3
