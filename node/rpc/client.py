"""Clients for the control socket: `RpcClient` (blocking, stdlib socket; for the CLI and
scripts) and `AsyncRpcClient` (trio; for tests and the load generator).

    with RpcClient("testnet/node0/control.sock") as client:
        status = client.call("node_status")
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn

from node.rpc.async_client import AsyncRpcClient, ClientSubscription
from node.rpc.client_common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RECEIVE_CHUNK_BYTES,
    NoNodeError,
    Notification,
    Response,
    RpcCallError,
    RpcTimeoutError,
    RpcTransportError,
    ServerMessage,
    SubscriptionDroppedError,
    connect_error,
    encode_line,
    encode_request,
    parse_server_line,
    socket_path_text,
)
from node.rpc.protocol import LineBuffer, LineTooLongError

DEFAULT_MAX_QUEUED_NOTIFICATIONS: Final = 1024
_FAREWELL_READ_S: Final = 1.0


class RpcClient:
    """A blocking JSON-RPC client on one Unix socket connection. Not thread-safe.

    A call that times out raises RpcTimeoutError and leaves the client usable: ids only
    grow, so a late answer to an abandoned call is recognised and dropped.
    """

    def __init__(
        self,
        socket_path: Path | str,
        timeout_s: float = 30.0,
        *,
        hint: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_queued_notifications: int = DEFAULT_MAX_QUEUED_NOTIFICATIONS,
        connection: Any = None,
    ) -> None:
        """`connection`, when given, is an open socket-like object (settimeout, sendall,
        recv, close) to use instead of connecting to `socket_path`: the gateway's WebSocket
        (node.rpc.gateway_client.WebSocketLines); `socket_path` then only names it."""
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.socket_path = Path(socket_path)
        self.timeout_s = timeout_s
        self._buffer = LineBuffer(max_response_bytes)
        self._next_id = 1
        self._first_live_id = 1  # answers with smaller ids belong to abandoned calls
        self._closed_because: str | None = None
        # Notifications arrive between answers; the oldest are discarded when this is full.
        self._notifications: deque[Notification] = deque(maxlen=max_queued_notifications)
        self.notifications_discarded = 0
        self.late_answers_dropped = 0
        if connection is not None:
            self._socket = connection
            return
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._socket.settimeout(timeout_s)
            self._socket.connect(socket_path_text(socket_path))
        except OSError as error:
            self._socket.close()
            raise connect_error(socket_path, error, hint) from None

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed_because is None:
            self._closed_because = "the client was closed"
        self._socket.close()

    def call(self, method: str, params: object = None) -> object:
        """Call `method` and return its result; raises RpcCallError on an error answer."""
        request_id = self._take_id()
        self._first_live_id = request_id
        self._send(encode_request(method, params, request_id))
        deadline = time.monotonic() + self.timeout_s
        while True:  # bounded by the deadline: every read waits at most until then
            message = self._read_response(deadline)
            if isinstance(message, list):
                self._fail("the node answered a single call with a batch")
            if message.id == request_id:
                if message.error is not None:
                    raise message.error
                return message.result
            self._unexpected_response(message)

    def notify(self, method: str, params: object = None) -> None:
        """Send a notification: no answer, no error report, even if the method fails."""
        self._send(encode_request(method, params, None))

    def batch(self, calls: list[tuple[str, object]]) -> list[object | RpcCallError]:
        """Send the calls as one batch; results (or RpcCallError instances) in call order."""
        if not calls:
            return []
        ids = [self._take_id() for _ in calls]
        self._first_live_id = ids[0]
        requests = [
            encode_request(method, params, request_id)
            for (method, params), request_id in zip(calls, ids, strict=True)
        ]
        self._send(requests)
        deadline = time.monotonic() + self.timeout_s
        while True:  # bounded by the deadline
            message = self._read_response(deadline)
            if isinstance(message, list):
                return _match_batch(ids, message)
            self._unexpected_response(message)

    def subscribe(self, topic: str) -> int:
        """Subscribe this connection to `topic`; read pushes with `next_notification`."""
        subscription_id = self.call("subscribe", {"topic": topic})
        if isinstance(subscription_id, bool) or not isinstance(subscription_id, int):
            self._fail(f"subscribe answered {subscription_id!r} instead of an id")
        return subscription_id

    def unsubscribe(self, subscription_id: int) -> bool:
        return bool(self.call("unsubscribe", {"subscription": subscription_id}))

    def next_notification(self, timeout_s: float | None = None) -> Notification:
        """The next subscription push (queued or read now); RpcTimeoutError after timeout_s."""
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        self._first_live_id = self._next_id
        while not self._notifications:  # bounded by the deadline
            message = self._read_message(deadline)
            if isinstance(message, Notification):
                self._queue(message)
            elif not self._is_late_answer(message):
                self._unexpected_response(message)
        return self._notifications.popleft()

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _queue(self, notification: Notification) -> None:
        if len(self._notifications) == self._notifications.maxlen:
            self.notifications_discarded += 1
        self._notifications.append(notification)

    def _is_late_answer(self, message: ServerMessage) -> bool:
        """An answer to a call that timed out earlier (ids below the current one)."""
        first = message[0] if isinstance(message, list) and message else message
        if not isinstance(first, Response):
            return False
        late = isinstance(first.id, int) and 0 < first.id < self._first_live_id
        if late:
            self.late_answers_dropped += 1
        return late

    def _check_open(self) -> None:
        if self._closed_because is not None:
            raise RpcTransportError(
                f"connection to {self.socket_path} is closed: {self._closed_because}"
            )

    def _fail(self, reason: str) -> NoReturn:
        self._closed_because = reason
        self._socket.close()
        raise RpcTransportError(f"control connection to {self.socket_path}: {reason}")

    def _unexpected_response(self, message: ServerMessage) -> NoReturn:
        if isinstance(message, Response) and message.id is None and message.error is not None:
            # An error about the connection itself (busy, line too long): it is then closed.
            self._closed_because = message.error.message
            self._socket.close()
            raise message.error
        self._fail(f"unexpected answer {message!r:.200}")

    def _send(self, message: object) -> None:
        self._check_open()
        line = encode_line(message)
        try:
            self._socket.settimeout(self.timeout_s)
            self._socket.sendall(line)
        except TimeoutError:
            # Part of the line may be on the wire: the stream can no longer be trusted.
            self._fail(f"the node did not accept the request within {self.timeout_s:g} s")
        except OSError as error:
            self._raise_farewell_error()
            self._fail(f"sending failed: {error}")

    def _raise_farewell_error(self) -> None:
        """A node that refuses us (busy, line too long) writes one error line and hangs up;
        a send can fail before we read it. Raise that error if it is there."""
        try:
            line = self._read_line(time.monotonic() + _FAREWELL_READ_S)
            message = parse_server_line(line)
        except (RpcTransportError, OSError):
            return
        if isinstance(message, Response) and message.id is None and message.error is not None:
            self._closed_because = message.error.message
            self._socket.close()
            raise message.error

    def _read_response(self, deadline: float) -> Response | list[Response]:
        """The next response to a current call; notifications read on the way are queued."""
        while True:  # bounded by the deadline
            message = self._read_message(deadline)
            if isinstance(message, Notification):
                self._queue(message)
            elif not self._is_late_answer(message):
                return message

    def _read_message(self, deadline: float) -> ServerMessage:
        self._check_open()
        line = self._read_line(deadline)
        try:
            return parse_server_line(line)
        except RpcTransportError as error:
            self._fail(str(error))

    def _read_line(self, deadline: float) -> bytes:
        while True:  # bounded by the deadline and the line limit
            try:
                line = self._buffer.next_line()
            except LineTooLongError as error:
                self._fail(f"the node sent an answer longer than {error.limit_bytes} bytes")
            if line is not None:
                if line.strip():
                    return line
                continue
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise RpcTimeoutError(f"no answer from the node at {self.socket_path} in time")
            self._socket.settimeout(remaining_s)
            try:
                data = self._socket.recv(RECEIVE_CHUNK_BYTES)
            except TimeoutError:
                raise RpcTimeoutError(
                    f"no answer from the node at {self.socket_path} in time"
                ) from None
            except OSError as error:
                self._fail(f"connection lost: {error}")
            if not data:
                self._fail("the node closed the connection")
            self._buffer.feed(data)


def _match_batch(ids: list[int], responses: list[Response]) -> list[object | RpcCallError]:
    by_id: dict[object, Response] = {}
    for response in responses:
        if response.id in by_id:
            raise RpcTransportError(f"the node answered id {response.id!r} twice in a batch")
        by_id[response.id] = response
    results: list[object | RpcCallError] = []
    for request_id in ids:
        answer = by_id.get(request_id)
        if answer is None:
            raise RpcTransportError(f"the node's batch answer has no response for id {request_id}")
        results.append(answer.error if answer.error is not None else answer.result)
    return results


__all__ = [
    "AsyncRpcClient",
    "ClientSubscription",
    "NoNodeError",
    "Notification",
    "RpcCallError",
    "RpcClient",
    "RpcTimeoutError",
    "RpcTransportError",
    "SubscriptionDroppedError",
]
