"""`chain status`, `chain tx show|wait`, `chain block show`: looking at a node and its chain.
Read-only calls over the control socket; nothing here signs."""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.common import CliError, client_opts, iso_ms, out, rpc, subcommand, tx_line


def cmd_status(args: argparse.Namespace) -> int:
    st = rpc(args).call("node_status")

    def human(s: dict[str, Any]) -> str:
        c = s.get("consensus", {})
        return (
            f"{s['node']} chain={s['chain_id']} height={s['height']} "
            f"view={c.get('view')} leader={c.get('leader')} peers={s.get('peers')} "
            f"mempool={s['mempool']['size']} halted={s['halted']}"
        )

    out(args, st, human)
    return 0


def cmd_tx_show(args: argparse.Namespace) -> int:
    r: Any = rpc(args).call("tx_get", {"tx_id": args.tx_id})
    out(args, r, tx_line)
    return 0 if r["status"] != "unknown" else 1


def cmd_tx_wait(args: argparse.Namespace) -> int:
    r: Any = rpc(args).call(
        "tx_wait", {"tx_id": args.tx_id, "timeout_ms": int(args.timeout * 1000)}
    )
    out(args, r, tx_line)
    return 0 if r["status"] == "committed" else 1


def cmd_block_show(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"txs": args.txs}
    if args.which not in (None, "latest"):
        if len(args.which) == 64:
            params["hash"] = args.which
        elif args.which.isdigit():
            params["height"] = int(args.which)
        else:
            raise CliError(f"{args.which!r} is not a height, a 64-hex block hash or `latest`")
    client = rpc(args)
    b = client.call("block_get", params)

    def human(b: dict[str, Any]) -> str:
        if b.get("genesis"):
            return f"height 0 (genesis) hash {b['hash']}"
        h = b["header"]
        cert = b.get("certificate") or {}
        signers = ", ".join(s["name"] for s in cert.get("signatures", []))
        validators: Any = client.call("validators_list")
        names = {v["index"]: v["name"] for v in validators}
        proposer = names.get(h["proposer"], f"validator {h['proposer']}")
        return (
            f"block {b['height']} hash {b['hash']}\n  time {iso_ms(h['timestamp_ms'])} "
            f"view {h['view']} proposer {proposer} txs {h['tx_count']}\n"
            f"  state_root {h['state_root']}\n  signed by: {signers}"
        )

    out(args, b, human)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    r: Any = rpc(args).call("node_diagnose")

    def human(r: dict[str, Any]) -> str:
        lines = [f"{r['node']}: {r['verdict']} at height {r['height']}, view {r['view']}"]
        lines += [f"  - {line}" for line in r["explanation"]]
        votes = r["votes"]
        lines.append(
            f"  round in flight: height {votes['height']} view {votes['view']}, open "
            f"{votes['age_ms'] / 1000:.1f} s, proposal {'yes' if votes['proposal'] else 'no'}"
        )
        leader = r["leader"]
        lines.append(f"  leader: {leader['name']} ({leader['link']['state']})")
        for name, clock in r["clock_offsets_ms"].items():
            lines.append(f"  clock: {name}'s block times {clock['max_ms']:+d} ms from ours")
        for tx in r["waiting"]["shown"][:5]:
            lines.append(f"  waiting: {tx['tx_id'][:16]}… from {tx['sender']}: {tx['why']}")
        return "\n".join(lines)

    out(args, r, human)
    return 0 if r["verdict"] == "committing" else 1


def add_query_commands(sub: Any) -> None:
    """Register `status`, `tx` and `block` under the top-level subcommands."""
    p = subcommand(
        sub,
        "status",
        "show a node's status",
        "chain status --socket testnet/node1/control.sock",
        cmd_status,
    )
    client_opts(p)

    tx = sub.add_parser("tx", help="show or wait for a transaction").add_subparsers(
        dest="tx_cmd", required=True
    )
    p = subcommand(
        tx, "show", "show a transaction and its result", "chain tx show <tx_id>", cmd_tx_show
    )
    p.add_argument("tx_id")
    client_opts(p)
    p = subcommand(
        tx, "wait", "wait until a transaction is committed", "chain tx wait <tx_id>", cmd_tx_wait
    )
    p.add_argument("tx_id")
    client_opts(p)

    block = sub.add_parser("block", help="show blocks").add_subparsers(
        dest="block_cmd", required=True
    )
    p = subcommand(
        block,
        "show",
        "show a block by height, hash or latest",
        "chain block show 12",
        cmd_block_show,
    )
    p.add_argument("which", nargs="?", default="latest")
    client_opts(p)
    p.add_argument("--txs", action="store_true", help="include the transactions")

    p = subcommand(
        sub,
        "doctor",
        "explain why the chain is not committing or is slow (node_diagnose); exit 1 unless "
        "it commits normally",
        "chain doctor --socket testnet/node1/control.sock",
        cmd_doctor,
    )
    client_opts(p)
