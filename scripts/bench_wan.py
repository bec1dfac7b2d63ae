#!/usr/bin/env python3
"""A 4-validator chain over a simulated WAN: throughput and latency at given round trips.

    scripts/bench_wan.py                       # RTT 0 (proxy, no delay), 50 and 150 ms
    scripts/bench_wan.py --rtts 50,150 --latency-s 20 --window-s 20

This kernel has no netem qdisc, so the WAN is scripts/wan_proxy.py: one proxy route in
front of each validator's p2p port, whose port is the validator's address in genesis. Each
link, whichever side dialled it, passes exactly one proxy, which holds every chunk RTT/2
in each direction. For each RTT: a fresh testnet (production defaults: TLS, sync on), the
bench's accounts granted, an open-loop run at --rate tx/s (latency from each tx's scheduled
send to its commit on EVERY node), then a closed-loop saturation run (throughput). Writes
section 'wan' of BENCHMARKS.json and regenerates BENCHMARKS.md (scripts/bench_report.py).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
if VENV_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])

from bench_net import LocalTestnet, bench_testnet  # noqa: E402
from bench_phases import StreamCursor, drain, grant_accounts, open_loop, saturate  # noqa: E402
from bench_report import load_results, machine, save_results, write_section  # noqa: E402
from bench_report import render as render_all  # noqa: E402
from bench_workload import MIX, account_key, node_streams, presign  # noqa: E402

from node.daemon.home import write_genesis  # noqa: E402
from node.ledger.genesis import load_genesis  # noqa: E402
from node.testnet.local import free_base_port  # noqa: E402


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def behind_proxies(net: LocalTestnet) -> list[str]:
    """Point every validator's genesis address at a proxy port; the routes to serve."""
    manifest = net.manifest()
    taken = {int(n["address"].rsplit(":", 1)[1]) for n in manifest["nodes"]}
    count = len(manifest["nodes"])
    proxy_base = free_base_port(count)
    while taken & set(range(proxy_base, proxy_base + count)):  # nodes not bound yet
        proxy_base = free_base_port(count)
    routes = []
    genesis = load_genesis(net.home(0) / "genesis.toml")
    validators = []
    for i, v in enumerate(genesis.validators):
        proxy = f"127.0.0.1:{proxy_base + i}"
        routes.append(f"{proxy}={v.address}")
        validators.append(replace(v, address=proxy))
    genesis = replace(genesis, validators=tuple(validators))
    for name in net.names:  # the same file in every home, written before any node starts
        write_genesis(net.home(name) / "genesis.toml", genesis)
    return routes


def start_proxy(routes: list[str], delay_ms: float) -> subprocess.Popen[str]:
    command = [sys.executable, str(ROOT / "scripts" / "wan_proxy.py"), "--delay-ms", str(delay_ms)]
    for route in routes:
        command += ["--route", route]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "wan_proxy:" not in line:
        proc.kill()
        raise RuntimeError(f"wan_proxy did not start: {line!r}")
    return proc


def one_rtt(args: argparse.Namespace, rtt_ms: float, signed: Any) -> dict[str, Any]:
    net = bench_testnet(None, args.validators, prefix="wan")
    proxy = None
    try:
        net.prepare()
        routes = behind_proxies(net)
        proxy = start_proxy(routes, rtt_ms / 2)
        net.start_all()
        if not net.wait_committing(120, fail_fast=True):
            raise RuntimeError("testnet behind the proxy did not commit within 120 s")
        keys = [account_key(args.seed, i).public_key for i in range(args.accounts)]
        grant_accounts(net, keys)
        cursor = StreamCursor.of(node_streams(signed, args.validators))
        say(f"RTT {rtt_ms:.0f} ms: open loop at {args.rate:.0f} tx/s for {args.latency_s:.0f} s")
        latency = open_loop(net, cursor, rate_tps=args.rate, duration_s=args.latency_s)
        latency.pop("peak_rss_anon_kb", None)
        say(f"  latency {latency['latency_ms']} missing {latency['missing']}")
        drain(net)
        say(f"RTT {rtt_ms:.0f} ms: saturation {args.warmup_s:.0f} s + {args.window_s:.0f} s")
        sat = saturate(
            net,
            cursor,
            warmup_s=args.warmup_s,
            window_s=args.window_s,
            in_flight_txs=args.in_flight,
            batch_txs=500,
        )
        sat.pop("peak_rss_anon_kb", None)
        say(f"  {sat['committed_on_all_tps']} tx/s, {sat['txs_per_block']} tx/block")
        return {"rtt_ms": rtt_ms, "latency": latency, "saturation": sat}
    finally:
        net.down()
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)


