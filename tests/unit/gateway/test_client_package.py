"""node.client.connect: the same calls over the socket and the gateway, blocking and trio;
mempool-full back-pressure is waited out; a broken connection is reopened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from support.gateway import Home, Running

from node.client.connect import MEMPOOL_FULL, AsyncClient, Client
from node.rpc import CallContext, Params, RpcError


def add_flaky_submit(running: Running, refusals: int) -> list[int]:
    calls = [0]

    async def flaky(params: Params, context: CallContext) -> object:
        calls[0] += 1
        if calls[0] <= refusals:
            raise RpcError(MEMPOOL_FULL, "transaction refused: mempool full", {"reason": "x"})
        return {"tx_id": "ab" * 32, "status": "pending"}

    running.rpc.method("flaky_submit", flaky)
    return calls


@pytest.mark.parametrize("via", ["socket", "gateway"])
async def test_blocking_client_same_calls_and_backpressure(
    running: Running, gw_home: Home, socket_path: Path, via: str
) -> None:
    calls = add_flaky_submit(running, refusals=3)
    target = running.url if via == "gateway" else str(socket_path)

    def work() -> tuple[Any, Any, Any]:
        from node.client.connect import with_backpressure

        with Client(target, credentials=gw_home.creds("admin"), backpressure_s=10) as client:
            got = client.call("thing_get")
            submitted = with_backpressure(lambda: client.call("flaky_submit"), 10)
            client.subscribe("blocks")
            return got, submitted, client

    got, submitted, _ = await trio.to_thread.run_sync(work)
    assert got == {"ok": True}
    assert submitted["status"] == "pending" and calls[0] == 4


async def test_blocking_client_reconnects_after_the_server_closed(
    running: Running, gw_home: Home
) -> None:
    client = Client(running.url, credentials=gw_home.creds("read"))
    try:
        assert await trio.to_thread.run_sync(client.call, "thing_get") == {"ok": True}
        await trio.sleep(2.0)  # past header_timeout_ms (1.5 s): the gateway closed it
        assert await trio.to_thread.run_sync(client.call, "thing_get") == {"ok": True}
    finally:
        client.close()


@pytest.mark.parametrize("via", ["socket", "gateway"])
async def test_trio_client_calls_and_subscribes(
    running: Running, gw_home: Home, socket_path: Path, via: str
) -> None:
    target = running.url if via == "gateway" else str(socket_path)
    async with AsyncClient(target, credentials=gw_home.creds("read")) as client:
        assert await client.call("thing_get") == {"ok": True}
        subscription = await client.subscribe("blocks")
        running.rpc.hub.publish("blocks", {"height": 3})
        with trio.fail_after(10):
            async for block in subscription:
                assert block == {"height": 3}
                break
