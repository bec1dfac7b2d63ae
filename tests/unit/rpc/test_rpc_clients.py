"""The blocking and the trio client against a real server: results, errors, batches,
timeouts, subscriptions, and what they say when there is no node."""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from node.rpc import (
    AsyncRpcClient,
    NoNodeError,
    RpcCallError,
    RpcClient,
    RpcTimeoutError,
    RpcTransportError,
    SubscriptionDroppedError,
)
from node.rpc.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, SERVER_BUSY


def in_thread(function, *args):
    """The blocking client must not run on the event loop that serves it."""
    return trio.to_thread.run_sync(partial(function, *args))


# --- blocking client -------------------------------------------------------------------


async def test_blocking_call_and_errors(server, socket_path: Path) -> None:
    def session() -> None:
        with RpcClient(socket_path, timeout_s=5) as client:
            assert client.call("subtract", [42, 23]) == 19
            assert client.call("subtract", {"minuend": 1, "subtrahend": 3}) == -2
            assert client.call("echo") == {}
            assert client.call("echo", ("tuple", "ok")) == ["tuple", "ok"]
            with pytest.raises(RpcCallError) as caught:
                client.call("app_error")
            assert caught.value.code == 1001
            assert caught.value.data == {"pending": 5000}
            assert str(caught.value) == "mempool full: retry in a few seconds (code 1001)"
            with pytest.raises(RpcCallError) as caught:
                client.call("nope")
            assert caught.value.code == METHOD_NOT_FOUND
            with pytest.raises(RpcCallError) as caught:
                client.call("crash")
            assert caught.value.code == INTERNAL_ERROR
            client.notify("update", [1])
            assert client.call("echo", ["after notify"]) == ["after notify"]

    await in_thread(session)


async def test_blocking_batch(server, socket_path: Path) -> None:
    def session() -> list[object]:
        with RpcClient(socket_path, timeout_s=5) as client:
            assert client.batch([]) == []
            return client.batch(
                [("subtract", [5, 3]), ("nope", None), ("subtract", {"minuend": 1}), ("echo", [9])]
            )

    results = await in_thread(session)
    assert results[0] == 2
    assert isinstance(results[1], RpcCallError) and results[1].code == METHOD_NOT_FOUND
    assert isinstance(results[2], RpcCallError) and results[2].code == INVALID_PARAMS
    assert results[3] == [9]


async def test_blocking_timeout_then_late_answer_is_dropped(
    server, socket_path: Path, gate
) -> None:
    client = await in_thread(partial(RpcClient, socket_path, timeout_s=0.2))
    try:
        with pytest.raises(RpcTimeoutError, match="no answer"):
            await in_thread(client.call, "gated")
        await gate.entered.wait()
        gate.release.set()  # the answer to the abandoned call now arrives
        assert await in_thread(client.call, "echo", ["fresh"]) == ["fresh"]
        assert client.late_answers_dropped == 1
    finally:
        client.close()


async def test_blocking_subscription(server, socket_path: Path) -> None:
    with RpcClient(socket_path, timeout_s=5) as client:
        subscription = await in_thread(client.subscribe, "blocks")
        server.hub.publish("blocks", {"height": 1})
        server.hub.publish("blocks", {"height": 2})
        first = await in_thread(client.next_notification)
        second = await in_thread(client.next_notification)
        assert (first.subscription, first.result) == (subscription, {"height": 1})
        assert second.result == {"height": 2}
        with pytest.raises(RpcTimeoutError):
            await in_thread(client.next_notification, 0.05)
        # A push that arrives while waiting for an answer is kept for later.
        server.hub.publish("blocks", {"height": 3})
        assert await in_thread(client.call, "echo", [1]) == [1]
        assert (await in_thread(client.next_notification)).result == {"height": 3}
        assert await in_thread(client.unsubscribe, subscription) is True


def test_no_node_when_socket_missing(short_dir: Path) -> None:
    path = short_dir / "node0" / "control.sock"
    with pytest.raises(NoNodeError) as caught:
        RpcClient(path, hint="is the testnet up? try `chain testnet up`")
    assert str(caught.value) == (
        f"no node at {path}: is the testnet up? try `chain testnet up` (socket file missing)"
    )
    assert isinstance(caught.value, RpcTransportError)


