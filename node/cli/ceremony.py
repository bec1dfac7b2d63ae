"""`chain genesis member|build|install|hash` and `chain peer allow`: the genesis ceremony of a
consortium across hosts (node/daemon/ceremony.py does the work; docs/OPERATIONS.md walks
through it). `chain init` (node_cmds.py) makes the home each organisation starts from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.common import out, subcommand


def _threshold(text: str) -> tuple[int, int]:
    num, sep, den = text.partition("/")
    if not sep or not num.isdigit() or not den.isdigit() or int(num) <= 0 or int(den) <= 0:
        raise argparse.ArgumentTypeError(f"expected N/D such as 2/3, got {text!r}")
    return int(num), int(den)


def _param(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=INTEGER such as tick_ms=100, got {text!r}")
    return name, int(value)


def cmd_member(args: argparse.Namespace) -> int:
    from node.daemon.ceremony import export_member, parse_account_spec, write_member

    extra = [parse_account_spec(spec) for spec in args.account or []]
    member = export_member(
        Path(args.home),
        full_node=args.full_node,
        roles=args.role or ["member"],
        governor=args.governor,
        extra_accounts=extra,
        own_accounts=not args.no_own_accounts,
    )
    write_member(member, Path(args.out), force=args.force)
    out(
        args,
        {
            "member_file": args.out,
            "name": member.name,
            "role": member.role,
            "node_public_key": member.public_key.hex(),
            "address": member.address,
            "accounts": {a.name: list(a.roles) for a in member.accounts},
        },
        lambda o: (
            f"wrote {o['member_file']} ({o['role']} {o['name']} at {o['address']}; accounts "
            f"{', '.join(o['accounts']) or 'none'}): public parts only\n"
            f"node public key {o['node_public_key']}\n"
            "send the file to the coordinator and read them this key by another channel"
        ),
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from node.daemon.ceremony import build_genesis_file

    genesis = build_genesis_file(
        [Path(p) for p in args.members],
        Path(args.out),
        chain_id=args.chain_id,
        genesis_time=args.genesis_time,
        consensus=dict(args.consensus or []),
        governors=args.governor or [],
        threshold=args.threshold,
        proposal_ttl_blocks=args.proposal_ttl_blocks,
        force=args.force,
    )
    n = len(genesis.validators)
    gov = genesis.governance
    out(
        args,
        {
            "genesis_file": args.out,
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash.hex(),
            "validators": [v.name for v in genesis.validators],
            "tolerates_faulty": (n - 1) // 3,
            "accounts": [a.name for a in genesis.accounts],
            "governors": list(gov.governors),
        },
        lambda o: (
            f"wrote {o['genesis_file']}: chain {o['chain_id']}, {n} validator(s) "
            f"({', '.join(o['validators'])}; tolerates {o['tolerates_faulty']} faulty), "
            f"{len(o['accounts'])} account(s)"
            + (
                f", governors {', '.join(o['governors'])} "
                f"(more than {gov.threshold_num}/{gov.threshold_den} to pass)"
                if o["governors"]
                else ""
            )
            + f"\ngenesis hash {o['genesis_hash']}\n"
            "send it to every organisation: each runs `chain genesis install` and compares "
            "the hash it prints with this one"
        ),
    )
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from node.daemon.ceremony import install_genesis

    done = install_genesis(
        Path(args.home), Path(args.genesis), full_node=args.full_node, force=args.force
    )
    missing = [name for name, listed in done.accounts.items() if not listed]
    out(
        args,
        {
            "home": args.home,
            "chain_id": done.genesis.chain_id,
            "genesis_hash": done.genesis.hash.hex(),
            "validator": done.validator,
            "accounts_listed": done.accounts,
            "replaced": done.replaced,
        },
        lambda o: (
            f"installed genesis of chain {o['chain_id']} in {o['home']} "
            f"({'validator' if o['validator'] else 'full node'})\n"
            f"genesis hash {o['genesis_hash']}\n"
            + (
                f"note: account key(s) {', '.join(missing)} of this home are not in it\n"
                if missing
                else ""
            )
            + "compare the hash with every other organisation's, then: "
            f"chain start --home {o['home']}"
        ),
    )
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    from node.ledger.genesis import load_genesis

    genesis = load_genesis(Path(args.genesis))
    out(
        args,
        {"chain_id": genesis.chain_id, "genesis_hash": genesis.hash.hex()},
        lambda o: o["genesis_hash"],
    )
    return 0


def cmd_peer_allow(args: argparse.Namespace) -> int:
    from node.daemon.ceremony import allow_peer

    member, new = allow_peer(Path(args.home), Path(args.member))
    out(
        args,
        {"name": member.name, "public_key": member.public_key.hex(), "added": new},
        lambda o: (
            f"{'allowed' if o['added'] else 'already allowed:'} {o['name']} "
            f"({o['public_key'][:16]}...); restart the node for it to take effect"
        ),
    )
    return 0


def add_ceremony_commands(sub: Any) -> None:
    """Register `genesis` and `peer` with their subcommands."""
    genesis = sub.add_parser("genesis", help="the genesis ceremony: member, build, install")
    gsub = genesis.add_subparsers(dest="genesis_cmd", required=True)

    p = subcommand(
        gsub,
        "member",
        "export this node's public parts (node key, certificate, address, accounts) for the "
        "ceremony; no private key is written",
        "chain genesis member --home ./org1 -o org1.member.toml --role admin --governor",
        cmd_member,
    )
    p.add_argument("--home", required=True)
    p.add_argument("-o", "--out", required=True, help="member file to write")
    p.add_argument(
        "--role",
        action="append",
        choices=["admin", "member", "inspector"],
        help="role of the home's own account(s) (repeat; default member)",
    )
    p.add_argument("--governor", action="store_true", help="the home's account(s) govern")
    p.add_argument(
        "--account",
        action="append",
        metavar="NAME=KEY[:ROLES][:governor]",
        help="another account this organisation brings (KEY: 64 hex or a key file)",
    )
    p.add_argument("--no-own-accounts", action="store_true", help="leave out accounts/*.key")
    p.add_argument("--full-node", action="store_true", help="this node is not a validator")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true")

    p = subcommand(
        gsub,
        "build",
        "assemble member files into genesis.toml (validators sorted by name: the same files "
        "and --genesis-time give the same hash anywhere)",
        "chain genesis build org1.member.toml org2.member.toml org3.member.toml "
        "org4.member.toml \\\n    --chain-id supply-1 --threshold 2/3 -o genesis.toml",
        cmd_build,
    )
    p.add_argument("members", nargs="+", metavar="MEMBER_FILE")
    p.add_argument("--chain-id", required=True, dest="chain_id")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--genesis-time", dest="genesis_time", help="default: now (UTC, ISO 8601)")
    p.add_argument("--governor", action="append", metavar="ACCOUNT", help="(repeat)")
    p.add_argument("--threshold", type=_threshold, metavar="N/D", help="default 2/3")
    p.add_argument("--proposal-ttl-blocks", type=int, dest="proposal_ttl_blocks")
    p.add_argument(
        "--consensus",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="a [consensus] parameter, e.g. view_timeout_ms=8000 for a WAN (repeat)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true")

    p = subcommand(
        gsub,
        "install",
        "check a genesis against this node (key, name, certificate, address) and install it; "
        "prints the genesis hash to compare out of band",
        "chain genesis install --home ./org1 genesis.toml",
        cmd_install,
    )
    p.add_argument("--home", required=True)
    p.add_argument("genesis")
    p.add_argument("--full-node", action="store_true", help="this node is not a validator")
    p.add_argument("--force", action="store_true", help="replace another genesis (no data yet)")
    p.add_argument("--json", action="store_true")

    p = subcommand(
        gsub, "hash", "print a genesis file's hash", "chain genesis hash genesis.toml", cmd_hash
    )
    p.add_argument("genesis")
    p.add_argument("--json", action="store_true")

    peer = sub.add_parser("peer", help="let a full node connect to this node")
    psub = peer.add_subparsers(dest="peer_cmd", required=True)
    p = subcommand(
        psub,
        "allow",
        "allow the full node of a member file to connect (its certificate is pinned)",
        "chain peer allow --home ./org1 org5.member.toml",
        cmd_peer_allow,
    )
    p.add_argument("--home", required=True)
    p.add_argument("member")
    p.add_argument("--json", action="store_true")
