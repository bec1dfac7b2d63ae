"""The benchmark's phases on a running testnet: grant accounts, open-loop latency, saturation.

Throughput counts a transaction when EVERY node has reported its block through the "blocks"
subscription. Latency is open loop: each transaction has a scheduled send time fixed before
the run (t0 + j / rate), and its latency is commit-on-every-node minus that time, so a stall
in the node or in the sender shows up in the numbers instead of slowing the offered load.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench_net import (
    CommitWatcher,
    LocalTestnet,
    Sampler,
    SubmitStats,
    cpu_seconds,
    live_pid,
    submit_batch,
)
from bench_report import percentiles, slope_per_s
from bench_workload import SignedTx, grant_txs, interleave

from node.ledger import crypto
from node.rpc.client_common import RpcCallError, RpcTransportError

MAX_BATCH = 2000  # per tx_submit_batch call (the node accepts up to 5000)
# "socket" or "gateway": which transport the load goes through (scripts/bench --via).
SUBMIT_VIA = {"transport": "socket"}


def submit_client(net: LocalTestnet, node: int) -> Any:
    """The client the load is submitted with: the control socket, or the node's HTTPS
    gateway (tx_submit_batch over POST, an admin client certificate)."""
    if SUBMIT_VIA["transport"] == "gateway":
        from node.rpc.gateway_client import GatewayCredentials, HttpRpcClient

        creds = GatewayCredentials.from_dir(net.gateway_credentials_dir(node, "admin"))
        return HttpRpcClient(net.gateway_url(node), creds, timeout_s=60.0)
    return net.rpc(node)


SEND_TICK_S = 0.005
SLICE_S = 5.0
DRAIN_TIMEOUT_S = 60.0


def wait_until(predicate: Any, timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def grant_accounts(net: LocalTestnet, public_keys: list[bytes], timeout_s: float = 120.0) -> float:
    """The admin grants every bench account in one batch; returns the seconds it took."""
    admin = crypto.read_key_file(net.dir / "accounts" / "admin.key")
    started = time.monotonic()
    with net.rpc(0) as rpc:
        first = int(rpc.call("account_get", {"account": admin.public_key.hex()})["next_nonce"])  # type: ignore[index]
        raws = grant_txs(admin, net.chain_id, public_keys, first)
        stats = SubmitStats()
        for i in range(0, len(raws), MAX_BATCH):
            submit_batch(rpc, [r.hex() for r in raws[i : i + MAX_BATCH]], stats)
        if stats.refused:
            raise RuntimeError(f"grants refused: {stats.refused}")
    last = public_keys[-1].hex()

    def granted_everywhere() -> bool:
        for i in range(len(net.names)):
            try:
                with net.rpc(i, timeout_s=5) as rpc:
                    rpc.call("account_get", {"account": last})
            except RpcCallError:
                return False
        return True

    if not wait_until(granted_everywhere, timeout_s, poll_s=0.2):
        raise RuntimeError(f"accounts not granted on every node within {timeout_s:.0f}s")
    return time.monotonic() - started


@dataclass
class StreamCursor:
    """How much of each node's pre-signed stream earlier phases have used."""

    streams: list[list[SignedTx]]
    used: list[int]

    @classmethod
    def of(cls, streams: list[list[SignedTx]]) -> StreamCursor:
        return cls(streams, [0] * len(streams))

    def hexes(self, node: int, start: int, end: int) -> list[str]:
        # Hex on demand (a C loop, ~0.3 us a tx): a million pre-signed txs need no
        # second copy in hex.
        return [t.raw.hex() for t in self.streams[node][start:end]]

    def remaining(self) -> int:
        return sum(len(s) - u for s, u in zip(self.streams, self.used, strict=True))


