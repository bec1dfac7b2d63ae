"""Node homes: keys, TLS certificates, genesis and config files (`chain keygen`, `chain init`)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from node.daemon.config import NodeConfig, NodeSection, P2PSection, StartError, render_config
from node.ledger import crypto
from node.ledger.genesis import (
    AccountInfo,
    ConfigError,
    ConsensusParams,
    Genesis,
    ValidatorInfo,
    compute_hash,
    render_genesis,
)
from p2p.identity import make_certificate

LOCK_FILE = "node.lock"


def lock_home(home: Path, purpose: str = "chain start") -> int:
    """Take the home's exclusive lock (flock on <home>/node.lock) and return its descriptor;
    the lock lasts until the descriptor is closed or the process ends (also by SIGKILL).

    Two processes on one home would both commit to one LMDB store and sign with one key:
    a second node, or a restore under a running node, is refused instead."""
    path = Path(home) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise StartError(
            f"{path}: another process (pid {holder}) holds this node home: a node runs on "
            f"it; stop that node first, then retry `{purpose}`"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def make_home_dir(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # the control socket lives here: only the operator may reach it


def create_node_identity(home: Path, name: str) -> tuple[crypto.SigningKey, str]:
    """Generate the node key (0600) and its self-signed TLS certificate."""
    make_home_dir(home)
    key = crypto.SigningKey.generate()
    crypto.write_key_file(home / "node_key", key)
    cert = make_certificate(key.private_key, name).decode()
    (home / "node_cert.pem").write_text(cert)
    return key, cert


def write_genesis(path: Path, genesis: Genesis) -> Genesis:
    genesis = replace(genesis, hash=compute_hash(genesis))
    path.write_text(render_genesis(genesis))
    return genesis


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def init_home(
    home: Path,
    *,
    chain_id: str,
    name: str,
    listen: str,
    params: ConsensusParams | None = None,
) -> tuple[Genesis, Path]:
    """A single-validator chain in `home`: node key, cert, admin account key, genesis, config."""
    home = Path(home)
    if (home / "config.toml").exists():
        raise ConfigError(
            f"{home / 'config.toml'} already exists; refusing to overwrite a node home"
        )
    key, cert = create_node_identity(home, name)
    admin = crypto.SigningKey.generate()
    admin_path = home / "admin.key"
    crypto.write_key_file(admin_path, admin)
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=now_iso(),
        validators=(ValidatorInfo(name, key.public_key, listen, cert),),
        accounts=(AccountInfo("admin", admin.public_key, ("admin",)),),
        consensus=params or ConsensusParams(),
    )
    genesis = write_genesis(home / "genesis.toml", genesis)
    config = NodeConfig(home=home, node=NodeSection(name=name), p2p=P2PSection(listen=listen))
    (home / "config.toml").write_text(render_config(config))
    return genesis, admin_path
