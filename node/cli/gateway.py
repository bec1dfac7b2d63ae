"""`chain gateway init|issue-client|issue-token|revoke|list`: the node operator's side of the
HTTPS gateway (docs/GATEWAY.md). These work on the node home's files (the gateway CA and
the credential register), not over a socket: only whoever holds the home can issue."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from node.cli.common import CliError, out, subcommand


def _ca() -> Any:
    from node.daemon.gateway import ca

    return ca


def cmd_init(args: argparse.Namespace) -> int:
    from node.daemon.config import load_config, render_config

    ca = _ca()
    home = Path(args.home)
    config = load_config(home)
    directory = ca.init_ca(home, config.node.name, tuple(args.server_name or ()))
    gateway = replace(config.gateway, enabled=True, listen=args.listen or config.gateway.listen)
    (home / "config.toml").write_text(render_config(replace(config, gateway=gateway)))
    out(
        args,
        {"gateway_dir": str(directory), "listen": gateway.listen, "enabled": True},
        lambda o: (
            f"gateway CA and server certificate in {o['gateway_dir']}\n"
            f"[gateway] enabled on https://{o['listen']} (restart the node)\n"
            f"issue credentials: chain gateway issue-client NAME --role read -o DIR "
            f"--home {home}"
        ),
    )
    return 0


def cmd_issue_client(args: argparse.Namespace) -> int:
    entry = _ca().issue_client(
        Path(args.home), args.name, args.role, Path(args.out), rate=args.rate
    )
    out(
        args,
        {**asdict(entry), "dir": args.out},
        lambda o: (
            f"issued {o['name']} (role {o['role']}, serial {o['serial']}) into {o['dir']}:\n"
            "  client.pem, client.key (0600), client.p12 (browsers), ca.pem\n"
            "hand the directory to its owner over a safe channel, then delete your copy"
        ),
    )
    return 0


def cmd_issue_token(args: argparse.Namespace) -> int:
    token, entry = _ca().issue_token(Path(args.home), args.name, args.role, rate=args.rate)
    out(
        args,
        {**asdict(entry), "token": token},
        lambda o: (
            f"{o['token']}\n(token for {o['name']}, role {o['role']}: shown once; the node "
            "keeps only its SHA-256)"
        ),
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    hits = _ca().revoke(Path(args.home), args.what)
    out(
        args,
        [asdict(h) for h in hits],
        lambda hs: (
            "\n".join(f"revoked {h['kind']} {h['name']} {h['serial'] or ''}".rstrip() for h in hs)
            + "\n(a running node notices within a second)"
        ),
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    register = _ca().read_register(Path(args.home))
    rows = [
        {**asdict(c), "revoked": c.kind == "cert" and c.serial in register.revoked}
        for c in register.clients
    ]

    def human(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no credentials issued yet"
        return "\n".join(
            f"{r['name']:<20} {r['kind']:<5} {r['role']:<6} "
            f"{'REVOKED ' if r['revoked'] else ''}{r['serial'] or r['sha256'][:16]} {r['issued']}"
            for r in rows
        )

    out(args, rows, human)
    return 0


def add_gateway_commands(sub: Any) -> None:
    group = sub.add_parser("gateway", help="the node's HTTPS gateway: CA and credentials")
    gw = group.add_subparsers(dest="gateway_cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", required=True, help="the node home")
        p.add_argument("--json", action="store_true")

    p = subcommand(
        gw,
        "init",
        "create the gateway CA and server certificate and enable [gateway] in config.toml",
        "chain gateway init --home testnet/node0 --server-name node0.example.org",
        cmd_init,
    )
    common(p)
    p.add_argument("--server-name", action="append", help="DNS name or IP in the server cert")
    p.add_argument("--listen", help="host:port (default [gateway] listen, 127.0.0.1:8443)")
    p = subcommand(
        gw,
        "issue-client",
        "issue a client certificate for an organisation or application",
        "chain gateway issue-client acme-erp --role submit -o acme-erp --home testnet/node0",
        cmd_issue_client,
    )
    common(p)
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=["read", "submit", "admin"])
    p.add_argument("-o", "--out", required=True, help="directory to write the credential into")
    p.add_argument("--rate", type=int, default=0, help="requests/s (default: the role's)")
    p = subcommand(
        gw,
        "issue-token",
        "issue a bearer token (printed once, stored as a hash)",
        "chain gateway issue-token dashboard --role read --home testnet/node0",
        cmd_issue_token,
    )
    common(p)
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=["read", "submit", "admin"])
    p.add_argument("--rate", type=int, default=0, help="requests/s (default: the role's)")
    p = subcommand(
        gw,
        "revoke",
        "revoke a certificate (by name or serial) or a token (by name)",
        "chain gateway revoke acme-erp --home testnet/node0",
        cmd_revoke,
    )
    common(p)
    p.add_argument("what", help="credential name or certificate serial (hex)")
    p = subcommand(
        gw, "list", "list issued credentials", "chain gateway list --home testnet/node0", cmd_list
    )
    common(p)


__all__ = ["CliError", "add_gateway_commands"]