def _node_snapshot(net: LocalTestnet, pids: list[int]) -> list[dict[str, Any]]:
    out = []
    for i, pid in enumerate(pids):
        with net.rpc(i) as rpc:
            st: Any = rpc.call("node_status")
            peers: Any = rpc.call("peers_list")
        out.append(
            {
                "cpu_s": cpu_seconds(pid),
                "height": st["height"],
                "txs_committed": st["counters"]["txs_committed"],
                "used_bytes": st["storage"]["used_bytes"],
                "frames_out": sum(int(p.get("frames_out", 0)) for p in peers),
                "network": dict(st["syncing"]["counters"]),
            }
        )
    return out


def _counter_deltas(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, int]:
    """The nodes' network counters (gossip, block sync, drops) over a window, summed."""
    out: dict[str, int] = {}
    for b, a in zip(before, after, strict=True):
        for name, value in a["network"].items():
            out[name] = out.get(name, 0) + int(value) - int(b["network"].get(name, 0))
    return {name: n for name, n in sorted(out.items()) if n}


def measure_idle(net: Any, seconds: float) -> dict[str, Any]:
    """Node CPU and blocks over `seconds` with no load (the chain still makes a block every
    max_block_interval): one point of bench_report.cost_split."""
    pids = [live_pid(net, i) for i in range(len(net.names))]
    before = _node_snapshot(net, pids)
    started = time.monotonic()
    time.sleep(seconds)
    after = _node_snapshot(net, pids)
    wall = time.monotonic() - started
    cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
    return {
        "seconds": round(wall, 1),
        "node_cpu_s": round(cpu, 2),
        "cores": round(cpu / wall, 3),
        "blocks": after[0]["height"] - before[0]["height"],
    }


def _cpu_table(before: list[dict[str, Any]], after: list[dict[str, Any]], wall_s: float) -> Any:
    return [
        {
            "cpu_s": round(a["cpu_s"] - b["cpu_s"], 2),
            "cores": round((a["cpu_s"] - b["cpu_s"]) / wall_s, 3),
        }
        for b, a in zip(before, after, strict=True)
    ]


# --- the cost of a block round ---------------------------------------------------

ROUND_COST_TPS = 50.0
# The same offered rate with two proposal delays ([consensus] batch_ms): only the number
# of block rounds differs, so the CPU difference is theirs. The default comes last, so the
# testnet is left as it runs normally.
ROUND_COST_BATCH_MS = (300, 100)
RESTART_TIMEOUT_S = 60.0


def round_cost(net: LocalTestnet, cursor: Any, *, duration_s: float, idle_cores: float) -> Any:
    """Node CPU = idle + a x blocks/s + b x tx/s, solved from two open-loop runs at the same
    light rate whose proposers wait batch_ms 300 and 100 (the nodes restart in between to
    read it): a is the CPU of one block round over all validators, b that of one tx. Two
    runs of the same rate on the same chain, unlike a fit across rates (bench_report's
    cost_split), where per-tx costs change with batch sizes."""
    runs = []
    for batch_ms in ROUND_COST_BATCH_MS:
        heights = [st["height"] for st in (net.status(n) for n in net.names) if st is not None]
        net.stop_all()
        net.set_config("consensus", batch_ms=batch_ms)
        net.start_all()
        # A block made after the restart: the links are up again, so the window measures
        # the rounds and not the start-up.
        again = max(heights, default=0) + 1
        if not net.wait_committing(RESTART_TIMEOUT_S, min_height=again, fail_fast=True):
            raise RuntimeError(f"the testnet did not commit again with batch_ms {batch_ms}")
        result = open_loop(net, cursor, rate_tps=ROUND_COST_TPS, duration_s=duration_s)
        runs.append(
            {
                "batch_ms": batch_ms,
                "offered_tps": result["offered_tps"],
                "txs": result["txs"],
                "blocks_per_s": round(result["blocks"] / result["duration_s"], 2),
                "node_cores": round(sum(c["cores"] for c in result["cpu"]), 3),
                "latency_ms": result["latency_ms"],
                "missing": result["missing"],
            }
        )
    slow, normal = runs
    extra_blocks_per_s = normal["blocks_per_s"] - slow["blocks_per_s"]
    out: dict[str, Any] = {"rate_tps": ROUND_COST_TPS, "idle_cores": idle_cores, "runs": runs}
    if extra_blocks_per_s > 0.5:
        per_block_s = (normal["node_cores"] - slow["node_cores"]) / extra_blocks_per_s
        per_tx_s = (
            normal["node_cores"] - idle_cores - per_block_s * normal["blocks_per_s"]
        ) / ROUND_COST_TPS
        out["block_round_ms"] = round(per_block_s * 1000, 2)
        out["block_round_ms_per_validator"] = round(per_block_s * 1000 / len(net.names), 2)
        out["tx_us"] = round(per_tx_s * 1e6, 1)
    return out


