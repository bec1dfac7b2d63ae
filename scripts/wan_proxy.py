#!/usr/bin/env python3
"""A delaying TCP proxy: a WAN's round trip for links on one machine (this kernel has no
netem qdisc, so `tc qdisc ... delay` is not available).

    scripts/wan_proxy.py --delay-ms 25 --route 127.0.0.1:36650=127.0.0.1:26650 [--route ...]

Each --route LISTEN=TARGET accepts on LISTEN and connects each accepted connection to
TARGET. Every chunk read on either side is held `--delay-ms` before it is written to the
other side, in order; a connection that passes one proxy therefore sees a round trip of
2 x delay-ms (put one proxy in front of each p2p port and list the proxy's port in genesis:
every link, whichever side dialled, passes exactly one proxy). Bandwidth is not limited.

Bounded: at most --max-chunks chunks of at most 64 KiB are in flight per direction of a
connection (the reader waits when they are: back-pressure, as a full TCP window), and at
most --max-connections connections are served at once. End of file is passed on as a
half-close; an error on either side closes both. Stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import dataclass

import trio

CHUNK = 64 * 1024
log = logging.getLogger("wan_proxy")


@dataclass(frozen=True)
class Route:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_route(text: str) -> Route:
    listen, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LISTEN=TARGET, got {text!r}")
    return Route(*parse_address(listen), *parse_address(target))


async def _pump(
    source: trio.SocketStream,
    sink: trio.SocketStream,
    delay_s: float,
    max_chunks: int,
) -> None:
    """Copy source to sink, each chunk written delay_s after it was read."""
    send, receive = trio.open_memory_channel[tuple[float, bytes]](max_chunks)

    async def read() -> None:
        async with send:
            while True:
                data = await source.receive_some(CHUNK)
                if not data:
                    return  # end of file: the writer half-closes after the last chunk
                await send.send((trio.current_time() + delay_s, data))

    async def write() -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                await sink.send_all(data)
        try:
            await sink.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(write)


class Proxy:
    def __init__(
        self,
        routes: list[Route],
        delay_ms: float,
        max_chunks: int = 256,
        max_connections: int = 256,
    ) -> None:
        self.routes = routes
        self.delay_s = delay_ms / 1000
        self.max_chunks = max_chunks
        self.max_connections = max_connections
        self.open = 0  # connections being served now
        self.connections = 0
        self.refused = 0

    async def run(
        self, *, task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve every route until cancelled; task_status gets the bound listen ports."""
        async with trio.open_nursery() as nursery:
            ports = []
            for route in self.routes:
                listeners = await trio.open_tcp_listeners(route.listen_port, host=route.listen_host)
                ports.append(listeners[0].socket.getsockname()[1])
                for listener in listeners:
                    nursery.start_soon(self._accept, listener, route)
            task_status.started(ports)

    async def _accept(self, listener: trio.SocketListener, route: Route) -> None:
        async with listener, trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                if self.open >= self.max_connections:
                    self.refused += 1
                    await trio.aclose_forcefully(stream)
                    continue
                self.open += 1
                nursery.start_soon(self._serve, stream, route)

    async def _serve(self, client: trio.SocketStream, route: Route) -> None:
        self.connections += 1
        try:
            try:
                with trio.fail_after(10):
                    upstream = await trio.open_tcp_stream(route.target_host, route.target_port)
            except (OSError, trio.TooSlowError) as exc:
                log.debug("connect to %s:%d: %s", route.target_host, route.target_port, exc)
                await trio.aclose_forcefully(client)
                return
            async with client, upstream:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, client, upstream, self.delay_s, self.max_chunks)
                        nursery.start_soon(_pump, upstream, client, self.delay_s, self.max_chunks)
                except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass  # one side went away: both close (the async with)
        finally:
            self.open -= 1


async def main_async(args: argparse.Namespace) -> None:
    proxy = Proxy(args.route, args.delay_ms, args.max_chunks, args.max_connections)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(proxy.run)
            print(f"wan_proxy: {args.delay_ms} ms each way on ports {ports}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--route", type=parse_route, action="append", required=True)
    p.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    p.add_argument("--max-chunks", type=int, default=256)
    p.add_argument("--max-connections", type=int, default=256)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    trio.run(main_async, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
