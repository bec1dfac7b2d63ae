"""SeenSet and Batcher: bounded, exact, driven by explicit time."""

from __future__ import annotations

import pytest

from p2p.gossip import Batcher, SeenSet


def test_seen_set_reports_new_ids_once() -> None:
    seen = SeenSet(capacity=10)
    assert seen.add(b"a") is True
    assert seen.add(b"a") is False
    assert seen.add(b"b") is True
    assert b"a" in seen and b"b" in seen and b"c" not in seen
    assert len(seen) == 2


def test_seen_set_never_exceeds_capacity_and_forgets_the_oldest() -> None:
    seen = SeenSet(capacity=100)
    for i in range(1000):
        seen.add(i)
        assert len(seen) <= 100
    assert seen.evicted == 900
    assert 899 not in seen and 900 in seen and 999 in seen
    assert seen.add(0) is True  # forgotten, so new again


def test_seeing_an_id_again_keeps_it_from_eviction() -> None:
    seen = SeenSet(capacity=3)
    for message_id in ("a", "b", "c"):
        seen.add(message_id)
    assert seen.add("a") is False  # refresh "a": now "b" is the oldest
    seen.add("d")
    assert "a" in seen and "b" not in seen


def test_seen_set_discard_and_clear() -> None:
    seen = SeenSet(capacity=3)
    seen.add("a")
    seen.discard("a")
    seen.discard("never-there")
    assert seen.add("a") is True
    seen.clear()
    assert len(seen) == 0


def test_seen_set_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SeenSet(capacity=0)


def test_batcher_releases_a_batch_at_the_item_limit() -> None:
    batcher: Batcher[str] = Batcher(max_items=3, max_bytes=1000, max_delay_ms=50)
    assert batcher.add("a", 1, now_ms=0) is None
    assert batcher.add("b", 1, now_ms=1) is None
    assert batcher.add("c", 1, now_ms=2) == ["a", "b", "c"]
    assert len(batcher) == 0 and batcher.deadline_ms() is None


def test_batcher_never_lets_a_batch_exceed_the_byte_limit() -> None:
    batcher: Batcher[str] = Batcher(max_items=100, max_bytes=10, max_delay_ms=50)
    assert batcher.add("a", 6, now_ms=0) is None
    # "b" would make 12 bytes: the pending batch goes out and "b" starts the next one.
    assert batcher.add("b", 6, now_ms=1) == ["a"]
    assert batcher.pending_bytes == 6
    assert batcher.deadline_ms() == 51


def test_batcher_sends_an_oversized_item_alone() -> None:
    batcher: Batcher[str] = Batcher(max_items=100, max_bytes=10, max_delay_ms=50)
    assert batcher.add("small", 2, now_ms=0) is None
    assert batcher.add("huge", 50, now_ms=1) == ["small"]
    assert batcher.poll(now_ms=1) == ["huge"]  # already over the limit: due at once


def test_batcher_releases_on_time() -> None:
    batcher: Batcher[int] = Batcher(max_items=100, max_bytes=1000, max_delay_ms=20)
    batcher.add(1, 1, now_ms=100)
    batcher.add(2, 1, now_ms=110)
    assert batcher.deadline_ms() == 120  # counted from the oldest item
    assert batcher.poll(now_ms=119) is None
    assert batcher.poll(now_ms=120) == [1, 2]
    assert batcher.poll(now_ms=500) is None


def test_batcher_flush_takes_everything() -> None:
    batcher: Batcher[int] = Batcher(max_items=100, max_bytes=1000, max_delay_ms=20)
    assert batcher.flush() == []
    batcher.add(1, 1, now_ms=0)
    assert batcher.flush() == [1]


@pytest.mark.parametrize(
    "limits",
    [
        {"max_items": 0, "max_bytes": 1, "max_delay_ms": 0},
        {"max_items": 1, "max_bytes": 0, "max_delay_ms": 0},
        {"max_items": 1, "max_bytes": 1, "max_delay_ms": -1},
    ],
)
def test_batcher_limits_are_checked(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Batcher(**limits)