def test_no_node_when_socket_is_stale(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    with pytest.raises(NoNodeError, match=r"connection refused: stale socket file") as caught:
        RpcClient(path)
    assert "start it with `chain start`" in str(caught.value)
    assert caught.value.socket_path == path


async def test_blocking_client_sees_server_busy(start_server, socket_path: Path) -> None:
    await start_server(max_connections=1)
    with RpcClient(socket_path, timeout_s=5) as holder:
        assert await in_thread(holder.call, "echo", [1]) == [1]
        refused = await in_thread(partial(RpcClient, socket_path, timeout_s=5))
        with pytest.raises(RpcCallError) as caught:
            await in_thread(refused.call, "echo", [2])
        assert caught.value.code == SERVER_BUSY
        with pytest.raises(RpcTransportError, match="closed"):
            await in_thread(refused.call, "echo", [3])
        refused.close()


async def test_blocking_client_when_server_stops(start_server, socket_path: Path, nursery) -> None:
    await start_server()
    client = await in_thread(partial(RpcClient, socket_path, timeout_s=5))
    assert await in_thread(client.call, "echo", [1]) == [1]
    nursery.cancel_scope.cancel()
    with pytest.raises(RpcTransportError):
        await in_thread(client.call, "echo", [2])
    client.close()


# --- trio client -----------------------------------------------------------------------


async def test_async_concurrent_calls_share_one_connection(server, socket_path: Path) -> None:
    results: dict[int, object] = {}
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:

        async def one(index: int) -> None:
            results[index] = await client.call("subtract", [index, 1])

        async with trio.open_nursery() as nursery:
            for index in range(200):
                nursery.start_soon(one, index)
    assert results == {index: index - 1 for index in range(200)}
    assert server.statistics()["connections_accepted"] == 1


async def test_async_errors_batch_and_notify(server, socket_path: Path) -> None:
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:
        with pytest.raises(RpcCallError) as caught:
            await client.call("subtract", {"minuend": "x", "subtrahend": 1})
        assert caught.value.code == INVALID_PARAMS
        results = await client.batch([("echo", [1]), ("nope", None), ("get_data", None)])
        assert results[0] == [1] and results[2] == ["hello", 5]
        assert isinstance(results[1], RpcCallError) and results[1].code == METHOD_NOT_FOUND
        await client.notify("update", [1])
        assert await client.call("echo", ["x"]) == ["x"]


async def test_async_timeout_leaves_client_usable(server, socket_path: Path, gate) -> None:
    async with AsyncRpcClient(socket_path, timeout_s=0.1) as client:
        with pytest.raises(RpcTimeoutError):
            await client.call("gated")
        gate.release.set()
        assert await client.call("echo", [2]) == [2]


async def test_async_subscription_iterates_and_unsubscribes(server, socket_path: Path) -> None:
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:
        async with await client.subscribe("blocks") as blocks:
            assert isinstance(blocks.id, int)
            for height in range(5):
                server.hub.publish("blocks", {"height": height})
            received = []
            async for payload in blocks:
                received.append(payload)
                if len(received) == 5:
                    break
            assert received == [{"height": h} for h in range(5)]
        await client.call("echo", [1])  # the unsubscribe has been processed
        assert server.hub.subscriber_count("blocks") == 0
        with pytest.raises(RpcCallError) as caught:
            await client.subscribe("unknown")
        assert caught.value.code == INVALID_PARAMS


async def test_async_subscription_raises_when_dropped(start_server, socket_path: Path) -> None:
    server = await start_server(subscriber_queue=4)
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:
        blocks = await client.subscribe("blocks")
        await trio.testing.wait_all_tasks_blocked()
        for height in range(20):  # no checkpoint: the server queue overflows
            server.hub.publish("blocks", height)
        received = []
        with pytest.raises(SubscriptionDroppedError, match="fell behind"):
            async for payload in blocks:
                received.append(payload)
        assert received == list(range(len(received))) and 4 <= len(received) <= 5
        assert await client.call("echo", ["alive"]) == ["alive"]


async def test_async_client_buffer_overflow_drops_locally(server, socket_path: Path) -> None:
    async with AsyncRpcClient(socket_path, timeout_s=5, subscription_buffer=3) as client:
        blocks = await client.subscribe("blocks")
        for height in range(10):
            server.hub.publish("blocks", height)
        await client.call("echo", [1])  # all pushes were read by the client by now
        received = []
        with pytest.raises(SubscriptionDroppedError, match="client-side buffer"):
            async for payload in blocks:
                received.append(payload)
        assert received == [0, 1, 2]


async def test_async_pending_calls_fail_when_server_stops(
    start_server, socket_path: Path, nursery
) -> None:
    await start_server()
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:
        blocks = await client.subscribe("blocks")
        failures: list[Exception] = []

        async def call_hang() -> None:
            try:
                await client.call("hang")
            except RpcTransportError as error:
                failures.append(error)

        async with trio.open_nursery() as inner:
            inner.start_soon(call_hang)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # stops the server while the call is in flight
        assert len(failures) == 1 and "closed" in str(failures[0])
        with pytest.raises(RpcTransportError):
            async for _payload in blocks:
                pass
        with pytest.raises(RpcTransportError):
            await client.call("echo", [1])


async def test_async_aclose_fails_pending_work(server, socket_path: Path) -> None:
    async with AsyncRpcClient(socket_path, timeout_s=5) as client:
        blocks = await client.subscribe("blocks")
        await client.aclose()
        assert not client.is_connected
        with pytest.raises(RpcTransportError, match="closed"):
            await client.call("echo", [1])
        with pytest.raises(RpcTransportError, match="closed"):
            await blocks.__anext__()


async def test_async_no_node(short_dir: Path) -> None:
    with pytest.raises(NoNodeError, match="socket file missing"):
        async with AsyncRpcClient(short_dir / "missing.sock"):
            pass


def test_client_rejects_bad_arguments(short_dir: Path) -> None:
    with pytest.raises(ValueError):
        RpcClient(short_dir / "x.sock", timeout_s=0)
    with pytest.raises(ValueError):
        AsyncRpcClient(short_dir / "x.sock", timeout_s=float("inf"))
    assert not os.path.exists(short_dir / "x.sock")
