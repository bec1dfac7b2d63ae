"""Limits and concurrency: connections, batches, handler and write timeouts, answer size;
many connections are served at once while each one answers in order."""

from __future__ import annotations

import json

import pytest
import trio

from node.rpc import RpcServer
from node.rpc.errors import (
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    RESPONSE_TOO_LARGE,
    SERVER_BUSY,
)


def rpc_request(method: str, params: object = None, request_id: object = 1) -> dict[str, object]:
    value: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        value["params"] = params
    return value


async def test_connection_limit_refuses_with_an_error_line(
    start_server, connect, wait_until
) -> None:
    server = await start_server(max_connections=2)
    first, second = await connect(), await connect()
    for connection in (first, second):  # both accepted and served
        assert (await connection.request(rpc_request("echo", [1])))["result"] == [1]
    third = await connect()
    refusal = await third.read_json()
    assert refusal["id"] is None
    assert refusal["error"]["code"] == SERVER_BUSY
    assert "2 control connections are open" in refusal["error"]["message"]
    assert refusal["error"]["data"] == {"max_connections": 2}
    await third.expect_closed()
    # The slots are still held by the first two, which keep working.
    assert (await second.request(rpc_request("echo", [2])))["result"] == [2]
    await first.aclose()
    await wait_until(lambda: server.statistics()["connections_open"] == 1, "first closed")
    fourth = await connect()
    assert (await fourth.request(rpc_request("echo", [4])))["result"] == [4]
    statistics = server.statistics()
    assert statistics["connections_refused"] == 1
    assert statistics["connections_accepted"] == 3
    assert statistics["errors_by_code"][SERVER_BUSY] == 1


async def test_batch_limit(start_server, connect) -> None:
    await start_server(max_batch=3)
    connection = await connect()
    answer = await connection.request([rpc_request("echo", [n], n) for n in range(3)])
    assert [item["result"] for item in answer] == [[0], [1], [2]]
    answer = await connection.request([rpc_request("echo", [n], n) for n in range(4)])
    assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST
    assert "batch of 4 requests exceeds the limit of 3" in answer["error"]["message"]
    assert answer["error"]["data"] == {"max_batch": 3}


async def test_handler_timeout_is_answered_and_connection_continues(start_server, connect) -> None:
    server = await start_server(handler_timeout_s=0.05)
    connection = await connect()
    answer = await connection.request(rpc_request("hang", None, "slow"))
    assert answer["id"] == "slow"
    assert answer["error"]["code"] == REQUEST_TIMEOUT
    assert "hang did not finish within 0.05 s" in answer["error"]["message"]
    assert (await connection.request(rpc_request("echo", ["next"])))["result"] == ["next"]
    assert server.statistics()["errors_by_code"][REQUEST_TIMEOUT] == 1


async def test_per_method_timeout_overrides_the_default(start_server, connect, gate) -> None:
    server = await start_server(handler_timeout_s=0.05)

    async def patient(params, context) -> str:
        await gate.release.wait()
        return "waited"

    server.method("patient", patient, timeout_s=30.0)
    connection = await connect()
    await connection.send_json(rpc_request("patient", None, "p"))
    await trio.sleep(0.2)  # four times the server default: a default timeout would fire
    gate.release.set()
    assert (await connection.read_json()) == {"jsonrpc": "2.0", "result": "waited", "id": "p"}


async def test_response_size_limit(start_server, connect) -> None:
    await start_server(max_response_bytes=1000)
    connection = await connect()
    assert len((await connection.request(rpc_request("big", [900])))["result"]) == 900
    answer = await connection.request(rpc_request("big", [2000], 2))
    assert answer["id"] == 2 and answer["error"]["code"] == RESPONSE_TOO_LARGE
    assert "exceeds the limit of 1000 bytes" in answer["error"]["message"]
    # A batch whose parts fit but whose whole does not.
    answer = await connection.request([rpc_request("big", [600], n) for n in range(2)])
    assert answer["id"] is None and answer["error"]["code"] == RESPONSE_TOO_LARGE


async def test_connections_are_served_concurrently(server, connect, gate) -> None:
    blocked, other = await connect(), await connect()
    await blocked.send_json(rpc_request("gated", None, "g"))
    await gate.entered.wait()
    # While one connection's handler is parked, another connection is answered.
    for index in range(10):
        assert (await other.request(rpc_request("echo", [index], index)))["result"] == [index]
    gate.release.set()
    assert (await blocked.read_json()) == {"jsonrpc": "2.0", "result": "released", "id": "g"}


async def test_one_connection_answers_in_order_even_behind_a_slow_call(
    server, connect, gate
) -> None:
    connection = await connect()
    lines = [rpc_request("gated", None, 0)] + [rpc_request("echo", [n], n) for n in range(1, 20)]
    await connection.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    await gate.entered.wait()
    gate.release.set()
    answers = [await connection.read_json() for _ in lines]
    assert [answer["id"] for answer in answers] == list(range(20))
    assert answers[0]["result"] == "released"


async def test_client_that_never_reads_is_cut_off_by_the_write_timeout(
    start_server, connect, wait_until
) -> None:
    server = await start_server(write_timeout_s=0.2, subscriber_queue=100_000)
    reader = await connect()
    subscription = (await reader.request(rpc_request("subscribe", ["blocks"])))["result"]
    assert isinstance(subscription, int)
    payload = {"block": "z" * 16_384}
    for _ in range(2000):  # bounded: ~32 MiB, far more than any socket buffer
        server.hub.publish("blocks", payload)
        await trio.sleep(0)
        if server.statistics()["write_timeouts"]:
            break
    await wait_until(lambda: server.statistics()["write_timeouts"] == 1, "write timeout")
    await wait_until(lambda: server.statistics()["connections_open"] == 0, "connection closed")
    assert server.hub.subscriber_count("blocks") == 0


async def test_server_rejects_bad_limits(socket_path) -> None:
    with pytest.raises(ValueError, match="max_batch must be a positive integer"):
        RpcServer(socket_path, max_batch=0)
    with pytest.raises(ValueError, match="handler_timeout_s must be a positive number"):
        RpcServer(socket_path, handler_timeout_s=float("nan"))
    server = RpcServer(socket_path)
    with pytest.raises(ValueError, match="reserved"):
        server.method("rpc.discover", _unused)
    with pytest.raises(ValueError, match="already registered"):
        server.method("subscribe", _unused)


async def _unused(params, context) -> None:
    return None


async def test_half_lines_do_not_hold_the_socket(start_server, connect) -> None:
    """Clients that each send half a line used to hold every slot for as long as they
    liked; now a line must be complete within line_timeout_s."""
    await start_server(max_connections=4, line_timeout_s=0.5)
    holders = [await connect() for _ in range(4)]
    for holder in holders:
        await holder.send(b'{"jsonrpc":"2.0","method":"ec')
    for holder in holders:
        answer = await holder.read_json()
        assert answer["error"]["code"] == -32008 and answer["id"] is None
        assert answer["error"]["data"] == {"line_timeout_s": 0.5}
        await holder.expect_closed()
    client = await connect()
    assert (await client.request({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1}))[
        "result"
    ] == [1]


async def test_an_idle_connection_between_lines_is_not_a_slow_line(start_server, connect) -> None:
    await start_server(line_timeout_s=0.3)
    client = await connect()
    await trio.sleep(0.6)  # nothing begun: no deadline runs
    answer = await client.request({"jsonrpc": "2.0", "method": "echo", "params": [2], "id": 2})
    assert answer["result"] == [2]
