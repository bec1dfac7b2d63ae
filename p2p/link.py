"""One authenticated link to a peer: a bounded send queue, a reader task and a writer task.

The reader feeds the manager's shared inbox; when the inbox is full the reader waits, stops
reading the socket, and TCP flow control slows that one peer down (backpressure, not
memory growth). The writer drains the link's own bounded queue and coalesces several
queued frames into one socket write. Each side reports why it stopped; the first reason
closes the link. The link never closes the stream itself: the task that opened the stream
owns it and closes it, so there is exactly one place that does.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from p2p.framing import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameError, encode_frame

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
KIND_HELLO = "hello"
KIND_PING = "ping"
RESERVED_KINDS = frozenset({KIND_HELLO, KIND_PING})
PING_FRAME = encode_frame({"t": KIND_PING})


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """Per-link bounds; every field is a hard limit, see docs/P2P.md."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    send_queue_frames: int = 1024
    send_queue_bytes: int = 64 * 1024 * 1024
    write_batch_bytes: int = 256 * 1024
    read_chunk_bytes: int = 256 * 1024
    ping_interval_ms: int = 2_000
    idle_timeout_ms: int = 10_000
    send_stall_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "send_queue_frames",
            "send_queue_bytes",
            "write_batch_bytes",
            "read_chunk_bytes",
            "ping_interval_ms",
            "idle_timeout_ms",
            "send_stall_timeout_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.idle_timeout_ms <= self.ping_interval_ms:
            # Otherwise a healthy but quiet peer would be dropped between two pings.
            raise ValueError("idle_timeout_ms must be greater than ping_interval_ms")


@dataclass(slots=True)
class PeerTraffic:
    """Counters for one peer, kept across its successive links."""

    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    socket_writes: int = 0
    pings_out: int = 0
    queue_full_drops: int = 0
    no_link_drops: int = 0
    unsent_on_close: int = 0
    links_established: int = 0
    last_close_reason: str = ""


class BadMessage(Exception):
    """A well-formed frame that is not a message of ours (no kind, or a reserved kind)."""


