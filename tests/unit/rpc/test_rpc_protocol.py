"""The sans-I/O line parser, fuzzed with hypothesis: it never raises, it classifies every
line, its depth scan matches a reference, and framing does not depend on chunking."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from node.rpc.errors import INVALID_REQUEST, PARSE_ERROR
from node.rpc.protocol import (
    Batch,
    ErrorReply,
    InvalidRequest,
    LineBuffer,
    LineTooLongError,
    Request,
    Single,
    decode_line,
    is_blank,
    max_nesting_depth,
    notification_line,
)

MAX_DEPTH = 32
MAX_BATCH = 100

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
    | st.sampled_from(['"', "\\", "[", "]", "{", "}", '\\"[', "\\\\", '"}]'])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)


def reference_depth(text: str) -> int:
    """A plain character-by-character scanner, obviously right and too slow for the server."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def value_depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((value_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((value_depth(item) for item in value.values()), default=0)
    return 0


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans())
def test_depth_scan_is_exact_on_valid_json(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert max_nesting_depth(text.encode()) == reference_depth(text) == value_depth(value)


@settings(max_examples=1000)
@given(st.text(alphabet='[]{}"\\ a,:1', max_size=60))
@example('"\\"[[["')
@example('[\\"[[[')
@example("]]][[")
def test_depth_scan_is_exact_up_to_the_first_stray_backslash(text: str) -> None:
    """A JSON parser fails at a backslash outside a string, so it never recurses deeper
    than the open brackets before that point; the scan must see at least that much, and
    exactly the reference depth when there is no stray backslash."""
    stray_at = _first_stray_backslash(text)
    scanned = max_nesting_depth(text.encode())
    if stray_at is None:
        assert scanned == reference_depth(text)
    else:
        assert scanned >= reference_depth(text[:stray_at])


def _first_stray_backslash(text: str) -> int | None:
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "\\":
            return position
    return None


@settings(max_examples=1000)
@given(st.binary(max_size=300))
@example(b"[" * 10_000)
@example(b"\xff")
@example(b"[]")
@example(b"[1]")
@example(b'{"jsonrpc":"2.0","method":"m","id":1,"id":2}')
@example(b"NaN")
def test_decoder_never_raises_and_classifies_every_line(line: bytes) -> None:
    decoded = decode_line(line, max_depth=MAX_DEPTH, max_batch=MAX_BATCH)
    if isinstance(decoded, ErrorReply):
        assert decoded.code in (PARSE_ERROR, INVALID_REQUEST)
        assert decoded.message
        return
    items = [decoded.item] if isinstance(decoded, Single) else list(decoded.items)
    if isinstance(decoded, Batch):
        assert 1 <= len(items) <= MAX_BATCH
    for item in items:
        assert isinstance(item, Request | InvalidRequest)


request_ids = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
)
method_names = st.text(max_size=20)
params_values = (
    st.none()
    | st.lists(json_scalars, max_size=4)
    | st.dictionaries(st.text(max_size=6), json_scalars, max_size=4)
)


@settings(max_examples=400)
@given(method_names, params_values, st.booleans(), request_ids)
def test_valid_requests_decode_to_what_was_sent(
    method: str, params: object, has_id: bool, request_id: object
) -> None:
    body: dict[str, object] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    if has_id:
        body["id"] = request_id
    decoded = decode_line(json.dumps(body).encode(), max_depth=MAX_DEPTH, max_batch=MAX_BATCH)
    assert isinstance(decoded, Single)
    assert decoded.item == Request(
        method, params, request_id if has_id else None, is_notification=not has_id
    )


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from([1, "x", {"jsonrpc": "2.0", "method": "m"}]),
        min_size=1,
        max_size=MAX_BATCH + 5,
    )
)
def test_batches_keep_order_and_respect_the_limit(items: list[object]) -> None:
    decoded = decode_line(json.dumps(items).encode(), max_depth=MAX_DEPTH, max_batch=MAX_BATCH)
    if len(items) > MAX_BATCH:
        assert isinstance(decoded, ErrorReply) and decoded.code == INVALID_REQUEST
        return
    assert isinstance(decoded, Batch) and len(decoded.items) == len(items)
    for sent, item in zip(items, decoded.items, strict=True):
        assert isinstance(item, Request) == isinstance(sent, dict)


@settings(max_examples=300)
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30),
)
def test_framing_is_independent_of_chunking(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    buffer = LineBuffer(max_line_bytes=64)
    received: list[bytes] = []
    position = 0
    for cut in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if position >= len(stream):
            break
        buffer.feed(stream[position : position + cut])
        position += cut
        while (line := buffer.next_line()) is not None:
            received.append(line)
    assert position >= len(stream)
    expected = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    assert received == expected
    assert buffer.take_remainder() == b""


def test_line_buffer_refuses_long_lines_without_holding_them() -> None:
    buffer = LineBuffer(max_line_bytes=10)
    buffer.feed(b"0123456789")
    assert buffer.next_line() is None
    buffer.feed(b"X")
    with pytest.raises(LineTooLongError, match="longer than 10 bytes"):
        buffer.next_line()
    complete = LineBuffer(max_line_bytes=10)
    complete.feed(b"0123456789A\n")
    with pytest.raises(LineTooLongError):
        complete.next_line()
    exact = LineBuffer(max_line_bytes=10)
    exact.feed(b"0123456789\r\nrest")
    assert exact.next_line() == b"0123456789"
    assert exact.pending_bytes() == 4


def test_depth_scan_is_linear_on_adversarial_escapes() -> None:
    # An unterminated string of escaped quotes: a backtracking regex would be quadratic.
    hostile = b'"' + b'\\"' * 500_000 + b"[" * 50
    assert max_nesting_depth(hostile) == 0
    assert max_nesting_depth(b"[" * 100_000) == 100_000
    assert max_nesting_depth(b"]]][[") == 0  # a stray closer ends any parse first
    assert max_nesting_depth(b"[]" + b"[[") == 2


def test_notification_line_format() -> None:
    line = notification_line(12, "result", json.dumps({"a": [1, 2]}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"subscription": 12, "result": {"a": [1, 2]}},
    }


def test_whitespace_only_lines_are_blank() -> None:
    assert is_blank(b" \t\r")
    assert not is_blank(string.printable.encode())
