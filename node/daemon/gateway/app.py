"""The gateway's ASGI application: routes, authentication, body limits, status codes.

    POST /rpc (or /)   JSON-RPC 2.0: the control socket's methods, results and errors
    GET  /ws           WebSocket: JSON-RPC calls and subscriptions, one message per request
    GET  /metrics      Prometheus text (any role)
    GET  /healthz      200 or 503 with the failed checks (no credential needed)
    GET  /readyz       /healthz plus caught up
    GET  /explorer/    the read-only explorer page (static; its data needs a credential)

HTTP status of a JSON-RPC answer: 401 no or a bad credential, 403 a single request whose
method the role does not allow, 429 over the rate or the concurrency cap, 413 body too
large, 408 body too slow, 204 notifications only, else 200 (a batch's item errors, and
every application error, stay inside the 200 answer as JSON-RPC errors).
"""

from __future__ import annotations

import json
import logging
import math
import mimetypes
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import trio

from node.daemon.gateway.auth import Authenticator, Credential, CredentialGate, unauthenticated
from node.daemon.gateway.table import ConnectionInfo, ConnectionTable
from node.daemon.gateway.websocket import Receive, Send, WebSocketStream
from node.daemon.observe.health import Health, as_json
from node.daemon.observe.metrics import CONTENT_TYPE as METRICS_TYPE
from node.daemon.observe.metrics import Metrics
from node.rpc.errors import (
    FORBIDDEN,
    INVALID_REQUEST,
    LINE_TIMEOUT,
    RATE_LIMITED,
    UNAUTHENTICATED,
    RpcError,
)
from node.rpc.protocol import dump_json, error_object, error_response
from node.rpc.server import OneShotSession, RpcServer

log = logging.getLogger("chain.gateway")

SUBPROTOCOL: Final = "chain.jsonrpc"
BEARER_SUBPROTOCOL: Final = "bearer."
STATUS_OF_CODE: Final = {UNAUTHENTICATED: 401, FORBIDDEN: 403, RATE_LIMITED: 429}
_ERROR_PREFIX: Final = '{"jsonrpc":"2.0","error":'
SECURITY_HEADERS: Final = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
EXPLORER_CSP: Final = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    body_timeout_s: float
    write_timeout_s: float
    ws_idle_timeout_s: float
    max_in_flight_per_client: int


