"""Trio client for the control socket: concurrent calls on one connection and subscriptions.

    async with AsyncRpcClient(path) as client:
        height = await client.call("node_status")
        async with await client.subscribe("blocks") as blocks:
            async for block in blocks:
                ...

A reader task matches answers to calls by id, so many tasks may call at once (pipelining);
the server still answers one line at a time per connection.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import trio

from node.rpc.client_common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RECEIVE_CHUNK_BYTES,
    Notification,
    Response,
    RpcCallError,
    RpcTimeoutError,
    RpcTransportError,
    SubscriptionDroppedError,
    connect_error,
    encode_line,
    encode_request,
    parse_server_line,
    socket_path_text,
)
from node.rpc.errors import SUBSCRIBER_DROPPED
from node.rpc.protocol import LineBuffer, LineTooLongError

DEFAULT_MAX_IN_FLIGHT: Final = 1024
DEFAULT_SUBSCRIPTION_BUFFER: Final = 1024


@dataclass(eq=False)
class _PendingCall:
    done: trio.Event = field(default_factory=trio.Event)
    response: Response | None = None
    failure: Exception | None = None
    # Runs in the reader task when the answer arrives, before any later line is read.
    on_answer: Callable[[Response], None] | None = None


class ClientSubscription:
    """An async iterator over one subscription's payloads.

    Iteration raises SubscriptionDroppedError if the node dropped this subscriber (or the
    local buffer overflowed) and RpcTransportError if the connection is lost; it ends
    after `unsubscribe()`.
    """

    def __init__(self, client: AsyncRpcClient, topic: str, buffer_size: int) -> None:
        self.topic = topic
        self.id: int | None = None
        self._client = client
        self._send, self._receive = trio.open_memory_channel[object](buffer_size)
        self._ended_by: Exception | None = None

    def _deliver(self, notification: Notification) -> None:
        if notification.error is not None:
            self._end(notification.error)
            return
        try:
            self._send.send_nowait(notification.result)
        except trio.WouldBlock:
            self._end(
                SubscriptionDroppedError(
                    SUBSCRIBER_DROPPED,
                    f"client-side buffer of subscription {self.id} ({self.topic}) overflowed: "
                    "iterate faster or give a larger subscription_buffer",
                )
            )
            self._client._unsubscribe_in_background(self)
        except trio.ClosedResourceError:
            pass

    def _end(self, reason: Exception | None) -> None:
        if self._ended_by is None:
            self._ended_by = reason
        self._send.close()

    def __aiter__(self) -> ClientSubscription:
        return self

    async def __anext__(self) -> object:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self._ended_by is not None:
                raise self._ended_by from None
            raise StopAsyncIteration from None

    async def unsubscribe(self) -> None:
        """Stop the subscription; iteration ends after what was already received."""
        if self.id is None or self._client._subscriptions.get(self.id) is not self:
            self._end(None)
            return
        del self._client._subscriptions[self.id]
        self._end(None)
        if self._client.is_connected:
            await self._client.call("unsubscribe", {"subscription": self.id})

    async def __aenter__(self) -> ClientSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # If the connection or the subscription is already gone, that is what we wanted.
        with suppress(RpcTransportError, RpcCallError):
            await self.unsubscribe()


class AsyncRpcClient:
    """Trio JSON-RPC client; use as `async with AsyncRpcClient(path) as client`."""

    def __init__(
        self,
        socket_path: Path | str,
        timeout_s: float = 30.0,
        *,
        hint: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        subscription_buffer: int = DEFAULT_SUBSCRIPTION_BUFFER,
        stream_factory: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        """`stream_factory`, when given, opens the line-framed stream to use instead of the
        Unix socket at `socket_path` (the gateway's WebSocket: gateway_client's
        open_websocket_stream); `socket_path` then only names it in messages."""
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.socket_path = Path(socket_path)
        self.timeout_s = timeout_s
        self._hint = hint
        self._max_response_bytes = max_response_bytes
        self._in_flight = trio.Semaphore(max_in_flight)
        self._subscription_buffer = subscription_buffer
        self._pending: dict[int, _PendingCall] = {}
        self._subscriptions: dict[int, ClientSubscription] = {}
        self._next_id = 1
        self._send_lock = trio.Lock()
        self._stream_factory = stream_factory
        self._stream: Any = None
        self._nursery: trio.Nursery | None = None
        self._exit_stack = AsyncExitStack()
        self._broken: RpcTransportError | None = None
        self.unrouted_notifications = 0

    @property
    def is_connected(self) -> bool:
        return self._stream is not None and self._broken is None

    async def __aenter__(self) -> AsyncRpcClient:
        if self._stream_factory is not None:
            self._stream = await self._stream_factory()
        else:
            try:
                self._stream = await trio.open_unix_socket(socket_path_text(self.socket_path))
            except OSError as error:
                raise connect_error(self.socket_path, error, self._hint) from None
        await self._exit_stack.__aenter__()
        self._nursery = await self._exit_stack.enter_async_context(trio.open_nursery())
        self._nursery.start_soon(self._read_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # The body ran inside the reader's nursery: stop the reader and leave the nursery
        # first, then close the stream outside of its (now cancelled) scope.
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self._break(RpcTransportError("the client was closed"))
        try:
            suppressed = await self._exit_stack.__aexit__(exc_type, exc, traceback)
        finally:
            self._nursery = None
            if self._stream is not None:
                await trio.aclose_forcefully(self._stream)
        return bool(suppressed)

    async def aclose(self) -> None:
        """Close the connection now: pending calls and subscriptions fail with
        RpcTransportError. The `async with` block still has to end as usual."""
        self._break(RpcTransportError("the client was closed"))
        if self._stream is not None:
            self._stream.socket.close()  # wakes the reader with ClosedResourceError
        await trio.lowlevel.checkpoint()

    async def call(self, method: str, params: object = None) -> object:
        """Call `method`; returns the result or raises RpcCallError / RpcTransportError."""
        response = await self._call(method, params)
        if response.error is not None:
            raise response.error
        return response.result

    async def notify(self, method: str, params: object = None) -> None:
        await self._send(encode_line(encode_request(method, params, None)))

    async def batch(self, calls: list[tuple[str, object]]) -> list[object | RpcCallError]:
        """One batch line; results (or RpcCallError instances) in call order."""
        if not calls:
            return []
        pending = {self._take_id(): _PendingCall() for _ in calls}
        requests = [
            encode_request(method, params, request_id)
            for (method, params), request_id in zip(calls, pending, strict=True)
        ]
        results: list[object | RpcCallError] = []
        async with self._in_flight:
            self._pending.update(pending)
            try:
                await self._send(encode_line(requests), raise_if_broken=False)
                with trio.move_on_after(self.timeout_s):
                    for call in pending.values():
                        await call.done.wait()
            finally:
                for request_id in pending:
                    self._pending.pop(request_id, None)
        for call in pending.values():
            response = self._outcome(call)
            results.append(response.error if response.error is not None else response.result)
        return results

    async def subscribe(self, topic: str) -> ClientSubscription:
        """Subscribe to `topic`; iterate the returned object for its payloads."""
        subscription = ClientSubscription(self, topic, self._subscription_buffer)

        def register(response: Response) -> None:
            # In the reader task: registered before the next line, which may be a push.
            if response.error is None and isinstance(response.result, int):
                subscription.id = response.result
                self._subscriptions[response.result] = subscription

        try:
            response = await self._call("subscribe", {"topic": topic}, on_answer=register)
        except BaseException:
            if subscription.id is not None:  # answered, but we stopped waiting: undo it
                self._unsubscribe_in_background(subscription)
            raise
        if response.error is not None:
            raise response.error
        if subscription.id is None:
            raise RpcTransportError(f"subscribe answered {response.result!r} instead of an id")
        return subscription

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    async def _call(
        self,
        method: str,
        params: object,
        on_answer: Callable[[Response], None] | None = None,
    ) -> Response:
        request_id = self._take_id()
        line = encode_line(encode_request(method, params, request_id))
        call = _PendingCall(on_answer=on_answer)
        async with self._in_flight:
            self._pending[request_id] = call
            try:
                # If the send fails, the reader still gets to report why (a node that
                # refuses us writes an error line before it hangs up).
                await self._send(line, raise_if_broken=False)
                with trio.move_on_after(self.timeout_s):
                    await call.done.wait()
            finally:
                self._pending.pop(request_id, None)
        return self._outcome(call)

    def _outcome(self, call: _PendingCall) -> Response:
        if call.failure is not None:
            raise call.failure
        if call.response is None:
            raise RpcTimeoutError(
                f"no answer from the node at {self.socket_path} within {self.timeout_s:g} s"
            )
        return call.response

    async def _send(self, line: bytes, *, raise_if_broken: bool = True) -> None:
        if self._broken is not None:
            raise self._broken
        if self._stream is None:
            raise RpcTransportError("use `async with AsyncRpcClient(...)` before calling")
        async with self._send_lock:
            # A cancelled send_all could leave half a line on the wire, so the write is
            # shielded and bounded by its own deadline instead.
            with trio.CancelScope(shield=True), trio.move_on_after(self.timeout_s) as scope:
                try:
                    await self._stream.send_all(line)
                except trio.BrokenResourceError as error:
                    # The reader will see the end of the stream (and any farewell error
                    # line before it) and fail the pending calls accordingly.
                    if raise_if_broken:
                        raise RpcTransportError(f"connection to the node lost: {error!r}") from None
                    return
                except trio.ClosedResourceError:
                    raise RpcTransportError("the client was closed") from None
            if scope.cancelled_caught:
                self._break(RpcTimeoutError("the node did not accept a request in time"))
        if self._broken is not None:
            raise self._broken

    def _unsubscribe_in_background(self, subscription: ClientSubscription) -> None:
        if subscription.id is not None:
            self._subscriptions.pop(subscription.id, None)
        if self._nursery is not None and self.is_connected and subscription.id is not None:
            self._nursery.start_soon(self._unsubscribe_quietly, subscription.id)

    async def _unsubscribe_quietly(self, subscription_id: int) -> None:
        with suppress(RpcTransportError, RpcCallError):
            await self.call("unsubscribe", {"subscription": subscription_id})

    async def _read_loop(self) -> None:
        if self._stream is None:
            raise RuntimeError("reader started without a stream")
        buffer = LineBuffer(self._max_response_bytes)
        try:
            while True:  # one iteration per received chunk; ends with the connection
                data = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
                if not data:
                    self._break(RpcTransportError("the node closed the connection"))
                    return
                buffer.feed(data)
                while (line := buffer.next_line()) is not None:
                    if line.strip():
                        self._dispatch(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._break(RpcTransportError(f"connection to the node lost: {error!r}"))
        except LineTooLongError as error:
            self._break(RpcTransportError(f"the node sent an answer over {error.limit_bytes} B"))
        except RpcTransportError as error:
            self._break(error)

    def _dispatch(self, line: bytes) -> None:
        message = parse_server_line(line)
        if isinstance(message, Notification):
            subscription = self._subscriptions.get(message.subscription)
            if subscription is None:
                self.unrouted_notifications += 1  # e.g. pushes racing an unsubscribe
                return
            if message.error is not None:
                del self._subscriptions[message.subscription]
            subscription._deliver(message)
            return
        for response in message if isinstance(message, list) else [message]:
            self._answer(response)

    def _answer(self, response: Response) -> None:
        if response.id is None and response.error is not None:
            # An error about the connection (busy, line too long, unparseable): every
            # waiting call gets it, since it cannot be attributed to one of them.
            for call in list(self._pending.values()):
                call.failure = response.error
                call.done.set()
            return
        if not isinstance(response.id, int) or isinstance(response.id, bool):
            return
        waiting = self._pending.get(response.id)
        if waiting is None or waiting.done.is_set():
            return  # answer to a call that timed out
        waiting.response = response
        if waiting.on_answer is not None:
            waiting.on_answer(response)
        waiting.done.set()

    def _break(self, error: RpcTransportError) -> None:
        if self._broken is None:
            self._broken = error
        for call in list(self._pending.values()):
            if not call.done.is_set():
                call.failure = self._broken
                call.done.set()
        for subscription in list(self._subscriptions.values()):
            subscription._end(self._broken)
        self._subscriptions.clear()
