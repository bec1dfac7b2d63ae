"""An ASGI WebSocket as a line-framed trio stream, so that the control socket's Connection
(ordering, pipelining, subscriptions, bounded queues) serves it unchanged: each text message
in is one line, each line out is one message.

A raw newline can only be whitespace in valid JSON (inside strings it must be escaped), so
turning a message's CR and LF into spaces keeps its meaning and keeps it one line.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from node.daemon.gateway.table import ConnectionInfo

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class WebSocketStream(trio.abc.Stream):
    def __init__(
        self,
        receive: Receive,
        send: Send,
        info: ConnectionInfo,
        *,
        idle_timeout_s: float,
        write_timeout_s: float,
    ) -> None:
        self._receive = receive
        self._send = send
        self._info = info
        self._idle_timeout_s = idle_timeout_s
        self._write_timeout_s = write_timeout_s
        self._pending = bytearray()
        self._closed = False
        self.has_subscriptions: Callable[[], bool] = lambda: False
        self.idle_closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or 65_536
        while not self._pending:  # bounded: each pass waits for one message or the idle limit
            if self._closed:
                return b""
            with trio.move_on_after(self._idle_timeout_s) as scope:
                message = await self._receive()
            if scope.cancelled_caught:
                if self.has_subscriptions():
                    continue  # a subscriber may listen quietly for as long as it likes
                self.idle_closed = True
                await self._close(1000, "idle: no request within the idle timeout")
                return b""
            if message["type"] == "websocket.disconnect":
                self._closed = True
                return b""
            if message["type"] != "websocket.receive":
                continue
            data = message.get("bytes") or (message.get("text") or "").encode("utf-8")
            self._pending += data.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
        chunk = bytes(self._pending[:limit])
        del self._pending[:limit]
        return chunk

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket is closed")
        for line in bytes(data).split(b"\n"):
            if line:
                # The server's sends are shielded; the sweeper closes the TCP connection
                # if this write is not through by the deadline (a client that never reads).
                self._info.deadline = trio.current_time() + self._write_timeout_s
                try:
                    await self._send({"type": "websocket.send", "text": line.decode("ascii")})
                except (OSError, RuntimeError) as exc:  # hypercorn: the socket went away
                    self._closed = True
                    raise trio.BrokenResourceError(str(exc)) from exc
                finally:
                    self._info.deadline = math.inf

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with trio.move_on_after(self._write_timeout_s):
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except (OSError, RuntimeError):
                pass

    async def aclose(self) -> None:
        await self._close(1000, "")
        await trio.lowlevel.checkpoint()
