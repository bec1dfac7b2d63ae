"""`chain`: one command with subcommands. Every subcommand has --help with an example."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.ledger import crypto
from node.ledger.genesis import ConfigError

DEFAULT_SOCKET = "testnet/node0/control.sock"
DEFAULT_KEY = "testnet/accounts/admin.key"


class CliError(Exception):
    """A failure the user can act on: printed without a traceback, exit status 1."""


def _examples(text: str) -> str:
    return "example:\n  " + "\n  ".join(text.strip().splitlines())


def _out(args: argparse.Namespace, obj: Any, human: Callable[[Any], str] | None = None) -> None:
    if getattr(args, "json", False) or human is None:
        print(json.dumps(obj, indent=2, sort_keys=True))
    else:
        print(human(obj))


def _rpc(args: argparse.Namespace) -> Any:
    from node.rpc.client import RpcClient

    return RpcClient(Path(args.socket), timeout_s=args.timeout)


def _wallet(args: argparse.Namespace) -> Any:
    from node.client.wallet import Wallet

    try:
        key = crypto.read_key_file(Path(args.key))
    except crypto.KeyFileError as exc:
        raise CliError(f"{exc} (pass --key FILE, or set CHAIN_KEY)") from exc
    return Wallet(_rpc(args), key)


def _account(args: argparse.Namespace, value: str) -> bytes:
    """An account given as 64 hex characters or as a key name beside --key (e.g. shipper)."""
    try:
        raw = bytes.fromhex(value)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    candidate = Path(args.key).parent / f"{value}.key"
    if candidate.exists():
        return crypto.read_key_file(candidate).public_key
    raise CliError(
        f"account {value!r} is neither 64 hex characters nor a key in {candidate.parent}"
    )


def _kv(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise CliError(f"--meta takes key=value, got {pair!r}")
        out[k] = v
    return out


def _tx_line(r: dict[str, Any]) -> str:
    status = r.get("status")
    line = f"tx {r.get('tx_id', '?')}: {status}"
    if "height" in r:
        line += f" at height {r['height']} index {r['index']}"
    result = r.get("result") or {}
    if status == "failed":
        line += f" ({result.get('code')}: {result.get('reason')})"
    return line


def _send(args: argparse.Namespace, tx_type: str, tx_args: dict[str, Any]) -> int:
    wallet = _wallet(args)
    result = wallet.send(
        tx_type, tx_args, wait=not args.no_wait, timeout_ms=int(args.timeout * 1000)
    )
    _out(args, result, _tx_line)
    return 0 if result.get("status") in ("committed", "pending") else 1


# --- commands -----------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    key = crypto.SigningKey.generate()
    try:
        crypto.write_key_file(Path(args.out), key)
    except crypto.KeyFileError as exc:
        raise CliError(str(exc)) from exc
    _out(
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
    _out(
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

    return trio.run(serve, Path(args.home), args.log_level)


def cmd_status(args: argparse.Namespace) -> int:
    st = _rpc(args).call("node_status")

    def human(s: dict[str, Any]) -> str:
        c = s.get("consensus", {})
        return (
            f"{s['node']} chain={s['chain_id']} height={s['height']} "
            f"view={c.get('view')} leader={c.get('leader')} peers={s.get('peers')} "
            f"mempool={s['mempool']['size']} halted={s['halted']}"
        )

    _out(args, st, human)
    return 0


def cmd_tx_show(args: argparse.Namespace) -> int:
    r = _rpc(args).call("tx_get", {"tx_id": args.tx_id})
    _out(args, r, _tx_line)
    return 0 if r["status"] != "unknown" else 1


def cmd_tx_wait(args: argparse.Namespace) -> int:
    r = _rpc(args).call("tx_wait", {"tx_id": args.tx_id, "timeout_ms": int(args.timeout * 1000)})
    _out(args, r, _tx_line)
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
    b = _rpc(args).call("block_get", params)

    def human(b: dict[str, Any]) -> str:
        if b.get("genesis"):
            return f"height 0 (genesis) hash {b['hash']}"
        h = b["header"]
        cert = b.get("certificate") or {}
        signers = ", ".join(s["name"] for s in cert.get("signatures", []))
        return (
            f"block {b['height']} hash {b['hash']}\n  time {h['timestamp_ms']} view {h['view']} "
            f"proposer {h['proposer']} txs {h['tx_count']}\n  state_root {h['state_root']}\n"
            f"  signed by: {signers}"
        )

    _out(args, b, human)
    return 0


def cmd_item_register(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {"item": args.item, "meta": _kv(args.meta)}
    if args.parent:
        tx_args["parents"] = args.parent
    return _send(args, "item.register", tx_args)


def cmd_item_transfer(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {"item": args.item, "to": _account(args, args.to)}
    if args.note:
        tx_args["note"] = args.note
    return _send(args, "item.transfer", tx_args)


def cmd_item_event(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {"item": args.item, "kind": args.kind}
    if args.location:
        tx_args["location"] = args.location
    if args.note:
        tx_args["note"] = args.note
    if args.file:
        tx_args["digest"] = hashlib.sha256(Path(args.file).read_bytes()).digest()
    if args.time_ms is not None:
        tx_args["time_ms"] = args.time_ms
    return _send(args, "item.event", tx_args)


def cmd_item_history(args: argparse.Namespace) -> int:
    r = _rpc(args).call("item_history", {"item": args.item})

    def human(r: dict[str, Any]) -> str:
        lines = [f"item {r['item']} — custodian {r['custodian'][:16]}…"]
        for s in r["steps"]:
            detail = {
                "register": lambda s: f"registered by {s['by'][:16]}…",
                "transfer": lambda s: f"custody {s['from'][:12]}… -> {s['to'][:12]}…",
                "event": lambda s: f"{s['event']} at {s.get('location') or '-'}",
            }[s["kind"]](s)
            lines.append(f"  #{s['seq']} height {s['height']}: {detail}")
        return "\n".join(lines)

    _out(args, r, human)
    return 0


def cmd_item_show(args: argparse.Namespace) -> int:
    _out(args, _rpc(args).call("item_get", {"item": args.item}))
    return 0


def cmd_notarize(args: argparse.Namespace) -> int:
    if args.verify:
        from node.cli.proofs import verify_notarized

        return verify_notarized(args)
    if not args.file:
        raise CliError("give the FILE to anchor (or --verify DOCUMENT --receipt FILE)")
    digest = hashlib.sha256(Path(args.file).read_bytes()).digest()
    meta = {"name": Path(args.file).name, **_kv(args.meta)}
    return _send(args, "notary.anchor", {"digest": digest, "meta": meta})


def cmd_record_put(args: argparse.Namespace) -> int:
    return _send(args, "record.put", {"ns": args.ns, "key": args.key_name, "value": args.value})


def cmd_record_get(args: argparse.Namespace) -> int:
    r = _rpc(args).call(
        "record_get", {"ns": args.ns, "key": args.key_name, "history": args.history}
    )
    _out(
        args,
        r,
        lambda r: (
            f"{r['ns']}/{r['key']} = {r['value']!r} (version {r['version']}, "
            f"owner {r['owner'][:16]}…, height {r['height']})"
        ),
    )
    return 0


def cmd_account_grant(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {
        "account": _account(args, args.account),
        "roles": args.role or ["member"],
    }
    if args.name:
        tx_args["name"] = args.name
    return _send(args, "account.grant", tx_args)


def cmd_account_revoke(args: argparse.Namespace) -> int:
    return _send(args, "account.revoke", {"account": _account(args, args.account)})


def cmd_account_show(args: argparse.Namespace) -> int:
    _out(args, _rpc(args).call("account_get", {"account": _account(args, args.account).hex()}))
    return 0


# --- parser -------------------------------------------------------------------------------------


def _client_opts(p: argparse.ArgumentParser, *, key: bool = False, send: bool = False) -> None:
    p.add_argument(
        "--socket",
        default=os.environ.get("CHAIN_SOCKET", DEFAULT_SOCKET),
        help=f"node control socket (default $CHAIN_SOCKET or {DEFAULT_SOCKET})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    if key:
        p.add_argument(
            "--key",
            default=os.environ.get("CHAIN_KEY", DEFAULT_KEY),
            help=f"account key file that signs (default $CHAIN_KEY or {DEFAULT_KEY})",
        )
    if send:
        p.add_argument("--no-wait", action="store_true", help="do not wait for the commit")


def _sub(
    parent: Any, name: str, help_text: str, example: str, func: Any
) -> argparse.ArgumentParser:
    p = parent.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_examples(example),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chain",
        description="A permissioned PBFT ledger: run nodes, send transactions, query.",
        epilog=_examples(
            "chain testnet up --validators 4\nchain item register pallet-1 --meta sku=A1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = _sub(
        sub,
        "keygen",
        "generate an Ed25519 key file (mode 0600; never overwrites)",
        "chain keygen --out alice.key",
        cmd_keygen,
    )
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")

    p = _sub(
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

    p = _sub(
        sub, "start", "run a node until SIGINT or SIGTERM", "chain start --home ./mynode", cmd_start
    )
    p.add_argument("--home", required=True)
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [node] log_level of config.toml",
    )

    from node.testnet.local import add_testnet_parser

    add_testnet_parser(sub, _sub)

    from node.cli.proofs import add_proof_commands

    add_proof_commands(sub, _sub, _client_opts)

    p = _sub(
        sub,
        "status",
        "show a node's status",
        "chain status --socket testnet/node1/control.sock",
        cmd_status,
    )
    _client_opts(p)

    tx = sub.add_parser("tx", help="show or wait for a transaction").add_subparsers(
        dest="tx_cmd", required=True
    )
    p = _sub(tx, "show", "show a transaction and its result", "chain tx show <tx_id>", cmd_tx_show)
    p.add_argument("tx_id")
    _client_opts(p)
    p = _sub(
        tx, "wait", "wait until a transaction is committed", "chain tx wait <tx_id>", cmd_tx_wait
    )
    p.add_argument("tx_id")
    _client_opts(p)

    block = sub.add_parser("block", help="show blocks").add_subparsers(
        dest="block_cmd", required=True
    )
    p = _sub(
        block,
        "show",
        "show a block by height, hash or latest",
        "chain block show 12",
        cmd_block_show,
    )
    p.add_argument("which", nargs="?", default="latest")
    p.add_argument("--txs", action="store_true", help="include the transactions")
    _client_opts(p)

    item = sub.add_parser("item", help="product traceability").add_subparsers(
        dest="item_cmd", required=True
    )
    p = _sub(
        item,
        "register",
        "register an item (optionally made from parent items)",
        "chain item register pallet-7 --meta sku=A1 --meta origin=Lyon --parent crate-1",
        cmd_item_register,
    )
    p.add_argument("item")
    p.add_argument("--meta", action="append", help="key=value (repeatable)")
    p.add_argument("--parent", action="append", help="parent item id (repeatable)")
    _client_opts(p, key=True, send=True)
    p = _sub(
        item,
        "transfer",
        "hand custody of an item to another account",
        "chain item transfer pallet-7 --to shipper",
        cmd_item_transfer,
    )
    p.add_argument("item")
    p.add_argument("--to", required=True, help="account: 64 hex characters or a key name")
    p.add_argument("--note")
    _client_opts(p, key=True, send=True)
    p = _sub(
        item,
        "event",
        "append an event (inspected, shipped, received, ...)",
        "chain item event pallet-7 --kind inspected --location Rotterdam --file report.pdf",
        cmd_item_event,
    )
    p.add_argument("item")
    p.add_argument("--kind", required=True)
    p.add_argument("--location")
    p.add_argument("--note")
    p.add_argument("--file", help="attachment whose SHA-256 is recorded")
    p.add_argument("--time-ms", type=int, dest="time_ms")
    _client_opts(p, key=True, send=True)
    p = _sub(
        item,
        "history",
        "the item's whole custody and event history",
        "chain item history pallet-7",
        cmd_item_history,
    )
    p.add_argument("item")
    _client_opts(p)
    p = _sub(item, "show", "the item's current state", "chain item show pallet-7", cmd_item_show)
    p.add_argument("item")
    _client_opts(p)
    from node.cli.proofs import add_item_export_command

    add_item_export_command(item, _sub, _client_opts)

    p = _sub(
        sub,
        "notarize",
        "anchor a document's SHA-256 digest (the file stays local), or check an anchor",
        "chain notarize contract.pdf --meta case=2026-114\n"
        "chain notarize --verify contract.pdf --receipt receipt.json --genesis genesis.toml",
        cmd_notarize,
    )
    p.add_argument("file", nargs="?")
    p.add_argument("--meta", action="append", help="key=value (repeatable)")
    _client_opts(p, key=True, send=True)
    from node.cli.proofs import add_notarize_verify_options

    add_notarize_verify_options(p)

    record = sub.add_parser("record", help="namespaced data records").add_subparsers(
        dest="record_cmd", required=True
    )
    p = _sub(
        record,
        "put",
        "write a record (only its owner may overwrite it)",
        "chain record put customs declaration-77 cleared",
        cmd_record_put,
    )
    p.add_argument("ns")
    p.add_argument("key_name", metavar="key")
    p.add_argument("value")
    _client_opts(p, key=True, send=True)
    p = _sub(
        record,
        "get",
        "read a record",
        "chain record get customs declaration-77 --history",
        cmd_record_get,
    )
    p.add_argument("ns")
    p.add_argument("key_name", metavar="key")
    p.add_argument("--history", action="store_true")
    _client_opts(p)

    account = sub.add_parser("account", help="accounts and roles").add_subparsers(
        dest="account_cmd", required=True
    )
    p = _sub(
        account,
        "grant",
        "let an account write (admin only)",
        "chain account grant <pubkey-hex> --role member --name acme",
        cmd_account_grant,
    )
    p.add_argument("account")
    p.add_argument("--role", action="append", choices=["admin", "member", "inspector"])
    p.add_argument("--name")
    _client_opts(p, key=True, send=True)
    p = _sub(
        account,
        "revoke",
        "remove an account's rights (admin only)",
        "chain account revoke <pubkey-hex>",
        cmd_account_revoke,
    )
    p.add_argument("account")
    _client_opts(p, key=True, send=True)
    p = _sub(account, "show", "show an account", "chain account show shipper", cmd_account_show)
    p.add_argument("account")
    _client_opts(p, key=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from node.rpc.client import NoNodeError, RpcCallError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, ConfigError, crypto.KeyFileError, NoNodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RpcCallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
