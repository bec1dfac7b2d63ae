"""The benchmark's view of a running testnet: commit watchers, samplers, submitters.

The testnet itself is node.testnet's LocalTestnet, the one `chain testnet` and the tests
run (bench_testnet makes one). Everything here talks to the nodes only through their
control sockets and /proc, exactly as an operator's tooling would. Times are
`time.monotonic()` in the benchmark process, so a scheduled send time and a commit time are
on one clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.rpc.client import RpcClient
from node.rpc.client_common import RpcCallError, RpcTimeoutError, RpcTransportError
from node.testnet.local import LocalTestnet

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WATCH_POLL_S = 0.5
RPC_TIMEOUT_S = 60.0


def chain(*args: str, timeout_s: float = 180.0) -> str:
    """`chain ARGS...` as its own process (for timing the command an operator would run)."""
    proc = subprocess.run(
        [sys.executable, "-m", "node", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"chain {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def bench_testnet(
    directory: Path | None,
    validators: int,
    *,
    keep: bool = False,
    prefix: str = "bench",
    gateway: bool = False,
) -> LocalTestnet:
    """node.testnet's LocalTestnet (what `chain testnet up` runs) for a benchmark: in
    `directory`, or in a fresh temporary one when None, on free ports and with production
    defaults; `down` removes the directory unless `keep`."""
    return LocalTestnet(
        directory,
        validators=validators,
        remove_on_down=not keep,
        prefix=prefix,
        rpc_timeout_s=RPC_TIMEOUT_S,
        gateway=gateway,
    )


def live_pid(net: LocalTestnet, i: int) -> int:
    """The pid of node i, which must be running (ProcessLookupError otherwise)."""
    pid = net.pid(i)
    if pid is None:
        raise ProcessLookupError(f"{net.names[i]} is not running")
    return pid


# --- /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine_cpu_s() -> dict[str, float]:
    """Machine-wide CPU seconds since boot from /proc/stat: busy, idle, steal (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {
        "busy_s": (user + nice + system + irq + softirq) / CLK_TCK,
        "idle_s": (idle + iowait) / CLK_TCK,
        "steal_s": steal / CLK_TCK,
    }


def own_cpu_s() -> float:
    """CPU seconds of this (benchmark) process, all threads."""
    times = os.times()
    return times.user + times.system


def disk_bytes(path: Path) -> int:
    """Bytes the files under `path` occupy on disk (allocated blocks, not apparent size)."""
    total = 0
    for entry in path.rglob("*"):
        if entry.is_file():
            total += entry.stat().st_blocks * 512
    return total


# --- commit watching ----------------------------------------------------------------


@dataclass
class NodeCommits:
    """What one node reported through its "blocks" subscription."""

    times: list[float] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    cumulative: list[int] = field(default_factory=list)  # txs committed since watching began
    seen_at: dict[int, float] = field(default_factory=dict)
    error: str | None = None

    def committed_by(self, t: float) -> int:
        """Transactions this node had committed at time t (step function)."""
        lo, hi = 0, len(self.times)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.times[mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        return self.cumulative[lo - 1] if lo else 0


class CommitWatcher:
    """One thread per node reading its "blocks" notifications as they are pushed."""

    def __init__(self, net: LocalTestnet) -> None:
        self.net = net
        self.nodes = [NodeCommits() for _ in net.names]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ready = threading.Barrier(len(net.names) + 1)

    def start(self) -> None:
        for i in range(len(self.nodes)):
            t = threading.Thread(target=self._watch, args=(i,), name=f"watch{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._ready.wait(timeout=30)

    def _watch(self, i: int) -> None:
        record = self.nodes[i]
        try:
            rpc = self.net.rpc(i)
            rpc.subscribe("blocks")
        except (RpcTransportError, RpcCallError) as exc:
            record.error = str(exc)
            self._ready.wait(timeout=30)
            return
        self._ready.wait(timeout=30)
        total = 0
        with rpc:
            while not self._stop.is_set():
                try:
                    note = rpc.next_notification(timeout_s=WATCH_POLL_S)
                except RpcTimeoutError:
                    continue
                except (RpcTransportError, RpcCallError) as exc:
                    record.error = str(exc)
                    return
                now = time.monotonic()
                block = note.result
                if not isinstance(block, dict):
                    continue
                total += int(block["txs"])
                record.times.append(now)
                record.heights.append(int(block["height"]))
                record.cumulative.append(total)
                record.seen_at[int(block["height"])] = now

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def committed_on_all(self, t: float) -> int:
        return min(n.committed_by(t) for n in self.nodes)

    def all_seen_at(self, height: int) -> float | None:
        """When the last node reported `height` (None if one has not)."""
        times = [n.seen_at.get(height) for n in self.nodes]
        if any(x is None for x in times):
            return None
        return max(x for x in times if x is not None)

    def first_seen_at(self, height: int) -> float | None:
        """When the first node reported `height`."""
        times = [t for t in (n.seen_at.get(height) for n in self.nodes) if t is not None]
        return min(times) if times else None

    def max_height(self) -> int:
        return min((n.heights[-1] if n.heights else 0) for n in self.nodes)


# --- sampling ----------------------------------------------------------------


class Sampler:
    """Every second: mempool size, RssAnon and CPU seconds of every node."""

    def __init__(self, net: LocalTestnet, interval_s: float = 1.0) -> None:
        self.net = net
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self.pids = [live_pid(net, i) for i in range(len(net.names))]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        clients = [self.net.rpc(i, timeout_s=10) for i in range(len(self.net.names))]
        try:
            while not self._stop.wait(self.interval_s):
                sample: dict[str, Any] = {
                    "t": time.monotonic(),
                    "nodes": [],
                    "machine": machine_cpu_s(),
                    "bench_cpu_s": own_cpu_s(),
                }
                for client, pid in zip(clients, self.pids, strict=True):
                    try:
                        mempool = int(client.call("mempool_status")["size"])  # type: ignore[index]
                    except (RpcTransportError, RpcCallError):
                        mempool = -1
                    sample["nodes"].append(
                        {
                            "mempool": mempool,
                            "rss_anon_kb": status_kb(pid, "RssAnon"),
                            "cpu_s": cpu_seconds(pid),
                        }
                    )
                self.samples.append(sample)
        finally:
            for client in clients:
                client.close()

    def peak_rss_anon_kb(self) -> list[int]:
        return [
            max((s["nodes"][i]["rss_anon_kb"] for s in self.samples), default=0)
            for i in range(len(self.pids))
        ]

    def cpu_split(self, t0: float, t1: float) -> dict[str, float]:
        """Cores busy between two times: the nodes, this benchmark, everything else, steal."""
        window = self.window(t0, t1)
        if len(window) < 2:
            return {}
        a, b = window[0], window[-1]
        wall = b["t"] - a["t"]
        nodes = sum(
            nb["cpu_s"] - na["cpu_s"] for na, nb in zip(a["nodes"], b["nodes"], strict=True)
        )
        busy = b["machine"]["busy_s"] - a["machine"]["busy_s"]
        bench = b["bench_cpu_s"] - a["bench_cpu_s"]
        return {
            "machine_cores": round(busy / wall, 2),
            "nodes_cores": round(nodes / wall, 2),
            "bench_cores": round(bench / wall, 2),
            "other_cores": round((busy - nodes - bench) / wall, 2),
            "steal_cores": round((b["machine"]["steal_s"] - a["machine"]["steal_s"]) / wall, 2),
        }

    def window(self, t0: float, t1: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if t0 <= s["t"] <= t1]


# --- submitting ----------------------------------------------------------------


@dataclass
class SubmitStats:
    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    call_s: float = 0.0

    def add_refusal(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


def submit_batch(rpc: RpcClient, hex_txs: list[str], stats: SubmitStats) -> None:
    started = time.monotonic()
    result = rpc.call("tx_submit_batch", {"txs": hex_txs})
    stats.call_s += time.monotonic() - started
    stats.calls += 1
    stats.sent += len(hex_txs)
    if not isinstance(result, list):
        raise RuntimeError(f"tx_submit_batch answered {result!r:.200}")
    for item in result:
        if isinstance(item, dict) and "error" in item:
            stats.add_refusal(str(item["error"].get("reason")))
