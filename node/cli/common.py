"""What every `chain` command module shares: CliError, the error-to-message mapping, output
(--json or a line for a person), the client options (--socket, --key, --timeout) and their
defaults, signing and sending a transaction, and the subcommand maker that gives each
subcommand its --help example.

Imports no other node.cli module; every one of them may import this."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.ledger import crypto
from node.ledger.genesis import ConfigError
from node.testnet.homes import TestnetError

if TYPE_CHECKING:
    from node.client.connect import Client
    from node.client.wallet import Wallet

DEFAULT_SOCKET = "testnet/node0/control.sock"
DEFAULT_KEY = "testnet/accounts/admin.key"

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure the user can act on: printed without a traceback, exit status 1."""


def run_command(func: Command, args: argparse.Namespace) -> int:
    """Run a subcommand: its exit status, or 1 with `error: ...` on stderr for every failure
    a person can act on (bad input, no node at the socket, an RPC error, a missing file),
    130 on Ctrl-C. Anything else is a bug and keeps its traceback."""
    from node.rpc.client import NoNodeError, RpcCallError, RpcTransportError

    try:
        return int(func(args) or 0)
    except (
        CliError,
        ConfigError,
        crypto.KeyFileError,
        NoNodeError,
        RpcCallError,
        RpcTransportError,
        TestnetError,
        OSError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- output -------------------------------------------------------------------------------------


def out(args: argparse.Namespace, obj: Any, human: Callable[[Any], str] | None = None) -> None:
    """Print `obj` as JSON with --json (or when there is no human form), else human(obj)."""
    if getattr(args, "json", False) or human is None:
        print(json.dumps(obj, indent=2, sort_keys=True))
    else:
        print(human(obj))


def tx_line(r: dict[str, Any]) -> str:
    """One line for a transaction's status and, when it failed, its code and reason."""
    status = r.get("status")
    line = f"tx {r.get('tx_id', '?')}: {status}"
    if "height" in r:
        line += f" at height {r['height']} index {r['index']}"
    result = r.get("result") or {}
    if status == "failed":
        line += f" ({result.get('code')}: {result.get('reason')})"
    return line


# --- talking to a node --------------------------------------------------------------------------


def rpc(args: argparse.Namespace) -> Client:
    """The node client (node.client.connect): --gateway URL when given, else --socket."""
    from node.client.connect import Client, GatewayCredentials

    gateway = getattr(args, "gateway", None)
    if gateway:
        credentials_dir = getattr(args, "credentials", None)
        token = getattr(args, "token", None) or None
        if credentials_dir:
            credentials = GatewayCredentials.from_dir(credentials_dir, token=token)
        else:
            credentials = GatewayCredentials(token=token)
        return Client(gateway, credentials=credentials, timeout_s=args.timeout)
    return Client(Path(args.socket), timeout_s=args.timeout)


def iso_ms(ms: int | None) -> str:
    """A chain time (milliseconds since the epoch) as ISO 8601 UTC, as a person reads it."""
    if ms is None:
        return "-"
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class AccountNames:
    """Public keys (hex) to the names the chain knows for them (account_get's `name`),
    looked up once each; a key without a name shows as its first 16 hex characters."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._cache: dict[str, str] = {}

    def __call__(self, key_hex: str | None) -> str:
        if not key_hex:
            return "-"
        if key_hex not in self._cache:
            name = None
            try:
                name = self._client.call("account_get", {"account": key_hex}).get("name")
            except Exception:
                name = None
            self._cache[key_hex] = str(name) if name else key_hex[:16] + "…"
        return self._cache[key_hex]


def wallet(args: argparse.Namespace) -> Wallet:
    from node.client.wallet import Wallet

    try:
        key = crypto.read_key_file(Path(args.key))
    except crypto.KeyFileError as exc:
        raise CliError(f"{exc} (pass --key FILE, or set CHAIN_KEY)") from exc
    return Wallet(rpc(args), key)


def account(args: argparse.Namespace, value: str) -> bytes:
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


def kv(pairs: list[str] | None) -> dict[str, str]:
    """--meta key=value pairs as a dict."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise CliError(f"--meta takes key=value, got {pair!r}")
        result[k] = v
    return result


def send(args: argparse.Namespace, tx_type: str, tx_args: dict[str, Any]) -> int:
    """Sign with --key, submit, wait for the commit unless --no-wait; 0 unless it failed."""
    result = wallet(args).send(
        tx_type, tx_args, wait=not args.no_wait, timeout_ms=int(args.timeout * 1000)
    )
    out(args, result, tx_line)
    return 0 if result.get("status") in ("committed", "pending") else 1


# --- parser pieces ------------------------------------------------------------------------------


def examples(text: str) -> str:
    return "example:\n  " + "\n  ".join(text.strip().splitlines())


def subcommand(
    parent: Any, name: str, help_text: str, example: str, func: Command
) -> argparse.ArgumentParser:
    """Add subcommand `name` under `parent` (an add_subparsers() result) with its help text,
    an example epilog, and `func` to run."""
    p: argparse.ArgumentParser = parent.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=examples(example),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def client_opts(p: argparse.ArgumentParser, *, key: bool = False, send: bool = False) -> None:
    """--socket, --json, --timeout; with key=True --key; with send=True --no-wait."""
    p.add_argument(
        "--socket",
        default=os.environ.get("CHAIN_SOCKET", DEFAULT_SOCKET),
        help=f"node control socket (default $CHAIN_SOCKET or {DEFAULT_SOCKET})",
    )
    p.add_argument(
        "--gateway",
        default=os.environ.get("CHAIN_GATEWAY"),
        help="talk to a node's HTTPS gateway instead, e.g. https://node0:8443 ($CHAIN_GATEWAY)",
    )
    p.add_argument(
        "--credentials",
        default=os.environ.get("CHAIN_CREDENTIALS"),
        help="with --gateway: the directory `chain gateway issue-client` wrote "
        "($CHAIN_CREDENTIALS)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("CHAIN_TOKEN"),
        help="with --gateway: a bearer token instead of a certificate ($CHAIN_TOKEN)",
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
