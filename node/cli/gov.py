"""`chain gov`, `chain validators` and `chain account rotate`: membership changes by the
consortium's vote (docs/CONSENSUS.md "Epochs", docs/OPERATIONS.md "Joining later").

A change passed while block H executes signs from block H + 2; an added validator's change
waits until its node, running as a full node and caught up, reports ready by itself."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.common import CliError, client_opts, out, rpc, send, subcommand
from node.ledger import crypto, schema
from p2p.identity import IdentityError, certificate_public_key, make_certificate


def _public_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CliError(f"--public-key must be 64 hex characters, got {text!r}")
    return key


def _certificate(path: str, public_key: bytes) -> str:
    try:
        pem = Path(path).read_text()
        key = certificate_public_key(pem.encode())
    except (OSError, IdentityError, ValueError) as exc:
        raise CliError(f"{path}: not a node certificate ({exc})") from exc
    if key != public_key:
        raise CliError(f"{path} is the certificate of {key.hex()[:16]}…, not of --public-key")
    return pem


def cmd_propose_add(args: argparse.Namespace) -> int:
    key = _public_key(args.public_key)
    action = {
        "type": "add-validator",
        "name": args.name,
        "public_key": key,
        "address": args.address,
        "certificate": _certificate(args.certificate, key),
    }
    return send(args, "gov.propose", {"action": action})


def cmd_propose_remove(args: argparse.Namespace) -> int:
    return send(args, "gov.propose", {"action": {"type": "remove-validator", "name": args.name}})


def cmd_propose_update(args: argparse.Namespace) -> int:
    action: dict[str, Any] = {"type": "update-validator", "name": args.name}
    if args.address:
        action["address"] = args.address
    if args.public_key or args.certificate:
        if not (args.public_key and args.certificate):
            raise CliError("a new key needs both --public-key and --certificate")
        key = _public_key(args.public_key)
        action["public_key"] = key
        action["certificate"] = _certificate(args.certificate, key)
    if len(action) == 2:
        raise CliError("give --address, or --public-key and --certificate")
    return send(args, "gov.propose", {"action": action})


def cmd_propose_params(args: argparse.Namespace) -> int:
    params: dict[str, int] = {}
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep or name not in schema.LIVE_PARAMS or not value.isdigit():
            raise CliError(
                f"--set takes NAME=INTEGER with NAME one of {', '.join(schema.LIVE_PARAMS)}; "
                f"got {pair!r}"
            )
        params[name] = int(value)
    return send(args, "gov.propose", {"action": {"type": "set-params", "params": params}})


def cmd_vote(args: argparse.Namespace) -> int:
    if args.approve == args.reject:
        raise CliError("say --approve or --reject")
    return send(args, "gov.vote", {"proposal": args.proposal, "approve": bool(args.approve)})


def _proposal_line(p: dict[str, Any]) -> str:
    action = p["action_summary"]
    what = " ".join(f"{k}={v}" for k, v in action.items() if k != "type")
    votes = f"{len(p['approve'])} for, {len(p['reject'])} against"
    reason = f" ({p['reason']})" if p.get("reason") else ""
    effective = f", from height {p['effective_height']}" if p.get("effective_height") else ""
    return f"#{p['id']} {action['type']} {what}: {p['status']}{effective}{reason}; {votes}"


def cmd_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    proposals = rpc(args).call("gov_list", params)
    out(args, proposals, lambda ps: "\n".join(_proposal_line(p) for p in ps) or "no proposals")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    proposal = rpc(args).call("gov_get", {"proposal": args.proposal})

    def human(p: dict[str, Any]) -> str:
        voters = ", ".join(v["name"] or v["account"][:16] for v in p["approve"]) or "-"
        against = ", ".join(v["name"] or v["account"][:16] for v in p["reject"]) or "-"
        return "\n".join(
            [
                _proposal_line(p),
                f"  proposed by {p['proposer_name'] or p['proposer'][:16]} at height "
                f"{p['created']}, expires after height {p['expires']}",
                f"  for: {voters}",
                f"  against: {against}",
            ]
        )

    out(args, proposal, human)
    return 0


def cmd_validators(args: argparse.Namespace) -> int:
    epochs = rpc(args).call("epochs_list")

    def human(e: dict[str, Any]) -> str:
        current = e["current"]
        lines = [f"epoch {current['epoch']} (since height {current['start_height']}):"]
        lines += [
            f"  {v['index']}: {v['name']} {v['public_key'][:16]}… {v['address']}"
            for v in current["validators"]
        ]
        if e["scheduled"]:
            s = e["scheduled"]
            names = ", ".join(v["name"] for v in s["validators"])
            lines.append(f"scheduled: epoch {s['epoch']} from height {s['start_height']}: {names}")
        lines.append("history:")
        for h in e["history"]:
            names = ", ".join(v["name"] for v in h["validators"])
            by = f" (proposal #{h['proposal']})" if h["proposal"] else " (genesis)"
            lines.append(f"  epoch {h['epoch']} from height {h['start_height']}{by}: {names}")
        return "\n".join(lines)

    out(args, epochs, human)
    return 0


def cmd_new_node_key(args: argparse.Namespace) -> int:
    """Make the node key a validator will rotate to; the node switches to it by itself at
    the height the update-validator change takes effect."""
    from node.daemon.config import load_config

    config = load_config(Path(args.home))
    key_path = config.path(config.node.key_file)
    cert_path = config.path(config.node.cert_file)
    next_key = key_path.with_name(key_path.name + ".next")
    next_cert = cert_path.with_name(cert_path.stem + ".next" + cert_path.suffix)
    if next_key.exists() and not args.force:
        raise CliError(f"{next_key} exists already (pass --force to replace it)")
    key = crypto.SigningKey.generate()
    crypto.write_key_file(next_key, key)
    next_cert.write_text(make_certificate(key.private_key, config.node.name).decode())
    result = {
        "public_key": key.public_key.hex(),
        "certificate": str(next_cert),
        "propose": f"chain gov propose update-validator {config.node.name} "
        f"--public-key {key.public_key.hex()} --certificate {next_cert}",
    }
    out(args, result, lambda r: f"next node key {r['public_key']}\nthen: {r['propose']}")
    return 0


def cmd_account_rotate(args: argparse.Namespace) -> int:
    try:
        new_key = crypto.read_key_file(Path(args.new_key))
    except crypto.KeyFileError as exc:
        raise CliError(f"{exc} (make one with `chain keygen --out FILE`)") from exc
    return send(args, "account.rotate", {"new_key": new_key.public_key})


def add_gov_commands(sub: Any) -> None:
    gov = sub.add_parser("gov", help="membership changes by the consortium's vote")
    cmds = gov.add_subparsers(dest="gov_cmd", required=True)
    propose = cmds.add_parser("propose", help="propose a change (governors only)")
    kinds = propose.add_subparsers(dest="propose_cmd", required=True)
    p = subcommand(
        kinds,
        "add-validator",
        "add a validator; it runs as a full node first and joins once caught up",
        "chain gov propose add-validator --name org5 --public-key <hex> "
        "--address org5.example:26650 --certificate org5/node_cert.pem",
        cmd_propose_add,
    )
    p.add_argument("--name", required=True)
    p.add_argument("--public-key", required=True, help="the node key (hex) of the new validator")
    p.add_argument("--address", required=True, help="host:port its p2p listener is reached at")
    p.add_argument("--certificate", required=True, help="its node_cert.pem")
    client_opts(p, key=True, send=True)
    p = subcommand(
        kinds,
        "remove-validator",
        "remove a validator",
        "chain gov propose remove-validator org3",
        cmd_propose_remove,
    )
    p.add_argument("name")
    client_opts(p, key=True, send=True)
    p = subcommand(
        kinds,
        "update-validator",
        "change a validator's address, or rotate its node key",
        "chain gov propose update-validator org2 --public-key <hex> "
        "--certificate org2/node_cert.next.pem",
        cmd_propose_update,
    )
    p.add_argument("name")
    p.add_argument("--address")
    p.add_argument("--public-key")
    p.add_argument("--certificate")
    client_opts(p, key=True, send=True)
    p = subcommand(
        kinds,
        "set-params",
        f"change consensus parameters that are safe live ({', '.join(schema.LIVE_PARAMS)})",
        "chain gov propose set-params --set max_block_txs=1000",
        cmd_propose_params,
    )
    p.add_argument("--set", dest="param", action="append", required=True, metavar="NAME=VALUE")
    client_opts(p, key=True, send=True)
    p = subcommand(
        cmds, "vote", "vote on a proposal (governors only)", "chain gov vote 3 --approve", cmd_vote
    )
    p.add_argument("proposal", type=int)
    p.add_argument("--approve", action="store_true")
    p.add_argument("--reject", action="store_true")
    client_opts(p, key=True, send=True)
    p = subcommand(
        cmds, "list", "list proposals, newest first", "chain gov list --status open", cmd_list
    )
    p.add_argument("--status", help="open, waiting-for-candidate, queued, scheduled, enacted, ...")
    p.add_argument("--limit", type=int, default=50)
    client_opts(p)
    p = subcommand(cmds, "show", "show one proposal and its votes", "chain gov show 3", cmd_show)
    p.add_argument("proposal", type=int)
    client_opts(p)
    p = subcommand(
        cmds,
        "new-node-key",
        "make the node key this validator will rotate to (node_key.next, node_cert.next.pem)",
        "chain gov new-node-key --home ./mynode",
        cmd_new_node_key,
    )
    p.add_argument("--home", required=True)
    p.add_argument("--force", action="store_true")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = subcommand(
        sub,
        "validators",
        "the current validator set and the history of epochs",
        "chain validators",
        cmd_validators,
    )
    client_opts(p)


def add_account_rotate_command(account_cmds: Any) -> None:
    p = subcommand(
        account_cmds,
        "rotate",
        "hand this account to a new key (signed by the current key); the old key is refused "
        "from then on",
        "chain account rotate --new-key new.key --key old.key",
        cmd_account_rotate,
    )
    p.add_argument("--new-key", required=True, help="key file of the new key (chain keygen)")
    client_opts(p, key=True, send=True)