class Link:
    """A live, authenticated connection. Created after the hello exchange succeeded."""

    def __init__(
        self,
        *,
        peer: bytes,
        dialer: bytes,
        direction: str,
        address: str,
        stream: trio.abc.Stream,
        decoder: FrameDecoder,
        early_frames: list[Any],
        limits: LinkLimits,
        inbox: trio.MemorySendChannel[tuple[bytes, dict[str, Any]]],
        traffic: PeerTraffic,
        counters: Counter[str],
    ) -> None:
        self.peer = peer
        self.dialer = dialer  # node id of the side that opened the TCP connection
        self.direction = direction
        self.address = address
        self.established_at = trio.current_time()
        self._stream = stream
        self._decoder = decoder
        self._early_frames = early_frames
        self._limits = limits
        self._inbox = inbox
        self._traffic = traffic
        self._counters = counters
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._has_frames = trio.Event()
        self._has_space = trio.Event()
        self._cancel_scope = trio.CancelScope()
        self.close_reason = ""
        self.closed = False

    # --- the send queue (called by the manager, from any task) ---------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def _has_room_for(self, frame_bytes: int) -> bool:
        if len(self._queue) >= self._limits.send_queue_frames:
            return False
        # An empty queue always takes one frame, so a frame up to the frame limit can
        # travel even when send_queue_bytes is configured smaller than it.
        return not self._queue or self._queued_bytes + frame_bytes <= self._limits.send_queue_bytes

    def enqueue(self, frame: bytes) -> bool:
        """Queue one encoded frame; False when the link is closed or its queue is full."""
        if self.closed or not self._has_room_for(len(frame)):
            return False
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._has_frames.set()
        return True

    async def enqueue_waiting(self, frame: bytes) -> bool:
        """Queue a frame, waiting for room; False if the link closes first.

        Always a trio checkpoint (cancellable, schedules), like trio's own channel send.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.enqueue(frame):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return True
        while not self.closed:  # each pass waits for the writer to free room or the close
            if self._has_space.is_set():
                self._has_space = trio.Event()
            await self._has_space.wait()
            if self.enqueue(frame):
                return True
        return False

    def take_queue_from(self, older: Link) -> None:
        """Move a replaced link's unsent frames to this (not yet running) link, in order."""
        while older._queue and self._has_room_for(len(older._queue[0])):
            frame = older._queue.popleft()
            older._queued_bytes -= len(frame)
            self.enqueue(frame)

    def close(self, reason: str) -> None:
        """Stop both tasks; the first reason given is the one recorded."""
        if not self.close_reason:
            self.close_reason = reason
        self._cancel_scope.cancel()

    # --- the two tasks -------------------------------------------------------------------

    async def run(self) -> str:
        """Run reader and writer until one stops or close() is called; returns the reason."""
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._run_side, self._read_loop)
                    nursery.start_soon(self._run_side, self._write_loop)
        finally:
            self.closed = True
            self._traffic.unsent_on_close += len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            # Wake anyone blocked in enqueue_waiting so that they see the close.
            self._has_space.set()
            self._has_frames.set()
        return self.close_reason or "cancelled"

    async def _run_side(self, loop: Callable[[], Awaitable[str]]) -> None:
        reason: str
        try:
            reason = await loop()
        except FrameError as exc:
            reason = "frame_too_large" if exc.reason == "too_large" else "bad_frame"
            self._counters[reason] += 1
            log.info("peer %s sent a bad frame: %s", self.peer.hex()[:16], exc)
        except BadMessage as exc:
            reason = "bad_frame"
            self._counters[reason] += 1
            log.info("peer %s sent a bad message: %s", self.peer.hex()[:16], exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            reason = "connection_lost"
        except Exception:
            # A bug in this module must not let one peer take the node down; record it
            # loudly and drop just this link.
            log.exception("internal error on link to %s", self.peer.hex()[:16])
            reason = "internal_error"
            self._counters[reason] += 1
        self.close(reason)

    async def _read_loop(self) -> str:
        for frame in self._early_frames:
            await self._deliver(frame)
        self._early_frames = []
        idle_timeout_s = self._limits.idle_timeout_ms / 1000
        # Runs until the peer closes, falls silent, or errs; every pass waits on the socket.
        while True:
            # Only the socket read is timed: time spent waiting for room in the inbox is our
            # own backpressure, not the peer's silence. (Cancelling an SSLStream read after
            # the handshake is safe; the link is closed right after anyway.)
            with trio.move_on_after(idle_timeout_s) as idle:
                data = await self._stream.receive_some(self._limits.read_chunk_bytes)
            if idle.cancelled_caught:
                self._counters["idle_timeout"] += 1
                return "idle_timeout"
            if not data:
                return "peer_closed"
            self._traffic.bytes_in += len(data)
            for frame in self._decoder.feed(data):
                await self._deliver(frame)

    async def _deliver(self, frame: Any) -> None:
        self._traffic.frames_in += 1
        if not isinstance(frame, dict):
            raise BadMessage(f"message is a {type(frame).__name__}, not a map")
        kind = frame.get("t")
        if not isinstance(kind, str):
            raise BadMessage("message has no string kind 't'")
        if kind == KIND_PING:
            return
        if kind == KIND_HELLO:
            raise BadMessage("second hello on an established link")
        # Blocks while the inbox is full: this link stops reading, others are unaffected
        # until they too have something to deliver.
        await self._inbox.send((self.peer, frame))

    def _next_batch(self) -> list[bytes]:
        batch = [self._queue.popleft()]
        size = len(batch[0])
        limit = self._limits.write_batch_bytes
        while self._queue and size + len(self._queue[0]) <= limit:
            frame = self._queue.popleft()
            batch.append(frame)
            size += len(frame)
        self._queued_bytes -= size
        self._has_space.set()
        return batch

    async def _write_loop(self) -> str:
        ping_interval_s = self._limits.ping_interval_ms / 1000
        stall_timeout_s = self._limits.send_stall_timeout_ms / 1000
        # Runs until cancelled or a write stalls; every pass waits for frames or a timer.
        while True:
            if not self._queue:
                self._has_frames = trio.Event()
                with trio.move_on_after(ping_interval_s):
                    await self._has_frames.wait()
            if self._queue:
                batch = self._next_batch()
            else:
                batch = [PING_FRAME]
                self._traffic.pings_out += 1
            data = batch[0] if len(batch) == 1 else b"".join(batch)
            with trio.move_on_after(stall_timeout_s) as stall:
                await self._stream.send_all(data)
            if stall.cancelled_caught:
                # The peer took no data for stall_timeout: stuck or hostile. A cancelled
                # SSL write leaves the stream unusable, so the link ends here either way.
                self._counters["send_stall"] += 1
                return "send_stall"
            self._traffic.frames_out += len(batch)
            self._traffic.bytes_out += len(data)
            self._traffic.socket_writes += 1
