"""scripts/wan_proxy.py: bytes arrive intact and in order, no sooner than the delay, end of
file passes through, and the connection cap holds. (A lower bound on a delay the proxy
adds on purpose is its function, not a speed assertion.)"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("wan_proxy", SCRIPTS / "wan_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["wan_proxy"] = module
    spec.loader.exec_module(module)
    return module


wan_proxy = _load()


async def _echo(stream: trio.SocketStream) -> None:
    async with stream:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
        await stream.send_eof()


async def _start(nursery: trio.Nursery, delay_ms: float, **kw: int) -> tuple[Any, int]:
    listeners = await nursery.start(partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
    echo_port = listeners[0].socket.getsockname()[1]
    route = wan_proxy.Route("127.0.0.1", 0, "127.0.0.1", echo_port)
    proxy = wan_proxy.Proxy([route], delay_ms, **kw)
    ports = await nursery.start(proxy.run)
    return proxy, ports[0]


async def test_round_trip_is_delayed_and_bytes_are_intact() -> None:
    async with trio.open_nursery() as nursery:
        _, port = await _start(nursery, delay_ms=40)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            started = trio.current_time()
            await stream.send_all(b"ping")
            assert await stream.receive_some(10) == b"ping"
            assert trio.current_time() - started >= 0.08  # through the proxy both ways
            payload = os.urandom(3 * 1024 * 1024)
            received = bytearray()

            async def receive_all() -> None:
                while data := await stream.receive_some(65536):
                    received.extend(data)

            async with trio.open_nursery() as inner:
                inner.start_soon(receive_all)
                for i in range(0, len(payload), 100_000):
                    await stream.send_all(payload[i : i + 100_000])
                await stream.send_eof()  # the echo's EOF comes back through the proxy
            assert bytes(received) == payload
        nursery.cancel_scope.cancel()


async def test_connection_cap_refuses_the_extra_one() -> None:
    async with trio.open_nursery() as nursery:
        proxy, port = await _start(nursery, delay_ms=1, max_connections=1)
        first = await trio.open_tcp_stream("127.0.0.1", port)
        await first.send_all(b"x")
        assert await first.receive_some(1) == b"x"
        second = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(5):
            assert await second.receive_some(1) == b""  # closed at once
        assert proxy.refused == 1
        await first.aclose()
        await second.aclose()
        nursery.cancel_scope.cancel()


def test_route_parsing() -> None:
    r = wan_proxy.parse_route("127.0.0.1:1000=[::1]:2000")
    assert (r.listen_host, r.listen_port, r.target_host, r.target_port) == (
        "127.0.0.1",
        1000,
        "::1",
        2000,
    )
