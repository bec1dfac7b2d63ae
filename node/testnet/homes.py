"""The files of a local testnet: one directory holding every node's home, the account keys
and a manifest of what was generated. No processes here (node/testnet/local.py runs them).

Layout under the testnet directory (`chain testnet up --dir`, default ./testnet):
  testnet.json            what was generated (nodes, ports, chain id)
  accounts/<name>.key     account keys: admin, manufacturer, shipper, retailer, inspector
  node<i>/                a node home: config.toml, genesis.toml, node_key, node_cert.pem,
                          peers/, data/ (LMDB), control.sock, node.log, node.pid
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node.daemon.config import NodeConfig, NodeSection, P2PSection, render_config
from node.daemon.home import create_node_identity, make_home_dir, now_iso, write_genesis
from node.ledger import crypto
from node.ledger.genesis import (
    AccountInfo,
    ConsensusParams,
    Genesis,
    GovernanceConfig,
    ValidatorInfo,
)

MANIFEST = "testnet.json"
GOVERNORS = ("manufacturer", "shipper", "retailer", "inspector")
ACCOUNTS = (
    ("admin", ("admin",)),
    ("manufacturer", ("member",)),
    ("shipper", ("member",)),
    ("retailer", ("member",)),
    ("inspector", ("member", "inspector")),
)


class TestnetError(Exception):
    """A testnet failure the user can act on (no testnet there, node not running, ...)."""

    __test__ = False  # not a pytest test class, whatever its name says


def read_manifest(root: Path) -> dict[str, Any]:
    """testnet.json of the testnet in `root`, or a TestnetError that says how to make one."""
    path = root / MANIFEST
    if not path.exists():
        raise TestnetError(f"no testnet in {root}: start one with `chain testnet up --dir {root}`")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def generate(
    root: Path,
    *,
    validators: int,
    full_nodes: int = 0,
    base_port: int = 26650,
    chain_id: str = "testnet",
    params: ConsensusParams | None = None,
) -> dict[str, Any]:
    """Write a fresh testnet into `root`: account keys, node identities, one genesis shared by
    every node, each node's config (validators on base_port + i, full nodes after them) and
    the manifest, which it returns."""
    if validators < 1:
        raise TestnetError("--validators must be at least 1")
    make_home_dir(root)
    accounts = []
    for name, roles in ACCOUNTS:
        key = crypto.SigningKey.generate()
        crypto.write_key_file(root / "accounts" / f"{name}.key", key)
        accounts.append(AccountInfo(name, key.public_key, roles))
    nodes: list[dict[str, Any]] = []
    vinfos = []
    identities: dict[str, tuple[bytes, str]] = {}
    for i in range(validators + full_nodes):
        name = f"node{i}"
        home = root / name
        key, cert = create_node_identity(home, name)
        identities[name] = (key.public_key, cert)
        address = f"127.0.0.1:{base_port + i}"
        nodes.append(
            {
                "name": name,
                "home": name,
                "validator": i < validators,
                "address": address,
                "public_key": key.public_key.hex(),
            }
        )
        if i < validators:
            vinfos.append(ValidatorInfo(name, key.public_key, address, cert))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=now_iso(),
        validators=tuple(vinfos),
        accounts=tuple(accounts),
        consensus=params or ConsensusParams(),
        # The four member organisations vote on membership (3 of 4 pass a change).
        governance=GovernanceConfig(governors=GOVERNORS),
    )
    full = [n for n in nodes if not n["validator"]]
    for node in nodes:
        home = root / node["home"]
        genesis = write_genesis(home / "genesis.toml", genesis)
        if node["validator"]:
            # Validators accept the full nodes; full nodes dial every validator (from genesis).
            allow = tuple(n["public_key"] for n in full)
            peers: tuple[str, ...] = ()
        else:
            allow = ()
            peers = tuple(f"{n['public_key']}@{n['address']}" for n in nodes if n["validator"])
        peer_dir = home / "peers"
        peer_dir.mkdir(exist_ok=True)
        for other in nodes:
            if other is not node:
                (peer_dir / f"{other['public_key']}.pem").write_text(identities[other["name"]][1])
        config = NodeConfig(
            home=home,
            node=NodeSection(name=node["name"]),
            p2p=P2PSection(listen=node["address"], peers=peers, allow=allow),
        )
        (home / "config.toml").write_text(render_config(config))
    manifest = {
        "chain_id": chain_id,
        "validators": validators,
        "full_nodes": full_nodes,
        "nodes": nodes,
        "genesis_hash": genesis.hash.hex(),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
