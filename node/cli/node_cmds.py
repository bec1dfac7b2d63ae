"""`chain keygen`, `chain init`, `chain start`: keys, a node home, and running a node."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from node.cli.common import CliError, out, subcommand
from node.ledger import crypto


def cmd_keygen(args: argparse.Namespace) -> int:
    key = crypto.SigningKey.generate()
    try:
        crypto.write_key_file(Path(args.out), key)
    except crypto.KeyFileError as exc:
        raise CliError(str(exc)) from exc
    out(
        args,
        {"key_file": args.out, "public_key": key.public_key.hex()},
        lambda o: f"wrote {o['key_file']} (mode 0600)\npublic key {o['public_key']}",
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from node.daemon.home import init_home

    genesis, admin = init_home(
        Path(args.home), chain_id=args.chain_id, name=args.name, listen=args.listen
    )
    out(
        args,
        {
            "home": args.home,
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash.hex(),
            "admin_key": str(admin),
        },
        lambda o: (
            f"initialised {o['home']} for chain {o['chain_id']}\n"
            f"admin account key: {o['admin_key']}\nstart it with: chain start --home {o['home']}"
        ),
    )
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    import trio

    from node.daemon.node import serve

    return int(
        trio.run(partial(serve, Path(args.home), args.log_level, stop_on_eof=args.stop_on_eof))
    )


def add_node_commands(sub: Any) -> None:
    """Register `keygen`, `init` and `start` under the top-level subcommands."""
    p = subcommand(
        sub,
        "keygen",
        "generate an Ed25519 key file (mode 0600; never overwrites)",
        "chain keygen --out alice.key",
        cmd_keygen,
    )
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")

    p = subcommand(
        sub,
        "init",
        "create a node home with a one-validator genesis",
        "chain init --home ./mynode --chain-id demo",
        cmd_init,
    )
    p.add_argument("--home", required=True)
    p.add_argument("--chain-id", default="local-chain")
    p.add_argument("--name", default="node0")
    p.add_argument("--listen", default="127.0.0.1:26650")
    p.add_argument("--json", action="store_true")

    p = subcommand(
        sub,
        "start",
        "run a node until SIGINT, SIGTERM or SIGHUP (exit 0; 1 when it cannot start, "
        "2 when it halted)",
        "chain start --home ./mynode",
        cmd_start,
    )
    p.add_argument("--home", required=True)
    p.add_argument(
        "--stop-on-eof",
        type=int,
        metavar="FD",
        dest="stop_on_eof",
        help="for supervisors: also stop when this inherited file descriptor (the read end "
        "of a pipe whose write end the supervisor holds) reaches end of file",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [node] log_level of config.toml",
    )
