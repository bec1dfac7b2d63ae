"""The benchmark's fault phases: kill -9 of the leader under a steady load, and the catch-up
of that validator once it is restarted hundreds of blocks behind.

Failover: a steady open-loop load goes to every validator but the leader (each pre-signed
stream through one node, so its nonces arrive in order); the leader is killed with SIGKILL
while it runs; the survivors' `blocks` subscriptions time every commit. Reported: how long
commits stopped (the gap around the kill), kill to the first commit after it, and kill to
steady commits again (from then on no gap longer than STEADY_GAP_S).

Catch-up: the load goes on without the killed validator for a while (so that it falls
hundreds of blocks behind), stops and drains; the validator is started again and timed
from answering on its control socket to holding the survivors' head, in blocks and
transactions per second.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path
from typing import Any

from bench_net import LocalTestnet, SubmitStats, live_pid, submit_batch
from bench_phases import StreamCursor, wait_until
from bench_profile import record_later

from node.rpc.client_common import RpcCallError, RpcTimeoutError, RpcTransportError

STEADY_GAP_S = 0.5
CATCH_UP_PROFILE_S = 15.0
SEND_EVERY_S = 0.02


class Commits:
    """Commit times on some nodes, from their `blocks` subscriptions."""

    def __init__(self, net: LocalTestnet, nodes: list[int]) -> None:
        self.net = net
        self.nodes = nodes
        self.times: dict[int, list[tuple[float, int, int]]] = {i: [] for i in nodes}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(i,), daemon=True) for i in nodes
        ]
        self._ready = threading.Barrier(len(nodes) + 1)

    def start(self) -> None:
        for t in self._threads:
            t.start()
        self._ready.wait(timeout=30)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _watch(self, i: int) -> None:
        rpc = self.net.rpc(i)
        rpc.subscribe("blocks")
        self._ready.wait(timeout=30)
        with rpc:
            while not self._stop.is_set():
                try:
                    note = rpc.next_notification(timeout_s=0.5)
                except RpcTimeoutError:
                    continue
                except (RpcTransportError, RpcCallError):
                    return
                block = note.result
                if isinstance(block, dict):
                    self.times[i].append((time.monotonic(), int(block["height"]), block["txs"]))

    def first_node_times(self) -> list[tuple[float, int]]:
        """(time, txs) of each height at the first survivor that reported it."""
        first: dict[int, tuple[float, int]] = {}
        for records in self.times.values():
            for t, height, txs in records:
                if height not in first or t < first[height][0]:
                    first[height] = (t, txs)
        return [first[h] for h in sorted(first)]


def _paced_load(
    net: LocalTestnet,
    cursor: StreamCursor,
    via: dict[int, int],
    rate_tps: float,
    until: threading.Event,
    stats: SubmitStats,
) -> list[threading.Thread]:
    """Send every stream of `via` (stream -> node) at rate_tps in all, on a fixed schedule,
    until `until` is set."""
    per_stream = rate_tps / len(via)

    def run(stream: int, node: int) -> None:
        txs = cursor.streams[stream]
        t0 = time.monotonic()
        sent = 0
        try:
            with net.rpc(node, timeout_s=30) as rpc:
                while not until.is_set():
                    due = int((time.monotonic() - t0) * per_stream)
                    start = cursor.used[stream]
                    end = min(len(txs), start + max(0, due - sent))
                    if end > start:
                        cursor.used[stream] = end
                        sent += end - start
                        submit_batch(rpc, [t.raw.hex() for t in txs[start:end]], stats)
                    elif start >= len(txs):
                        return
                    time.sleep(SEND_EVERY_S)
        except (RpcTransportError, RpcCallError):
            return

    threads = [
        threading.Thread(target=run, args=(stream, node), daemon=True)
        for stream, node in sorted(via.items())
    ]
    for t in threads:
        t.start()
    return threads


def _leader(net: LocalTestnet) -> int:
    with net.rpc(0) as rpc:
        st: Any = rpc.call("node_status")
    return int(st["consensus"]["leader"])


def _gaps(times: list[float], kill_t: float) -> dict[str, float]:
    """The outage around the kill: the longest gap between consecutive commits from the
    last one before the kill on (a block in flight may still commit after the kill), and
    kill to steady commits again (from then on no gap over STEADY_GAP_S)."""
    before = [t for t in times if t <= kill_t]
    after = [t for t in times if t > kill_t]
    if not before or not after:
        return {}
    spans = [before[-1], *after]
    longest = max(itertools.pairwise(spans), key=lambda ab: ab[1] - ab[0])
    steady = after[0]
    for a, b in itertools.pairwise(after):
        if b - a > STEADY_GAP_S:
            steady = b
    return {
        "commits_stopped_s": round(longest[1] - longest[0], 2),
        "kill_to_resumed_s": round(longest[1] - kill_t, 2),
        "kill_to_steady_s": round(steady - kill_t, 2),
        "max_gap_before_kill_s": round(
            max((b - a for a, b in itertools.pairwise(before)), default=0.0), 2
        ),
    }


def failover_and_catch_up(
    net: LocalTestnet,
    cursor: StreamCursor,
    *,
    rate_tps: float = 400.0,
    before_s: float = 8.0,
    after_s: float = 8.0,
    behind_rate_tps: float = 600.0,
    behind_s: float = 40.0,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """profile_dir: py-spy the restarted validator while it catches up (catchup/node0.txt)."""
    leader = _leader(net)
    survivors = [i for i in range(len(net.names)) if i != leader]
    via = {s: (s if s != leader else survivors[0]) for s in range(len(cursor.streams))}
    commits = Commits(net, survivors)
    commits.start()
    stop = threading.Event()
    stats = SubmitStats()
    threads = _paced_load(net, cursor, via, rate_tps, stop, stats)
    time.sleep(before_s)
    kill_t = time.monotonic()
    net.kill(leader, signal.SIGKILL)
    time.sleep(after_s)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    commits.stop()
    times = [t for t, _ in commits.first_node_times()]
    result: dict[str, Any] = {
        "rate_tps": rate_tps,
        "killed": net.names[leader],
        **_gaps(times, kill_t),
        "refused": dict(stats.refused),
    }
    result["catch_up"] = _catch_up(net, cursor, leader, via, behind_rate_tps, behind_s, profile_dir)
    return result


def _status(net: LocalTestnet, i: int) -> dict[str, Any] | None:
    try:
        with net.rpc(i, timeout_s=5) as rpc:
            st: Any = rpc.call("node_status")
        return dict(st)
    except (RpcTransportError, RpcCallError, OSError):
        return None


def _catch_up(
    net: LocalTestnet,
    cursor: StreamCursor,
    node: int,
    via: dict[int, int],
    rate_tps: float,
    seconds: float,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Load without `node` for `seconds`, drain, restart it, time its catch-up."""
    stop = threading.Event()
    stats = SubmitStats()
    threads = _paced_load(net, cursor, via, rate_tps, stop, stats)
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    others = sorted(set(via.values()))

    def drained() -> bool:
        sts = [_status(net, i) for i in others]
        return all(
            s is not None and s["mempool"]["size"] == 0 and s["height"] == sts[0]["height"]  # type: ignore[index]
            for s in sts
        )

    wait_until(drained, 120, poll_s=0.2)
    target = _status(net, others[0]) or {}
    target_height = int(target.get("height", 0))
    net.start(node)
    answered: dict[str, Any] = {}
    first_block: list[float] = []
    last: dict[str, Any] = {}
    spies: list[threading.Thread] = []

    def caught_up() -> bool:
        st = _status(net, node)
        if st is None:
            return False
        if not answered:
            answered.update(st, t=time.monotonic())
            if profile_dir is not None:
                spies.append(
                    record_later([live_pid(net, node)], 0.0, CATCH_UP_PROFILE_S, profile_dir)
                )
        elif not first_block and int(st["height"]) > int(answered["height"]):
            first_block.append(time.monotonic())
        last.clear()
        last.update(st)
        return int(st["height"]) >= target_height

    wait_until(caught_up, 600, poll_s=0.02)
    done_t = time.monotonic()
    for spy in spies:
        spy.join(timeout=CATCH_UP_PROFILE_S + 35)
    start_height = int(answered.get("height", 0))
    # The restarted node's own count of what it committed since it answered (the others'
    # counters run since their own start, not since this node's).
    start_txs = int(answered.get("counters", {}).get("txs_committed", 0))
    target_txs = int(last.get("counters", {}).get("txs_committed", 0))
    wall = max(1e-6, done_t - float(answered.get("t", done_t)))
    return {
        "blocks_behind": target_height - start_height,
        "txs_behind": target_txs - start_txs,
        "seconds": round(wall, 2),
        # From answering on the control socket to its first block fetched (links, heads).
        "first_block_s": round(first_block[0] - float(answered["t"]), 2) if first_block else None,
        "blocks_per_s": round((target_height - start_height) / wall, 1),
        "txs_per_s": round((target_txs - start_txs) / wall, 1),
        "load_tps": rate_tps,
        "load_s": seconds,
    }
