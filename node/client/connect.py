"""One client for applications and for the CLI: the same calls over a node's control socket
(a path) or its HTTPS gateway (an https:// URL), blocking (`Client`) or trio (`AsyncClient`).

    with Client("https://node0.example:8443", credentials=GatewayCredentials.from_dir("acme")) as c:
        tx_id = c.submit(tx.raw)                  # waits out "mempool full" (back-pressure)
        c.subscribe(f"tx:{tx_id}")                # over the gateway: a WebSocket
        print(c.next_notification(timeout_s=30))

Back-pressure: a submission refused with "mempool full" (1009) is retried with growing
pauses until `backpressure_s` has passed (a block frees room every few seconds at worst).
Reconnects: a connection that breaks (a node restart, the gateway's idle timeout) is
reopened once per call; calls are safe to repeat (reads, and a resubmitted transaction
answers its tx_id again). Subscriptions do not survive a reconnect: subscribe again and
reconcile from the current state (as after a dropped subscriber).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

import trio

from node.rpc.async_client import AsyncRpcClient, ClientSubscription
from node.rpc.client import RpcClient
from node.rpc.client_common import (
    NoNodeError,
    Notification,
    RpcCallError,
    RpcTimeoutError,
    RpcTransportError,
)
from node.rpc.gateway_client import (
    GatewayCredentials,
    HttpRpcClient,
    WebSocketLines,
    open_websocket_stream,
)

MEMPOOL_FULL: Final = 1009
BACKOFF_FIRST_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0


class Caller(Protocol):
    def call(self, method: str, params: object = None) -> object: ...


def is_gateway(target: str | Path) -> bool:
    return str(target).startswith("https://")


def with_backpressure(call: Callable[[], object], backpressure_s: float) -> object:
    """Run `call`; while it answers "mempool full", wait (doubling) and retry, bounded."""
    deadline = time.monotonic() + backpressure_s
    pause = BACKOFF_FIRST_S
    while True:  # bounded by the deadline
        try:
            return call()
        except RpcCallError as error:
            if error.code != MEMPOOL_FULL or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(BACKOFF_MAX_S, pause * 2)


class Client:
    """Blocking client; not thread-safe (one per thread)."""

    def __init__(
        self,
        target: str | Path,
        *,
        credentials: GatewayCredentials | None = None,
        timeout_s: float = 30.0,
        hint: str | None = None,
        backpressure_s: float = 30.0,
    ) -> None:
        self.target = str(target)
        self.credentials = credentials or GatewayCredentials()
        self.timeout_s = timeout_s
        self.backpressure_s = backpressure_s
        self._hint = hint
        self._rpc: RpcClient | HttpRpcClient | None = None
        self._push: RpcClient | None = None  # the channel subscriptions arrive on
        self.reconnects = 0
        self._open()  # fail now, with advice, if nothing serves the target

    def _open(self) -> RpcClient | HttpRpcClient:
        if self._rpc is None:
            if is_gateway(self.target):
                self._rpc = HttpRpcClient(self.target, self.credentials, self.timeout_s)
            else:
                self._rpc = RpcClient(Path(self.target), timeout_s=self.timeout_s, hint=self._hint)
        return self._rpc

    def _reset(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
        self._rpc = None
        self.reconnects += 1

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for channel in (self._rpc, self._push):
            if channel is not None:
                channel.close()
        self._rpc = self._push = None

    def _retrying(self, run: Callable[[RpcClient | HttpRpcClient], object]) -> object:
        try:
            return run(self._open())
        except (NoNodeError, RpcTimeoutError):
            raise
        except RpcTransportError:
            self._reset()
            return run(self._open())

    def call(self, method: str, params: object = None) -> object:
        return self._retrying(lambda rpc: rpc.call(method, params))

    def batch(self, calls: list[tuple[str, object]]) -> list[object | RpcCallError]:
        result = self._retrying(lambda rpc: rpc.batch(calls))
        assert isinstance(result, list)
        return result

    def notify(self, method: str, params: object = None) -> None:
        self._retrying(lambda rpc: rpc.notify(method, params))

    # --- transactions --------------------------------------------------------------------------

    def submit(self, raw: bytes) -> str:
        """Submit signed wire bytes; the tx id (hex). Waits out mempool-full back-pressure."""
        result: Any = with_backpressure(
            lambda: self.call("tx_submit", {"tx": raw.hex()}), self.backpressure_s
        )
        return str(result["tx_id"])

    def submit_batch(self, raws: Sequence[bytes]) -> list[dict[str, Any]]:
        """tx_submit_batch; entries refused with "mempool full" are resubmitted (bounded)."""
        out: list[dict[str, Any]] = [{} for _ in raws]
        todo = list(range(len(raws)))
        deadline = time.monotonic() + self.backpressure_s
        pause = BACKOFF_FIRST_S
        while todo:  # bounded by the deadline
            answers: Any = self.call("tx_submit_batch", {"txs": [raws[i].hex() for i in todo]})
            retry = []
            for index, answer in zip(todo, answers, strict=True):
                out[index] = answer
                if (answer.get("error") or {}).get("code") == MEMPOOL_FULL:
                    retry.append(index)
            if not retry or time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
            pause = min(BACKOFF_MAX_S, pause * 2)
            todo = retry
        return out

    def wait(self, tx_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        result: Any = self.call("tx_wait", {"tx_id": tx_id, "timeout_ms": int(timeout_s * 1000)})
        return dict(result)

    # --- subscriptions -------------------------------------------------------------------------

    def _push_channel(self) -> RpcClient:
        if self._push is None:
            if is_gateway(self.target):
                lines = WebSocketLines.open(self.target, self.credentials, self.timeout_s)
                self._push = RpcClient(self.target, timeout_s=self.timeout_s, connection=lines)
            else:
                rpc = self._open()
                assert isinstance(rpc, RpcClient)
                self._push = rpc
        return self._push

    def subscribe(self, topic: str) -> int:
        return self._push_channel().subscribe(topic)

    def unsubscribe(self, subscription_id: int) -> bool:
        return self._push_channel().unsubscribe(subscription_id)

    def next_notification(self, timeout_s: float | None = None) -> Notification:
        return self._push_channel().next_notification(timeout_s)


class AsyncClient:
    """trio client: `async with AsyncClient(target) as client`. Many tasks may call at once."""

    def __init__(
        self,
        target: str | Path,
        *,
        credentials: GatewayCredentials | None = None,
        timeout_s: float = 30.0,
        backpressure_s: float = 30.0,
    ) -> None:
        self.target = str(target)
        self.credentials = credentials or GatewayCredentials()
        self.timeout_s = timeout_s
        self.backpressure_s = backpressure_s
        self._client: AsyncRpcClient | None = None
        self._stack = AsyncExitStack()
        self._lock = trio.Lock()
        self.reconnects = 0

    def _make(self) -> AsyncRpcClient:
        if is_gateway(self.target):
            url, creds, timeout_s = self.target, self.credentials, self.timeout_s

            async def factory() -> trio.abc.Stream:
                return await open_websocket_stream(url, creds, timeout_s)

            return AsyncRpcClient(self.target, self.timeout_s, stream_factory=factory)
        return AsyncRpcClient(Path(self.target), self.timeout_s)

    async def __aenter__(self) -> AsyncClient:
        await self._stack.__aenter__()
        self._client = await self._stack.enter_async_context(self._make())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return bool(await self._stack.__aexit__(exc_type, exc, traceback))

    async def _current(self) -> AsyncRpcClient:
        if self._client is None:
            raise RpcTransportError("use `async with AsyncClient(...)` before calling")
        if not self._client.is_connected:
            async with self._lock:
                if self._client is not None and not self._client.is_connected:
                    self.reconnects += 1
                    self._client = await self._stack.enter_async_context(self._make())
        return self._client

    async def call(self, method: str, params: object = None) -> object:
        client = await self._current()
        try:
            return await client.call(method, params)
        except (NoNodeError, RpcTimeoutError):
            raise
        except RpcTransportError:
            return await (await self._current()).call(method, params)

    async def batch(self, calls: list[tuple[str, object]]) -> list[object | RpcCallError]:
        return await (await self._current()).batch(calls)

    async def subscribe(self, topic: str) -> ClientSubscription:
        return await (await self._current()).subscribe(topic)

    async def submit(self, raw: bytes) -> str:
        deadline = trio.current_time() + self.backpressure_s
        pause = BACKOFF_FIRST_S
        while True:  # bounded by the deadline
            try:
                result: Any = await self.call("tx_submit", {"tx": raw.hex()})
                return str(result["tx_id"])
            except RpcCallError as error:
                if error.code != MEMPOOL_FULL or trio.current_time() + pause > deadline:
                    raise
            await trio.sleep(pause)
            pause = min(BACKOFF_MAX_S, pause * 2)

    async def wait(self, tx_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        result: Any = await self.call(
            "tx_wait", {"tx_id": tx_id, "timeout_ms": int(timeout_s * 1000)}
        )
        return dict(result)


__all__ = [
    "AsyncClient",
    "Caller",
    "Client",
    "GatewayCredentials",
    "MEMPOOL_FULL",
    "is_gateway",
    "with_backpressure",
]
