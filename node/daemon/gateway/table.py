"""The gateway's connections: caps by source address, and deadlines a sweeper enforces.

hypercorn's sends are shielded from cancellation, so a client that stops reading cannot be
timed out from inside the request; instead each connection carries a deadline (trio time),
and one sweeper task closes the TCP socket of any connection past it. Closing the socket
wakes every task blocked on it."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import trio

SWEEP_INTERVAL_S: Final = 0.25


@dataclass(eq=False)
class ConnectionInfo:
    ip: str
    port: int
    tcp: trio.SocketStream
    deadline: float = math.inf
    cert_serial: str | None = None
    cert_error: str | None = None
    closed_by_deadline: bool = False
    requests: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def close_now(self) -> None:
        self.closed_by_deadline = True
        self.tcp.socket.close()


class ConnectionTable:
    def __init__(self, *, max_connections: int, max_per_ip: int) -> None:
        self._max = max_connections
        self._max_per_ip = max_per_ip
        self._by_peer: dict[tuple[str, int], ConnectionInfo] = {}
        self._per_ip: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.deadline_closes = 0

    def __len__(self) -> int:
        return len(self._by_peer)

    def admit(self, tcp: trio.SocketStream) -> ConnectionInfo | None:
        """Register a new TCP connection, or None (and count why) when over a cap."""
        peer = tcp.socket.getpeername()
        ip, port = str(peer[0]), int(peer[1])
        if len(self._by_peer) >= self._max:
            self.refused["max_connections"] += 1
            return None
        if self._per_ip[ip] >= self._max_per_ip:
            self.refused["max_connections_per_ip"] += 1
            return None
        info = ConnectionInfo(ip, port, tcp)
        self._by_peer[(ip, port)] = info
        self._per_ip[ip] += 1
        return info

    def release(self, info: ConnectionInfo) -> None:
        if self._by_peer.pop((info.ip, info.port), None) is info:
            self._per_ip[info.ip] -= 1
            if self._per_ip[info.ip] <= 0:
                del self._per_ip[info.ip]

    def lookup(self, client: object) -> ConnectionInfo | None:
        """The connection of an ASGI scope's "client" ([host, port])."""
        if not isinstance(client, list | tuple) or len(client) != 2:
            return None
        return self._by_peer.get((str(client[0]), int(client[1])))

    async def sweep(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(SWEEP_INTERVAL_S)
            now = trio.current_time()
            for info in list(self._by_peer.values()):
                if now > info.deadline:
                    self.deadline_closes += 1
                    info.close_now()
