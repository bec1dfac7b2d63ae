"""Gossip primitives: a bounded seen-set for de-duplication and a sans-I/O batcher.

Both are plain objects without I/O or clocks (time is passed in), so the daemon can use
them from any task and tests can drive them exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")


class SeenSet:
    """The `capacity` most recently seen message ids; older ones are forgotten (LRU).

    Forgetting is what keeps memory bounded; the cost is that a message seen long ago can be
    accepted again, so handlers must stay idempotent (a known tx or block is refused
    further down anyway).
    """

    __slots__ = ("_ids", "capacity", "evicted")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self.evicted = 0

    def add(self, message_id: Hashable) -> bool:
        """Record message_id; True if it was not already in the set (i.e. act on it)."""
        if message_id in self._ids:
            # Seen again: it is still circulating, so keep remembering it.
            self._ids.move_to_end(message_id)
            return False
        self._ids[message_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
            self.evicted += 1
        return True

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def discard(self, message_id: Hashable) -> None:
        self._ids.pop(message_id, None)

    def clear(self) -> None:
        self._ids.clear()


class Batcher(Generic[ItemT]):
    """Collects items into batches bounded by count, by bytes, and by waiting time.

    Sans-I/O: the caller passes the current time (any monotonic milliseconds) and sends
    what comes back. `add` returns a batch when the new item fills one; `poll` returns the
    pending batch once its oldest item has waited max_delay_ms; `deadline_ms` says when to
    poll next. An item bigger than max_bytes on its own still travels, alone.
    """

    __slots__ = (
        "_bytes",
        "_first_added_ms",
        "_items",
        "max_bytes",
        "max_delay_ms",
        "max_items",
    )

    def __init__(self, *, max_items: int, max_bytes: int, max_delay_ms: int) -> None:
        if max_items < 1 or max_bytes < 1 or max_delay_ms < 0:
            raise ValueError("max_items and max_bytes must be >= 1, max_delay_ms >= 0")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_delay_ms = max_delay_ms
        self._items: list[ItemT] = []
        self._bytes = 0
        self._first_added_ms = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add(self, item: ItemT, size_bytes: int, now_ms: int) -> list[ItemT] | None:
        """Queue item; returns a full batch to send now, or None.

        If the item would push the pending batch over max_bytes, the pending batch is
        returned and the item starts the next one, so no batch exceeds max_bytes unless
        one item alone does.
        """
        if size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        ready: list[ItemT] | None = None
        if self._items and self._bytes + size_bytes > self.max_bytes:
            ready = self.flush()
        if not self._items:
            self._first_added_ms = now_ms
        self._items.append(item)
        self._bytes += size_bytes
        if ready is None and (len(self._items) >= self.max_items or self._bytes >= self.max_bytes):
            ready = self.flush()
        # When both happen (a flush for bytes, then the new item alone fills a batch),
        # the new batch waits for the next add or poll, which sees it over its limit.
        return ready

    def deadline_ms(self) -> int | None:
        """When the pending batch must go out (None when nothing is pending)."""
        if not self._items:
            return None
        return self._first_added_ms + self.max_delay_ms

    def poll(self, now_ms: int) -> list[ItemT] | None:
        """The pending batch if it is due (by time or size), else None."""
        if not self._items:
            return None
        due = now_ms >= self._first_added_ms + self.max_delay_ms
        full = len(self._items) >= self.max_items or self._bytes >= self.max_bytes
        return self.flush() if due or full else None

    def flush(self) -> list[ItemT]:
        """Take whatever is pending (possibly an empty list)."""
        items, self._items, self._bytes = self._items, [], 0
        return items
