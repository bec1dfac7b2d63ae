"""Broken or missing config and genesis files get a message naming file, field and fix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.daemon.config import load_config
from node.daemon.home import init_home
from node.ledger import crypto
from node.ledger.genesis import ConfigError, load_genesis


@pytest.fixture
def home() -> Path:
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="cfg", dir="/tmp")) / "h"
    init_home(d, chain_id="demo", name="n0", listen="127.0.0.1:26650")
    yield d
    shutil.rmtree(d.parent)


def test_init_writes_a_loadable_home(home: Path) -> None:
    config = load_config(home)
    genesis = load_genesis(home / "genesis.toml")
    assert genesis.chain_id == "demo" and len(genesis.validators) == 1
    assert genesis.accounts[0].roles == ("admin",)
    assert stat.S_IMODE((home / "node_key").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert config.socket_path == home / "control.sock"
    assert config.consensus.batch_ms == 100
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        init_home(home, chain_id="demo", name="n0", listen="127.0.0.1:1")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('log_level = "info"', 'log_level = "loud"'), r"\[node\] log_level"),
        (lambda t: t.replace("max_txs = 100000", 'max_txs = "many"'), r"\[mempool\]: `max_txs`"),
        (lambda t: t + "\n[bogus]\n", "unknown section"),
        (lambda t: t.replace("[rpc]", "[rpc]\nsockett = 1"), "unknown field `sockett`"),
        (lambda t: t.replace('listen = "127.0.0.1:26650"', 'listen = "nowhere"'), "host:port"),
        (lambda t: t + "\n[node\n", "not valid TOML"),
        (lambda t: t.replace("batch_ms = 100", "batch_ms = 60000"), r"\[consensus\] batch_ms"),
        (lambda t: t.replace("batch_ms = 100", "batch_ms = -5"), r"\[consensus\]: `batch_ms`"),
    ],
)
def test_bad_config_names_file_and_field(home: Path, edit, expected: str) -> None:
    path = home / "config.toml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(home)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('chain_id = "demo"', 'chain_id = "Bad Id!"'), "chain_id"),
        (lambda t: t.replace('roles = ["admin"]', 'roles = ["king"]'), "role 'king' unknown"),
        (lambda t: t.replace("max_block_txs = 2000", "max_block_txs = -1"), "max_block_txs"),
        (lambda t: t.replace("max_block_txs = 2000", "max_block_txs = 1.5"), "max_block_txs"),
        (lambda t: t.replace('address = "127.0.0.1:26650"', 'address = "x"'), "address"),
    ],
)
def test_bad_genesis_names_file_and_field(home: Path, edit, expected: str) -> None:
    path = home / "genesis.toml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError, match=expected) as info:
        load_genesis(path)
    assert str(path) in str(info.value)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chain init"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_genesis(tmp_path / "genesis.toml")


def test_key_files(tmp_path: Path) -> None:
    key = crypto.SigningKey.generate()
    path = tmp_path / "k.key"
    crypto.write_key_file(path, key)
    assert crypto.read_key_file(path).public_key == key.public_key
    with pytest.raises(crypto.KeyFileError, match="refusing to overwrite"):
        crypto.write_key_file(path, key)
    os.chmod(path, 0o644)
    with pytest.raises(crypto.KeyFileError, match="chmod 600"):
        crypto.read_key_file(path)
