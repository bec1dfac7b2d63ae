"""The control socket's JSON-RPC conformance tests, run again over the gateway: once over
HTTPS POST (one request body per line the test sends) and once over the WebSocket (one
message per line). Same methods, results and errors: one registry, two transports.

Left out: tests of the socket's line framing itself (CR LF, blank lines, a last line at EOF)
and of its Unix-socket limits, which have no meaning on these transports."""

from __future__ import annotations

import importlib.util
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from support.gateway import Home, Running, rpc_helpers

from node.rpc.gateway_client import HttpRpcClient, open_websocket_stream

_PATH = Path(__file__).resolve().parents[1] / "rpc" / "test_rpc_conformance.py"
_spec = importlib.util.spec_from_file_location("rpc_conformance_cases", _PATH)
assert _spec is not None and _spec.loader is not None
_cases: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)

SHARED = [
    "test_spec_calls",
    "test_spec_notifications_get_no_reply",
    "test_spec_error_examples",
    "test_spec_mixed_batch",
    "test_spec_all_notification_batch_gets_no_reply",
    "test_every_legal_id_type_is_echoed",
    "test_illegal_id_types_are_invalid_requests",
    "test_invalid_requests_echo_a_legal_id",
    "test_non_object_request_is_invalid",
    "test_invalid_request_without_id_is_still_answered",
    "test_method_not_found_suggests_a_close_name",
    "test_invalid_params",
    "test_application_error_carries_code_message_and_data",
    "test_handler_bug_is_internal_error_logged_and_survived",
    "test_responses_are_compact_single_lines_in_request_order",
    "test_batch_processes_in_order_and_reports_each_error",
]
for _name in SHARED:
    globals()[_name] = getattr(_cases, _name)


class HttpLines:
    """The RawConnection interface over POST: each line sent is one request body; each
    answer body is one line read (a 204 for notifications gives none)."""

    def __init__(self, client: HttpRpcClient) -> None:
        self._client = client
        self._answers: deque[bytes] = deque()

    async def send(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if line.strip():
                status, body = await trio.to_thread.run_sync(self._client.post, line)
                if status != 204:
                    self._answers.append(body.rstrip(b"\n"))

    async def send_json(self, value: object) -> None:
        await self.send(json.dumps(value).encode() + b"\n")

    async def read_line(self) -> bytes:
        return self._answers.popleft()

    async def read_json(self) -> Any:
        return json.loads(await self.read_line())

    async def request(self, value: object) -> Any:
        await self.send_json(value)
        return await self.read_json()


@pytest.fixture(params=["https", "websocket"])
async def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(running: Running) -> Any:
    return running.rpc


@pytest.fixture
async def connect(
    running: Running, gw_home: Home, transport: str
) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    opened: list[Any] = []
    clients: list[HttpRpcClient] = []

    async def open_one() -> Any:
        creds = gw_home.creds("admin")
        if transport == "https":
            client = HttpRpcClient(running.url, creds, timeout_s=10)
            clients.append(client)
            return HttpLines(client)
        stream = await open_websocket_stream(running.url, creds, timeout_s=10)
        opened.append(stream)
        return rpc_helpers.RawConnection(stream)

    yield open_one
    for stream in opened:
        await trio.aclose_forcefully(stream)
    for client in clients:
        client.close()


async def test_subscriptions_over_websocket_and_advice_over_post(
    running: Running, gw_home: Home
) -> None:
    stream = await open_websocket_stream(running.url, gw_home.creds("read"), timeout_s=10)
    connection = rpc_helpers.RawConnection(stream)
    try:
        answer = await connection.request(
            {"jsonrpc": "2.0", "method": "subscribe", "params": ["blocks"], "id": 1}
        )
        subscription = answer["result"]
        running.rpc.hub.publish("blocks", {"height": 7})
        push = await connection.read_json()
        assert push["params"] == {"subscription": subscription, "result": {"height": 7}}
    finally:
        await trio.aclose_forcefully(stream)
    with HttpRpcClient(running.url, gw_home.creds("read"), timeout_s=10) as client:
        body = b'{"jsonrpc":"2.0","method":"subscribe","params":["blocks"],"id":1}'
        status, raw = await trio.to_thread.run_sync(client.post, body)
    assert status == 200
    assert "WebSocket" in json.loads(raw)["error"]["message"]
