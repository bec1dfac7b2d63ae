"""The application commands: `chain item`, `chain notarize`, `chain record`, `chain account`.
Writes are signed with --key and sent to --socket (node/cli/common.py's send); reads are
plain calls. The proof-related parts of these groups (`item export`, `notarize --verify`)
belong to node/cli/proofs.py and are added by node/cli/main.py."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from node.cli.common import (
    AccountNames,
    CliError,
    account,
    client_opts,
    iso_ms,
    kv,
    out,
    rpc,
    send,
    subcommand,
)
from node.cli.proofs import verify_notarized

# --- item ---------------------------------------------------------------------------------------


def cmd_item_register(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {"item": args.item, "meta": kv(args.meta)}
    if args.parent:
        tx_args["parents"] = args.parent
    return send(args, "item.register", tx_args)


def cmd_item_transfer(args: argparse.Namespace) -> int:
    tx_args: dict[str, Any] = {"item": args.item, "to": account(args, args.to)}
    if args.note:
        tx_args["note"] = args.note
    return send(args, "item.transfer", tx_args)


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
    return send(args, "item.event", tx_args)


def cmd_item_history(args: argparse.Namespace) -> int:
    client = rpc(args)
    r = client.call("item_history", {"item": args.item})
    name = AccountNames(client)

    def human(r: dict[str, Any]) -> str:
        lines = [f"item {r['item']} — custodian {name(r['custodian'])}"]
        for s in r["steps"]:
            detail = {
                "register": lambda s: f"registered by {name(s['by'])}",
                "transfer": lambda s: f"custody {name(s['from'])} -> {name(s['to'])}",
                "event": lambda s: (
                    f"{s['event']} at {s.get('location') or '-'} by {name(s.get('by'))}"
                ),
            }[s["kind"]](s)
            when = iso_ms(s.get("timestamp_ms"))
            lines.append(f"  #{s['seq']} {when} height {s['height']}: {detail}")
        return "\n".join(lines)

    out(args, r, human)
    return 0


def cmd_item_show(args: argparse.Namespace) -> int:
    out(args, rpc(args).call("item_get", {"item": args.item}))
    return 0


# --- notarize, record, account ------------------------------------------------------------------


def cmd_notarize(args: argparse.Namespace) -> int:
    if args.verify:
        return verify_notarized(args)
    if not args.file:
        raise CliError("give the FILE to anchor (or --verify DOCUMENT --receipt FILE)")
    digest = hashlib.sha256(Path(args.file).read_bytes()).digest()
    meta = {"name": Path(args.file).name, **kv(args.meta)}
    return send(args, "notary.anchor", {"digest": digest, "meta": meta})


def cmd_record_put(args: argparse.Namespace) -> int:
    return send(args, "record.put", {"ns": args.ns, "key": args.key_name, "value": args.value})


def cmd_record_get(args: argparse.Namespace) -> int:
    r = rpc(args).call("record_get", {"ns": args.ns, "key": args.key_name, "history": args.history})
    out(
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
        "account": account(args, args.account),
        "roles": args.role or ["member"],
    }
    if args.name:
        tx_args["name"] = args.name
    return send(args, "account.grant", tx_args)


def cmd_account_revoke(args: argparse.Namespace) -> int:
    return send(args, "account.revoke", {"account": account(args, args.account)})


def cmd_account_show(args: argparse.Namespace) -> int:
    out(args, rpc(args).call("account_get", {"account": account(args, args.account).hex()}))
    return 0


# --- parser -------------------------------------------------------------------------------------


def add_item_commands(sub: Any) -> Any:
    """Register `item register|transfer|event|history|show`; the `item` subparsers."""
    item = sub.add_parser("item", help="product traceability").add_subparsers(
        dest="item_cmd", required=True
    )
    p = subcommand(
        item,
        "register",
        "register an item (optionally made from parent items)",
        "chain item register pallet-7 --meta sku=A1 --meta origin=Lyon --parent crate-1",
        cmd_item_register,
    )
    p.add_argument("item")
    p.add_argument("--meta", action="append", help="key=value (repeatable)")
    p.add_argument("--parent", action="append", help="parent item id (repeatable)")
    client_opts(p, key=True, send=True)
    p = subcommand(
        item,
        "transfer",
        "hand custody of an item to another account",
        "chain item transfer pallet-7 --to shipper",
        cmd_item_transfer,
    )
    p.add_argument("item")
    p.add_argument("--to", required=True, help="account: 64 hex characters or a key name")
    p.add_argument("--note")
    client_opts(p, key=True, send=True)
    p = subcommand(
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
    client_opts(p, key=True, send=True)
    p = subcommand(
        item,
        "history",
        "the item's whole custody and event history",
        "chain item history pallet-7",
        cmd_item_history,
    )
    p.add_argument("item")
    client_opts(p)
    p = subcommand(
        item, "show", "the item's current state", "chain item show pallet-7", cmd_item_show
    )
    p.add_argument("item")
    client_opts(p)
    return item


def add_notarize_command(sub: Any) -> argparse.ArgumentParser:
    """Register `notarize FILE`; its parser (node/cli/proofs.py adds --verify to it)."""
    p = subcommand(
        sub,
        "notarize",
        "anchor a document's SHA-256 digest (the file stays local), or check an anchor",
        "chain notarize contract.pdf --meta case=2026-114\n"
        "chain notarize --verify contract.pdf --receipt receipt.json --genesis genesis.toml",
        cmd_notarize,
    )
    p.add_argument("file", nargs="?")
    p.add_argument("--meta", action="append", help="key=value (repeatable)")
    client_opts(p, key=True, send=True)
    return p


def add_record_commands(sub: Any) -> None:
    """Register `record put|get`."""
    record = sub.add_parser("record", help="namespaced data records").add_subparsers(
        dest="record_cmd", required=True
    )
    p = subcommand(
        record,
        "put",
        "write a record (only its owner may overwrite it)",
        "chain record put customs declaration-77 cleared",
        cmd_record_put,
    )
    p.add_argument("ns")
    p.add_argument("key_name", metavar="key")
    p.add_argument("value")
    client_opts(p, key=True, send=True)
    p = subcommand(
        record,
        "get",
        "read a record",
        "chain record get customs declaration-77 --history",
        cmd_record_get,
    )
    p.add_argument("ns")
    p.add_argument("key_name", metavar="key")
    p.add_argument("--history", action="store_true")
    client_opts(p)


def add_account_commands(sub: Any) -> Any:
    """Register `account grant|revoke|show`; returns the group for more (rotate)."""
    acct = sub.add_parser("account", help="accounts and roles").add_subparsers(
        dest="account_cmd", required=True
    )
    p = subcommand(
        acct,
        "grant",
        "let an account write (admin only)",
        "chain account grant <pubkey-hex> --role member --name acme",
        cmd_account_grant,
    )
    p.add_argument("account")
    p.add_argument("--role", action="append", choices=["admin", "member", "inspector"])
    p.add_argument("--name")
    client_opts(p, key=True, send=True)
    p = subcommand(
        acct,
        "revoke",
        "remove an account's rights (admin only)",
        "chain account revoke <pubkey-hex>",
        cmd_account_revoke,
    )
    p.add_argument("account")
    client_opts(p, key=True, send=True)
    p = subcommand(acct, "show", "show an account", "chain account show shipper", cmd_account_show)
    p.add_argument("account")
    client_opts(p, key=True)
    return acct
