#!/usr/bin/env python3
"""How cost grows: a long run to a large chain, reads on it, restart, block sync, and N validators.

    scripts/bench_scale.py chain                  # 1,000,000 txs on 4 validators
    scripts/bench_scale.py chain --txs 200000 --probes 20000,200000
    scripts/bench_scale.py validators --counts 4,7,10

`chain` drives a fresh testnet (closed loop, the benchmark's mix) until --txs transactions are
committed on every node, sampling RssAnon of every node all along. At each probe size it
pauses the load and times `tx_get` and `item_history` (per call, over the control socket) on
random committed transactions and items. At the end it restarts one validator and times its
start-up on the full chain, then stops it, commits --sync-txs more without it, and times its
block-sync catch-up (blocks/s and tx/s) with the load stopped.

`validators` runs `scripts/bench` for each validator count (latency at --rate, saturation) and
tabulates them. Both write their section into BENCHMARKS.json and regenerate BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
if (
    __name__ == "__main__"
    and VENV_PY.exists()
    and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve()
):
    os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])

from bench_net import (  # noqa: E402
    LocalTestnet,
    SubmitStats,
    bench_testnet,
    chain,
    live_pid,
    status_kb,
    submit_batch,
)
from bench_phases import StreamCursor, grant_accounts, wait_until  # noqa: E402
from bench_report import load_results, percentiles, write_section  # noqa: E402
from bench_workload import SignedTx, account_key, node_streams, presign  # noqa: E402

from node.rpc.client_common import RpcCallError, RpcTransportError  # noqa: E402

POLL_S = 0.25
RSS_SAMPLE_S = 5.0


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- driving the load ------------------------------------------------------------------------


def node_statuses(net: LocalTestnet, nodes: list[int]) -> list[dict[str, Any]]:
    out = []
    for i in nodes:
        with net.rpc(i, timeout_s=30) as rpc:
            out.append(dict(rpc.call("node_status")))  # type: ignore[arg-type]
    return out


def committed_min(net: LocalTestnet, nodes: list[int]) -> int:
    return min(int(s["counters"]["txs_committed"]) for s in node_statuses(net, nodes))


def drive(
    net: LocalTestnet,
    cursor: StreamCursor,
    nodes: list[int],
    target_committed: int,
    *,
    in_flight: int = 6000,
    batch: int = 500,
    timeout_s: float = 3600,
) -> float:
    """Closed-loop load on `nodes` until every one of them has committed `target_committed`
    transactions in all; returns the seconds it took. The pre-signed stream of a node that
    is not in `nodes` is sent through the first of them (its earlier txs are committed, as
    every phase drains, so its accounts' nonces still arrive in order)."""
    started = time.monotonic()
    done = threading.Event()
    lock = threading.Lock()
    state = {"committed": committed_min(net, nodes), "sent": 0}
    base_committed = state["committed"]

    def monitor() -> None:
        while not done.is_set():
            try:
                value = committed_min(net, nodes)
            except (RpcTransportError, RpcCallError):
                value = state["committed"]
            with lock:
                state["committed"] = value
            if value >= target_committed or time.monotonic() - started > timeout_s:
                done.set()
            time.sleep(POLL_S)

    def sender(node: int) -> None:
        stats = SubmitStats()
        via = node if node in nodes else nodes[0]
        with net.rpc(via, timeout_s=60) as rpc:
            while not done.is_set():
                with lock:
                    outstanding = state["sent"] - (state["committed"] - base_committed)
                start = cursor.used[node]
                if start >= len(cursor.streams[node]):
                    break
                if outstanding >= in_flight:
                    time.sleep(0.01)
                    continue
                end = min(len(cursor.streams[node]), start + batch)
                cursor.used[node] = end
                with lock:
                    state["sent"] += end - start
                submit_batch(rpc, cursor.hexes(node, start, end), stats)
        if stats.refused:
            say(f"  node{node} refused {stats.refused}")

    watcher = threading.Thread(target=monitor, daemon=True)
    senders = [
        threading.Thread(target=sender, args=(n,), daemon=True) for n in range(len(cursor.streams))
    ]
    for t in [watcher, *senders]:
        t.start()
    for t in senders:
        t.join()
    if not done.is_set():
        say("  the pre-signed transactions ran out before the target; waiting for the rest")
        wait_until(lambda: committed_min(net, nodes) >= state["sent"] + base_committed, 120)
        done.set()
    watcher.join()
    return time.monotonic() - started


class RssSampler:
    def __init__(self, net: LocalTestnet) -> None:
        self.net = net
        self.samples: list[tuple[float, int, list[int]]] = []  # (t, committed, kB per node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            try:
                pids = [live_pid(self.net, i) for i in range(len(self.net.names))]
                with self.net.rpc(0, timeout_s=10) as rpc:
                    st: Any = rpc.call("node_status")
                kb = [status_kb(pid, "RssAnon") for pid in pids]
            except (OSError, ValueError, RpcTransportError, RpcCallError):
                continue  # a node is restarting
            self.samples.append((time.monotonic(), int(st["counters"]["txs_committed"]), kb))


# --- reads on a large chain ---------------------------------------------------------------------


def time_reads(
    net: LocalTestnet, committed: list[SignedTx], samples: int, rng: random.Random
) -> dict[str, Any]:
    """Per-call round trips of tx_get and item_history on random committed txs and items."""
    clients = [net.rpc(i, timeout_s=30) for i in range(len(net.names))]
    try:
        tx_ms: list[float] = []
        for k, tx in enumerate(rng.sample(committed, min(samples, len(committed)))):
            started = time.perf_counter()
            got: Any = clients[k % len(clients)].call("tx_get", {"tx_id": tx.tx_id.hex()})
            tx_ms.append((time.perf_counter() - started) * 1000)
            if got["status"] not in ("committed", "failed"):
                raise RuntimeError(f"tx_get {tx.tx_id.hex()}: {got['status']}")
        items = [t.item for t in committed if t.kind == "item.register" and t.item]
        hist_ms: list[float] = []
        steps: list[int] = []
        for k, item in enumerate(rng.sample(items, min(samples, len(items)))):
            started = time.perf_counter()
            got = clients[k % len(clients)].call("item_history", {"item": item})
            hist_ms.append((time.perf_counter() - started) * 1000)
            steps.append(len(got["steps"]))
    finally:
        for c in clients:
            c.close()
    return {
        "tx_get_ms": percentiles(tx_ms, (50, 99)),
        "item_history_ms": percentiles(hist_ms, (50, 99)),
        "item_history_steps_mean": round(sum(steps) / max(1, len(steps)), 1),
    }


def wait_drained(net: LocalTestnet, nodes: list[int], timeout_s: float = 120) -> bool:
    def drained() -> bool:
        sts = node_statuses(net, nodes)
        heights = {s["height"] for s in sts}
        return len(heights) == 1 and all(s["mempool"]["size"] == 0 for s in sts)

    return wait_until(drained, timeout_s, poll_s=0.5)


# --- restart and catch-up ---------------------------------------------------------


def stop_node(net: LocalTestnet, name: str) -> None:
    """SIGTERM a node and wait until its process is gone (`testnet start` would otherwise see
    it still running and not start it again)."""
    pid = live_pid(net, net.names.index(name))
    net.kill(name, signal.SIGTERM)
    if net.wait_stopped([name], 60):
        raise RuntimeError(f"{name} (pid {pid}) did not stop within 60 s")


def time_start(
    net: LocalTestnet, index: int, height: int, timeout_s: float = 600
) -> tuple[float, float]:
    """`chain testnet start` a node: (seconds until it answers on its control socket,
    seconds from then until it reports `height` or above)."""
    started = time.monotonic()
    chain("testnet", "start", "--dir", str(net.dir), net.names[index])
    seen: dict[str, float] = {}

    def at_height() -> bool:
        try:
            with net.rpc(index, timeout_s=5) as rpc:
                st: Any = rpc.call("node_status")
        except (RpcTransportError, RpcCallError, OSError):
            return False
        seen.setdefault("answered", time.monotonic())
        return int(st["height"]) >= height

    if not wait_until(at_height, timeout_s, poll_s=0.05):
        raise RuntimeError(f"{net.names[index]} did not reach height {height} in {timeout_s}s")
    answered = seen["answered"]
    return answered - started, time.monotonic() - answered


def restart_and_sync(
    net: LocalTestnet, cursor: StreamCursor, sync_txs: int, in_flight: int
) -> dict[str, Any]:
    last = len(net.names) - 1
    live = list(range(last))
    everyone = list(range(len(net.names)))
    head = node_statuses(net, [0])[0]
    stop_node(net, net.names[last])
    startup_s, _ = time_start(net, last, int(head["height"]))
    say(f"  start-up on the full chain: {startup_s:.2f} s")
    stop_node(net, net.names[last])
    before = node_statuses(net, live)[0]
    drive(net, cursor, live, committed_min(net, live) + sync_txs, in_flight=in_flight)
    wait_drained(net, live)
    target = node_statuses(net, live)[0]
    behind_blocks = int(target["height"]) - int(before["height"])
    behind_txs = int(target["counters"]["txs_committed"]) - int(before["counters"]["txs_committed"])
    say(f"  {net.names[last]} is {behind_blocks} blocks / {behind_txs} txs behind; restarting")
    _, catchup_s = time_start(net, last, int(target["height"]))
    wait_drained(net, everyone)
    return {
        "startup_s": round(startup_s, 2),
        "startup_height": int(head["height"]),
        "behind_blocks": behind_blocks,
        "behind_txs": behind_txs,
        "catchup_s": round(catchup_s, 1),
        "catchup_blocks_per_s": round(behind_blocks / catchup_s, 1),
        "catchup_txs_per_s": round(behind_txs / catchup_s, 1),
    }


# --- the `chain` command -------------------------------------------------------------------------


def run_chain(args: argparse.Namespace) -> dict[str, Any]:
    probes = sorted({int(x) for x in args.probes.split(",")} | {args.txs})
    total = int((args.txs + args.sync_txs) * 1.02) + 20_000
    per_account = math.ceil(total / args.accounts) + 1
    say(f"pre-signing {per_account * args.accounts:,} transactions")
    signed = presign(
        run_seed=args.seed, chain_id="testnet", accounts=args.accounts, per_account=per_account
    )
    net = bench_testnet(None, args.validators, prefix="bench-scale")
    report: dict[str, Any] = {"validators": args.validators, "probes": []}
    rng = random.Random(args.seed)
    try:
        net.up()
        keys = [account_key(args.seed, i).public_key for i in range(args.accounts)]
        grant_accounts(net, keys)
        cursor = StreamCursor.of(node_streams(signed, args.validators))
        everyone = list(range(args.validators))
        rss = RssSampler(net)
        rss.start()
        started = time.monotonic()
        for size in probes:
            drive(net, cursor, everyone, size, in_flight=args.in_flight)
            wait_drained(net, everyone)
            report["probes"].append(probe(net, cursor, size, rng, args.read_samples, started))
            say(f"  {report['probes'][-1]}")
        rss.stop()
        report["rss_samples"] = [[c, kb] for _, c, kb in rss.samples]
        report["sync"] = restart_and_sync(net, cursor, args.sync_txs, args.in_flight)
        say(f"  {report['sync']}")
    finally:
        net.down()
    return report


def probe(
    net: LocalTestnet,
    cursor: StreamCursor,
    size: int,
    rng: random.Random,
    samples: int,
    started: float,
) -> dict[str, Any]:
    st = node_statuses(net, [0])[0]
    used = [t for s, u in zip(cursor.streams, cursor.used, strict=True) for t in s[:u]]
    reads = time_reads(net, used, samples, rng)
    return {
        "target_txs": size,
        "txs_committed": int(st["counters"]["txs_committed"]),
        "height": int(st["height"]),
        "elapsed_s": round(time.monotonic() - started, 1),
        "used_bytes": int(st["storage"]["used_bytes"]),
        "rss_anon_mb": [
            round(status_kb(live_pid(net, i), "RssAnon") / 1024, 1) for i in range(len(net.names))
        ],
        **reads,
    }


def chain_markdown(r: dict[str, Any]) -> list[str]:
    rows = []
    for p in r["probes"]:
        rows.append(
            [
                f"{p['txs_committed']:,}",
                f"{p['height']:,}",
                p["tx_get_ms"].get("p50"),
                p["tx_get_ms"].get("p99"),
                p["item_history_ms"].get("p50"),
                p["item_history_ms"].get("p99"),
                p["item_history_steps_mean"],
                f"{p['used_bytes'] / max(1, p['txs_committed']):.0f}",
                " / ".join(f"{x:.0f}" for x in p["rss_anon_mb"]),
            ]
        )
    header = ["txs in chain", "height", "tx_get p50 ms", "p99", "item_history p50 ms", "p99"]
    header += ["steps/item", "disk bytes/tx", "RssAnon MB per node"]
    sync = r["sync"]
    lines = _table(header, rows)
    lines += [
        "",
        "Reads are timed per call over the control socket (the round trip a client sees), on "
        "random committed transactions and items, with the load paused.",
        "",
        f"Start-up of a validator on the full chain (height {sync['startup_height']:,}), from "
        f"`chain testnet start` to its control socket answering: **{sync['startup_s']} s**.",
        "",
        f"Block-sync catch-up, load stopped: a validator {sync['behind_blocks']:,} blocks / "
        f"{sync['behind_txs']:,} txs behind caught up in {sync['catchup_s']} s after it "
        f"answered: **{sync['catchup_blocks_per_s']} blocks/s, "
        f"{sync['catchup_txs_per_s']:,} tx/s**.",
        "",
    ]
    lines += rss_markdown(r["rss_samples"])
    return lines


def rss_markdown(samples: list[list[Any]]) -> list[str]:
    if len(samples) < 4:
        return []
    half = samples[len(samples) // 2 :]
    first, last = half[0], half[-1]
    per_node = []
    for i in range(len(first[1])):
        grow_mb = (last[1][i] - first[1][i]) / 1024
        txs = max(1, last[0] - first[0])
        per_node.append(f"{grow_mb:+.1f} MB over {txs:,} txs")
    peak = [max(s[1][i] for s in samples) / 1024 for i in range(len(first[1]))]
    return [
        "RssAnon over the run (sampled every 5 s): peak per node "
        + " / ".join(f"{x:.0f} MB" for x in peak)
        + "; change over the second half of the run: "
        + "; ".join(per_node)
        + ".",
        "",
    ]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


# --- the `validators` command ---------------------------------------------------------------------


def run_validators(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(x) for x in args.counts.split(",")]
    for n in counts:
        cmd = [str(ROOT / "scripts" / "bench"), "--validators", str(n), "--section", f"v{n}"]
        cmd += ["--rates", str(args.rate), "--latency-s", str(args.latency_s)]
        cmd += ["--warmup-s", str(args.warmup_s), "--window-s", str(args.window_s)]
        cmd += ["--json", str(args.json), "--md", str(args.md)]
        say("running " + shlex.join(cmd))
        subprocess.run(cmd, check=True, timeout=3600)
    results = load_results(args.json)
    rows = []
    for n in counts:
        r = results[f"v{n}"]
        sat, lat = r.get("saturation", {}), r["latency"][0]
        rows.append(
            [
                n,
                f"{sat.get('committed_on_all_tps', 0):,.0f}",
                sat.get("node_cpu_us_per_tx", "-"),
                f"{r['ceiling_tps']:,}",
                f"{sat.get('committed_on_all_tps', 0) / r['ceiling_tps']:.2f}",
                f"{lat['offered_tps']:.0f}",
                lat["latency_ms"].get("p50"),
                lat["latency_ms"].get("p99"),
                sat.get("machine_cpu", {}).get("other_cores", "-"),
            ]
        )
    header = ["validators", "tx/s on all", "node CPU µs/tx", "ceiling", "ratio"]
    header += ["offered tx/s", "p50 ms", "p99 ms", "other cores"]
    return {"rows": rows, "markdown": [*_table(header, rows), "", *VALIDATORS_NOTE]}


VALIDATORS_NOTE = [
    "Each row is one `scripts/bench --validators N` run (saturation after a latency run at the "
    "offered rate; its full report is the vN section of BENCHMARKS.json). Every validator "
    "verifies and executes every transaction, so the CPU per transaction grows linearly with "
    "N (about 190 µs per validator) and, with all validators on one 2-core machine, the "
    "throughput falls as 1/N; on machines of their own the validators would not share cores.",
]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chain", help="a large chain: reads, RSS, start-up, block sync")
    c.add_argument("--txs", type=int, default=1_000_000)
    c.add_argument("--probes", default="10000,100000,1000000")
    c.add_argument("--sync-txs", type=int, default=100_000)
    c.add_argument("--validators", type=int, default=4)
    c.add_argument("--accounts", type=int, default=200)
    c.add_argument("--in-flight", type=int, default=6000)
    c.add_argument("--read-samples", type=int, default=300)
    c.add_argument("--seed", type=int, default=1)
    v = sub.add_parser("validators", help="scripts/bench for several validator counts")
    v.add_argument("--counts", default="4,7,10")
    v.add_argument("--rate", type=float, default=500)
    v.add_argument("--latency-s", type=float, default=20)
    v.add_argument("--warmup-s", type=float, default=10)
    v.add_argument("--window-s", type=float, default=30)
    for sp in (c, v):
        sp.add_argument("--json", type=Path, default=ROOT / "BENCHMARKS.json")
        sp.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    command = "scripts/bench_scale.py " + shlex.join(argv)
    section: dict[str, Any] = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.cmd == "chain":
        result = run_chain(args)
        section.update(
            result, title="How cost grows with the chain", markdown=chain_markdown(result)
        )
        write_section(args.json, args.md, "scale_chain", section)
    else:
        result = run_validators(args)
        section.update(result, title="How cost grows with the number of validators")
        write_section(args.json, args.md, "scale_validators", section)
    say(f"wrote {args.json} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
