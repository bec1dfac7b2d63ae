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
    if args.single:
        return _init_single(args)
    if args.chain_id is not None:
        raise CliError(
            "--chain-id belongs to `chain genesis build` (a consortium) or to "
            "`chain init --single` (a one-validator chain)"
        )
    if args.name is None or args.listen is None:
        raise CliError(
            "chain init needs --name ORG and --listen HOST:PORT (or --single for a "
            "one-validator chain of your own)"
        )
    from node.daemon.ceremony import init_member_home

    done = init_member_home(
        Path(args.home), name=args.name, listen=args.listen, advertise=args.advertise or ""
    )
    out(
        args,
        {
            "home": str(done.home),
            "name": done.name,
            "node_public_key": done.node_public_key.hex(),
            "account_key": str(done.account_key),
            "advertise": done.advertise,
        },
        lambda o: (
            f"initialised {o['home']} for organisation {o['name']} (no genesis yet)\n"
            f"node public key {o['node_public_key']}, advertised at {o['advertise']}\n"
            f"account key {o['account_key']} (keep it here; only its public key is shared)\n"
            f"next: chain genesis member --home {o['home']} -o {o['name']}.member.toml"
        ),
    )
    return 0


def _init_single(args: argparse.Namespace) -> int:
    from node.daemon.home import init_home

    genesis, admin = init_home(
        Path(args.home),
        chain_id=args.chain_id or "local-chain",
        name=args.name or "node0",
        listen=args.listen or "127.0.0.1:26650",
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
        "create a node home: keys and config for a consortium's genesis ceremony (no "
        "genesis yet), or with --single a one-validator chain of its own",
        "chain init --home ./org1 --name org1 --listen 0.0.0.0:26650 \\\n"
        "    --advertise org1.example.net:26650\n"
        "chain init --single --home ./mynode --chain-id demo",
        cmd_init,
    )
    p.add_argument("--home", required=True)
    p.add_argument("--name", help="organisation / node name (default node0 with --single)")
    p.add_argument("--listen", help="p2p HOST:PORT to bind (default 127.0.0.1:26650 with --single)")
    p.add_argument("--advertise", help="p2p HOST:PORT the others dial, if not --listen")
    p.add_argument("--single", action="store_true", help="a one-validator chain with genesis")
    p.add_argument("--chain-id", dest="chain_id", help="with --single (default local-chain)")
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
