"""Hostile and broken input: the server answers precisely, closes only when it must, and
keeps serving everyone else at the same time."""

from __future__ import annotations

import json
import random

import pytest
import trio

from node.rpc.errors import INVALID_REQUEST, PARSE_ERROR


def rpc_request(method: str, params: object = None, request_id: object = 1) -> dict[str, object]:
    value: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        value["params"] = params
    return value


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"jsonrpc": "2.0", "method": "echo", "id": 1', "invalid JSON"),
        (b'{"jsonrpc": "2.0", "method": "echo", "id": 1}}', "invalid JSON: Extra data"),
        (b'{"jsonrpc": "2.0", "method": "ec', "invalid JSON"),
        (b"\xff\xfe{}", "invalid UTF-8 at byte 0"),
        (b'{"a": "\xc3"}', "invalid UTF-8 at byte 7"),
        (b"\xef\xbb\xbf{}", "invalid JSON"),  # a byte order mark is not JSON whitespace
        (b'{"jsonrpc": "2.0", "method": "echo", "params": [NaN], "id": 1}', "NaN"),
        (b'{"jsonrpc": "2.0", "method": "echo", "params": [Infinity], "id": 1}', "Infinity"),
        (b'{"jsonrpc": "2.0", "method": "echo", "params": [-Infinity], "id": 1}', "Infinity"),
        (b'{"jsonrpc": "2.0", "method": "echo", "params": [1e999], "id": 1}', "out of range"),
        (b'{"jsonrpc": "2.0", "method": "echo", "id": 1, "id": 2}', "duplicate object key 'id'"),
        (
            b'{"jsonrpc": "2.0", "method": "echo", "params": {"k": 1, "k": 1}, "id": 1}',
            "duplicate object key 'k'",
        ),
        (b"[" * 100_000, "nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested deeper than 32 levels"),
        (b"[" * 33 + b"]" * 33, "nested deeper than 32 levels"),
        (b"9" * 5000, "invalid JSON"),  # beyond Python's int digit limit
        (b"'single quotes'", "invalid JSON"),
        (b"\x00", "invalid JSON"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, bytes) else None,
)
async def test_bad_json_is_parse_error_and_connection_survives(
    server, connect, line: bytes, fragment: str
) -> None:
    connection = await connect()
    await connection.send(line + b"\n")
    answer = await connection.read_json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] is None
    assert answer["error"]["code"] == PARSE_ERROR
    assert fragment in answer["error"]["message"]
    follow_up = await connection.request(rpc_request("echo", ["still here"], 2))
    assert follow_up["result"] == ["still here"]


async def test_depth_limit_is_exact_and_ignores_brackets_in_strings(server, connect) -> None:
    connection = await connect()
    # Request object (1) + params array (2) + 30 nested arrays = 32 levels: accepted.
    nested: object = 0
    for _ in range(30):
        nested = [nested]
    answer = await connection.request(rpc_request("echo", [nested]))
    assert answer["result"] == [nested]
    # Brackets inside strings (with escaped quotes) do not count.
    tricky = '\\"[[[[' * 1000 + "{{{{" * 1000
    answer = await connection.request(rpc_request("echo", [tricky]))
    assert answer["result"] == [tricky]
    answer = await connection.request(rpc_request("echo", [[nested]]))
    assert answer["error"]["code"] == PARSE_ERROR


