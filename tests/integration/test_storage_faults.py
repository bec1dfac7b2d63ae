"""Storage faults on a real node: a disk that fills during load, an injected write error, and
a flipped byte in the store.

A full disk or a write error halts the node cleanly: it stops committing, keeps serving
reads (writes answer 1030), says which path and what to do, exits 2 when stopped, and after
the fix restarts and carries on. A damaged store is detected at start: the node refuses to
serve wrong state and says how to recover."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.testnet import REPO, chain_cmd, free_base_port

from node.ledger import crypto
from node.ledger.tx import make_tx
from node.rpc.client import RpcCallError, RpcClient

HALT_BOUND_S = 60.0
LOAD_BATCH_TXS = 8


@pytest.fixture
def home() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="disk", dir="/tmp"))
    home = root / "n"
    listen = f"127.0.0.1:{free_base_port(1)}"
    chain_cmd("init", "--single", "--home", str(home), "--chain-id", "disk", "--listen", listen)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def start(home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "start", "--home", str(home)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while not (home / "control.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.communicate(timeout=10)[0].decode(errors="replace")
            raise AssertionError(f"node did not start: {out[-2000:]}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    return proc.returncode, out


def load_until_halted(home: Path, value_bytes: int, bound_s: float) -> tuple[int, str]:
    """Submit record.puts, LOAD_BATCH_TXS per call, until the node says it halted;
    (admitted nonce, reason). Batches, since the proposer batches for [consensus] batch_ms: one tx
    per commit would fill the disk at one block per batch_ms."""
    key = crypto.read_key_file(home / "admin.key")
    deadline = time.monotonic() + bound_s
    with RpcClient(home / "control.sock", timeout_s=10) as rpc:
        chain_id = rpc.call("node_status")["chain_id"]
        nonce = 0
        while time.monotonic() < deadline:
            status = rpc.call("node_status")
            if status["halted"]:
                return nonce, status["halted"]
            txs = [
                make_tx(
                    key,
                    chain_id,
                    nonce + i,
                    "record.put",
                    {"ns": "big", "key": f"k{nonce + i}", "value": "x" * value_bytes},
                )
                for i in range(1, LOAD_BATCH_TXS + 1)
            ]
            try:
                answers = rpc.call("tx_submit_batch", {"txs": [t.raw.hex() for t in txs]})
            except RpcCallError:
                time.sleep(0.2)
                continue
            admitted = 0
            for answer in answers:
                if "error" in answer:
                    break
                admitted += 1
            if admitted == 0:
                time.sleep(0.2)
                continue
            nonce += admitted
            try:
                rpc.call("tx_wait", {"tx_id": txs[admitted - 1].tx_id.hex(), "timeout_ms": 3000})
            except RpcCallError:
                time.sleep(0.2)
    raise AssertionError(f"the node did not halt within {bound_s}s")


def assert_serves_reads_and_refuses_writes(home: Path) -> None:
    with RpcClient(home / "control.sock", timeout_s=10) as rpc:
        status = rpc.call("node_status")
        assert status["halted"]
        block = rpc.call("block_get", {"height": status["height"]})
        assert block["height"] == status["height"]
        key = crypto.read_key_file(home / "admin.key")
        tx = make_tx(key, status["chain_id"], 10**6, "notary.anchor", {"digest": b"\1" * 32})
        with pytest.raises(RpcCallError) as info:
            rpc.call("tx_submit", {"tx": tx.raw.hex()})
        assert info.value.code == 1030


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_disk_that_fills_halts_cleanly_serves_reads_and_resumes_after_space_is_freed(
    home: Path,
) -> None:
    data = home / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(data)], check=True
    )
    proc = start(home)
    try:
        _, reason = load_until_halted(home, 12_000, HALT_BOUND_S)
        assert "disk" in reason and str(data) in reason and "free space" in reason, reason
        assert_serves_reads_and_refuses_writes(home)
    finally:
        code, out = stop(proc)
    assert code == 2, out[-2000:]
    assert "Traceback" not in out
    from node.daemon.replay import check_home

    subprocess.run(["mount", "-o", "remount,size=256m", str(data)], check=True)
    report = check_home(home)
    assert report.ok, report.problems  # nothing half-written
    proc = start(home)
    try:
        with RpcClient(home / "control.sock", timeout_s=10) as rpc:
            before = rpc.call("node_status")["height"]
            deadline = time.monotonic() + 30
            while rpc.call("node_status")["height"] <= before and time.monotonic() < deadline:
                time.sleep(0.2)
            assert rpc.call("node_status")["height"] > before, "no commit after space was freed"
            assert not rpc.call("node_status")["halted"]
    finally:
        assert stop(proc)[0] == 0


def test_an_injected_write_error_halts_cleanly_and_a_restart_resumes(home: Path) -> None:
    proc = start(home, {"CHAIN_WRITE_ERROR_AT": "4"})
    try:
        _, reason = load_until_halted(home, 100, HALT_BOUND_S)
        assert "disk error" in reason and "injected" in reason, reason
        assert_serves_reads_and_refuses_writes(home)
    finally:
        code, out = stop(proc)
    assert code == 2 and "Traceback" not in out, out[-2000:]
    proc = start(home)
    try:
        load_height = 0
        with RpcClient(home / "control.sock", timeout_s=10) as rpc:
            load_height = rpc.call("node_status")["height"]
        key = crypto.read_key_file(home / "admin.key")
        with RpcClient(home / "control.sock", timeout_s=10) as rpc:
            account = rpc.call("account_get", {"account": key.public_key.hex()})
            tx = make_tx(
                key, "disk", account["next_nonce"], "notary.anchor", {"digest": b"\2" * 32}
            )
            rpc.call("tx_submit", {"tx": tx.raw.hex()})
            done = rpc.call("tx_wait", {"tx_id": tx.tx_id.hex(), "timeout_ms": 20_000})
        assert done["status"] == "committed" and done["height"] > load_height
    finally:
        assert stop(proc)[0] == 0


def test_a_flipped_byte_in_a_stored_block_is_detected_at_start(home: Path) -> None:
    marker = "MARKER-" + "q" * 40
    proc = start(home)
    try:
        key = crypto.read_key_file(home / "admin.key")
        with RpcClient(home / "control.sock", timeout_s=10) as rpc:
            tx = make_tx(key, "disk", 1, "record.put", {"ns": "m", "key": "k", "value": marker})
            rpc.call("tx_submit", {"tx": tx.raw.hex()})
            assert (
                rpc.call("tx_wait", {"tx_id": tx.tx_id.hex(), "timeout_ms": 20_000})["status"]
                == "committed"
            )
    finally:
        assert stop(proc)[0] == 0
    path = home / "data" / "data.mdb"
    blob = bytearray(path.read_bytes())
    needle = marker.encode()
    hits = 0
    at = blob.find(needle)
    while at >= 0:  # every copy: the block, the state value, the history, old pages
        blob[at + 10] ^= 0x01
        hits += 1
        at = blob.find(needle, at + 1)
    assert hits >= 1
    path.write_bytes(bytes(blob))
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "start", "--home", str(home)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 2, out[-2000:]
    assert "is damaged" in out and "chain restore" in out and "resync" in out, out[-2000:]
    assert "Traceback" not in out
    assert not (home / "control.sock").exists()  # it never served the damaged state
