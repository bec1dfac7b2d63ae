"""Process handling operators can trust (issue 11, item 5).

- SIGTERM, SIGINT and SIGHUP stop a foreground `chain testnet up` and every node, promptly;
  after SIGKILL of `up` the nodes notice (the lifeline pipe) and stop by themselves.
- A p2p port in use fails at once, with the address and what to do; `testnet up` exits
  non-zero with the node's own error and leaves no node running.
- A second node on the same home is refused; SIGHUP stops `chain start` with status 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.testnet import REPO, free_base_port

from node.testnet.local import LocalTestnet, _alive

STOP_BOUND_S = 3.0  # the bound for an idle 4-node testnet
NODE_EXIT_BOUND_S = 10.0  # nodes noticing that a SIGKILLed `up` is gone
START_BOUND_S = 60.0


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="proc", dir="/tmp"))
    yield root
    # Whatever happened, no node of ours may outlive the test.
    for pid_file in root.glob("**/node.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree(root, ignore_errors=True)


class Up:
    """A foreground `chain testnet up` whose output is collected by a thread."""

    def __init__(self, net: Path, *extra: str, validators: int = 4) -> None:
        self.net = net
        command = [sys.executable, "-m", "node", "testnet", "up", "--dir", str(net)]
        self.proc = subprocess.Popen(
            [*command, "--validators", str(validators), *extra],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # signals in this test go to `up` alone, as systemd's would
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} from testnet up:\n{self.text[-3000:]}")

    def wait_exit(self, timeout_s: float) -> float:
        started = time.monotonic()
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=5)
        return time.monotonic() - started

    def node_pids(self) -> list[int]:
        manifest = json.loads((self.net / "testnet.json").read_text())
        return [int((self.net / n["name"] / "node.pid").read_text()) for n in manifest["nodes"]]


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name
)
def test_a_stop_signal_stops_foreground_testnet_and_every_node(
    workdir: Path, sig: signal.Signals
) -> None:
    up = Up(workdir / "net", "--base-port", str(free_base_port(4)))
    up.wait_for_line("committing", START_BOUND_S)
    pids = up.node_pids()
    assert all(_alive(pid) for pid in pids)
    sent = time.monotonic()
    os.kill(up.proc.pid, sig)
    up.wait_exit(30)
    took = time.monotonic() - sent
    assert up.proc.returncode == 0, up.text[-2000:]
    assert "testnet stopped" in up.text
    assert _wait_gone(pids, 1.0) == [], f"nodes outlived `testnet up` after {sig.name}"
    assert took < STOP_BOUND_S, f"{sig.name}: `testnet up` took {took:.2f}s to return"
    assert not list((workdir / "net").glob("node*/control.sock"))


def test_nodes_stop_by_themselves_when_foreground_up_is_killed(workdir: Path) -> None:
    up = Up(workdir / "net", "--base-port", str(free_base_port(4)))
    up.wait_for_line("committing", START_BOUND_S)
    pids = up.node_pids()
    os.kill(up.proc.pid, signal.SIGKILL)  # no handler runs: only the kernel closes the pipe
    up.wait_exit(10)
    assert _wait_gone(pids, NODE_EXIT_BOUND_S) == [], "nodes outlived a SIGKILLed `up`"
    for log in (workdir / "net").glob("node*/node.log"):
        text = log.read_text()
        assert "supervisor gone" in text and "stopped cleanly" in text, text[-1500:]


def test_detached_nodes_outlive_up_until_down(workdir: Path) -> None:
    net = workdir / "net"
    up = Up(net, "--detach", "--base-port", str(free_base_port(2)), validators=2)
    up.wait_exit(START_BOUND_S)
    assert up.proc.returncode == 0, up.text
    testnet = LocalTestnet(net)
    try:
        pids = [testnet.pid(n) for n in testnet.names]
        assert all(pid is not None for pid in pids)
    finally:
        testnet.stop_all()
    assert [n for n in testnet.names if testnet.pid(n) is not None] == []


def test_port_in_use_fails_fast_with_the_address(workdir: Path) -> None:
    base = free_base_port(4)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        up = Up(workdir / "net", "--base-port", str(base))
        took = up.wait_exit(START_BOUND_S)
    text = up.text
    assert up.proc.returncode == 1, text
    assert f"127.0.0.1:{base + 2} is already in use" in text
    assert "node2" in text and "--base-port" in text and "Traceback" not in text
    assert took < START_BOUND_S
    net = LocalTestnet(workdir / "net")
    assert [n for n in net.names if net.pid(n) is not None] == []
    log = net.log("node2")
    assert "already in use" in log and "Traceback" not in log


def test_chain_start_refuses_a_taken_port_and_a_taken_home(workdir: Path) -> None:
    net = LocalTestnet(workdir / "net", validators=2, base_port=free_base_port(2))
    net.prepare()
    home = net.home(0)
    port = int(net.manifest()["nodes"][0]["address"].rsplit(":", 1)[1])
    start = [sys.executable, "-m", "node", "start", "--home", str(home)]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        proc = subprocess.run(start, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"p2p address 127.0.0.1:{port} is already in use" in proc.stderr
    assert "[p2p] listen" in proc.stderr and "Traceback" not in proc.stderr
    assert not (home / "control.sock").exists()

    first = subprocess.Popen(start, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (home / "control.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(start, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "holds this node home" in second.stderr and str(first.pid) in second.stderr
        first.send_signal(signal.SIGHUP)  # a closed terminal stops `chain start` cleanly
        out, _ = first.communicate(timeout=STOP_BOUND_S * 5)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, out.decode(errors="replace")[-2000:]
    assert b"received SIGHUP" in out and b"stopped cleanly" in out
    assert not (home / "control.sock").exists()
