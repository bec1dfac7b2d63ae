"""JSON-RPC 2.0 server on a Unix domain socket, newline-delimited.

Each connection processes one line at a time, so its responses come back in request order;
connections run concurrently. Subscriptions push notifications through bounded queues
(see node.rpc.hub). The daemon registers methods with `RpcServer.method` and publishes with
`RpcServer.hub.publish`; `subscribe` and `unsubscribe` are built in.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import trio

from node.rpc.connection import Connection, ConnectionLimits, Gate, ServerCounters, Session
from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
    RESPONSE_TOO_LARGE,
    SERVER_BUSY,
    RpcError,
)
from node.rpc.hub import MAX_TOPIC_CHARS, Subscription, SubscriptionHub
from node.rpc.params import Params
from node.rpc.protocol import (
    Batch,
    DecodedLine,
    ErrorReply,
    InvalidRequest,
    JsonId,
    Request,
    RequestItem,
    Single,
    decode_line,
    dump_json,
    error_object,
    error_response,
    result_response,
)
from node.rpc.unix_socket import bind_listening_socket, check_path_length, remove_socket_file

logger = logging.getLogger(__name__)

_REFUSAL_WRITE_TIMEOUT_S: Final = 1.0
_RESERVED_PREFIX: Final = "rpc."


class CallContext:
    """What a handler may do besides reading its params: subscribe this connection."""

    __slots__ = ("_connection", "_created", "is_notification", "method", "request_id")

    def __init__(
        self, connection: Session, method: str, request_id: JsonId, is_notification: bool
    ) -> None:
        self._connection = connection
        self._created: list[Subscription] = []
        self.method = method
        self.request_id = request_id
        self.is_notification = is_notification

    @property
    def connection_id(self) -> int:
        return self._connection.id

    def subscribe(self, topic: str) -> Subscription:
        """Start pushing `topic` to this connection. Notifications begin only after the
        response to this call has been written; if the call fails, the subscription is
        closed again."""
        subscription = self._connection.open_subscription(topic)
        self._created.append(subscription)
        return subscription

    def unsubscribe(self, subscription_id: int) -> bool:
        """Close one of this connection's subscriptions; False if it has no such id."""
        return self._connection.close_subscription(subscription_id)

    def _abandon_subscriptions(self) -> None:
        for subscription in self._created:
            self._connection.close_subscription(subscription.id)
        self._created.clear()


