"""Publish/subscribe fan-out from the daemon to RPC connections.

The daemon calls `hub.publish(topic, payload)` from the trio thread; it never blocks. Each
subscription has a bounded queue of already-encoded payloads. A subscriber whose queue is
full is dropped: its queue is closed, what it already holds is still delivered, then a final
notification with an "error" member tells the client it missed data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import trio

from node.rpc.errors import InvalidParamsError
from node.rpc.protocol import dump_json

MAX_TOPIC_CHARS: Final = 256


@dataclass(eq=False)
class Subscription:
    """One connection's interest in one topic. Created by `CallContext.subscribe`."""

    id: int
    topic: str
    connection_id: int
    _send: trio.MemorySendChannel[str] = field(repr=False)
    receive: trio.MemoryReceiveChannel[str] = field(repr=False)
    # Set once the response that told the client this id has been written, so that no
    # notification can reach the client before the client knows the subscription id.
    activated: trio.Event = field(default_factory=trio.Event, repr=False)
    dropped_reason: str | None = None
    unsubscribed: bool = False

    @property
    def is_open(self) -> bool:
        return self.dropped_reason is None and not self.unsubscribed


class SubscriptionHub:
    """Topic registry and fan-out. Topics are exact strings; the daemon declares which
    topics (or topic prefixes such as "tx:") clients may subscribe to."""

    def __init__(self, *, queue_capacity: int, max_subscriptions_total: int) -> None:
        if queue_capacity < 1:
            raise ValueError(f"subscriber queue capacity must be positive, got {queue_capacity}")
        if max_subscriptions_total < 1:
            raise ValueError(f"max_subscriptions_total must be positive: {max_subscriptions_total}")
        self._queue_capacity = queue_capacity
        self._max_total = max_subscriptions_total
        self._topics: set[str] = set()
        self._topic_prefixes: set[str] = set()
        self._by_topic: dict[str, dict[int, Subscription]] = {}
        self._next_id = 1
        self._open_count = 0
        self.dropped_total = 0
        self.published_total = 0
        self.delivered_total = 0

    @property
    def queue_capacity(self) -> int:
        return self._queue_capacity

    @property
    def open_count(self) -> int:
        return self._open_count

    def allow_topic(self, topic: str) -> None:
        """Let clients subscribe to exactly `topic` (e.g. "blocks")."""
        self._check_topic_text(topic)
        self._topics.add(topic)

    def allow_topic_prefix(self, prefix: str) -> None:
        """Let clients subscribe to any topic starting with `prefix` (e.g. "tx:")."""
        self._check_topic_text(prefix)
        self._topic_prefixes.add(prefix)

    def _check_topic_text(self, topic: str) -> None:
        if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_CHARS:
            raise ValueError(f"a topic must be a non-empty str of at most {MAX_TOPIC_CHARS} chars")

    def is_allowed(self, topic: str) -> bool:
        if topic in self._topics:
            return True
        return any(
            topic.startswith(prefix) and len(topic) > len(prefix) for prefix in self._topic_prefixes
        )

    def describe_topics(self) -> str:
        shown = sorted(self._topics) + sorted(f"{p}<...>" for p in self._topic_prefixes)
        return ", ".join(shown) if shown else "none"

    def subscriber_count(self, topic: str) -> int:
        return len(self._by_topic.get(topic, ()))

    def open(self, topic: str, connection_id: int) -> Subscription:
        """Register a subscription (the server calls this for `CallContext.subscribe`)."""
        if not self.is_allowed(topic):
            raise InvalidParamsError(
                f"unknown topic {topic[:80]!r}; topics: {self.describe_topics()}"
            )
        if self._open_count >= self._max_total:
            raise InvalidParamsError(
                f"the node already serves {self._open_count} subscriptions (its limit); "
                "close some or retry later"
            )
        send, receive = trio.open_memory_channel[str](self._queue_capacity)
        subscription = Subscription(self._next_id, topic, connection_id, send, receive)
        self._next_id += 1
        self._by_topic.setdefault(topic, {})[subscription.id] = subscription
        self._open_count += 1
        return subscription

    def close(self, subscription: Subscription) -> None:
        """Unsubscribe: nothing more is queued; the forwarder discards what is left."""
        subscription.unsubscribed = True
        self._remove(subscription)

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._by_topic.get(subscription.topic)
        if subscribers is None or subscribers.pop(subscription.id, None) is None:
            return
        if not subscribers:
            del self._by_topic[subscription.topic]
        self._open_count -= 1
        subscription._send.close()

    def _drop(self, subscription: Subscription) -> None:
        subscription.dropped_reason = (
            f"subscriber fell behind: {self._queue_capacity} notifications were queued and "
            f"unread; subscribe again and reconcile from the current state"
        )
        self.dropped_total += 1
        self._remove(subscription)

    def publish(self, topic: str, payload: object) -> int:
        """Queue `payload` for every subscriber of `topic`; returns how many got it.

        Never blocks. The payload is JSON-encoded once (TypeError/ValueError if it cannot
        be); with no subscriber it is not encoded at all.
        """
        subscribers = self._by_topic.get(topic)
        self.published_total += 1
        if not subscribers:
            return 0
        encoded = dump_json(payload)
        delivered = 0
        for subscription in list(subscribers.values()):  # id order: dicts keep insertion order
            try:
                subscription._send.send_nowait(encoded)
            except trio.WouldBlock:
                self._drop(subscription)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Its connection is closing: the forwarder is gone, cleanup is under way.
                self._remove(subscription)
            else:
                delivered += 1
        self.delivered_total += delivered
        return delivered

    def iter_open(self) -> Iterator[Subscription]:
        for topic in sorted(self._by_topic):
            yield from self._by_topic[topic].values()
