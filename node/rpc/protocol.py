"""Sans-I/O JSON-RPC 2.0 framing: bytes in, requests or error objects out, and back.

Nothing here touches a socket or trio, so every rule of the specification and every limit
can be tested (and fuzzed) as a pure function, the way python-hyper/h11 separates HTTP
parsing from I/O.

Framing: one JSON text per line, lines end with "\\n" (a "\\r" before it is tolerated).
Whitespace-only lines are ignored.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from itertools import accumulate, count
from typing import Final, TypeAlias

from node.rpc.errors import INVALID_REQUEST, PARSE_ERROR

JsonId: TypeAlias = str | int | float | None
JsonParams: TypeAlias = dict[str, object] | list[object] | None

JSONRPC_VERSION: Final = "2.0"
_REQUEST_MEMBERS: Final = frozenset({"jsonrpc", "method", "params", "id"})
_WHITESPACE: Final = b" \t\r\n"

# Depth scan: an escape pair ("\\x") is removed first so that an escaped quote cannot end a
# string; the regex has no alternation, so it runs in linear time on any input.
_ESCAPE_PAIR: Final = re.compile(rb"\\.", re.DOTALL)
_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)
# After translation an opener is 2 and a closer 0, so that (running sum) - (items so far)
# is the nesting depth after each bracket: opens - closes = 2 * opens - n.
_BRACKET_WEIGHTS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class JsonParseError(ValueError):
    """The line is not acceptable JSON (answered with -32700)."""


class LineTooLongError(ValueError):
    """A line exceeded the framing limit; the connection must be closed."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"request line longer than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed request. `is_notification` is true when the "id" member is absent."""

    method: str
    params: JsonParams
    id: JsonId
    is_notification: bool


@dataclass(frozen=True, slots=True)
class InvalidRequest:
    """A JSON value that is not a valid request (-32600); `id` is echoed when it was legal."""

    id: JsonId
    message: str


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The whole line fails (parse error, empty or oversized batch): one error, id null."""

    code: int
    message: str
    data: object | None = None


RequestItem: TypeAlias = Request | InvalidRequest


@dataclass(frozen=True, slots=True)
class Single:
    item: RequestItem


@dataclass(frozen=True, slots=True)
class Batch:
    items: tuple[RequestItem, ...]


DecodedLine: TypeAlias = Single | Batch | ErrorReply


def max_nesting_depth(text: bytes) -> int:
    """Deepest array/object nesting in `text`, ignoring brackets inside JSON strings.

    Exact for valid JSON and for every valid prefix of invalid JSON, which is all a parser
    reads before it fails, so a parser never nests deeper than this value. Runs in linear
    time with the per-byte work done in C.
    """
    without_escapes = _ESCAPE_PAIR.sub(b"", text)
    outside_strings = b"".join(without_escapes.split(b'"')[0::2])
    weights = outside_strings.translate(_BRACKET_WEIGHTS, _NOT_BRACKETS)
    depths = map(operator.sub, accumulate(weights), count(1))
    return max(0, max(depths, default=0))


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise JsonParseError(f"duplicate object key {key!r}")
            seen.add(key)
    return result


def _reject_constant(name: str) -> object:
    raise JsonParseError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonParseError(f"number {text[:40]} is out of range")
    return value


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicate_keys,
    parse_constant=_reject_constant,
    parse_float=_finite_float,
)