class GatewayApp:
    def __init__(
        self,
        rpc: RpcServer,
        auth: Authenticator,
        table: ConnectionTable,
        limits: Limits,
        *,
        metrics: Metrics | None,
        health: Health | None,
        explorer: bool,
    ) -> None:
        self._rpc = rpc
        self._auth = auth
        self._table = table
        self._limits = limits
        self._metrics = metrics
        self._health = health
        self._explorer = explorer
        self._in_flight: Counter[str] = Counter()
        self.http_status: Counter[int] = Counter()
        self.websockets_open = 0
        self.auth_failures = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "connections_open": len(self._table),
            "refused": dict(self._table.refused),
            "http_status": dict(self.http_status),
            "websockets_open": self.websockets_open,
            "auth_failures": self.auth_failures,
            "deadline_closes": self._table.deadline_closes,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    # --- who is calling ------------------------------------------------------------------------

    def _authenticate(
        self, scope: dict[str, Any], info: ConnectionInfo | None
    ) -> Credential | RpcError:
        if info is not None and info.cert_serial is not None:
            return self._auth.from_certificate_serial(info.cert_serial)
        headers = _headers(scope)
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._auth.from_token(token.strip())
        if scope["type"] == "websocket":
            for protocol in scope.get("subprotocols", []):
                if protocol.startswith(BEARER_SUBPROTOCOL):
                    return self._auth.from_token(protocol[len(BEARER_SUBPROTOCOL) :])
        return unauthenticated("no client certificate and no bearer token")

    # --- HTTP ----------------------------------------------------------------------------------

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        info = self._table.lookup(scope.get("client"))
        method = scope["method"]
        path = scope["path"]
        if info is not None:
            info.requests += 1
        if path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
            await self._health_answer(send, info, ready=path == "/readyz")
        elif path in ("/rpc", "/") and method == "POST":
            await self._rpc_answer(scope, receive, send, info)
        elif path == "/metrics" and method == "GET":
            await self._metrics_answer(scope, send, info)
        elif path == "/" and method == "GET" and self._explorer:
            await self._respond(send, info, 302, b"", b"text/plain", [(b"location", b"/explorer/")])
        elif path.startswith("/explorer/") and method in ("GET", "HEAD") and self._explorer:
            await self._static(send, info, path[len("/explorer/") :] or "index.html")
        else:
            error = error_object(INVALID_REQUEST, f"no such endpoint: {method} {path[:80]}")
            await self._json(send, info, 404, error_response(None, error))

    async def _respond(
        self,
        send: Send,
        info: ConnectionInfo | None,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.http_status[status] += 1
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
            *(extra or []),
        ]
        if info is not None:
            info.deadline = trio.current_time() + self._limits.write_timeout_s
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            if info is not None:
                info.deadline = math.inf

    async def _json(
        self, send: Send, info: ConnectionInfo | None, status: int, value: object, extra: Any = None
    ) -> None:
        body = (dump_json(value) + "\n").encode("ascii")
        await self._respond(send, info, status, body, b"application/json", extra)

    async def _refuse(self, send: Send, info: ConnectionInfo | None, error: RpcError) -> None:
        if error.code == UNAUTHENTICATED:
            self.auth_failures += 1
        extra = []
        status = STATUS_OF_CODE.get(error.code, 400)
        if error.code == RATE_LIMITED and isinstance(error.data, dict):
            retry_s = max(1, math.ceil(int(error.data.get("retry_after_ms", 1000)) / 1000))
            extra.append((b"retry-after", str(retry_s).encode()))
        if status == 401:
            extra.append((b"www-authenticate", b'Bearer realm="chain"'))
        await self._json(send, info, status, error_response(None, error.to_json_object()), extra)

    async def _health_answer(self, send: Send, info: ConnectionInfo | None, *, ready: bool) -> None:
        if self._health is None:
            await self._json(send, info, 404, {"status": "no health checks on this gateway"})
            return
        checks = self._health.ready() if ready else self._health.checks()
        report = as_json(checks)
        await self._json(send, info, 200 if report["status"] == "ok" else 503, report)

    async def _metrics_answer(
        self, scope: dict[str, Any], send: Send, info: ConnectionInfo | None
    ) -> None:
        credential = self._authenticate(scope, info)
        if isinstance(credential, RpcError):
            await self._refuse(send, info, credential)
            return
        if self._metrics is None:
            await self._json(send, info, 404, {"status": "metrics are off"})
            return
        refusal = CredentialGate(self._auth, credential).admit(["metrics"])
        if refusal is not None:
            await self._refuse(send, info, refusal)
            return
        await self._respond(send, info, 200, self._metrics.render(), METRICS_TYPE.encode())

    async def _rpc_answer(
        self, scope: dict[str, Any], receive: Receive, send: Send, info: ConnectionInfo | None
    ) -> None:
        credential = self._authenticate(scope, info)
        if isinstance(credential, RpcError):
            await self._refuse(send, info, credential)
            return
        if self._in_flight[credential.key] >= self._limits.max_in_flight_per_client:
            await self._refuse(send, info, self._too_many(credential))
            return
        self._in_flight[credential.key] += 1
        try:
            body = await self._read_body(scope, receive, send, info)
            if body is None:
                return
            session = OneShotSession(
                self._rpc.new_session_id(), CredentialGate(self._auth, credential)
            )
            answer = await self._rpc.answer_body(session, body)
        finally:
            self._in_flight[credential.key] -= 1
            if self._in_flight[credential.key] <= 0:
                del self._in_flight[credential.key]
        if answer is None:
            self.http_status[204] += 1
            await send({"type": "http.response.start", "status": 204, "headers": SECURITY_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        status = 200
        if answer.startswith(_ERROR_PREFIX):
            code = json.loads(answer)["error"]["code"]
            status = STATUS_OF_CODE.get(code, 200)
        await self._respond(
            send, info, status, (answer + "\n").encode("ascii"), b"application/json"
        )

    def _too_many(self, credential: Credential) -> RpcError:
        limit = self._limits.max_in_flight_per_client
        return RpcError(
            RATE_LIMITED,
            f"{credential.name!r} already has {limit} requests or WebSockets open (the cap); "
            "wait for one to finish",
            {"retry_after_ms": 1000, "max_in_flight": limit},
        )

    async def _read_body(
        self, scope: dict[str, Any], receive: Receive, send: Send, info: ConnectionInfo | None
    ) -> bytes | None:
        limit = self._limits.max_body_bytes
        declared = _headers(scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(send, info, limit)
            return None
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(self._limits.body_timeout_s) as scope_timer:
            while True:  # bounded by the deadline and by the size limit
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await self._too_large(send, info, limit)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if scope_timer.cancelled_caught:
            timeout_s = self._limits.body_timeout_s
            error = error_object(
                LINE_TIMEOUT,
                f"request body not received within {timeout_s:g} s; send it at once",
                {"body_timeout_s": timeout_s},
            )
            await self._json(
                send, info, 408, error_response(None, error), [(b"connection", b"close")]
            )
            return None
        return b"".join(chunks)

    async def _too_large(self, send: Send, info: ConnectionInfo | None, limit: int) -> None:
        error = error_object(
            INVALID_REQUEST,
            f"invalid request: body over {limit} bytes; send smaller batches",
            {"max_body_bytes": limit},
        )
        await self._json(send, info, 413, error_response(None, error), [(b"connection", b"close")])

    async def _static(self, send: Send, info: ConnectionInfo | None, name: str) -> None:
        if "/" in name or name.startswith(".") or name not in _explorer_files():
            await self._json(send, info, 404, {"error": "not found"})
            return
        body = (resources.files("node.daemon.gateway") / "explorer" / name).read_bytes()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        await self._respond(
            send,
            info,
            200,
            body,
            content_type.encode(),
            [(b"content-security-policy", EXPLORER_CSP)],
        )

    # --- WebSocket -----------------------------------------------------------------------------

    async def _websocket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        info = self._table.lookup(scope.get("client"))
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        if scope["path"] != "/ws":
            await _deny(send, 404, {"error": "WebSocket endpoint is /ws"})
            return
        credential = self._authenticate(scope, info)
        if isinstance(credential, RpcError):
            self.auth_failures += 1
            await _deny(send, 401, error_response(None, credential.to_json_object()))
            return
        if self._in_flight[credential.key] >= self._limits.max_in_flight_per_client:
            await _deny(
                send, 429, error_response(None, self._too_many(credential).to_json_object())
            )
            return
        if info is None:
            await _deny(send, 500, {"error": "connection not registered"})
            return
        offered = scope.get("subprotocols", [])
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if SUBPROTOCOL in offered:
            accept["subprotocol"] = SUBPROTOCOL
        self._in_flight[credential.key] += 1
        self.websockets_open += 1
        try:
            await send(accept)
            stream = WebSocketStream(
                receive,
                send,
                info,
                idle_timeout_s=self._limits.ws_idle_timeout_s,
                write_timeout_s=self._limits.write_timeout_s,
            )

            def started(connection: Any) -> None:
                stream.has_subscriptions = lambda: connection.subscription_count > 0

            gate = CredentialGate(self._auth, credential)
            await self._rpc.serve_stream(stream, gate=gate, started=started)
        finally:
            self.websockets_open -= 1
            self._in_flight[credential.key] -= 1
            if self._in_flight[credential.key] <= 0:
                del self._in_flight[credential.key]


async def _deny(send: Send, status: int, value: object) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (ASGI's websocket.http.response)."""
    body = (dump_json(value) + "\n").encode("ascii")
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:  # ends with the server: startup, then shutdown
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in scope.get("headers", []):
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


_FILES: set[str] | None = None


def _explorer_files() -> set[str]:
    global _FILES
    if _FILES is None:
        folder = resources.files("node.daemon.gateway") / "explorer"
        _FILES = {entry.name for entry in folder.iterdir() if entry.is_file()}
    return _FILES
