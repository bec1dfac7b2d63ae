"""Roles follow method names, so every method the node registers (today's and the ones
colleagues add, such as the governance reads) has one; and the operator's `chain gateway`
commands write what docs/GATEWAY.md says."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.daemon.api.methods import Api
from node.daemon.gateway import ca
from node.daemon.gateway.auth import methods_for, role_for

READ = {
    "node_status",
    "node_diagnose",
    "validators_list",
    "peers_list",
    "mempool_status",
    "tx_get",
    "tx_wait",
    "block_get",
    "account_get",
    "record_get",
    "item_get",
    "item_history",
    "notary_get",
    "receipt_get",
    "subscribe",
    "unsubscribe",
    "gov_list",
    "gov_get",
    "epochs_list",
}


def node_method_names() -> list[str]:
    api = Api(None, submit=None, node_status=None, peers=None)  # type: ignore[arg-type]
    return sorted([*api.methods(), "node_diagnose", "subscribe", "unsubscribe"])


def test_every_node_method_has_the_documented_role() -> None:
    for name in node_method_names():
        expected = "submit" if name.startswith("tx_submit") else "read"
        assert role_for(name) == expected, name
    for name in ("gov_list", "gov_get", "epochs_list"):
        assert role_for(name) == "read"


def test_unfamiliar_verbs_are_admin_only() -> None:
    for name in ("node_stop", "peer_ban", "gateway_reload", "tx_submitx", "status"):
        assert role_for(name) == "admin"
    names = node_method_names()
    assert set(methods_for("read", names)) == set(names) & READ
    assert set(methods_for("submit", names)) == set(names)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_gateway_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "n0"
    assert main(["init", "--single", "--home", str(home), "--chain-id", "t"]) == 0
    capsys.readouterr()
    run("gateway", "init", "--home", str(home), "--listen", "127.0.0.1:9443", capsys=capsys)
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["gateway"]["enabled"] is True and config["gateway"]["listen"] == "127.0.0.1:9443"
    assert stat.S_IMODE((home / "gateway" / "ca.key").stat().st_mode) == 0o600
    out = tmp_path / "acme"
    issued = run(
        "gateway",
        "issue-client",
        "acme",
        "--role",
        "submit",
        "-o",
        str(out),
        "--home",
        str(home),
        capsys=capsys,
    )
    assert issued["role"] == "submit" and issued["serial"]
    for name in ("client.pem", "client.key", "client.p12", "ca.pem"):
        assert (out / name).exists()
    assert stat.S_IMODE((out / "client.key").stat().st_mode) == 0o600
    token = run(
        "gateway", "issue-token", "dash", "--role", "read", "--home", str(home), capsys=capsys
    )
    assert token["token"].startswith("chain_")
    assert token["token"] not in (home / "gateway" / "clients.toml").read_text()
    assert ca.token_hash(token["token"]) in (home / "gateway" / "clients.toml").read_text()
    run("gateway", "revoke", "acme", "--home", str(home), capsys=capsys)
    listed = run("gateway", "list", "--home", str(home), capsys=capsys)
    assert {(r["name"], r["revoked"]) for r in listed} == {("acme", True), ("dash", False)}
    run("gateway", "revoke", "dash", "--home", str(home), capsys=capsys)
    assert [r["name"] for r in run("gateway", "list", "--home", str(home), capsys=capsys)] == [
        "acme"
    ]
