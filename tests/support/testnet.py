"""Drive a real local testnet (OS processes, real sockets, real LMDB) from tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from node.client.wallet import Wallet
from node.ledger import crypto
from node.rpc.client import RpcClient

REPO = Path(__file__).resolve().parents[2]


def free_base_port(count: int) -> int:
    """A base port whose next `count` ports are free right now (best effort)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65000:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def chain_cmd(
    *args: str, timeout_s: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "node", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"chain {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Testnet:
    __test__ = False

    def __init__(self, validators: int = 1, full_nodes: int = 0, tick_ms: int = 0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ct", dir="/tmp"))
        self.dir = self.root / "net"
        self.validators = validators
        self.full_nodes = full_nodes
        self.tick_ms = tick_ms
        self.names = [f"node{i}" for i in range(validators + full_nodes)]

    def up(self) -> None:
        args = [
            "testnet",
            "up",
            "--dir",
            str(self.dir),
            "--validators",
            str(self.validators),
            "--full-nodes",
            str(self.full_nodes),
            "--detach",
            "--base-port",
            str(free_base_port(len(self.names))),
        ]
        if self.tick_ms:
            args += ["--tick-ms", str(self.tick_ms)]
        chain_cmd(*args)

    def down(self) -> None:
        if (self.dir / "testnet.json").exists():
            chain_cmd("testnet", "down", "--dir", str(self.dir), check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def socket(self, i: int = 0) -> Path:
        return self.dir / self.names[i] / "control.sock"

    def rpc(self, i: int = 0, timeout_s: float = 30.0) -> RpcClient:
        return RpcClient(self.socket(i), timeout_s=timeout_s)

    def key(self, account: str) -> crypto.SigningKey:
        return crypto.read_key_file(self.dir / "accounts" / f"{account}.key")

    def wallet(self, account: str, node: int = 0) -> Wallet:
        return Wallet(self.rpc(node), self.key(account))

    def pid(self, i: int) -> int | None:
        try:
            pid = int((self.dir / self.names[i] / "node.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(i)
        if pid is None:
            raise AssertionError(f"{self.names[i]} is not running")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 10
            while self.pid(i) is not None and time.monotonic() < deadline:
                time.sleep(0.02)

    def start(self, i: int) -> None:
        chain_cmd("testnet", "start", "--dir", str(self.dir), self.names[i])

    def status(self, i: int, timeout_s: float = 2.0) -> dict[str, Any] | None:
        try:
            with self.rpc(i, timeout_s=timeout_s) as rpc:
                return dict(rpc.call("node_status"))  # type: ignore[arg-type]
        except Exception:
            return None

    def wait_height(self, i: int, height: int, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.status(i)
            if last is not None and last["height"] >= height:
                return last
            time.sleep(0.1)
        raise AssertionError(
            f"{self.names[i]} did not reach height {height} in {timeout_s}s: {last}"
        )

    def log(self, i: int) -> str:
        return (self.dir / self.names[i] / "node.log").read_text(errors="replace")

    def __enter__(self) -> Testnet:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
