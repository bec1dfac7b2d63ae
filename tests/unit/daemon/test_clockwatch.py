"""A node whose clock is off judges proposals by the chain's time; an honest-clock node
never does, so a skewed proposer is refused by both and cannot walk the chain's time."""

from __future__ import annotations

import pytest

from node.daemon.clockwatch import ClockWatch, TimestampRefused

DRIFT = 10_000


def watch(now: list[int]) -> ClockWatch:
    return ClockWatch(lambda: now[0], lambda: DRIFT)


def test_an_honest_clock_refuses_a_skewed_proposer_and_never_corrects() -> None:
    now = [1_000_000]
    w = watch(now)
    for _ in range(10):
        now[0] += 1000
        w.committed(now[0] - 50)  # blocks of honest proposers, 50 ms old at commit
    assert w.offset_ms == 50 and not w.own_clock_is_off()
    w.check(now[0] + 2000)  # within the bound
    with pytest.raises(TimestampRefused):
        w.check(now[0] + 180_000)  # three minutes fast
    assert w.corrected_checks == 0


def test_a_fast_clock_learns_its_offset_and_accepts_honest_blocks() -> None:
    now = [10_000_000]
    w = watch(now)
    skew = 180_000  # this node runs three minutes fast
    with pytest.raises(TimestampRefused):
        w.check(now[0] - skew)  # before any sample: its own clock is all it has
    for _ in range(5):
        now[0] += 1000
        w.committed(now[0] - skew - 30)  # the chain's blocks, certified by the others
    assert w.own_clock_is_off() and abs((w.offset_ms or 0) - skew) < 100
    w.check(now[0] - skew + 500)  # an honest proposer's block: accepted
    assert w.corrected_checks == 1
    with pytest.raises(TimestampRefused):
        w.check(now[0])  # a proposer as fast as we are: refused against the chain's time


def test_peers_clocks_tell_a_restarted_node_its_clock_is_off_before_any_commit() -> None:
    now = [50_000_000]
    w = watch(now)
    skew = -180_000  # three minutes slow
    for peer, their_skew in ((b"a", 0), (b"b", 0), (b"c", 180_000)):  # c is fast
        w.peer_reading(peer, now[0] - skew + their_skew)
    assert w.own_clock_is_off() and abs((w.offset_ms or 0) - skew) <= 1
    w.check(now[0] - skew)  # an honest proposer's block, before any commit
    honest = watch(now)
    honest.peer_reading(b"a", now[0])
    honest.peer_reading(b"b", now[0] + 180_000)  # one fast peer does not move the median
    assert honest.offset_ms == 0 and not honest.own_clock_is_off()
