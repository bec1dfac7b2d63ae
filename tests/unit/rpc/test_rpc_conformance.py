"""JSON-RPC 2.0 conformance over a real Unix socket: every error code, batches, ids,
notifications. The examples of section 7 of the specification are checked verbatim."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from node.rpc import RpcServer
from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)


def rpc_request(method: str, params: object = None, request_id: object = 1) -> dict[str, object]:
    value: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        value["params"] = params
    return value


async def exchange(connection: Any, line: bytes) -> object:
    await connection.send(line + b"\n")
    return await connection.read_json()


async def assert_no_reply(connection: Any, line: bytes) -> None:
    """A notification gets no answer: the next line is the answer to a later probe."""
    await connection.send(line + b"\n")
    probe = await connection.request(rpc_request("echo", ["probe"], "probe-id"))
    assert probe == {"jsonrpc": "2.0", "result": ["probe"], "id": "probe-id"}


# Section 7 of https://www.jsonrpc.org/specification, request then expected response.
SPEC_EXAMPLES = [
    (
        b'{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
        {"jsonrpc": "2.0", "result": 19, "id": 1},
    ),
    (
        b'{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        {"jsonrpc": "2.0", "result": -19, "id": 2},
    ),
    (
        b'{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42},'
        b' "id": 3}',
        {"jsonrpc": "2.0", "result": 19, "id": 3},
    ),
    (
        b'{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23},'
        b' "id": 4}',
        {"jsonrpc": "2.0", "result": 19, "id": 4},
    ),
]


@pytest.mark.parametrize(("line", "expected"), SPEC_EXAMPLES)
async def test_spec_calls(server, connect, line: bytes, expected: object) -> None:
    connection = await connect()
    assert await exchange(connection, line) == expected


async def test_spec_notifications_get_no_reply(server, connect) -> None:
    connection = await connect()
    await assert_no_reply(
        connection, b'{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}'
    )
    await assert_no_reply(connection, b'{"jsonrpc": "2.0", "method": "foobar"}')


async def test_spec_error_examples(server, connect) -> None:
    connection = await connect()
    answer = await exchange(connection, b'{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert answer["id"] == "1" and answer["error"]["code"] == METHOD_NOT_FOUND
    assert "foobar" in answer["error"]["message"]

    answer = await exchange(
        connection, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'
    )
    assert answer["id"] is None and answer["error"]["code"] == PARSE_ERROR

    answer = await exchange(connection, b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST

    answer = await exchange(
        connection,
        b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        b'{"jsonrpc": "2.0", "method"]',
    )
    assert answer["id"] is None and answer["error"]["code"] == PARSE_ERROR

    answer = await exchange(connection, b"[]")
    assert answer == {
        "jsonrpc": "2.0",
        "error": {"code": INVALID_REQUEST, "message": "invalid request: empty batch"},
        "id": None,
    }

    answer = await exchange(connection, b"[1]")
    assert isinstance(answer, list) and len(answer) == 1
    assert answer[0]["id"] is None and answer[0]["error"]["code"] == INVALID_REQUEST

    answer = await exchange(connection, b"[1,2,3]")
    assert [item["error"]["code"] for item in answer] == [INVALID_REQUEST] * 3
    assert [item["id"] for item in answer] == [None] * 3


async def test_spec_mixed_batch(server, connect) -> None:
    connection = await connect()
    answer = await exchange(
        connection,
        b"""[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]""".replace(b"\n", b""),
    )
    assert isinstance(answer, list)
    assert [item.get("id") for item in answer] == ["1", "2", None, "5", "9"]
    assert answer[0]["result"] == 7
    assert answer[1]["result"] == 19
    assert answer[2]["error"]["code"] == INVALID_REQUEST
    assert answer[3]["error"]["code"] == METHOD_NOT_FOUND
    assert answer[4]["result"] == ["hello", 5]
    for item in answer:
        assert item["jsonrpc"] == "2.0"
        assert ("result" in item) != ("error" in item)


async def test_spec_all_notification_batch_gets_no_reply(server, connect) -> None:
    connection = await connect()
    await assert_no_reply(
        connection,
        b'[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
        b'{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
    )


@pytest.mark.parametrize(
    "request_id",
    ["abc", "", "\u0438\u0434-\U0001f600", 0, -1, 7, 2**70, -(2**63), 1.5, -0.25, None],
    ids=repr,
)
async def test_every_legal_id_type_is_echoed(server, connect, request_id: object) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("echo", [1], request_id))
    assert answer == {"jsonrpc": "2.0", "result": [1], "id": request_id}
    assert type(answer["id"]) is type(request_id)


@pytest.mark.parametrize("bad_id", [True, False, [], [1], {}, {"a": 1}], ids=repr)
async def test_illegal_id_types_are_invalid_requests(server, connect, bad_id: object) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("echo", [1], bad_id))
    assert answer["id"] is None
    assert answer["error"]["code"] == INVALID_REQUEST
    assert '"id"' in answer["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"method": "echo", "id": 1}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": "1.0", "method": "echo", "id": 1}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": 2.0, "method": "echo", "id": 1}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": "2.0", "id": 1}, '"method" must be a string, got null'),
        ({"jsonrpc": "2.0", "method": ["echo"], "id": 1}, '"method" must be a string'),
        ({"jsonrpc": "2.0", "method": "echo", "params": "x", "id": 1}, '"params" must be'),
        ({"jsonrpc": "2.0", "method": "echo", "params": 3, "id": 1}, '"params" must be'),
        ({"jsonrpc": "2.0", "method": "echo", "params": None, "id": 1}, "got null"),
        ({"jsonrpc": "2.0", "method": "echo", "param": [], "id": 1}, "unknown request member"),
    ],
)
async def test_invalid_requests_echo_a_legal_id(server, connect, body: dict, fragment: str) -> None:
    connection = await connect()
    answer = await connection.request(body)
    assert answer["error"]["code"] == INVALID_REQUEST
    assert fragment in answer["error"]["message"]
    assert answer["id"] == 1


@pytest.mark.parametrize("value", [42, "text", None, True])
async def test_non_object_request_is_invalid(server, connect, value: object) -> None:
    connection = await connect()
    answer = await connection.request(value)
    assert answer["error"]["code"] == INVALID_REQUEST and answer["id"] is None


async def test_invalid_request_without_id_is_still_answered(server, connect) -> None:
    # Not a notification: it is not a valid request at all (the spec's {"foo": "boo"}).
    connection = await connect()
    answer = await connection.request({"jsonrpc": "2.0", "method": 5})
    assert answer["error"]["code"] == INVALID_REQUEST and answer["id"] is None


async def test_method_not_found_suggests_a_close_name(server, connect) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("subtrac", [1, 2], 9))
    assert answer["error"]["code"] == METHOD_NOT_FOUND
    assert "did you mean 'subtract'?" in answer["error"]["message"]
    answer = await connection.request(rpc_request("rpc.discover", None, 10))
    assert answer["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"minuend": 1}, "missing required parameter 'subtrahend'"),
        ({"minuend": "1", "subtrahend": 2}, "'minuend' must be an integer (got '1')"),
        ({"minuend": 1, "subtrahend": 2, "extra": 0}, "unknown parameter 'extra'"),
        ([1, 2, 3], "at most 2 positional parameters"),
        ([True, 1], "must be an integer (got true)"),
    ],
)
async def test_invalid_params(server, connect, params: object, fragment: str) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("subtract", params, "p"))
    assert answer["id"] == "p"
    assert answer["error"]["code"] == INVALID_PARAMS
    assert answer["error"]["message"].startswith("invalid params for subtract: ")
    assert fragment in answer["error"]["message"]


async def test_application_error_carries_code_message_and_data(server, connect) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("app_error", None, 5))
    assert answer == {
        "jsonrpc": "2.0",
        "error": {
            "code": 1001,
            "message": "mempool full: retry in a few seconds",
            "data": {"pending": 5000},
        },
        "id": 5,
    }


@pytest.mark.parametrize("method", ["crash", "not_json", "nan"])
async def test_handler_bug_is_internal_error_logged_and_survived(
    server, connect, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    connection = await connect()
    with caplog.at_level(logging.ERROR, logger="node.rpc"):
        answer = await connection.request(rpc_request(method, None, 1))
    assert answer["error"]["code"] == INTERNAL_ERROR
    assert method in answer["error"]["message"] and "node log" in answer["error"]["message"]
    assert any(method in record.getMessage() for record in caplog.records)
    if method == "crash":
        assert any(record.exc_info for record in caplog.records), "traceback must be logged"
    # Same connection keeps working.
    assert (await connection.request(rpc_request("echo", ["after"], 2)))["result"] == ["after"]


async def test_notification_errors_are_silent_but_counted(connect, server: RpcServer) -> None:
    connection = await connect()
    await assert_no_reply(connection, b'{"jsonrpc": "2.0", "method": "crash"}')
    await assert_no_reply(connection, b'{"jsonrpc": "2.0", "method": "missing"}')
    codes = server.statistics()["errors_by_code"]
    assert codes[INTERNAL_ERROR] == 1 and codes[METHOD_NOT_FOUND] == 1


async def test_responses_are_compact_single_lines_in_request_order(server, connect) -> None:
    connection = await connect()
    lines = b"".join(
        json.dumps(rpc_request("echo", {"n": index, "text": "a\nb"}, index)).encode() + b"\n"
        for index in range(50)
    )
    await connection.send(lines)  # pipelined: all sent before any answer is read
    for index in range(50):
        line = await connection.read_line()
        assert b" " not in line  # compact separators; the newline inside is escaped
        assert json.loads(line) == {
            "jsonrpc": "2.0",
            "result": {"n": index, "text": "a\nb"},
            "id": index,
        }


async def test_crlf_and_blank_lines_and_final_line_without_newline(server, connect) -> None:
    connection = await connect()
    await connection.send(b"\n  \r\n" + json.dumps(rpc_request("echo", [1], 1)).encode() + b"\r\n")
    assert (await connection.read_json())["result"] == [1]
    await connection.send(json.dumps(rpc_request("echo", [2], 2)).encode())
    await connection.stream.send_eof()
    assert (await connection.read_json())["result"] == [2]
    await connection.expect_closed()


async def test_batch_processes_in_order_and_reports_each_error(server, connect) -> None:
    connection = await connect()
    batch = [
        rpc_request("echo", ["a"], 1),
        rpc_request("subtract", {"minuend": 1}, 2),
        {"jsonrpc": "2.0", "method": "update", "params": [1]},
        rpc_request("crash", None, 3),
        rpc_request("app_error", None, 4),
        rpc_request("echo", ["z"], 5),
    ]
    answer = await connection.request(batch)
    assert [item["id"] for item in answer] == [1, 2, 3, 4, 5]
    assert answer[0]["result"] == ["a"]
    assert [item.get("error", {}).get("code") for item in answer[1:4]] == [
        INVALID_PARAMS,
        INTERNAL_ERROR,
        1001,
    ]
    assert answer[4]["result"] == ["z"]
