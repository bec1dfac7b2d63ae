"""JSON-RPC 2.0 error codes and the exception handlers raise to answer with an error.

Codes -32768..-32000 are reserved by the JSON-RPC 2.0 specification; -32099..-32000 are the
"server error" band the specification leaves to the implementation. This layer uses
-32000..-32009 for transport-level conditions (overload, timeouts, limits); the daemon's
application codes must lie outside -32768..-32000 (see docs/RPC_TRANSPORT.md).
"""

from __future__ import annotations

from typing import Final

# Specification codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# Implementation-defined server errors (the -32099..-32000 band).
SERVER_BUSY: Final = -32000  # connection limit reached; the connection is then closed
REQUEST_TIMEOUT: Final = -32001  # the handler did not finish within handler_timeout_s
RESPONSE_TOO_LARGE: Final = -32002  # the answer would exceed max_response_bytes
SUBSCRIBER_DROPPED: Final = -32003  # final notification: the subscriber fell behind
TOO_MANY_SUBSCRIPTIONS: Final = -32004  # per-connection subscription limit reached
# Gateway transport (docs/GATEWAY.md): who may call, and how often.
UNAUTHENTICATED: Final = -32005  # no credential, an unknown or a revoked one
FORBIDDEN: Final = -32006  # the credential's role does not allow this method
RATE_LIMITED: Final = -32007  # over the credential's request rate; data.retry_after_ms
LINE_TIMEOUT: Final = -32008  # a request line (or body) did not arrive within its deadline

RESERVED_CODE_MIN: Final = -32768
RESERVED_CODE_MAX: Final = -32000

ERROR_NAMES: Final[dict[int, str]] = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    SERVER_BUSY: "server busy",
    REQUEST_TIMEOUT: "request timed out",
    RESPONSE_TOO_LARGE: "response too large",
    SUBSCRIBER_DROPPED: "subscriber dropped",
    TOO_MANY_SUBSCRIPTIONS: "too many subscriptions",
    UNAUTHENTICATED: "unauthenticated",
    FORBIDDEN: "forbidden",
    RATE_LIMITED: "rate limited",
    LINE_TIMEOUT: "request too slow",
}


class RpcError(Exception):
    """An error answer: raise it from a handler to reply with this code, message and data.

    `message` should tell a person what to do ("mempool full: retry in a few seconds"), and
    `data` (any JSON value) carries machine-readable detail. Codes in the reserved band
    -32768..-32000 are for this layer; application codes belong outside it.
    """

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"JSON-RPC error code must be an int, got {type(code).__name__}")
        if not isinstance(message, str):
            raise TypeError(f"JSON-RPC error message must be a str, got {type(message).__name__}")
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"

    def to_json_object(self) -> dict[str, object]:
        """The JSON-RPC error object: {"code", "message"} plus "data" when there is any."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class InvalidParamsError(RpcError):
    """-32602: the handler's parameters are missing, of the wrong type or out of range."""

    def __init__(self, message: str, data: object | None = None) -> None:
        super().__init__(INVALID_PARAMS, message, data)
