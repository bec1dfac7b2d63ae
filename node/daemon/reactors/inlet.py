"""A reactor's way in: a bounded channel whose items are also bounded in bytes per peer.

The router offers every incoming message to its reactor's inlet without waiting: when the
channel is full, or the peer's share of the bytes waiting is used up, the message is dropped
and counted. A peer's 16 MiB frames therefore cannot pile up in memory (4096 queued frames
would be 64 GiB), and one flooding peer cannot crowd out the others' bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import trio


class Inlet:
    def __init__(
        self, kind: str, *, max_items: int, per_peer_bytes: int, counters: Counter[str]
    ) -> None:
        if max_items < 1 or per_peer_bytes < 1:
            raise ValueError("an inlet needs room for at least one item and one byte")
        self.kind = kind
        self.per_peer_bytes = per_peer_bytes
        self._send, self._receive = trio.open_memory_channel[tuple[bytes, Any, int]](max_items)
        self._held: Counter[bytes] = Counter()
        self._counters = counters

    def offer(self, peer: bytes, item: Any, size: int) -> bool:
        """Queue `item` (of `size` bytes) from `peer`; False, counted, when there is no room."""
        if self._held[peer] + size > self.per_peer_bytes:
            self._counters[f"dropped_{self.kind}_bytes"] += 1
            return False
        try:
            self._send.send_nowait((peer, item, size))
        except trio.WouldBlock:
            self._counters[f"dropped_{self.kind}_backlog"] += 1
            return False
        self._held[peer] += size
        return True

    async def items(self) -> AsyncIterator[tuple[bytes, Any]]:
        """(peer, item) in arrival order, forever; each item's bytes are released as taken."""
        async for peer, item, size in self._receive:
            self._held[peer] -= size
            if self._held[peer] <= 0:
                del self._held[peer]
            yield peer, item

    def statistics(self) -> dict[str, int]:
        stats = self._send.statistics()
        return {
            "queued": stats.current_buffer_used,
            "max_items": stats.max_buffer_size,  # type: ignore[dict-item]
            "bytes": sum(self._held.values()),
        }
