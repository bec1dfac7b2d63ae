"""Bounded in time and size: a slow-loris and a connection flood do not lock out a
well-behaved client; a trickled body, an oversized body and a quiet WebSocket are cut off.

The attackers come from 127.0.0.1 and the good client from 127.0.0.2 (all of 127/8 is this
machine), so the per-address cap applies to them and not to it."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import trio
from support.gateway import Home, Running

from node.rpc.gateway_client import HttpRpcClient, open_websocket_stream

CALL = b'{"jsonrpc":"2.0","method":"thing_get","id":1}'


def good_call(url: str, home: Home) -> tuple[int, Any]:
    """A call from 127.0.0.2, with its own connection (blocking; run in a thread)."""
    client = HttpRpcClient(url, home.creds("read"), timeout_s=10)
    real_create = socket.create_connection

    def from_second_address(address: Any, timeout: Any = None, source_address: Any = None) -> Any:
        return real_create(address, timeout=timeout, source_address=("127.0.0.2", 0))

    socket.create_connection = from_second_address  # type: ignore[assignment]
    try:
        status, body = client.post(CALL)
    finally:
        socket.create_connection = real_create
        client.close()
    return status, json.loads(body)


async def tls_connection(running: Running, home: Home) -> trio.SSLStream[trio.SocketStream]:
    context = home.creds("read").ssl_context()
    tcp = await trio.open_tcp_stream("127.0.0.1", running.port)
    stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
    await stream.do_handshake()
    return stream


async def test_slow_loris_is_cut_and_does_not_lock_out(
    running: Running, gw_home: Home, closing: list[Any]
) -> None:
    lorises = []
    for _ in range(12):  # under the per-address cap (16): each holds a slot while it trickles
        stream = await tls_connection(running, gw_home)
        closing.append(stream)
        await stream.send_all(b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
        lorises.append(stream)
    status, answer = await trio.to_thread.run_sync(good_call, running.url, gw_home)
    assert status == 200 and answer["result"] == {"ok": True}
    # Each loris keeps sending a header byte now and then, never finishing the head: the
    # head deadline (header_timeout_ms = 1.5 s) closes it anyway.
    closed = 0
    with trio.fail_after(10):
        for _ in range(40):  # bounded: 40 rounds of 0.25 s
            for stream in list(lorises):
                try:
                    await stream.send_all(b"X")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    lorises.remove(stream)
                    closed += 1
            if not lorises:
                break
            await trio.sleep(0.25)
    assert closed == 12, f"{len(lorises)} slow-loris connections still open"


async def test_connection_flood_is_capped_per_address(
    running: Running, gw_home: Home, closing: list[Any]
) -> None:
    for _ in range(40):  # more than the per-address cap of 16; plain TCP, no TLS
        tcp = await trio.open_tcp_stream("127.0.0.1", running.port)
        closing.append(tcp)
    with trio.fail_after(10):
        while running.gateway.table.refused["max_connections_per_ip"] < 24:
            await trio.sleep(0.05)
    status, answer = await trio.to_thread.run_sync(good_call, running.url, gw_home)
    assert status == 200 and answer["result"] == {"ok": True}
    # The idle ones never finish a handshake: closed after handshake_timeout_ms.
    with trio.fail_after(10):
        while len(running.gateway.table) > 0:
            await trio.sleep(0.1)


async def test_trickled_body_gets_408(running: Running, gw_home: Home, closing: list[Any]) -> None:
    stream = await tls_connection(running, gw_home)
    closing.append(stream)
    await stream.send_all(
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    with trio.fail_after(10):
        data = b""
        while b"\r\n\r\n" not in data:  # bounded by fail_after
            chunk = await stream.receive_some()
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 408")


async def test_body_over_the_limit_gets_413(start_gateway: Any, gw_home: Home) -> None:
    running = await start_gateway(max_body_bytes=1000)
    body = b'{"jsonrpc":"2.0","method":"echo","params":["' + b"x" * 2000 + b'"],"id":1}'

    def run() -> tuple[int, bytes]:
        with HttpRpcClient(running.url, gw_home.creds("admin"), timeout_s=10) as client:
            return client.post(body)

    status, raw = await trio.to_thread.run_sync(run)
    assert status == 413
    assert json.loads(raw)["error"]["data"] == {"max_body_bytes": 1000}


async def test_quiet_websocket_is_closed_but_a_subscriber_is_not(
    running: Running, gw_home: Home
) -> None:
    quiet = await open_websocket_stream(running.url, gw_home.creds("read"), timeout_s=10)
    listener = await open_websocket_stream(running.url, gw_home.creds("read"), timeout_s=10)
    try:
        subscribe = b'{"jsonrpc":"2.0","method":"subscribe","params":["blocks"],"id":1}\n'
        await listener.send_all(subscribe)
        assert b'"result"' in await listener.receive_some()
        with trio.fail_after(10):
            assert await quiet.receive_some() == b""  # the idle limit is 2 s here
        running.rpc.hub.publish("blocks", {"height": 1})
        with trio.fail_after(5):
            assert b'"height":1' in await listener.receive_some()
    finally:
        await quiet.aclose()
        await listener.aclose()


async def test_in_flight_cap_per_credential(running: Running, gw_home: Home, gate: Any) -> None:
    streams = []
    try:
        for _ in range(8):  # the cap in the test settings
            streams.append(await open_websocket_stream(running.url, gw_home.creds("submit"), 10))
        from node.rpc.client_common import RpcCallError

        try:
            streams.append(await open_websocket_stream(running.url, gw_home.creds("submit"), 10))
        except RpcCallError as error:
            assert error.code == -32007
        else:
            raise AssertionError("a ninth WebSocket of one credential was accepted")
    finally:
        for stream in streams:
            await stream.aclose()


def test_client_verifies_the_server_name(gw_home: Home) -> None:
    context = gw_home.creds("read").ssl_context()
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
