"""The gateway's listener: TLS, caps and deadlines around hypercorn's HTTP/1.1 and WebSocket
protocol handling (its trio worker's per-connection TCPServer; we own the accept loop).

Why our own accept loop: hypercorn has no connection caps and does not hand the client
certificate to the application. Here each accepted TCP connection is first counted against
the total and per-address caps (refused before any TLS work), then gets a TLS handshake
with a deadline, then its verified client certificate serial is noted, and only then does
hypercorn parse HTTP on it. Deadlines: handshake (handshake_timeout), request head and
keep-alive idle (hypercorn's keep_alive_timeout: its idle timer runs from the connection's
start or last response until a whole request head is in), body (the app), writes (the
sweeper in table.py), a quiet WebSocket (websocket.py).

TLS: 1.2 or 1.3 (older ERP stacks lack 1.3), ECDHE with AES-GCM or ChaCha20 only. The
client certificate is optional at the TLS layer so that a caller without one gets an HTTP
401 with advice, or can use a bearer token; a certificate that does not chain to the
gateway CA fails the handshake itself (TLS alert unknown_ca): Python's ssl module cannot
accept an unverified certificate to refuse it later, nor should it.
"""

from __future__ import annotations

import logging
import math
import ssl
from pathlib import Path
from typing import Any, Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from node.daemon.config import GatewaySection, split_address
from node.daemon.gateway import ca
from node.daemon.gateway.app import GatewayApp, Limits
from node.daemon.gateway.auth import Authenticator
from node.daemon.gateway.table import ConnectionTable
from node.daemon.observe.health import Health
from node.daemon.observe.metrics import Metrics
from node.rpc.server import RpcServer

log = logging.getLogger("chain.gateway")

TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"
MAX_HEAD_BYTES: Final = 16 * 1024


def server_ssl_context(home: Path) -> ssl.SSLContext:
    directory = ca.gateway_dir(home)
    for name in ("ca.pem", "server.pem", "server.key"):
        if not (directory / name).exists():
            raise ca.GatewayCaError(
                f"{directory / name} is missing: run `chain gateway init --home {home}`"
            )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    context.load_verify_locations(cafile=str(directory / "ca.pem"))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


class Gateway:
    """Serve `rpc`'s methods over HTTPS and WebSocket, with /metrics, /healthz, /explorer."""

    def __init__(
        self,
        home: Path,
        settings: GatewaySection,
        rpc: RpcServer,
        *,
        metrics: Metrics | None,
        health: Health | None,
    ) -> None:
        self.settings = settings
        self._host, self._port = split_address(settings.listen, "[gateway] listen")
        self._ssl = server_ssl_context(home)
        self.auth = Authenticator(
            home,
            {
                "read": float(settings.rate_read),
                "submit": float(settings.rate_submit),
                "admin": float(settings.rate_admin),
            },
        )
        self.table = ConnectionTable(
            max_connections=settings.max_connections, max_per_ip=settings.max_connections_per_ip
        )
        self.app = GatewayApp(
            rpc,
            self.auth,
            self.table,
            Limits(
                max_body_bytes=settings.max_body_bytes,
                body_timeout_s=settings.body_timeout_ms / 1000,
                write_timeout_s=settings.write_timeout_ms / 1000,
                ws_idle_timeout_s=settings.ws_idle_timeout_ms / 1000,
                max_in_flight_per_client=settings.max_in_flight_per_client,
            ),
            metrics=metrics,
            health=health,
            explorer=settings.explorer,
        )
        if metrics is not None:
            metrics.gateway_stats = self.app.statistics
        self._config = self._hypercorn_config(settings)
        # Our app takes plain dicts; hypercorn's TypedDict signature is the same at runtime.
        app: Any = self.app
        self._wrapped = wrap_app(app, self._config.wsgi_max_body_size, "asgi")
        self._context = WorkerContext(None)
        self.handshake_failures = 0
        self.port: int | None = None

    @staticmethod
    def _hypercorn_config(settings: GatewaySection) -> HypercornConfig:
        config = HypercornConfig()
        config.keep_alive_timeout = settings.header_timeout_ms / 1000
        config.ssl_handshake_timeout = settings.handshake_timeout_ms / 1000
        config.h11_max_incomplete_size = MAX_HEAD_BYTES
        config.websocket_max_message_size = settings.max_body_bytes
        config.alpn_protocols = ["http/1.1"]
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("chain.gateway.http")
        config.graceful_timeout = 1.0
        return config

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self._port, host=self._host)
        try:
            self.port = int(listeners[0].socket.getsockname()[1])
            async with trio.open_nursery() as nursery:
                await nursery.start(self.table.sweep)
                await nursery.start(trio.serve_listeners, self._handle, listeners)
                log.info("gateway listening on https://%s:%d", self._host, self.port)
                task_status.started(self.port)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        info = self.table.admit(tcp)
        if info is None:
            await trio.aclose_forcefully(tcp)  # over a cap: no TLS work for it
            return
        try:
            stream = trio.SSLStream(tcp, self._ssl, server_side=True, https_compatible=True)
            info.deadline = trio.current_time() + self.settings.handshake_timeout_ms / 1000
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.handshake_failures += 1
                self.table.refused["tls_handshake"] += 1
                log.debug("gateway TLS handshake with %s failed: %r", info.ip, exc)
                return
            info.deadline = math.inf
            der = stream.getpeercert(binary_form=True)
            if der:
                info.cert_serial = ca.serial_of(der)
            server: Any = TCPServer(self._wrapped, self._config, self._context, {}, stream)
            await server.run()
        finally:
            self.table.release(info)
            await trio.aclose_forcefully(tcp)
