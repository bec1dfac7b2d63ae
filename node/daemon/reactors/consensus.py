"""The consensus reactor: carries encoded consensus messages between the driver and the
validators' links ("c" frames). Only validators' links may send them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from node.daemon.reactors.directory import ValidatorDirectory
from node.daemon.reactors.inlet import Inlet
from node.daemon.reactors.links import Sender

Receive = Callable[[bytes, bytes], Awaitable[None]]  # (encoded message, origin peer)
MAX_QUEUED_MESSAGES = 4096


class ConsensusReactor:
    def __init__(
        self,
        sender: Sender,
        *,
        directory: ValidatorDirectory,
        own_id: bytes,
        max_block_bytes: int,
        counters: Counter[str],
    ) -> None:
        self._sender = sender
        self._directory = directory
        self.own_id = own_id  # replaced when this validator's key rotates
        self._counters = counters
        # Two full proposals and their votes may wait per peer.
        self.inlet = Inlet(
            "c",
            max_items=MAX_QUEUED_MESSAGES,
            per_peer_bytes=2 * max_block_bytes + (1 << 20),
            counters=counters,
        )

    def offer(self, peer: bytes, msg: dict[str, Any]) -> None:
        raw = msg.get("m")
        if not isinstance(raw, bytes):
            self._counters["unknown_message"] += 1
        elif peer not in self._directory.accepted:
            self._counters["consensus_from_non_validator"] += 1
        else:
            self.inlet.offer(peer, raw, len(raw))

    def send(self, to: int, raw: bytes) -> None:
        peer = self._directory.key_of(to)
        if peer is not None:
            self._sender.send(peer, {"t": "c", "m": raw})

    def broadcast(self, raw: bytes) -> None:
        msg = {"t": "c", "m": raw}
        # To the next epoch's members too: at a boundary they may already need our votes'
        # certificates, and a replica ignores what is not for its epoch.
        for peer in sorted(self._directory.accepted):
            if peer != self.own_id:
                self._sender.send(peer, msg)

    async def run(
        self, receive: Receive, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hand each message to `receive`, one at a time, in arrival order."""
        task_status.started()
        async for peer, raw in self.inlet.items():
            await receive(raw, peer)
