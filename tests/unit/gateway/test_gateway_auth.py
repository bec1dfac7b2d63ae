"""Who may call: each refusal with its documented HTTP status and JSON-RPC error
(docs/GATEWAY.md), and the credentials that work, over POST and over the WebSocket."""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
import trio
from support.gateway import Home, Running, post

from node.rpc.client_common import RpcCallError, RpcTransportError
from node.rpc.errors import FORBIDDEN, RATE_LIMITED, UNAUTHENTICATED
from node.rpc.gateway_client import GatewayCredentials, HttpRpcClient, open_websocket_stream

CALL = b'{"jsonrpc":"2.0","method":"thing_get","id":1}'
SUBMIT = b'{"jsonrpc":"2.0","method":"tx_submit","params":{"tx":"00"},"id":2}'


async def test_no_client_certificate_is_401(running: Running, gw_home: Home) -> None:
    status, body = await post(running.url, gw_home.ca_only(), CALL)
    answer = json.loads(body)
    assert status == 401
    assert answer["error"]["code"] == UNAUTHENTICATED and answer["id"] is None
    assert "issue-client" in answer["error"]["message"]


async def test_certificate_from_another_ca_fails_the_tls_handshake(
    running: Running, gw_home: Home
) -> None:
    # Documented: no HTTP status is possible, the TLS layer refuses (alert unknown_ca).
    with pytest.raises(RpcTransportError, match=r"TLS|closed|lost"):
        await post(running.url, gw_home.creds("foreign"), CALL)
    assert running.gateway.table.refused["tls_handshake"] >= 1


async def test_revoked_certificate_is_401(running: Running, gw_home: Home) -> None:
    status, body = await post(running.url, gw_home.creds("gone"), CALL)
    answer = json.loads(body)
    assert status == 401
    assert answer["error"]["code"] == UNAUTHENTICATED
    assert "revoked" in answer["error"]["message"]


async def test_revocation_takes_effect_without_restart(running: Running, gw_home: Home) -> None:
    from node.daemon.gateway import ca

    ca.issue_client(gw_home.home, "temp", "read", gw_home.clients / "temp")
    status, _ = await post(running.url, gw_home.creds("temp"), CALL)
    assert status == 200
    ca.revoke(gw_home.home, "temp")
    with trio.fail_after(10):
        while True:  # the register is re-read within about a second
            status, _ = await post(running.url, gw_home.creds("temp"), CALL)
            if status == 401:
                break
            await trio.sleep(0.2)


async def test_read_only_client_calling_tx_submit_is_403(running: Running, gw_home: Home) -> None:
    status, body = await post(running.url, gw_home.creds("read"), SUBMIT)
    answer = json.loads(body)
    assert status == 403
    assert answer["error"]["code"] == FORBIDDEN and answer["id"] == 2
    assert answer["error"]["data"] == {"method": "tx_submit", "role": "read", "needs": "submit"}
    status, body = await post(running.url, gw_home.creds("read"), CALL)
    assert status == 200 and json.loads(body)["result"] == {"ok": True}


async def test_forbidden_inside_a_batch_is_per_item(running: Running, gw_home: Home) -> None:
    status, body = await post(
        running.url, gw_home.creds("read"), b"[" + CALL + b"," + SUBMIT + b"]"
    )
    answer = json.loads(body)
    assert status == 200
    assert answer[0]["result"] == {"ok": True}
    assert answer[1]["error"]["code"] == FORBIDDEN


async def test_submit_role_may_submit_and_token_auth_works(running: Running, gw_home: Home) -> None:
    status, body = await post(running.url, gw_home.creds("submit"), SUBMIT)
    assert status == 200 and json.loads(body)["result"]["status"] == "pending"
    status, body = await post(running.url, gw_home.ca_only(gw_home.token), SUBMIT)
    assert status == 200 and json.loads(body)["result"]["status"] == "pending"
    status, body = await post(running.url, gw_home.ca_only("chain_not-a-real-token"), CALL)
    assert status == 401 and json.loads(body)["error"]["code"] == UNAUTHENTICATED


async def test_over_rate_client_is_429_with_retry_after(running: Running, gw_home: Home) -> None:
    def burst() -> list[Any]:
        out = []
        with HttpRpcClient(running.url, gw_home.creds("slow"), timeout_s=10) as client:
            for _ in range(6):  # rate 1/s, burst 2: the later ones are refused
                status, body = client.post(CALL)
                out.append((status, json.loads(body)))
        return out

    answers = await trio.to_thread.run_sync(burst)
    refused = [a for s, a in answers if s == 429]
    assert [s for s, _ in answers[:2]] == [200, 200]
    assert refused, answers
    error = refused[0]["error"]
    assert error["code"] == RATE_LIMITED and error["data"]["retry_after_ms"] > 0
    with pytest.raises(RpcCallError) as caught:
        await trio.to_thread.run_sync(
            lambda: HttpRpcClient(running.url, gw_home.creds("slow")).call("thing_get")
        )
    assert caught.value.code == RATE_LIMITED


async def test_websocket_needs_a_credential(running: Running, gw_home: Home) -> None:
    with pytest.raises(RpcCallError) as caught:
        await open_websocket_stream(running.url, gw_home.ca_only(), timeout_s=10)
    assert caught.value.code == UNAUTHENTICATED


async def test_websocket_role_and_rate_apply_per_message(running: Running, gw_home: Home) -> None:
    stream = await open_websocket_stream(running.url, gw_home.creds("read"), timeout_s=10)
    try:
        await stream.send_all(SUBMIT + b"\n" + CALL + b"\n")
        lines: list[Any] = []
        with trio.fail_after(10):
            buffer = b""
            while buffer.count(b"\n") < 2:  # bounded by fail_after
                buffer += await stream.receive_some()
        lines = [json.loads(line) for line in buffer.splitlines()]
        assert lines[0]["error"]["code"] == FORBIDDEN
        assert lines[1]["result"] == {"ok": True}
    finally:
        await stream.aclose()


async def test_health_needs_no_credential_but_metrics_does(running: Running, gw_home: Home) -> None:
    def get(path: str, creds: GatewayCredentials) -> int:
        with HttpRpcClient(running.url, creds, timeout_s=10) as client:
            return client.get(path)[0]

    # This test gateway has no health or metrics sources: 404, but only after the credential.
    assert await trio.to_thread.run_sync(get, "/healthz", gw_home.ca_only()) == 404
    assert await trio.to_thread.run_sync(get, "/metrics", gw_home.ca_only()) == 401
    assert await trio.to_thread.run_sync(get, "/metrics", gw_home.creds("read")) == 404


def test_server_context_refuses_plain_tls_versions(gw_home: Home) -> None:
    from node.daemon.gateway.server import server_ssl_context

    context = server_ssl_context(gw_home.home)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
