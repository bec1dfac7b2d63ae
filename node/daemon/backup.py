"""Backups of a node's store, taken while it runs, and restores into a stopped node's home.

A backup is a tar file of two members:

    backup.json   format, chain id, genesis hash, the head it holds (height, block hash,
                  state root), when and from which node, the size and SHA-256 of data.mdb
    data.mdb      a compacted copy of the LMDB environment made inside ONE read
                  transaction (mdb_env_copy with a txn), so it is one consistent height
                  however fast the node commits meanwhile; the head in backup.json is read
                  from that same transaction

Keys are not in it: node_key and accounts/*.key are backed up once, separately and offline
(docs/OPERATIONS.md). A restore needs a home with its config, keys and genesis.

Restore keeps the node's vote guard: the consensus record (the last votes this validator
signed) of the data dir being replaced is carried into the restored store when there is one,
because an older record from the backup would let the node sign a second, conflicting vote
for a height it already voted on. The replaced data dir is moved aside, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.daemon.config import NodeConfig, load_config
from node.daemon.home import lock_home
from node.daemon.store import Store, StoreError
from node.ledger.genesis import ConfigError, Genesis, load_genesis

BACKUP_FORMAT = 1
MANIFEST = "backup.json"
DATA_FILE = "data.mdb"
_CHUNK = 1 << 20


class BackupError(ConfigError):
    """A backup cannot be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    manifest: dict[str, Any]


def _open(config: NodeConfig, *, readonly: bool) -> Store:
    return Store(
        config.path(config.node.data_dir),
        map_size_bytes=config.storage.map_size_mb << 20,
        readonly=readonly,
    )


def _home(home: Path) -> tuple[NodeConfig, Genesis]:
    config = load_config(home)
    return config, load_genesis(config.path(config.node.genesis_file))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def backup_home(home: Path, out: Path, *, force: bool = False) -> BackupInfo:
    """Write a backup of `home`'s store to `out` (the node may be running). Blocking."""
    config, genesis = _home(home)
    out = Path(out)
    if out.exists() and not force:
        raise BackupError(f"{out} exists; pass --force to replace it")
    try:
        store = _open(config, readonly=True)
    except StoreError as exc:
        raise BackupError(f"{exc}: has the node run yet?") from exc
    scratch = Path(tempfile.mkdtemp(prefix=".backup-", dir=out.parent if out.parent else "."))
    try:
        with store.env.begin() as txn:
            raw_hash = txn.get(b"genesis_hash", db=store.db["meta"])
            if raw_hash is None or bytes(raw_hash) != genesis.hash:
                raise BackupError(
                    f"{config.path(config.node.data_dir)} does not hold the chain of "
                    f"{config.path(config.node.genesis_file)}"
                )
            head = store.read_head_in(txn)
            store.env.copy(str(scratch), compact=True, txn=txn)
        data = scratch / DATA_FILE
        manifest = {
            "format": BACKUP_FORMAT,
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash.hex(),
            "node": config.node.name,
            "height": head.height,
            "block_hash": head.block_hash.hex(),
            "state_root": head.state_root.hex(),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_bytes": data.stat().st_size,
            "data_sha256": _sha256(data),
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        partial = scratch / "backup.tar"
        with tarfile.open(partial, "w") as tar:
            tar.add(scratch / MANIFEST, arcname=MANIFEST)
            tar.add(data, arcname=DATA_FILE)
        os.chmod(partial, 0o600)  # the chain's data: as private as the data dir
        os.replace(partial, out)  # never a half-written backup under the final name
    finally:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return BackupInfo(out, manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    """backup.json of a backup file, after checking the file's shape."""
    try:
        with tarfile.open(path, "r:") as tar:
            names = sorted(tar.getnames())
            if names != sorted([MANIFEST, DATA_FILE]):
                raise BackupError(f"{path}: not a chain backup (members {names})")
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise BackupError(f"{path}: {MANIFEST} is not a file")
            manifest: dict[str, Any] = json.loads(member.read())
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise BackupError(f"{path}: not a readable chain backup: {exc}") from exc
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r} is not supported")
    return manifest


@dataclass(frozen=True)
class Restored:
    manifest: dict[str, Any]
    data_dir: Path
    previous: Path | None  # where the replaced data dir was moved
    vote_guard: str  # where the consensus record came from: "kept", "backup" or "none"


def restore_home(backup: Path, home: Path) -> Restored:
    """Restore `backup` into `home` (stopped: its lock is taken for the whole restore)."""
    config, genesis = _home(home)
    lock = lock_home(config.home, "chain restore")
    try:
        manifest = read_manifest(backup)
        if manifest["genesis_hash"] != genesis.hash.hex():
            raise BackupError(
                f"{backup} is of chain {manifest['chain_id']} (genesis "
                f"{manifest['genesis_hash'][:16]}...), not of this home's genesis "
                f"{genesis.hash.hex()[:16]}..."
            )
        data_dir = config.path(config.node.data_dir)
        staging = data_dir.with_name(data_dir.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        with tarfile.open(backup, "r:") as tar:
            source = tar.extractfile(DATA_FILE)
            if source is None:
                raise BackupError(f"{backup}: {DATA_FILE} is not a file")
            with open(staging / DATA_FILE, "wb") as target:
                shutil.copyfileobj(source, target, _CHUNK)
                target.flush()
                os.fsync(target.fileno())
        if _sha256(staging / DATA_FILE) != manifest["data_sha256"]:
            raise BackupError(f"{backup}: data.mdb does not match its SHA-256: the file is damaged")
        guard = _carry_vote_guard(config, data_dir, staging, manifest)
        previous = None
        if data_dir.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            previous = data_dir.with_name(f"{data_dir.name}.replaced-{stamp}")
            os.replace(data_dir, previous)
        os.replace(staging, data_dir)
    finally:
        os.close(lock)
    return Restored(manifest, data_dir, previous, guard)


def _carry_vote_guard(
    config: NodeConfig, data_dir: Path, staging: Path, manifest: dict[str, Any]
) -> str:
    """Put the replaced store's consensus record (if any) into the restored one, and drop
    the restored one's journal of decided blocks (they are above its head by then, and the
    node fetches them with their certificates)."""
    current: bytes | None = None
    if (data_dir / DATA_FILE).exists():
        try:
            old = _open(config, readonly=True)
        except StoreError:
            old = None  # damaged beyond opening: that is why we restore
        if old is not None:
            try:
                current = old.load_consensus()
            finally:
                old.close()
    restored = Store(staging, map_size_bytes=config.storage.map_size_mb << 20)
    try:
        head = restored.head
        if head.height != manifest["height"] or head.block_hash.hex() != manifest["block_hash"]:
            raise BackupError("the restored store's head differs from backup.json")
        had = restored.load_consensus() is not None
        restored.replace_consensus(current)
    finally:
        restored.close()
    if current is not None:
        return "kept"
    return "backup" if had else "none"
