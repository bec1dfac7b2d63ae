"""One control connection: read lines, answer them in order, forward subscriptions.

Every write goes through one lock and has a deadline: a client that stops reading loses its
connection after `write_timeout_s` instead of pinning memory. A write interrupted by that
deadline leaves half a line on the wire, which is why the connection is then closed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from node.rpc.errors import (
    INVALID_REQUEST,
    LINE_TIMEOUT,
    SUBSCRIBER_DROPPED,
    TOO_MANY_SUBSCRIPTIONS,
    RpcError,
)
from node.rpc.hub import Subscription, SubscriptionHub
from node.rpc.protocol import (
    DecodedLine,
    LineBuffer,
    LineTooLongError,
    decode_line,
    dump_json,
    error_object,
    error_response,
    is_blank,
    notification_line,
)

logger = logging.getLogger(__name__)

RECEIVE_CHUNK_BYTES: Final = 65_536
MAX_NOTIFICATIONS_PER_WRITE: Final = 64
_DISCONNECTS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_line_bytes: int
    max_batch: int
    max_depth: int
    max_subscriptions: int
    write_timeout_s: float
    # A line that has begun must end within this long: 64 clients that each send half a
    # line must not hold every connection slot (a slow-loris on the control socket).
    line_timeout_s: float = math.inf


@dataclass(slots=True)
class ServerCounters:
    connections_accepted: int = 0
    connections_refused: int = 0
    lines: int = 0
    requests: int = 0
    notifications_received: int = 0
    batches: int = 0
    lines_too_long: int = 0
    lines_too_slow: int = 0
    write_timeouts: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)

    def count_error(self, code: int) -> None:
        self.errors_by_code[code] += 1


class Gate(Protocol):
    """Who may call what, and how often: the gateway gives each of its sessions one (the
    control socket has none: whoever can open it is the operator)."""

    def admit(self, methods: Sequence[str]) -> RpcError | None:
        """Before a line (a request or a batch of `methods`) runs: None, or the error that
        refuses the whole line (a rate limit)."""
        ...

    def allows(self, method: str) -> RpcError | None:
        """Before one registered method runs: None, or the error that refuses it (a role)."""
        ...


class Session(Protocol):
    """What a call runs in: a connection that can carry pushes, or a one-shot HTTP request
    that cannot."""

    @property
    def id(self) -> int: ...

    @property
    def gate(self) -> Gate | None: ...

    def open_subscription(self, topic: str) -> Subscription: ...

    def close_subscription(self, subscription_id: int) -> bool: ...


LineAnswerer = Callable[["Connection", DecodedLine], Awaitable[str | None]]


class Connection:
    """State of one accepted stream; `serve()` runs it to the end and closes the stream."""

    def __init__(
        self,
        connection_id: int,
        stream: trio.abc.Stream,
        hub: SubscriptionHub,
        limits: ConnectionLimits,
        counters: ServerCounters,
        answer_line: LineAnswerer,
        gate: Gate | None = None,
    ) -> None:
        self.id = connection_id
        self.gate = gate
        self._stream = stream
        self._hub = hub
        self._limits = limits
        self._counters = counters
        self._answer_line = answer_line
        self._send_lock = trio.Lock()
        self._subscriptions: dict[int, Subscription] = {}
        self._awaiting_activation: list[Subscription] = []
        self._nursery: trio.Nursery | None = None

    @property
    def subscription_count(self) -> int:
        return len(self._subscriptions)

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._read_lines()
                # The client is gone or was cut off: stop the subscription forwarders too.
                nursery.cancel_scope.cancel()
        except Exception as error:
            self._log_failure(error)
        finally:
            self._nursery = None
            for subscription in list(self._subscriptions.values()):
                self._hub.close(subscription)
            self._subscriptions.clear()
            await trio.aclose_forcefully(self._stream)

    def _log_failure(self, error: Exception) -> None:
        rest: Exception | None
        if isinstance(error, ExceptionGroup):
            _disconnects, rest = error.split(_DISCONNECTS)
        else:
            rest = None if isinstance(error, _DISCONNECTS) else error
        if _contains(error, trio.TooSlowError):
            self._counters.write_timeouts += 1
        if rest is None:
            logger.debug("control connection %d closed: %r", self.id, error)
        else:
            logger.error("control connection %d failed", self.id, exc_info=rest)

    async def _read_lines(self) -> None:
        buffer = LineBuffer(self._limits.max_line_bytes)
        line_started: float | None = None  # when the line now being assembled began
        while True:  # one pass per line or chunk; ends at EOF, on error or on cancellation
            try:
                line = buffer.next_line()
            except LineTooLongError as error:
                await self._reject_long_line(error)
                return
            if line is None:
                if buffer.pending_bytes() == 0:
                    line_started = None
                elif line_started is None:
                    line_started = trio.current_time()
                deadline = (
                    math.inf if line_started is None else line_started + self._limits.line_timeout_s
                )
                with trio.move_on_at(deadline) as scope:
                    data = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
                if scope.cancelled_caught:
                    await self._reject_slow_line()
                    return
                if not data:
                    last = buffer.take_remainder()  # a final line without "\n" is still served
                    if not is_blank(last):
                        await self._serve_line(last)
                    return
                buffer.feed(data)
            else:
                line_started = None
                if not is_blank(line):
                    await self._serve_line(line)

    async def _serve_line(self, line: bytes) -> None:
        self._counters.lines += 1
        limits = self._limits
        decoded = decode_line(line, max_depth=limits.max_depth, max_batch=limits.max_batch)
        try:
            answer = await self._answer_line(self, decoded)
            if answer is not None:
                await self.send_line((answer + "\n").encode("ascii"))
        finally:
            # The client now knows the new subscription ids (or never will): let them flow.
            for subscription in self._awaiting_activation:
                subscription.activated.set()
            self._awaiting_activation.clear()

    async def _reject_long_line(self, error: LineTooLongError) -> None:
        self._counters.lines_too_long += 1
        self._counters.count_error(INVALID_REQUEST)
        message = (
            f"invalid request: {error}; the connection is closed "
            "(send smaller requests, one per line)"
        )
        reply = error_object(INVALID_REQUEST, message, {"max_line_bytes": error.limit_bytes})
        await self.send_line((dump_json(error_response(None, reply)) + "\n").encode("ascii"))

    async def _reject_slow_line(self) -> None:
        self._counters.lines_too_slow += 1
        self._counters.count_error(LINE_TIMEOUT)
        limit_s = self._limits.line_timeout_s
        message = (
            f"request line not completed within {limit_s:g} s; the connection is closed "
            "(send each request as one whole line)"
        )
        reply = error_object(LINE_TIMEOUT, message, {"line_timeout_s": limit_s})
        await self.send_line((dump_json(error_response(None, reply)) + "\n").encode("ascii"))

    async def send_line(self, data: bytes, subscription: Subscription | None = None) -> None:
        """Write one line; with `subscription`, only if it is still subscribed by then."""
        async with self._send_lock:
            if subscription is not None and subscription.unsubscribed:
                return
            with trio.fail_after(self._limits.write_timeout_s):
                await self._stream.send_all(data)

    def open_subscription(self, topic: str) -> Subscription:
        if self._nursery is None:
            raise RuntimeError("connection is not serving")
        if len(self._subscriptions) >= self._limits.max_subscriptions:
            raise RpcError(
                TOO_MANY_SUBSCRIPTIONS,
                f"this connection already has {len(self._subscriptions)} subscriptions (the "
                "limit); unsubscribe from some or open another connection",
                {"max_subscriptions": self._limits.max_subscriptions},
            )
        subscription = self._hub.open(topic, self.id)
        self._subscriptions[subscription.id] = subscription
        self._awaiting_activation.append(subscription)
        self._nursery.start_soon(self._forward, subscription)
        return subscription

    def close_subscription(self, subscription_id: int) -> bool:
        subscription = self._subscriptions.pop(subscription_id, None)
        if subscription is None:
            return False
        self._hub.close(subscription)
        subscription.activated.set()  # let its forwarder see the end and exit
        return True

    async def _forward(self, subscription: Subscription) -> None:
        """Copy one subscription's queue to the stream, then say why it ended if dropped."""
        with subscription.receive:
            await subscription.activated.wait()
            async for encoded in subscription.receive:
                if subscription.unsubscribed:
                    break
                await self.send_line(self._take_batch(subscription, encoded), subscription)
        if subscription.dropped_reason is not None and not subscription.unsubscribed:
            error = error_object(
                SUBSCRIBER_DROPPED,
                subscription.dropped_reason,
                {"topic": subscription.topic, "queue_capacity": self._hub.queue_capacity},
            )
            line = notification_line(subscription.id, "error", dump_json(error))
            await self.send_line(line)
        self._subscriptions.pop(subscription.id, None)

    @staticmethod
    def _take_batch(subscription: Subscription, first: str) -> bytes:
        """`first` and whatever else is already queued (bounded), as one write: a forwarder
        that wrote one line per scheduler round could never catch up with a busy publisher."""
        lines = [notification_line(subscription.id, "result", first)]
        for _ in range(MAX_NOTIFICATIONS_PER_WRITE - 1):
            try:
                encoded = subscription.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            lines.append(notification_line(subscription.id, "result", encoded))
        return b"".join(lines)


def _contains(error: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in error.exceptions)
    return isinstance(error, kind)
