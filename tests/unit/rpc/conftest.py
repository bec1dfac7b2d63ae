"""Shared helpers for the RPC tests: short socket paths, a server with toy methods, and a raw
line-level connection that sends exact bytes and reads exact lines."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from node.rpc import CallContext, Params, RpcError, RpcServer

IO_TIMEOUT_S = 10.0  # generous: only reached when a test is already failing


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private directory under /tmp: tmp_path can exceed the 100-byte socket path limit."""
    directory = Path(tempfile.mkdtemp(prefix="rpc-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def socket_path(short_dir: Path) -> Path:
    return short_dir / "ctl" / "control.sock"


class Gate:
    """Lets a test hold a handler until it chooses to release it."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()


def register_toy_methods(server: RpcServer, gate: Gate) -> None:
    """Methods that exercise every path of the server (the JSON-RPC spec's examples too)."""

    async def echo(params: Params, context: CallContext) -> object:
        return params.value

    async def subtract(params: Params, context: CallContext) -> object:
        return params.int("minuend") - params.int("subtrahend")

    async def total(params: Params, context: CallContext) -> object:
        return sum(params.int(index) for index in range(len(params.value)))

    async def get_data(params: Params, context: CallContext) -> object:
        return ["hello", 5]

    async def nothing(params: Params, context: CallContext) -> object:
        return None

    async def app_error(params: Params, context: CallContext) -> object:
        raise RpcError(1001, "mempool full: retry in a few seconds", {"pending": 5000})

    async def crash(params: Params, context: CallContext) -> object:
        raise KeyError("handler bug")

    async def not_json(params: Params, context: CallContext) -> object:
        return {"value": object()}

    async def nan(params: Params, context: CallContext) -> object:
        return float("nan")

    async def big(params: Params, context: CallContext) -> object:
        return "x" * params.int("size", min=0)

    async def hang(params: Params, context: CallContext) -> object:
        await trio.sleep_forever()

    async def gated(params: Params, context: CallContext) -> object:
        gate.entered.set()
        await gate.release.wait()
        return "released"

    async def watch_tx(params: Params, context: CallContext) -> object:
        tx_id = params.str("tx_id")
        subscription = context.subscribe(f"tx:{tx_id}")
        # Published before the answer is written: must still reach the client after it.
        server.hub.publish(f"tx:{tx_id}", {"tx_id": tx_id, "status": "early"})
        await trio.sleep(0)
        return subscription.id

    async def watch_then_fail(params: Params, context: CallContext) -> object:
        context.subscribe("blocks")
        raise RpcError(1002, "refused after subscribing")

    for name, handler, names in [
        ("echo", echo, None),
        ("subtract", subtract, ("minuend", "subtrahend")),
        ("sum", total, None),
        ("get_data", get_data, ()),
        ("update", nothing, None),
        ("notify_hello", nothing, None),
        ("notify_sum", nothing, None),
        ("app_error", app_error, None),
        ("crash", crash, None),
        ("not_json", not_json, None),
        ("nan", nan, None),
        ("big", big, ("size",)),
        ("hang", hang, None),
        ("gated", gated, None),
        ("watch_tx", watch_tx, ("tx_id",)),
        ("watch_then_fail", watch_then_fail, None),
    ]:
        server.method(name, handler, params=names)
    server.hub.allow_topic("blocks")
    server.hub.allow_topic_prefix("tx:")


ServerFactory = Callable[..., Awaitable[RpcServer]]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def start_server(nursery: trio.Nursery, socket_path: Path, gate: Gate) -> ServerFactory:
    """`await start_server(**limits)`: a toy server listening on `socket_path`."""

    async def start(**limits: Any) -> RpcServer:
        server = RpcServer(socket_path, **limits)
        register_toy_methods(server, gate)
        await nursery.start(server.run)
        return server

    return start


@pytest.fixture
async def server(start_server: ServerFactory) -> RpcServer:
    return await start_server()


class RawConnection:
    """Bytes in, lines out: for checking the exact wire behaviour."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    @classmethod
    async def open(cls, path: Path) -> RawConnection:
        return cls(await trio.open_unix_socket(str(path)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_json(self, value: object) -> None:
        await self.send(json.dumps(value).encode() + b"\n")

    async def read_line(self) -> bytes:
        with trio.fail_after(IO_TIMEOUT_S):
            while b"\n" not in self._buffer:  # bounded by the timeout
                data = await self.stream.receive_some(65_536)
                if not data:
                    raise EOFError(f"connection closed; unterminated data: {bytes(self._buffer)!r}")
                self._buffer += data
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    async def read_json(self) -> Any:
        return json.loads(await self.read_line())

    async def request(self, value: object) -> Any:
        await self.send_json(value)
        return await self.read_json()

    async def expect_closed(self) -> None:
        """Everything buffered was read by the caller; now the server must hang up."""
        with trio.fail_after(IO_TIMEOUT_S):
            for _ in range(10_000):
                try:
                    data = await self.stream.receive_some(65_536)
                except trio.BrokenResourceError:
                    return  # ECONNRESET: the server closed with our bytes unread
                if not data:
                    return
                self._buffer += data
        raise AssertionError("connection still open")

    async def aclose(self) -> None:
        await self.stream.aclose()


@pytest.fixture
async def connect(socket_path: Path) -> AsyncIterator[Callable[[], Awaitable[RawConnection]]]:
    """`await connect()`: a raw connection, closed at the end of the test."""
    opened: list[RawConnection] = []

    async def open_one() -> RawConnection:
        connection = await RawConnection.open(socket_path)
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        await trio.aclose_forcefully(connection.stream)


async def poll_until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition the server reaches asynchronously (bounded in count and time)."""
    with trio.fail_after(IO_TIMEOUT_S):
        for _ in range(100_000):
            if condition():
                return
            await trio.sleep(0.005)
    raise AssertionError(f"never reached: {what}")


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool], str], Awaitable[None]]:
    """`await wait_until(condition, what)`: bounded polling for asynchronous effects."""
    return poll_until