def render(report: dict[str, Any]) -> list[str]:
    rows = []
    for run in report["runs"]:
        lat, sat = run["latency"], run["saturation"]
        ms = lat["latency_ms"]
        rows.append(
            f"| {run['rtt_ms']:.0f} ms | **{sat['committed_on_all_tps']:,.0f} tx/s** | "
            f"{sat['txs_per_block']:,.0f} | {sat['blocks'] / sat['window_s']:.1f} | "
            f"{lat['offered_tps']:,.0f} | {ms.get('p50', '-')} | **{ms.get('p99', '-')}** | "
            f"{ms.get('p100', '-')} | {lat['missing']} | "
            f"{sat['machine_cpu'].get('other_cores', '-')} |"
        )
    m = report["machine"]
    return [
        f"{report['validators']} validators on one machine ({m['cores']} cores, {m['cpu']}), "
        "each p2p port behind scripts/wan_proxy.py holding every chunk RTT/2 each way (this "
        "kernel has no netem qdisc), so every link has the RTT below; bandwidth unlimited. "
        f"Production defaults (TLS, sync on). Workload: {report['accounts']} accounts, mix "
        f"{report['mix']}. Saturation: {report['in_flight']:,} txs in flight for "
        f"{report['window_s']:.0f} s after {report['warmup_s']:.0f} s warm-up; latency: open "
        f"loop for {report['latency_s']:.0f} s, from each tx's scheduled send to its block on "
        "the LAST node, ms.",
        "",
        "| RTT | committed on all nodes | tx/block | blocks/s | offered tx/s | p50 | p99 | max "
        "| missing | other cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "RTT 0 runs through the same proxy with no delay: the proxy's own cost ('other cores' "
        "includes the proxy process, besides whatever else ran on the machine). A transaction "
        "waits for the gossip to the leader (RTT/2), for the block in flight to finish (one "
        "block at a time), then pre-prepare, prepare and commit (RTT/2 each), and counts once "
        "the LAST node has it: about three round trips on top of the RTT 0 figure, which is "
        "what the p50 column shows. Throughput is the machine's CPU, not the network: blocks "
        "are full (max_block_txs) at saturation, so one round per block carries 2,000 txs "
        "whatever the RTT; it is counted in whole blocks, hence the round figures.",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rtts", default="0,50,150", help="round trips in ms, comma-separated")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=500.0, help="open-loop offered tx/s")
    p.add_argument("--latency-s", type=float, default=20.0)
    p.add_argument("--warmup-s", type=float, default=5.0)
    p.add_argument("--window-s", type=float, default=20.0)
    p.add_argument("--in-flight", type=int, default=6000)
    p.add_argument("--max-tps", type=float, default=3000, help="sizes the pre-signed pool")
    p.add_argument("--json", type=Path, default=ROOT / "BENCHMARKS.json")
    p.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    p.add_argument(
        "--render-only", action="store_true", help="re-render the stored 'wan' section's text"
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render_only:
        results = load_results(args.json)
        results["wan"]["markdown"] = render(results["wan"])
        save_results(args.json, results)
        args.md.write_text(render_all(results))
        return 0
    rtts = [float(x) for x in args.rtts.split(",") if x.strip()]
    # One pool of pre-signed txs serves every run: each runs on a fresh chain, same chain id.
    total = args.rate * args.latency_s + args.max_tps * (args.warmup_s + args.window_s)
    per_account = math.ceil(total / args.accounts) + 1
    say(f"pre-signing {per_account * args.accounts:,} transactions")
    signed = presign(
        run_seed=args.seed, chain_id="testnet", accounts=args.accounts, per_account=per_account
    )
    report: dict[str, Any] = {
        "title": "wan: 4 validators behind a delaying proxy",
        "command": " ".join(["scripts/bench_wan.py", shlex.join(argv)]).strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "validators": args.validators,
        "accounts": args.accounts,
        "mix": ", ".join(f"{w}% {k}" for w, k in MIX),
        "in_flight": args.in_flight,
        "warmup_s": args.warmup_s,
        "window_s": args.window_s,
        "latency_s": args.latency_s,
        "runs": [one_rtt(args, rtt, signed) for rtt in rtts],
    }
    report["markdown"] = render(report)
    print("\n".join(report["markdown"]))
    if not args.no_write:
        write_section(args.json, args.md, "wan", report)
        say(f"wrote {args.json} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
