"""Fixtures: a gateway in front of the RPC tests' toy server (support/gateway.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from support.gateway import TEST_SETTINGS, Home, Running, add_node_like_methods, rpc_helpers

from node.daemon.gateway import ca
from node.daemon.gateway.server import Gateway
from node.rpc import RpcServer


@pytest.fixture(scope="session")
def gw_home() -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    try:
        home, clients = root / "home", root / "clients"
        ca.init_ca(home, "node0")
        for role in ca.ROLES:
            ca.issue_client(home, role, role, clients / role)
        ca.issue_client(home, "gone", "admin", clients / "gone")
        ca.revoke(home, "gone")
        ca.issue_client(home, "slow", "admin", clients / "slow", rate=1)
        token, _ = ca.issue_token(home, "tok", "submit")
        slow_token, _ = ca.issue_token(home, "slowtok", "read", rate=1)
        other = root / "other"
        ca.init_ca(other, "elsewhere")
        ca.issue_client(other, "admin", "admin", clients / "foreign")
        # A foreign client that trusts our server (it has our ca.pem), with its own CA's cert.
        shutil.copy(home / "gateway" / "ca.pem", clients / "foreign" / "ca.pem")
        yield Home(home, clients, token, slow_token)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def start_gateway(nursery: trio.Nursery, gw_home: Home, socket_path: Path, gate: Any) -> Any:
    async def start(**overrides: Any) -> Running:
        server = RpcServer(socket_path)
        rpc_helpers.register_toy_methods(server, gate)
        add_node_like_methods(server)
        await nursery.start(server.run)
        gateway = Gateway(
            gw_home.home, replace(TEST_SETTINGS, **overrides), server, metrics=None, health=None
        )
        port = await nursery.start(gateway.run)
        return Running(server, gateway, f"https://127.0.0.1:{port}", port)

    return start


@pytest.fixture
async def running(start_gateway: Any) -> Running:
    return await start_gateway()


@pytest.fixture
def socket_path(short_dir: Path) -> Path:
    return short_dir / "ctl" / "control.sock"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="gwr-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def gate() -> Any:
    return rpc_helpers.Gate()


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    streams: list[Any] = []
    yield streams
    for stream in streams:
        await trio.aclose_forcefully(stream)