Handler: TypeAlias = Callable[[Params, CallContext], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class _Method:
    handler: Handler
    param_names: tuple[str, ...] | None
    timeout_s: float


class RpcServer:
    """Serve registered methods on `socket_path` until cancelled.

    Limits: lines of at most `max_line_bytes`, `max_connections` at once, batches of at most
    `max_batch`, JSON nesting of at most `max_depth`, `subscriber_queue` queued notifications
    per subscription, `max_subscriptions_per_connection`, answers of at most
    `max_response_bytes`, `handler_timeout_s` per call, `write_timeout_s` per write.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        max_line_bytes: int = 1_048_576,
        max_connections: int = 64,
        max_batch: int = 100,
        max_depth: int = 32,
        subscriber_queue: int = 256,
        max_subscriptions_per_connection: int = 64,
        max_response_bytes: int = 16 * 1_048_576,
        handler_timeout_s: float = 10.0,
        write_timeout_s: float = 10.0,
        line_timeout_s: float = 10.0,
    ) -> None:
        self._socket_path = Path(socket_path)
        check_path_length(self._socket_path)
        for name, value in (
            ("max_line_bytes", max_line_bytes),
            ("max_connections", max_connections),
            ("max_batch", max_batch),
            ("max_depth", max_depth),
            ("max_subscriptions_per_connection", max_subscriptions_per_connection),
            ("max_response_bytes", max_response_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, seconds in (
            ("handler_timeout_s", handler_timeout_s),
            ("write_timeout_s", write_timeout_s),
            ("line_timeout_s", line_timeout_s),
        ):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
        self._limits = ConnectionLimits(
            max_line_bytes=max_line_bytes,
            max_batch=max_batch,
            max_depth=max_depth,
            max_subscriptions=max_subscriptions_per_connection,
            write_timeout_s=write_timeout_s,
            line_timeout_s=line_timeout_s,
        )
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._handler_timeout_s = handler_timeout_s
        self.hub = SubscriptionHub(
            queue_capacity=subscriber_queue,
            max_subscriptions_total=max_connections * max_subscriptions_per_connection,
        )
        self._methods: dict[str, _Method] = {}
        self._counters = ServerCounters()
        self._open_connections: dict[int, Connection] = {}
        self._next_connection_id = 1
        self._running = False
        self.method("subscribe", _subscribe, params=("topic",))
        self.method("unsubscribe", _unsubscribe, params=("subscription",))

    @property
    def socket_path(self) -> Path:
        return self._socket_path

    def method(
        self,
        name: str,
        handler: Handler,
        *,
        params: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Register `handler` for `name`.

        `params`, when given, names the accepted parameters in positional order: an array is
        mapped onto those names and unknown names are refused (-32602) before the call.
        `timeout_s` overrides the server's `handler_timeout_s` for this method (for example a
        call that waits for a commit).
        """
        if not isinstance(name, str) or not name:
            raise ValueError("a method name must be a non-empty str")
        if name.startswith(_RESERVED_PREFIX):
            raise ValueError(f"method names starting with {_RESERVED_PREFIX!r} are reserved")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        if not callable(handler):
            raise TypeError(f"handler for {name!r} is not callable")
        if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        names = None if params is None else tuple(params)
        limit_s = self._handler_timeout_s if timeout_s is None else timeout_s
        self._methods[name] = _Method(handler, names, limit_s)

    def method_names(self) -> list[str]:
        return sorted(self._methods)

    def statistics(self) -> dict[str, object]:
        """A snapshot: connections, requests, errors by code, subscriptions and drops."""
        counters = self._counters
        return {
            "connections_open": len(self._open_connections),
            "connections_accepted": counters.connections_accepted,
            "connections_refused": counters.connections_refused,
            "lines": counters.lines,
            "requests": counters.requests,
            "notifications_received": counters.notifications_received,
            "batches": counters.batches,
            "errors_by_code": dict(sorted(counters.errors_by_code.items())),
            "lines_too_long": counters.lines_too_long,
            "lines_too_slow": counters.lines_too_slow,
            "write_timeouts": counters.write_timeouts,
            "subscriptions_open": self.hub.open_count,
            "subscribers_dropped": self.hub.dropped_total,
            "notifications_published": self.hub.published_total,
            "notifications_queued": self.hub.delivered_total,
        }

    async def run(self, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; the socket file is removed on the way out."""
        if self._running:
            raise RuntimeError("RpcServer.run is already running")
        raw_listener, bound = bind_listening_socket(self._socket_path)
        self._running = True
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw_listener))
        try:
            logger.info("control socket listening on %s", self._socket_path)
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle_stream, [listener])
                task_status.started(self._socket_path)
        finally:
            remove_socket_file(bound)
            listener.socket.close()
            self._running = False
            logger.info("control socket %s closed", self._socket_path)

    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        if len(self._open_connections) >= self._max_connections:
            await self._refuse(stream)
            return
        connection_id = self._next_connection_id
        self._next_connection_id += 1
        connection = Connection(
            connection_id, stream, self.hub, self._limits, self._counters, self._answer_line
        )
        self._open_connections[connection_id] = connection
        self._counters.connections_accepted += 1
        try:
            await connection.serve()
        finally:
            del self._open_connections[connection_id]

    def new_session_id(self) -> int:
        """A connection id unique on this server, for a session of another transport."""
        session_id = self._next_connection_id
        self._next_connection_id += 1
        return session_id

    async def serve_stream(
        self,
        stream: trio.abc.Stream,
        *,
        gate: Gate | None = None,
        started: Callable[[Connection], None] | None = None,
    ) -> None:
        """Serve one line-framed stream of another transport (the gateway's WebSocket) with
        this server's methods, limits and subscriptions; returns when it ends. Not counted
        against max_connections: that transport keeps its own caps."""
        connection = Connection(
            self.new_session_id(),
            stream,
            self.hub,
            self._limits,
            self._counters,
            self._answer_line,
            gate,
        )
        self._counters.connections_accepted += 1
        if started is not None:
            started(connection)
        await connection.serve()

    async def answer_body(self, session: Session, body: bytes) -> str | None:
        """The encoded answer to one request body of a one-shot transport (HTTP POST): the
        same parsing, limits, errors and gate as a line on the socket; None when nothing is
        to be sent back (notifications only)."""
        self._counters.lines += 1
        limits = self._limits
        decoded = decode_line(body, max_depth=limits.max_depth, max_batch=limits.max_batch)
        return await self._answer_line(session, decoded)

    async def _refuse(self, stream: trio.SocketStream) -> None:
        self._counters.connections_refused += 1
        self._counters.count_error(SERVER_BUSY)
        message = (
            f"server busy: {self._max_connections} control connections are open (the limit); "
            "close one or retry later"
        )
        error = error_object(SERVER_BUSY, message, {"max_connections": self._max_connections})
        line = (dump_json(error_response(None, error)) + "\n").encode("ascii")
        with trio.move_on_after(_REFUSAL_WRITE_TIMEOUT_S):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(line)
        await trio.aclose_forcefully(stream)

    async def _answer_line(self, connection: Session, decoded: DecodedLine) -> str | None:
        """The encoded response to one decoded line, or None when nothing is to be sent."""
        refusal = self._gate_line(connection.gate, decoded)
        if refusal is not None:
            return refusal
        if isinstance(decoded, ErrorReply):
            self._counters.count_error(decoded.code)
            error = error_object(decoded.code, decoded.message, decoded.data)
            return dump_json(error_response(None, error))
        if isinstance(decoded, Batch):
            self._counters.batches += 1
            answers = [await self._answer_item(connection, item) for item in decoded.items]
            present = [answer for answer in answers if answer is not None]
            if not present:
                return None
            encoded = "[" + ",".join(present) + "]"
            if len(encoded) > self._max_response_bytes:
                return self._too_large(None, len(encoded), "batch response")
            return encoded
        if isinstance(decoded, Single):
            return await self._answer_item(connection, decoded.item)
        raise TypeError(f"unexpected decoded line {decoded!r}")

    def _gate_line(self, gate: Gate | None, decoded: DecodedLine) -> str | None:
        """The whole-line refusal of a gate (a rate limit), encoded; None to go on."""
        if gate is None or isinstance(decoded, ErrorReply):
            return None
        items = decoded.items if isinstance(decoded, Batch) else (decoded.item,)
        methods = [item.method for item in items if isinstance(item, Request)]
        error = gate.admit(methods)
        if error is None:
            return None
        self._counters.count_error(error.code)
        request_id = decoded.item.id if isinstance(decoded, Single) else None
        return dump_json(error_response(request_id, error.to_json_object()))

    def _too_large(self, request_id: JsonId, size_bytes: int, what: str) -> str:
        self._counters.count_error(RESPONSE_TOO_LARGE)
        message = (
            f"{what} of {size_bytes} bytes exceeds the limit of {self._max_response_bytes} "
            "bytes; ask for less at a time"
        )
        data = {"max_response_bytes": self._max_response_bytes}
        return dump_json(
            error_response(request_id, error_object(RESPONSE_TOO_LARGE, message, data))
        )

    async def _answer_item(self, connection: Session, item: RequestItem) -> str | None:
        if isinstance(item, InvalidRequest):
            self._counters.count_error(INVALID_REQUEST)
            error = error_object(INVALID_REQUEST, f"invalid request: {item.message}")
            return dump_json(error_response(item.id, error))
        self._counters.requests += 1
        if item.is_notification:
            self._counters.notifications_received += 1
        context = CallContext(connection, item.method, item.id, item.is_notification)
        try:
            result = await self._call(item, context)
            # A notification caller never learns a subscription id, so none may outlive it.
            if item.is_notification:
                context._abandon_subscriptions()
                return None
            encoded = self._encode_result(item, result)
        except RpcError as error:
            context._abandon_subscriptions()
            self._counters.count_error(error.code)
            if item.is_notification:
                return None
            return dump_json(error_response(item.id, error.to_json_object()))
        if len(encoded) > self._max_response_bytes:
            context._abandon_subscriptions()
            return self._too_large(item.id, len(encoded), "response")
        return encoded

    def _encode_result(self, request: Request, result: object) -> str:
        try:
            return dump_json(result_response(request.id, result))
        except (TypeError, ValueError) as error:
            logger.error(
                "handler for %s returned a value JSON cannot carry: %s", request.method, error
            )
            raise RpcError(
                INTERNAL_ERROR,
                f"internal error: {request.method} produced a result that is not JSON "
                "(a node bug; see the node log)",
            ) from error

    async def _call(self, request: Request, context: CallContext) -> object:
        entry = self._methods.get(request.method)
        if entry is None:
            raise RpcError(METHOD_NOT_FOUND, self._not_found_message(request.method))
        gate = context._connection.gate
        if gate is not None:
            refusal = gate.allows(request.method)
            if refusal is not None:
                raise refusal
        params = Params.for_method(request.method, request.params, entry.param_names)
        with trio.move_on_after(entry.timeout_s):
            try:
                return await entry.handler(params, context)
            except RpcError:
                raise
            except Exception as error:
                logger.exception(
                    "handler for %s failed (request id %r)", request.method, request.id
                )
                raise RpcError(
                    INTERNAL_ERROR,
                    f"internal error while running {request.method}: {type(error).__name__} "
                    "(a node bug; see the node log)",
                ) from error
        raise RpcError(
            REQUEST_TIMEOUT,
            f"{request.method} did not finish within {entry.timeout_s:g} s; "
            "the node may be overloaded, retry later",
            {"timeout_s": entry.timeout_s},
        )

    def _not_found_message(self, method: str) -> str:
        shown = method if len(method) <= 80 else method[:77] + "..."
        message = f"method not found: {shown!r}"
        close = difflib.get_close_matches(method[:80], list(self._methods), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        return message


class OneShotSession:
    """The session of one HTTP request: it has no channel for pushes, so subscribing is
    refused with advice; its gate is the caller's credential."""

    def __init__(self, session_id: int, gate: Gate | None) -> None:
        self._id = session_id
        self._gate = gate

    @property
    def id(self) -> int:
        return self._id

    @property
    def gate(self) -> Gate | None:
        return self._gate

    def open_subscription(self, topic: str) -> Subscription:
        raise RpcError(
            INVALID_REQUEST,
            "subscriptions need a connection that stays open: use the WebSocket endpoint "
            "(/ws) or the control socket",
        )

    def close_subscription(self, subscription_id: int) -> bool:
        return False


async def _subscribe(params: Params, context: CallContext) -> int:
    topic = params.str("topic", min_length=1, max_length=MAX_TOPIC_CHARS)
    return context.subscribe(topic).id


async def _unsubscribe(params: Params, context: CallContext) -> bool:
    subscription_id = params.int("subscription", min=1)
    if not context.unsubscribe(subscription_id):
        raise params.fail(f"this connection has no subscription {subscription_id}")
    return True


__all__ = [
    "CallContext",
    "Gate",
    "OneShotSession",
    "Session",
    "Handler",
    "Params",
    "RpcError",
    "RpcServer",
    "Subscription",
]