# --- open loop ----------------------------------------------------------------


def open_loop(
    net: LocalTestnet, cursor: StreamCursor, *, rate_tps: float, duration_s: float
) -> dict[str, Any]:
    """Offer `rate_tps` for `duration_s` on a fixed schedule; latency per transaction."""
    nodes = len(net.names)
    total = int(rate_tps * duration_s)
    tails = [s[u:] for s, u in zip(cursor.streams, cursor.used, strict=True)]
    plan: list[list[tuple[int, int]]] = [[] for _ in range(nodes)]  # (global j, stream index)
    taken = [0] * nodes
    for j, (node, _tx) in enumerate(interleave(tails)):
        if j >= total:
            break
        plan[node].append((j, taken[node]))
        taken[node] += 1
    total = sum(taken)
    if total == 0:
        raise RuntimeError("no pre-signed transactions left for the open-loop run")
    watcher = CommitWatcher(net)
    watcher.start()
    sampler = Sampler(net)
    sampler.start()
    pids = sampler.pids
    before = _node_snapshot(net, pids)
    start_height = min(b["height"] for b in before)
    t0 = time.monotonic() + 0.2
    stats = [SubmitStats() for _ in range(nodes)]
    lag_max = [0.0] * nodes

    def sender(node: int) -> None:
        items = plan[node]
        with submit_client(net, node) as rpc:
            k = 0
            while k < len(items):
                now = time.monotonic()
                end = k
                while (
                    end < len(items)
                    and end - k < MAX_BATCH
                    and t0 + items[end][0] / rate_tps <= now
                ):
                    end += 1
                if end == k:
                    time.sleep(max(0.0, min(SEND_TICK_S, t0 + items[k][0] / rate_tps - now)))
                    continue
                lag_max[node] = max(lag_max[node], now - (t0 + items[k][0] / rate_tps))
                hexes = [tails[node][i].raw.hex() for _, i in items[k:end]]
                submit_batch(rpc, hexes, stats[node])
                k = end

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    send_end = time.monotonic()
    for n in range(nodes):
        cursor.used[n] += taken[n]
    target = sum(b["txs_committed"] for b in before[:1]) + total
    drained = wait_until(lambda: _committed_on_all(net) >= target, DRAIN_TIMEOUT_S, poll_s=0.2)
    time.sleep(0.3)
    watcher.stop()
    sampler.stop()
    t_end = time.monotonic()
    after = _node_snapshot(net, pids)
    scheduled = {}
    for node in range(nodes):
        for j, i in plan[node]:
            scheduled[tails[node][i].tx_id] = t0 + j / rate_tps
    latencies, first_node, missing = _latencies(net, watcher, scheduled, start_height)
    samples = sampler.window(t0, t_end)
    return {
        "offered_tps": rate_tps,
        "duration_s": duration_s,
        "txs": total,
        "sent_s": round(send_end - t0, 2),
        "drained": drained,
        "missing": missing,
        "refused": _merge_refusals(stats),
        "sender_max_lag_ms": round(max(lag_max) * 1000, 1),
        "latency_ms": percentiles([x * 1000 for x in latencies], (50, 95, 99, 100)),
        # The same, to the FIRST node's report: the gap to latency_ms is commit skew.
        "first_node_latency_ms": percentiles([x * 1000 for x in first_node], (50, 95, 99, 100)),
        "achieved_tps": round(total / max(1e-9, send_end - t0), 1),
        "mempool_max": max((max(n["mempool"] for n in s["nodes"]) for s in samples), default=0),
        "cpu": _cpu_table(before, after, t_end - t0),
        "blocks": after[0]["height"] - before[0]["height"],
        # p2p frames all nodes sent per offered tx (consensus, gossip, heads, pings).
        "frames_out_per_tx": round(
            sum(a["frames_out"] - b["frames_out"] for a, b in zip(after, before, strict=True))
            / max(1, total),
            2,
        ),
        "network_counters": _counter_deltas(before, after),
        "peak_rss_anon_kb": sampler.peak_rss_anon_kb(),
        "machine_cpu": sampler.cpu_split(t0, t_end),
    }


