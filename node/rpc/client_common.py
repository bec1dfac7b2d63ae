"""What the blocking and the trio client share: exceptions, request encoding, and the
interpretation of the lines a server sends back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

from node.rpc.errors import SUBSCRIBER_DROPPED
from node.rpc.protocol import JSONRPC_VERSION, JsonId, dump_json, is_legal_id

DEFAULT_HINT: Final = "is the node running? start it with `chain start`"
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1_048_576
RECEIVE_CHUNK_BYTES: Final = 65_536


class RpcTransportError(Exception):
    """The conversation with the node failed (connection lost, garbled answer, timeout)."""


class NoNodeError(RpcTransportError):
    """Nothing serves the control socket: the file is missing or nobody accepts on it."""

    def __init__(self, socket_path: Path | str, reason: str, hint: str | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.reason = reason
        self.hint = DEFAULT_HINT if hint is None else hint
        super().__init__(f"no node at {socket_path}: {self.hint} ({reason})")


class RpcTimeoutError(RpcTransportError):
    """No answer within the client's timeout."""


class RpcCallError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, RpcCallError)
            and (self.code, self.message, self.data) == (other.code, other.message, other.data)
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class SubscriptionDroppedError(RpcCallError):
    """The subscription ended because its subscriber fell behind; data was missed."""


@dataclass(frozen=True, slots=True)
class Response:
    id: JsonId
    result: object
    error: RpcCallError | None


@dataclass(frozen=True, slots=True)
class Notification:
    """A subscription push. `error` is set on the final notification of a dropped one."""

    subscription: int
    result: object
    error: RpcCallError | None = None


ServerMessage: TypeAlias = Response | Notification | list[Response]


def connect_error(socket_path: Path | str, error: OSError, hint: str | None) -> RpcTransportError:
    """Translate a connect() failure into an error that says what to do."""
    if isinstance(error, FileNotFoundError):
        return NoNodeError(socket_path, "socket file missing", hint)
    if isinstance(error, ConnectionRefusedError):
        return NoNodeError(socket_path, "connection refused: stale socket file", hint)
    if isinstance(error, PermissionError):
        return RpcTransportError(
            f"cannot open control socket {socket_path}: permission denied (it belongs to the "
            "user who runs the node; run this command as that user)"
        )
    return RpcTransportError(f"cannot connect to control socket {socket_path}: {error}")


def encode_request(method: str, params: object, request_id: int | None) -> dict[str, object]:
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    request: dict[str, object] = {"jsonrpc": JSONRPC_VERSION, "method": method}
    if params is not None:
        if not isinstance(params, dict | list | tuple):
            raise TypeError(f"params must be a dict, a list or None, got {type(params).__name__}")
        request["params"] = list(params) if isinstance(params, tuple) else params
    if request_id is not None:
        request["id"] = request_id
    return request


def encode_line(message: object) -> bytes:
    return (dump_json(message) + "\n").encode("ascii")


def _error_from(value: object) -> RpcCallError:
    if not isinstance(value, dict):
        raise RpcTransportError(f"the node sent a malformed error object: {value!r:.200}")
    code = value.get("code")
    message = value.get("message")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        raise RpcTransportError(f"the node sent a malformed error object: {value!r:.200}")
    kind = SubscriptionDroppedError if code == SUBSCRIBER_DROPPED else RpcCallError
    return kind(code, message, value.get("data"))


def _response_from(value: object) -> Response:
    if not isinstance(value, dict) or value.get("jsonrpc") != JSONRPC_VERSION:
        raise RpcTransportError(f"the node sent something that is not a response: {value!r:.200}")
    response_id = value.get("id")
    if not is_legal_id(response_id):
        raise RpcTransportError(f"the node sent a response with a bad id: {response_id!r:.80}")
    if "error" in value:
        return Response(response_id, None, _error_from(value["error"]))
    if "result" not in value:
        raise RpcTransportError(f"the node sent a response without result: {value!r:.200}")
    return Response(response_id, value["result"], None)


def _notification_from(value: dict[str, object]) -> Notification:
    params = value.get("params")
    if value.get("method") != "subscription" or not isinstance(params, dict):
        raise RpcTransportError(f"the node sent an unexpected notification: {value!r:.200}")
    subscription = params.get("subscription")
    if isinstance(subscription, bool) or not isinstance(subscription, int):
        raise RpcTransportError(f"the node sent a notification without id: {value!r:.200}")
    if "error" in params:
        return Notification(subscription, None, _error_from(params["error"]))
    return Notification(subscription, params.get("result"))


def parse_server_line(line: bytes) -> ServerMessage:
    """One line from the server: a response, a batch of responses, or a notification."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise RpcTransportError(f"the node sent a line that is not JSON: {error}") from None
    if isinstance(value, list):
        return [_response_from(item) for item in value]
    if isinstance(value, dict) and "method" in value:
        return _notification_from(value)
    return _response_from(value)


def socket_path_text(socket_path: Path | str) -> str:
    return os.fspath(socket_path)
