"""The subscription hub without sockets: fan-out, bounded queues, drops, topic rules."""

from __future__ import annotations

import pytest
import trio

from node.rpc import InvalidParamsError, SubscriptionHub


def make_hub(capacity: int = 2, total: int = 10) -> SubscriptionHub:
    hub = SubscriptionHub(queue_capacity=capacity, max_subscriptions_total=total)
    hub.allow_topic("blocks")
    hub.allow_topic_prefix("tx:")
    return hub


def test_fan_out_and_drop_when_a_queue_is_full() -> None:
    hub = make_hub(capacity=2)
    first = hub.open("blocks", connection_id=1)
    second = hub.open("blocks", connection_id=2)
    assert hub.publish("blocks", 1) == 2
    assert first.receive.receive_nowait() == "1"  # first keeps up, second does not
    assert hub.publish("blocks", 2) == 2
    assert hub.publish("blocks", 3) == 1
    assert second.dropped_reason is not None and "fell behind" in second.dropped_reason
    assert first.is_open and not second.is_open
    assert hub.dropped_total == 1 and hub.open_count == 1
    # What the dropped subscriber had queued is still readable, then its queue ends.
    assert [second.receive.receive_nowait() for _ in range(2)] == ["1", "2"]
    with pytest.raises(trio.EndOfChannel):
        second.receive.receive_nowait()


def test_close_is_idempotent_and_counts() -> None:
    hub = make_hub()
    subscription = hub.open("tx:ab", connection_id=1)
    assert hub.subscriber_count("tx:ab") == 1
    hub.close(subscription)
    hub.close(subscription)
    assert subscription.unsubscribed and hub.open_count == 0
    assert hub.publish("tx:ab", "x") == 0


def test_publish_to_a_subscription_whose_reader_is_gone_does_not_raise() -> None:
    hub = make_hub()
    subscription = hub.open("blocks", connection_id=1)
    subscription.receive.close()  # its connection is tearing down
    assert hub.publish("blocks", "x") == 0
    assert hub.open_count == 0


def test_topic_rules_and_total_limit() -> None:
    hub = make_hub(total=2)
    with pytest.raises(InvalidParamsError, match="unknown topic 'tx:'"):
        hub.open("tx:", connection_id=1)
    with pytest.raises(InvalidParamsError, match=r"topics: blocks, tx:<\.\.\.>"):
        hub.open("block", connection_id=1)
    hub.open("blocks", connection_id=1)
    hub.open("tx:1", connection_id=1)
    with pytest.raises(InvalidParamsError, match="already serves 2 subscriptions"):
        hub.open("tx:2", connection_id=2)
    assert [s.topic for s in hub.iter_open()] == ["blocks", "tx:1"]


def test_ids_are_unique_and_increasing() -> None:
    hub = make_hub(total=100)
    ids = [hub.open("blocks", connection_id=n).id for n in range(50)]
    assert ids == sorted(set(ids))


def test_publish_without_subscribers_does_not_encode() -> None:
    hub = make_hub()
    assert hub.publish("blocks", object()) == 0  # nothing to encode for
    hub.open("blocks", connection_id=1)
    with pytest.raises(TypeError):
        hub.publish("blocks", object())


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        SubscriptionHub(queue_capacity=0, max_subscriptions_total=1)
    with pytest.raises(ValueError):
        SubscriptionHub(queue_capacity=1, max_subscriptions_total=0)
