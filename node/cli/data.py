"""`chain backup`, `chain restore`, `chain check`: a node's store, kept safe and checked
(node/daemon/backup.py and node/daemon/replay.py do the work)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.common import CliError, out, subcommand


def _store_errors(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run func; a store that cannot be opened or read is a message, not a traceback."""
    from node.daemon.store import StoreError

    try:
        return func(*args, **kwargs)
    except StoreError as exc:
        raise CliError(f"{exc} (is --home the node's home?)") from exc


def cmd_backup(args: argparse.Namespace) -> int:
    from node.daemon.backup import backup_home

    info = _store_errors(backup_home, Path(args.home), Path(args.out), force=args.force)
    m = info.manifest
    out(
        args,
        {"backup": str(info.path), **m},
        lambda o: (
            f"wrote {o['backup']}: chain {o['chain_id']} at height {o['height']} "
            f"({o['data_bytes']:,} bytes of store, sha256 {o['data_sha256'][:16]}...)\n"
            "keys are not in it: keep node_key and accounts/*.key backed up separately"
        ),
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from node.daemon.backup import restore_home

    done = _store_errors(restore_home, Path(args.backup), Path(args.home))
    guard = {
        "kept": "kept this node's vote guard (its last signed votes)",
        "backup": "vote guard from the backup (no newer one here): never run this key elsewhere",
        "none": "no vote guard in the backup (not a validator, or it never voted)",
    }[done.vote_guard]
    out(
        args,
        {
            "home": args.home,
            "height": done.manifest["height"],
            "data_dir": str(done.data_dir),
            "previous_data_dir": str(done.previous) if done.previous else None,
            "vote_guard": done.vote_guard,
        },
        lambda o: (
            f"restored {o['data_dir']} at height {o['height']}; {guard}\n"
            + (
                f"the replaced data dir is kept at {o['previous_data_dir']} (remove it once "
                "the node has caught up)\n"
                if o["previous_data_dir"]
                else ""
            )
            + f"start the node (chain start --home {o['home']}): it fetches what it lacks"
        ),
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from node.daemon.replay import check_home

    report = _store_errors(check_home, Path(args.home), replay=args.replay)
    out(
        args,
        {
            "ok": report.ok,
            "height": report.height,
            "blocks": report.blocks,
            "txs": report.txs,
            "state_entries": report.state_entries,
            "replayed": report.replayed,
            "problems": report.problems,
        },
        lambda o: (
            (
                f"ok: {o['blocks']} blocks ({o['txs']} txs) certified and hash-chained, "
                f"{o['state_entries']} state entries hash to the head's state root"
                + ("; replay from genesis agrees" if o["replayed"] else "")
            )
            if o["ok"]
            else "store has problems:\n  " + "\n  ".join(o["problems"])
        ),
    )
    return 0 if report.ok else 1


def add_data_commands(sub: Any) -> None:
    """Register `backup`, `restore` and `check`."""
    p = subcommand(
        sub,
        "backup",
        "write a consistent, compacted copy of a node's store (the node may be running)",
        "chain backup --home ./org1 -o org1-$(date +%F).backup",
        cmd_backup,
    )
    p.add_argument("--home", required=True)
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true")

    p = subcommand(
        sub,
        "restore",
        "restore a backup into a stopped node's home (the replaced data dir is kept aside)",
        "chain restore org1-2026-12-01.backup --home ./org1",
        cmd_restore,
    )
    p.add_argument("backup")
    p.add_argument("--home", required=True)
    p.add_argument("--json", action="store_true")

    p = subcommand(
        sub,
        "check",
        "verify a node's store: certificates, hash chain, indexes, state against the head "
        "(exit 1 on a problem); --replay also re-executes every block",
        "chain check --home ./org1 --replay",
        cmd_check,
    )
    p.add_argument("--home", required=True)
    p.add_argument("--replay", action="store_true", help="also replay every block from genesis")
    p.add_argument("--json", action="store_true")
