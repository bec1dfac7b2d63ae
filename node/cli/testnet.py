"""`chain testnet up|down|status|logs|kill|start`: the command line of node/testnet.

Everything a testnet does lives in node.testnet (LocalTestnet, the live view, the demo);
this module only parses arguments, calls it and prints what happened."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.common import subcommand
from node.testnet.homes import TestnetError
from node.testnet.local import START_TIMEOUT_S, LocalTestnet
from node.testnet.view import LiveView


def _net(args: argparse.Namespace) -> LocalTestnet:
    return LocalTestnet(Path(args.dir))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals() -> None:
    """SIGTERM (systemd, docker, CI timeouts) and SIGHUP (a closed terminal) stop a
    foreground testnet the way Ctrl-C does: KeyboardInterrupt, then every node is stopped."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.default_int_handler)


def _ignore_signals() -> None:
    """While stopping the nodes: a second signal must not cut `stop_all` short (the nodes
    would be left running); a SIGKILL still works, and the nodes follow through the pipe."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def cmd_up(args: argparse.Namespace) -> int:
    net = LocalTestnet(
        Path(args.dir),
        validators=args.validators,
        full_nodes=args.full_nodes,
        base_port=args.base_port,
        chain_id=args.chain_id,
        tick_ms=args.tick_ms,
        supervise=not args.detach,  # foreground: the nodes never outlive this process
        gateway=args.gateway,
    )
    if args.fresh:
        net.wipe()
    manifest = net.prepare()
    _stop_on_signals()
    started = False
    try:
        net.start_all()
        print(
            f"testnet of {manifest['validators']} validator(s) and {manifest['full_nodes']} "
            f"full node(s) starting in {net.dir} ...",
            flush=True,
        )
        if not net.wait_committing(START_TIMEOUT_S, fail_fast=True):
            raise TestnetError(
                f"nodes did not all commit within {START_TIMEOUT_S:.0f}s; "
                f"see {net.dir}/node*/node.log"
            )
        started = True
        print(
            f"committing. send transactions with e.g. `chain item register pallet-1` "
            f"(socket {net.dir}/node0/control.sock, key {net.dir}/accounts/admin.key)",
            flush=True,
        )
        if net.gateway and net.exists():
            print(
                f"gateways on: {net.gateway_url(0)} (explorer {net.gateway_url(0)}/explorer/), "
                f"credentials in {net.gateway_clients_dir()}/<node>/<role>",
                flush=True,
            )
        if args.detach:
            return 0
        return _watch(net, args)
    except TestnetError as exc:
        if "already in use" in str(exc):
            raise TestnetError(
                f"{exc}\n(for this testnet: `chain testnet up --fresh --base-port N` makes it "
                "again on other ports)"
            ) from exc
        raise
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0 if started else 130  # stopped before it came up: as run_command does
    finally:
        if not (started and args.detach):
            _ignore_signals()
            net.stop_all()
            net.close_lifeline()
            print("testnet stopped", flush=True)


def _watch(net: LocalTestnet, args: argparse.Namespace) -> int:
    """The live view (and the demo with --demo) until a stop signal or --duration; the
    caller stops the nodes."""
    demo = None
    if args.demo:
        from node.testnet.demo import start_demo

        demo = start_demo(net, quiet=sys.stdout.isatty())
    view = LiveView(net)
    tty = sys.stdout.isatty()
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            view.draw(tty, demo.recent(8) if demo is not None else None)
            net.reap()  # a node killed from another terminal must not linger as a zombie
            time.sleep(1.0 if tty else 5.0)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        if demo is not None:
            _ignore_signals()
            net.stop_all()  # first: the demo's pending calls then fail at once
            demo.stop()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _net(args).stop_all()
    print("testnet stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    net = _net(args)
    names = [n["name"] for n in net.manifest()["nodes"]]
    if args.json:
        print(json.dumps({n: net.status(n) for n in names}, indent=2))
    else:
        print("\n".join(LiveView(net).rows()))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    path = _net(args).log_path(args.node)
    if not path.exists():
        raise TestnetError(f"no log at {path}")
    lines = path.read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.lines :]))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    sig = signal.SIGTERM if args.graceful else signal.SIGKILL
    _net(args).kill(args.node, sig)
    print(f"sent {signal.Signals(sig).name} to {args.node}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    pid = _net(args).start(args.node)
    print(f"{args.node} running (pid {pid})")
    return 0


def add_testnet_commands(sub: Any) -> None:
    """Register `testnet` and its subcommands under the top-level subcommands."""
    testnet = sub.add_parser("testnet", help="a local multi-node testnet (the main job)")
    tsub = testnet.add_subparsers(dest="testnet_cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", default="testnet", help="testnet directory (default ./testnet)")

    p = subcommand(
        tsub,
        "up",
        "generate (if needed) and start a local testnet, then show a live view",
        "chain testnet up --validators 4 --demo",
        cmd_up,
    )
    common(p)
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--full-nodes", type=int, default=0, dest="full_nodes")
    p.add_argument("--base-port", type=int, default=26650, dest="base_port")
    p.add_argument("--chain-id", default="testnet", dest="chain_id")
    p.add_argument("--tick-ms", type=int, default=0, dest="tick_ms", help=argparse.SUPPRESS)
    p.add_argument("--fresh", action="store_true", help="wipe --dir first")
    p.add_argument("--demo", action="store_true", help="run a traceability/notary workload")
    p.add_argument(
        "--gateway",
        action="store_true",
        help="a new testnet: enable each node's HTTPS gateway and issue client certificates",
    )
    p.add_argument("--detach", action="store_true", help="return once committing; stop with `down`")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    p = subcommand(tsub, "down", "stop every node of the testnet", "chain testnet down", cmd_down)
    common(p)
    p = subcommand(
        tsub, "status", "one look at every node", "chain testnet status --json", cmd_status
    )
    common(p)
    p.add_argument("--json", action="store_true")
    p = subcommand(
        tsub, "logs", "print the end of a node's log", "chain testnet logs node2", cmd_logs
    )
    common(p)
    p.add_argument("node")
    p.add_argument("-n", "--lines", type=int, default=50)
    p = subcommand(
        tsub,
        "kill",
        "kill a node (SIGKILL; --graceful for SIGTERM)",
        "chain testnet kill node1",
        cmd_kill,
    )
    common(p)
    p.add_argument("node")
    p.add_argument("--graceful", action="store_true")
    p = subcommand(
        tsub, "start", "start a stopped node again", "chain testnet start node1", cmd_start
    )
    common(p)
    p.add_argument("node")