def parse_json_line(line: bytes, *, max_depth: int) -> object:
    """Strict JSON: valid UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting.

    Raises JsonParseError with a message that says what is wrong and where.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonParseError(f"invalid UTF-8 at byte {error.start}") from None
    # Counting openers is a cheap upper bound on the depth; scan only when it could matter.
    if line.count(b"[") + line.count(b"{") > max_depth and max_nesting_depth(line) > max_depth:
        raise JsonParseError(f"JSON nested deeper than {max_depth} levels")
    try:
        return _DECODER.decode(text)
    except JsonParseError:
        raise
    except json.JSONDecodeError as error:
        raise JsonParseError(f"invalid JSON: {error.msg} at character {error.pos}") from None
    except RecursionError:  # unreachable after the depth check; kept as a second fence
        raise JsonParseError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as error:  # e.g. an integer over Python's 4300-digit limit
        raise JsonParseError(f"invalid JSON: {error}") from None


def is_legal_id(value: object) -> bool:
    """String, number or null (bool is not a number in JSON, although it is an int here)."""
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def interpret_request(value: object) -> RequestItem:
    """Check one JSON value against the Request object rules of JSON-RPC 2.0."""
    if not isinstance(value, dict):
        return InvalidRequest(None, f"a request must be a JSON object, got {_describe(value)}")
    request_id = value.get("id")
    if not is_legal_id(request_id):
        return InvalidRequest(
            None, f'"id" must be a string, a number or null, got {_describe(request_id)}'
        )
    unknown = sorted(set(value) - _REQUEST_MEMBERS)
    if unknown:
        return InvalidRequest(
            request_id,
            f"unknown request member {unknown[0]!r}; allowed: jsonrpc, method, params, id",
        )
    if value.get("jsonrpc") != JSONRPC_VERSION:
        return InvalidRequest(request_id, '"jsonrpc" must be exactly "2.0"')
    method = value.get("method")
    if not isinstance(method, str):
        return InvalidRequest(request_id, f'"method" must be a string, got {_describe(method)}')
    params = value.get("params")
    if "params" in value and not isinstance(params, dict | list):
        return InvalidRequest(
            request_id, f'"params" must be an object or an array, got {_describe(params)}'
        )
    return Request(method, params, request_id, is_notification="id" not in value)


def is_blank(line: bytes) -> bool:
    return not line.strip(_WHITESPACE)


def decode_line(line: bytes, *, max_depth: int, max_batch: int) -> DecodedLine:
    """Turn one framed line into a single request, a batch, or a whole-line error."""
    try:
        value = parse_json_line(line, max_depth=max_depth)
    except JsonParseError as error:
        return ErrorReply(PARSE_ERROR, f"parse error: {error}")
    if not isinstance(value, list):
        return Single(interpret_request(value))
    if not value:
        return ErrorReply(INVALID_REQUEST, "invalid request: empty batch")
    if len(value) > max_batch:
        return ErrorReply(
            INVALID_REQUEST,
            f"invalid request: batch of {len(value)} requests exceeds the limit of {max_batch}",
            {"max_batch": max_batch},
        )
    return Batch(tuple(interpret_request(item) for item in value))


def dump_json(value: object) -> str:
    """Compact, ASCII-only (lone surrogates survive), never NaN. Raises TypeError/ValueError."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def error_object(code: int, message: str, data: object | None = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def error_response(request_id: JsonId, error: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": JSONRPC_VERSION, "error": error, "id": request_id}


def result_response(request_id: JsonId, result: object) -> dict[str, object]:
    return {"jsonrpc": JSONRPC_VERSION, "result": result, "id": request_id}


def notification_line(subscription_id: int, member: str, value_json: str) -> bytes:
    """A subscription push; `value_json` is already encoded so fan-out encodes once."""
    return (
        '{"jsonrpc":"2.0","method":"subscription","params":{"subscription":'
        f'{subscription_id},"{member}":{value_json}}}}}\n'
    ).encode("ascii")


class LineBuffer:
    """Accumulates received bytes and yields complete lines, never holding more than
    `max_line_bytes` plus one receive chunk."""

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._start = 0  # first unconsumed byte
        self._scanned_to = 0  # no newline in buffer[_start:_scanned_to]

    def feed(self, data: bytes | bytearray) -> None:
        if self._start and self._start * 2 >= len(self._buffer):
            del self._buffer[: self._start]
            self._scanned_to -= self._start
            self._start = 0
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next complete line without its terminator, or None if more bytes are needed.

        Raises LineTooLongError once the line being assembled exceeds the limit.
        """
        newline_at = self._buffer.find(b"\n", max(self._start, self._scanned_to))
        if newline_at < 0:
            self._scanned_to = len(self._buffer)
            if len(self._buffer) - self._start > self._max_line_bytes:
                raise LineTooLongError(self._max_line_bytes)
            return None
        line = bytes(self._buffer[self._start : newline_at])
        self._start = newline_at + 1
        self._scanned_to = self._start
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self._max_line_bytes:
            raise LineTooLongError(self._max_line_bytes)
        return line

    def pending_bytes(self) -> int:
        return len(self._buffer) - self._start

    def take_remainder(self) -> bytes:
        """At end of stream: the unterminated last line (possibly empty)."""
        rest = bytes(self._buffer[self._start :])
        self._buffer.clear()
        self._start = self._scanned_to = 0
        return rest