async def test_random_bytes_every_line_answered(server, connect) -> None:
    generator = random.Random(20_240_601)
    connection = await connect()
    lines_sent = 0
    for _ in range(200):
        garbage = generator.randbytes(generator.randint(1, 300)).replace(b"\n", b" ")
        if not garbage.strip(b" \t\r"):
            continue
        await connection.send(garbage + b"\n")
        lines_sent += 1
    for _ in range(lines_sent):
        answer = await connection.read_json()
        assert answer["id"] is None
        assert answer["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST)
    follow_up = await connection.request(rpc_request("echo", ["ok"], 7))
    assert follow_up == {"jsonrpc": "2.0", "result": ["ok"], "id": 7}


async def test_well_formed_json_of_wrong_shapes(server, connect) -> None:
    generator = random.Random(7)
    connection = await connect()
    shapes: list[object] = [
        {"jsonrpc": "2.0", "method": "echo", "params": {"x": [1, {"y": None}]}, "id": "s"},
        {"jsonrpc": "2.0", "method": "", "id": 1},
        {"jsonrpc": "2.0", "method": "echo", "id": {"nested": 1}},
        {"jsonrpc": ["2.0"], "method": "echo", "id": 1},
        ["not", "requests"],
        [{"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1}, 5],
        "just a string",
        123.5,
    ]
    for _ in range(5):
        generator.shuffle(shapes)
        for shape in shapes:
            answer = await connection.request(shape)
            answers = answer if isinstance(answer, list) else [answer]
            assert answers, "a non-empty batch of requests with ids gets a non-empty answer"
            for item in answers:
                assert item["jsonrpc"] == "2.0"
                assert ("result" in item) != ("error" in item)


@pytest.mark.parametrize("terminated", [True, False])
async def test_line_over_limit_is_refused_and_connection_closed(
    start_server, connect, terminated: bool
) -> None:
    server = await start_server(max_line_bytes=1024)
    connection = await connect()
    line = json.dumps(rpc_request("echo", ["x" * 2000])).encode()
    # 2 KiB fits in the socket buffer, so the send completes before the server hangs up.
    await connection.send(line + (b"\n" if terminated else b""))
    answer = await connection.read_json()
    assert answer["id"] is None
    assert answer["error"]["code"] == INVALID_REQUEST
    assert "longer than 1024 bytes" in answer["error"]["message"]
    assert answer["error"]["data"] == {"max_line_bytes": 1024}
    await connection.expect_closed()
    assert server.statistics()["lines_too_long"] == 1


async def test_endless_line_is_not_buffered(server, connect) -> None:
    """8 MiB without a newline against the 1 MiB limit: the server hangs up early."""
    connection = await connect()
    chunk = b"[" + b"1," * 32_767 + b"1"  # 64 KiB of valid-looking JSON, no newline
    try:
        for _ in range(128):
            await connection.send(chunk)
    except trio.BrokenResourceError:
        pass  # the server closed while we were still sending: that is the point
    answer = await connection.read_json()
    assert answer["error"]["code"] == INVALID_REQUEST
    assert "longer than 1048576 bytes" in answer["error"]["message"]
    await connection.expect_closed()
    assert server.statistics()["lines_too_long"] == 1


async def test_garbage_on_many_connections_while_a_good_client_is_served(server, connect) -> None:
    good = await connect()
    attackers = [await connect() for _ in range(4)]
    generator = random.Random(99)
    answered_garbage = 0

    async def attack(connection, seed: int) -> None:
        nonlocal answered_garbage
        local = random.Random(seed)
        for round_number in range(30):
            kind = round_number % 4
            if kind == 0:
                line = local.randbytes(200).replace(b"\n", b"x")
            elif kind == 1:
                line = b"[" * 5000
            elif kind == 2:
                line = b'{"jsonrpc": "2.0", "method": "echo", "id": 1, "id": 1}'
            else:
                line = b'{"jsonrpc": "2.0", "method": "crash", "id": 3}'
            await connection.send(line + b"\n")
            answer = await connection.read_json()
            assert "error" in answer
            answered_garbage += 1

    async def serve_good() -> None:
        for index in range(100):
            value = generator.random()
            answer = await good.request(rpc_request("echo", {"v": value, "i": index}, index))
            assert answer == {"jsonrpc": "2.0", "result": {"v": value, "i": index}, "id": index}

    async with trio.open_nursery() as nursery:
        for seed, connection in enumerate(attackers):
            nursery.start_soon(attack, connection, seed)
        nursery.start_soon(serve_good)
    assert answered_garbage == 4 * 30
    statistics = server.statistics()
    assert statistics["errors_by_code"][PARSE_ERROR] >= 4 * 15
