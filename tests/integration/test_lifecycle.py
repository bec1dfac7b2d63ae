"""Start and stop: clean shutdown on SIGTERM/SIGINT, no process or socket left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.testnet import REPO, chain_cmd, free_base_port

from node.rpc.client import RpcClient


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_then_sigterm_exits_zero_and_removes_socket() -> None:
    root = Path(tempfile.mkdtemp(prefix="life", dir="/tmp"))
    try:
        home = root / "n"
        port = free_base_port(1)
        chain_cmd(
            "init",
            "--single",
            "--home",
            str(home),
            "--chain-id",
            "life",
            "--listen",
            f"127.0.0.1:{port}",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "start", "--home", str(home)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        sock = home / "control.sock"
        try:

            def committing() -> bool:
                try:
                    with RpcClient(sock, timeout_s=2) as rpc:
                        return rpc.call("node_status")["height"] >= 1
                except Exception:
                    return False

            wait_for(committing, 30, "the node to commit")
            assert oct(sock.stat().st_mode & 0o777) == oct(0o600)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        assert not sock.exists()
        assert b"stopped cleanly" in out
        # The same home restarts at the height it had.
        chain_cmd("status", "--socket", str(sock), check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_testnet_up_ctrl_c_leaves_nothing_behind() -> None:
    root = Path(tempfile.mkdtemp(prefix="upc", dir="/tmp"))
    net = root / "net"
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node",
                "testnet",
                "up",
                "--dir",
                str(net),
                "--validators",
                "4",
                "--base-port",
                str(free_base_port(4)),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: (net / "testnet.json").exists(), 30, "the testnet to be generated")
            manifest = json.loads((net / "testnet.json").read_text())
            names = [n["name"] for n in manifest["nodes"]]

            def all_committing() -> bool:
                for n in names:
                    try:
                        with RpcClient(net / n / "control.sock", timeout_s=2) as rpc:
                            if rpc.call("node_status")["height"] < 1:
                                return False
                    except Exception:
                        return False
                return True

            wait_for(all_committing, 15, "all 4 validators to commit (within 15 s)")
            pids = [int((net / n / "node.pid").read_text()) for n in names]
            time.sleep(6)  # let the non-tty live view print a round of plain lines
            os.killpg(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-2000:]
        assert "testnet stopped" in text
        assert "node0" in text and "\x1b[" not in text  # plain lines when not a terminal
        for pid in pids:
            wait_for(lambda pid=pid: not alive(pid), 10, f"pid {pid} to exit")
        assert not list(net.glob("node*/control.sock"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_full_map_halts_with_a_message_and_restarts_intact() -> None:
    from node.ledger import crypto
    from node.ledger.tx import make_tx

    root = Path(tempfile.mkdtemp(prefix="full", dir="/tmp"))
    try:
        home = root / "n"
        listen = f"127.0.0.1:{free_base_port(1)}"
        chain_cmd("init", "--single", "--home", str(home), "--chain-id", "full", "--listen", listen)
        config = home / "config.toml"
        config.write_text(config.read_text().replace("map_size_mb = 16384", "map_size_mb = 2"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "start", "--home", str(home)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        sock = home / "control.sock"
        key = crypto.read_key_file(home / "admin.key")
        try:
            wait_for(lambda: sock.exists(), 30, "the control socket")
            with RpcClient(sock, timeout_s=10) as rpc:
                chain_id = rpc.call("node_status")["chain_id"]
                for nonce in range(1, 400):
                    if proc.poll() is not None:
                        break
                    tx = make_tx(
                        key,
                        chain_id,
                        nonce,
                        "record.put",
                        {"ns": "big", "key": f"k{nonce}", "value": "x" * 12_000},
                    )
                    try:
                        rpc.call("tx_submit", {"tx": tx.raw.hex()})
                        rpc.call("tx_wait", {"tx_id": tx.tx_id.hex(), "timeout_ms": 5000})
                    except Exception:
                        break
                # Halted, it keeps serving reads (and refuses writes) until it is stopped.
                status = rpc.call("node_status")
                assert status["halted"] and "map_size_mb" in status["halted"], status
                assert rpc.call("block_get", {"height": status["height"]})["height"] > 0
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = out.decode(errors="replace")
        assert proc.returncode == 2, text[-2000:]
        assert "is full" in text and "map_size_mb" in text
        assert "Traceback" not in text
        assert not sock.exists()
        from node.daemon.replay import replay_home

        stored, replayed = replay_home(home)
        assert stored.height > 0 and stored == replayed  # nothing half-written
        config.write_text(config.read_text().replace("map_size_mb = 2", "map_size_mb = 64"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "start", "--home", str(home)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:

            def past(height: int) -> bool:
                try:
                    with RpcClient(sock, timeout_s=2) as rpc:
                        return rpc.call("node_status")["height"] > height
                except Exception:
                    return False

            wait_for(lambda: past(stored.height), 30, "commits to resume after the restart")
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
