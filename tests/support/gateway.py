"""Gateway test helpers: a node home with a credential of every kind (a certificate per role,
a revoked one, a slow-rate one, tokens, one from another CA), settings, a blocking POST."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.daemon.config import GatewaySection
from node.daemon.gateway.server import Gateway
from node.rpc import CallContext, Params, RpcServer
from node.rpc.gateway_client import GatewayCredentials, HttpRpcClient

_RPC_CONFTEST = Path(__file__).resolve().parents[1] / "unit" / "rpc" / "conftest.py"
_spec = importlib.util.spec_from_file_location("rpc_test_helpers", _RPC_CONFTEST)
assert _spec is not None and _spec.loader is not None
rpc_helpers: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rpc_helpers)


@dataclass
class Home:
    home: Path
    clients: Path
    token: str
    slow_token: str

    def creds(self, name: str, token: str | None = None) -> GatewayCredentials:
        return GatewayCredentials.from_dir(self.clients / name, token=token)

    def ca_only(self, token: str | None = None) -> GatewayCredentials:
        return GatewayCredentials(ca_file=self.home / "gateway" / "ca.pem", token=token)


TEST_SETTINGS = GatewaySection(
    enabled=True,
    listen="127.0.0.1:0",
    max_connections=64,
    max_connections_per_ip=16,
    max_in_flight_per_client=8,
    handshake_timeout_ms=1500,
    header_timeout_ms=1500,
    body_timeout_ms=1500,
    write_timeout_ms=2000,
    ws_idle_timeout_ms=2000,
    rate_admin=10_000,
)


@dataclass
class Running:
    rpc: RpcServer
    gateway: Gateway
    url: str
    port: int


def add_node_like_methods(server: RpcServer) -> None:
    """Names the roles know (tx_submit needs submit, *_get is read)."""

    async def tx_submit(params: Params, context: CallContext) -> object:
        return {"tx_id": params.str("tx"), "status": "pending"}

    async def thing_get(params: Params, context: CallContext) -> object:
        return {"ok": True}

    server.method("tx_submit", tx_submit, params=("tx",))
    server.method("thing_get", thing_get, params=())


async def post(url: str, creds: GatewayCredentials, body: bytes) -> tuple[int, bytes]:
    """One POST in a worker thread (the blocking client), its own connection."""

    def run() -> tuple[int, bytes]:
        with HttpRpcClient(url, creds, timeout_s=10) as client:
            return client.post(body)

    return await trio.to_thread.run_sync(run)
