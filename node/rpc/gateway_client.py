"""Clients for a node's HTTPS gateway (docs/GATEWAY.md), with the control socket's calls.

    HttpRpcClient(url, creds)           blocking; JSON-RPC over HTTPS POST, kept-alive
    RpcClient(url, connection=WebSocketLines.open(url, creds))     blocking, over /ws
    AsyncRpcClient(url, stream_factory=lambda: open_websocket_stream(url, creds))   trio

HTTP/1.1 is h11's and WebSocket framing is wsproto's (both sans-I/O, the libraries the
server side uses too): nothing here parses HTTP by hand. Credentials are a client
certificate directory from `chain gateway issue-client` (client.pem, client.key, ca.pem)
and/or a bearer token; the server certificate is checked against the gateway CA and the
host name.
"""

from __future__ import annotations

import math
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from node.rpc.client_common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RECEIVE_CHUNK_BYTES,
    Response,
    RpcCallError,
    RpcTimeoutError,
    RpcTransportError,
    encode_request,
    parse_server_line,
)
from node.rpc.protocol import dump_json

SUBPROTOCOL: Final = "chain.jsonrpc"
USER_AGENT: Final = "chain-client/1"


@dataclass(frozen=True)
class GatewayCredentials:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None

    @classmethod
    def from_dir(cls, directory: Path | str, token: str | None = None) -> GatewayCredentials:
        """A directory written by `chain gateway issue-client` (a token-only caller may pass
        a directory holding just ca.pem)."""
        d = Path(directory)
        cert = d / "client.pem"
        return cls(
            ca_file=d / "ca.pem" if (d / "ca.pem").exists() else None,
            cert_file=cert if cert.exists() else None,
            key_file=d / "client.key" if cert.exists() else None,
            token=token,
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def headers(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []


def split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"a gateway URL looks like https://host:8443, got {url!r}")
    return parts.hostname, parts.port or 443, parts.path.rstrip("/")


def _tls_error(url: str, error: Exception) -> RpcTransportError:
    return RpcTransportError(
        f"TLS with the gateway at {url} failed: {error} (is the gateway CA ca.pem the one "
        "you were given, and your client certificate issued by it and not revoked?)"
    )


class HttpRpcClient:
    """Blocking JSON-RPC over HTTPS POST on one kept-alive connection (reopened as needed).

    An HTTP error status with a JSON-RPC error body raises RpcCallError with that error
    (401 unauthenticated, 403 forbidden, 429 rate limited); anything else is a transport
    error."""

    def __init__(
        self,
        url: str,
        credentials: GatewayCredentials,
        timeout_s: float = 30.0,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.url = url
        self.socket_path = url  # what messages name, as for the socket client
        self.timeout_s = timeout_s
        self._host, self._port, self._base = split_url(url)
        self._credentials = credentials
        self._context = credentials.ssl_context()
        self._max_response_bytes = max_response_bytes
        self._sock: ssl.SSLSocket | None = None
        self._h11: h11.Connection | None = None
        self._next_id = 1

    def __enter__(self) -> HttpRpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._h11 = None

    def _connect(self) -> tuple[ssl.SSLSocket, h11.Connection]:
        if self._sock is not None and self._h11 is not None:
            return self._sock, self._h11
        try:
            raw = socket.create_connection((self._host, self._port), timeout=self.timeout_s)
        except OSError as error:
            raise RpcTransportError(
                f"cannot reach the gateway at {self.url}: {error} (is [gateway] enabled on "
                "that node, and the address right?)"
            ) from None
        try:
            self._sock = self._context.wrap_socket(raw, server_hostname=self._host)
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise _tls_error(self.url, error) from None
        self._h11 = h11.Connection(h11.CLIENT)
        return self._sock, self._h11

    def post(self, body: bytes, path: str = "/rpc") -> tuple[int, bytes]:
        """One POST; retried once on a fresh connection if a kept-alive one was closed by
        the server before any answer (its idle timeout). Every method tolerates that: reads
        are idempotent and a resubmitted transaction answers its tx_id again."""
        for attempt in (1, 2):
            fresh = self._sock is None
            try:
                return self._exchange("POST", path, body)
            except _StaleConnection:
                self.close()
                if fresh or attempt == 2:
                    raise RpcTransportError(
                        f"the gateway at {self.url} closed the connection"
                    ) from None
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            return self._exchange("GET", path, b"")
        except _StaleConnection:
            self.close()
            return self._exchange("GET", path, b"")

    def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        sock, conn = self._connect()
        headers = [
            ("host", f"{self._host}:{self._port}"),
            ("user-agent", USER_AGENT),
            ("content-length", str(len(body))),
            *self._credentials.headers(),
        ]
        if method == "POST":
            headers.append(("content-type", "application/json"))
        deadline = time.monotonic() + self.timeout_s
        try:
            sock.settimeout(self.timeout_s)
            data = conn.send(h11.Request(method=method, target=self._base + path, headers=headers))
            data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as error:
            raise _StaleConnection() from error
        except OSError as error:
            self.close()
            raise RpcTransportError(
                f"sending to the gateway at {self.url} failed: {error}"
            ) from None
        status = 0
        chunks: list[bytes] = []
        size = 0
        got_any = False
        while True:  # bounded by the deadline and the size limit
            event = conn.next_event()
            if event is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.close()
                    raise RpcTimeoutError(f"no answer from the gateway at {self.url} in time")
                sock.settimeout(remaining)
                try:
                    received = sock.recv(RECEIVE_CHUNK_BYTES)
                except TimeoutError:
                    self.close()
                    raise RpcTimeoutError(
                        f"no answer from the gateway at {self.url} in time"
                    ) from None
                except (ConnectionResetError, ssl.SSLError, OSError) as error:
                    if not got_any:
                        raise _StaleConnection() from error
                    self.close()
                    raise RpcTransportError(f"connection to {self.url} lost: {error}") from None
                if not received and not got_any:
                    raise _StaleConnection()
                got_any = True
                conn.receive_data(received)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self._max_response_bytes:
                    self.close()
                    raise RpcTransportError(
                        f"the gateway's answer exceeds {self._max_response_bytes} B"
                    )
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                if not got_any:
                    raise _StaleConnection()
                self.close()
                raise RpcTransportError(f"the gateway at {self.url} closed the connection")
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            self.close()
        else:
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                self.close()
        return status, b"".join(chunks)

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _answer(self, status: int, body: bytes) -> Any:
        if status == 204:
            return None
        try:
            message = parse_server_line(body)
        except RpcTransportError:
            raise RpcTransportError(
                f"the gateway at {self.url} answered HTTP {status}: {body[:200]!r}"
            ) from None
        return message

    def call(self, method: str, params: object = None) -> object:
        request_id = self._take_id()
        body = dump_json(encode_request(method, params, request_id)).encode("ascii")
        message = self._answer(*self.post(body))
        if not isinstance(message, Response):
            raise RpcTransportError(f"unexpected answer from the gateway: {message!r:.200}")
        if message.error is not None:
            raise message.error
        if message.id != request_id:
            raise RpcTransportError(f"the gateway answered id {message.id!r}, not {request_id}")
        return message.result

    def notify(self, method: str, params: object = None) -> None:
        self.post(dump_json(encode_request(method, params, None)).encode("ascii"))

    def batch(self, calls: list[tuple[str, object]]) -> list[object | RpcCallError]:
        if not calls:
            return []
        ids = [self._take_id() for _ in calls]
        body = dump_json(
            [encode_request(m, p, i) for (m, p), i in zip(calls, ids, strict=True)]
        ).encode("ascii")
        message = self._answer(*self.post(body))
        if isinstance(message, Response) and message.error is not None:
            raise message.error  # the whole batch was refused (rate, credential)
        if not isinstance(message, list):
            raise RpcTransportError(f"unexpected answer to a batch: {message!r:.200}")
        by_id = {r.id: r for r in message}
        out: list[object | RpcCallError] = []
        for request_id in ids:
            response = by_id.get(request_id)
            if response is None:
                raise RpcTransportError(f"the batch answer lacks id {request_id}")
            out.append(response.error if response.error is not None else response.result)
        return out


class _StaleConnection(Exception):
    """A kept-alive connection turned out closed before the answer began."""


# --- WebSocket -------------------------------------------------------------------------------


def _ws_request(host: str, port: int, base: str, credentials: GatewayCredentials) -> Request:
    protocols = [SUBPROTOCOL]
    return Request(
        host=f"{host}:{port}",
        target=base + "/ws",
        subprotocols=protocols,
        extra_headers=[(k.encode(), v.encode()) for k, v in credentials.headers()],
    )


def _rejection(url: str, status: int, body: bytes) -> Exception:
    try:
        message = parse_server_line(body)
    except RpcTransportError:
        return RpcTransportError(f"the gateway at {url} refused the WebSocket: HTTP {status}")
    if isinstance(message, Response) and message.error is not None:
        return message.error
    return RpcTransportError(f"the gateway at {url} refused the WebSocket: HTTP {status}")


class WebSocketLines:
    """A blocking WebSocket to /ws that looks like the socket RpcClient reads lines from:
    settimeout, sendall (one message per line), recv (messages as lines), close."""

    def __init__(self, url: str, sock: ssl.SSLSocket, ws: WSConnection) -> None:
        self._url = url
        self._sock = sock
        self._ws = ws
        self._pending = bytearray()
        self._closed = False

    @classmethod
    def open(
        cls, url: str, credentials: GatewayCredentials, timeout_s: float = 30.0
    ) -> WebSocketLines:
        host, port, base = split_url(url)
        try:
            raw = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise RpcTransportError(f"cannot reach the gateway at {url}: {error}") from None
        try:
            sock = credentials.ssl_context().wrap_socket(raw, server_hostname=host)
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise _tls_error(url, error) from None
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(_ws_request(host, port, base, credentials)))
        status, body = 0, bytearray()
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = sock.recv(RECEIVE_CHUNK_BYTES)
            except (TimeoutError, OSError) as error:
                sock.close()
                raise RpcTransportError(f"WebSocket handshake with {url} failed: {error}") from None
            if not data:
                sock.close()
                raise RpcTransportError(
                    f"the gateway at {url} closed during the WebSocket handshake"
                )
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    lines = cls(url, sock, ws)
                    return lines
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        sock.close()
                        raise _rejection(url, status, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        sock.close()
                        raise _rejection(url, status, bytes(body))

    def settimeout(self, timeout_s: float | None) -> None:
        self._sock.settimeout(timeout_s)

    def sendall(self, data: bytes) -> None:
        out = b"".join(
            self._ws.send(Message(data=line.decode("utf-8"))) for line in data.split(b"\n") if line
        )
        self._sock.sendall(out)

    def recv(self, max_bytes: int) -> bytes:
        while not self._pending and not self._closed:  # bounded by the socket timeout
            data = self._sock.recv(RECEIVE_CHUNK_BYTES)
            if not data:
                self._closed = True
                break
            self._ws.receive_data(data)
            self._absorb()
        chunk = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return chunk

    def _absorb(self) -> None:
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                self._pending += event.data.encode("utf-8")
                if event.message_finished:
                    self._pending += b"\n"
            elif isinstance(event, Ping):
                self._sock.sendall(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._closed = True

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class TrioWebSocketStream(trio.abc.Stream):
    """/ws as a line-framed trio stream, for AsyncRpcClient."""

    def __init__(self, url: str, tls: trio.SSLStream[trio.SocketStream], ws: WSConnection) -> None:
        self._url = url
        self._tls = tls
        self._ws = ws
        self._pending = bytearray()
        self._closed = False
        self.socket = tls.transport_stream.socket  # AsyncRpcClient.aclose closes it

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or RECEIVE_CHUNK_BYTES
        while not self._pending and not self._closed:  # one pass per chunk read
            data = await self._tls.receive_some(RECEIVE_CHUNK_BYTES)
            if not data:
                self._closed = True
                break
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    self._pending += event.data.encode("utf-8")
                    if event.message_finished:
                        self._pending += b"\n"
                elif isinstance(event, Ping):
                    await self._tls.send_all(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self._closed = True
        chunk = bytes(self._pending[:limit])
        del self._pending[:limit]
        return chunk

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        out = b"".join(
            self._ws.send(Message(data=line.decode("utf-8")))
            for line in bytes(data).split(b"\n")
            if line
        )
        await self._tls.send_all(out)

    async def wait_send_all_might_not_block(self) -> None:
        await self._tls.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self._closed = True
        await trio.aclose_forcefully(self._tls)


async def open_websocket_stream(
    url: str, credentials: GatewayCredentials, timeout_s: float = 30.0
) -> TrioWebSocketStream:
    host, port, base = split_url(url)
    with trio.fail_after(timeout_s):
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError as error:
            raise RpcTransportError(f"cannot reach the gateway at {url}: {error}") from None
        tls = trio.SSLStream(tcp, credentials.ssl_context(), server_hostname=host)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as error:
            await trio.aclose_forcefully(tcp)
            raise _tls_error(url, error) from None
        ws = WSConnection(ConnectionType.CLIENT)
        await tls.send_all(ws.send(_ws_request(host, port, base, credentials)))
        status, body = 0, bytearray()
        while True:  # bounded by fail_after
            try:
                data = await tls.receive_some(RECEIVE_CHUNK_BYTES)
            except trio.BrokenResourceError as error:
                await trio.aclose_forcefully(tls)
                raise _tls_error(url, error) from None
            if not data:
                await trio.aclose_forcefully(tls)
                raise RpcTransportError(f"the gateway at {url} closed during the handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return TrioWebSocketStream(url, tls, ws)
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        await trio.aclose_forcefully(tls)
                        raise _rejection(url, status, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        await trio.aclose_forcefully(tls)
                        raise _rejection(url, status, bytes(body))