def drain(net: LocalTestnet, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Wait until every node has an empty mempool and the same height."""

    def drained() -> bool:
        heights = set()
        for i in range(len(net.names)):
            with net.rpc(i, timeout_s=10) as rpc:
                st: Any = rpc.call("node_status")
            if st["mempool"]["size"]:
                return False
            heights.add(st["height"])
        return len(heights) == 1

    return wait_until(drained, timeout_s, poll_s=0.2)


def _committed_on_all(net: LocalTestnet) -> int:
    counts = []
    for i in range(len(net.names)):
        try:
            with net.rpc(i, timeout_s=5) as rpc:
                st: Any = rpc.call("node_status")
            counts.append(int(st["counters"]["txs_committed"]))
        except (RpcTransportError, RpcCallError):
            return -1
    return min(counts)


def _latencies(
    net: LocalTestnet, watcher: CommitWatcher, scheduled: dict[bytes, float], from_height: int
) -> tuple[list[float], list[float], int]:
    """Per transaction: (last node's commit report) - (scheduled send time), the same for the
    first node's report, and how many scheduled transactions no block holds."""
    latencies: list[float] = []
    first_node: list[float] = []
    found = 0
    with net.rpc(0) as rpc:
        top = watcher.max_height()
        for height in range(from_height + 1, top + 1):
            block: Any = rpc.call("block_get", {"height": height})
            seen = watcher.all_seen_at(height)
            first = watcher.first_seen_at(height)
            for tx_hex in block["tx_ids"]:
                when = scheduled.get(bytes.fromhex(tx_hex))
                if when is None:
                    continue
                found += 1
                if seen is not None:
                    latencies.append(seen - when)
                if first is not None:
                    first_node.append(first - when)
    return latencies, first_node, len(scheduled) - found


def _merge_refusals(stats: list[SubmitStats]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in stats:
        for k, v in s.refused.items():
            out[k] = out.get(k, 0) + v
    return out


# --- saturation ----------------------------------------------------------------


def saturate(
    net: LocalTestnet,
    cursor: StreamCursor,
    *,
    warmup_s: float,
    window_s: float,
    in_flight_txs: int,
    batch_txs: int,
) -> dict[str, Any]:
    """Keep `in_flight_txs` submitted-but-not-committed-everywhere; measure the window."""
    nodes = len(net.names)
    watcher = CommitWatcher(net)
    watcher.start()
    sampler = Sampler(net)
    sampler.start()
    pids = sampler.pids
    stats = [SubmitStats() for _ in range(nodes)]
    sent = [0] * nodes
    lock = threading.Lock()
    t0 = time.monotonic()
    t_measure = t0 + warmup_s
    t_end = t_measure + window_s
    ran_out = threading.Event()
    snapshots: dict[str, list[dict[str, Any]]] = {}

    def sender(node: int) -> None:
        stream = cursor.streams[node]
        with submit_client(net, node) as rpc:
            while time.monotonic() < t_end:
                with lock:
                    outstanding = sum(sent) - watcher.committed_on_all(time.monotonic())
                if outstanding >= in_flight_txs:
                    time.sleep(SEND_TICK_S)
                    continue
                start = cursor.used[node]
                if start >= len(stream):
                    ran_out.set()
                    return
                end = min(len(stream), start + batch_txs)
                cursor.used[node] = end
                with lock:
                    sent[node] += end - start
                submit_batch(rpc, cursor.hexes(node, start, end), stats[node])

    def snapshot_at(name: str, when: float) -> None:
        time.sleep(max(0.0, when - time.monotonic()))
        snapshots[name] = _node_snapshot(net, pids)
        snapshots[name + "_t"] = [{"t": time.monotonic()}]

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(nodes)]
    threads += [
        threading.Thread(target=snapshot_at, args=("start", t_measure), daemon=True),
        threading.Thread(target=snapshot_at, args=("end", t_end), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watcher.stop()
    sampler.stop()
    a0 = watcher.committed_on_all(t_measure)
    a1 = watcher.committed_on_all(t_end)
    # Rates over consecutive 5 s slices: a block of thousands of txs commits about once a
    # second, so 1 s slices would read 0 or 2 blocks' worth.
    slice_s = SLICE_S
    per_slice = [
        (
            watcher.committed_on_all(t_measure + (k + 1) * slice_s)
            - watcher.committed_on_all(t_measure + k * slice_s)
        )
        / slice_s
        for k in range(int(window_s // slice_s))
    ]
    samples = sampler.window(t_measure, t_end)
    wall = snapshots["end_t"][0]["t"] - snapshots["start_t"][0]["t"]
    mempool_totals = [sum(n["mempool"] for n in s["nodes"]) for s in samples]
    node_cpu_s = sum(
        e["cpu_s"] - b["cpu_s"] for b, e in zip(snapshots["start"], snapshots["end"], strict=True)
    )
    first_height = snapshots["start"][0]["height"]
    last_height = snapshots["end"][0]["height"]
    window_txs = snapshots["end"][0]["txs_committed"] - snapshots["start"][0]["txs_committed"]
    return {
        "warmup_s": warmup_s,
        "window_s": window_s,
        "in_flight_txs": in_flight_txs,
        "batch_txs": batch_txs,
        "committed_on_all_tps": round((a1 - a0) / window_s, 1),
        # CPU of all nodes together per committed transaction: the efficiency measure that a
        # busy machine disturbs least (throughput moves with whatever else runs).
        "node_cpu_us_per_tx": round(1e6 * node_cpu_s / max(1, a1 - a0), 1),
        "per_5s_tps": {
            "min": min(per_slice, default=0),
            "median": sorted(per_slice)[len(per_slice) // 2] if per_slice else 0,
            "max": max(per_slice, default=0),
        },
        "ran_out_of_txs": ran_out.is_set(),
        "refused": _merge_refusals(stats),
        "blocks": last_height - first_height,
        "txs_per_block": round(window_txs / max(1, last_height - first_height), 1),
        "mempool_total": {
            "first": mempool_totals[0] if mempool_totals else 0,
            "last": mempool_totals[-1] if mempool_totals else 0,
            "max": max(mempool_totals, default=0),
            "slope_per_s": round(slope_per_s([s["t"] for s in samples], mempool_totals), 1),
        },
        "cpu": _cpu_table(snapshots["start"], snapshots["end"], wall),
        "used_bytes_delta": [
            e["used_bytes"] - s["used_bytes"]
            for s, e in zip(snapshots["start"], snapshots["end"], strict=True)
        ],
        "window_txs_node0": window_txs,
        "peak_rss_anon_kb": sampler.peak_rss_anon_kb(),
        "machine_cpu": sampler.cpu_split(t_measure, t_end),
    }


def check_results(net: LocalTestnet, tx_ids: list[bytes], sample: int = 200) -> dict[str, int]:
    """tx_get on a sample of committed transactions, spread over nodes: how many succeeded."""
    rng = random.Random(7)
    picked = rng.sample(tx_ids, min(sample, len(tx_ids)))
    counts: dict[str, int] = {}
    clients = [net.rpc(i) for i in range(len(net.names))]
    try:
        for k, tx_id in enumerate(picked):
            got: Any = clients[k % len(clients)].call("tx_get", {"tx_id": tx_id.hex()})
            counts[got["status"]] = counts.get(got["status"], 0) + 1
    finally:
        for c in clients:
            c.close()
    return counts
