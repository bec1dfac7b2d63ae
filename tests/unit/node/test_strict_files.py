"""Nothing in genesis.toml or config.toml is ignored: what is not understood is refused, with
the file, the field and the reason; and every field that is understood moves the genesis
hash, so two organisations cannot hold different files with the same hash."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from node.daemon.config import load_config, render_config
from node.daemon.home import init_home
from node.ledger import crypto
from node.ledger.genesis import (
    AccountInfo,
    ConfigError,
    Genesis,
    GovernanceConfig,
    ValidatorInfo,
    load_genesis,
    parse_genesis,
    render_genesis,
)


def _genesis_text() -> str:
    keys = [crypto.SigningKey.generate() for _ in range(4)]
    genesis = Genesis(
        chain_id="strict",
        genesis_time="2026-01-01T00:00:00Z",
        validators=(
            ValidatorInfo("a", keys[0].public_key, "a.example.org:26650", "cert-a"),
            ValidatorInfo("b", keys[1].public_key, "10.0.0.2:26650", "cert-b"),
        ),
        accounts=(
            AccountInfo("alice", keys[2].public_key, ("admin",)),
            AccountInfo("bob", keys[3].public_key, ("member",)),
        ),
        governance=GovernanceConfig(governors=("alice", "bob")),
    )
    return render_genesis(genesis)


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.toml"
    path.write_text(_genesis_text())
    return path


def _first(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


Edit = Callable[[str], str]

GENESIS_MISTAKES: list[tuple[str, Edit, str]] = [
    (
        "misspelt validator address",
        lambda t: _first(t, 'address = "a.example.org:26650"', 'adress = "a.example.org:26650"'),
        r"validators\[0\]: unknown field `adress`",
    ),
    ("unknown top-level key", lambda t: "chain_idd = 'x'\n" + t, "unknown field `chain_idd`"),
    (
        "unknown account key",
        lambda t: _first(t, 'roles = ["admin"]', 'roles = ["admin"]\nrole = "admin"'),
        r"accounts\[0\]: unknown field `role`",
    ),
    (
        "unknown consensus key",
        lambda t: _first(t, "[consensus]\n", "[consensus]\nblock_time_ms = 5\n"),
        r"\[consensus\]: unknown field `block_time_ms`",
    ),
    (
        "unknown governance key",
        lambda t: _first(t, "[governance]\n", "[governance]\nquorum = 3\n"),
        r"\[governance\]: unknown field `quorum`",
    ),
    (
        "governance without governors",
        lambda t: _first(t, 'governors = ["alice", "bob"]', "governors = []"),
        r"\[governance\]: `governors` is empty",
    ),
    (
        "unquoted date",
        lambda t: _first(t, 'genesis_time = "2026-01-01T00:00:00Z"', "genesis_time = 2026-01-01"),
        "`genesis_time` must be a string",
    ),
    ("address without port", lambda t: _first(t, "10.0.0.2:26650", "10.0.0.2"), "host:port"),
    ("address port 0", lambda t: _first(t, "10.0.0.2:26650", "10.0.0.2:0"), "host:port"),
    ("two validators named alike", lambda t: _first(t, 'name = "b"', 'name = "a"'), "share a name"),
    (
        "two accounts named alike",
        lambda t: _first(t, 'name = "bob"', 'name = "alice"'),
        "share a name",
    ),
    ("certificate not a string", lambda t: _first(t, '"cert-a"', "1"), "`certificate` must be"),
    ("accounts not a list", lambda t: "accounts = 3\n" + t.split("[[accounts]]")[0], "accounts"),
    ("extra validator key", lambda t: _first(t, "[[validators]]", "[[validators]]\nx = 1"), "`x`"),
]


@pytest.mark.parametrize(("what", "edit", "expected"), GENESIS_MISTAKES, ids=lambda x: str(x)[:30])
def test_genesis_mistakes_are_refused_with_file_and_field(
    genesis_file: Path, what: str, edit: Edit, expected: str
) -> None:
    load_genesis(genesis_file)  # the unedited file is fine
    genesis_file.write_text(edit(genesis_file.read_text()))
    with pytest.raises(ConfigError, match=expected) as info:
        load_genesis(genesis_file)
    assert str(genesis_file) in str(info.value), what


def test_unknown_key_message_lists_the_known_fields(genesis_file: Path) -> None:
    text = _first(genesis_file.read_text(), "address =", "adress =")
    with pytest.raises(ConfigError) as info:
        parse_genesis(tomllib.loads(text), "g.toml")
    message = str(info.value)
    assert "address" in message and "certificate" in message and "nothing is ignored" in message


def _leaf_paths(doc: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(doc, list) and doc and all(isinstance(v, dict) for v in doc):
        return [p for i, v in enumerate(doc) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value > 1 else value + 2
    if isinstance(value, list):
        return [*value[:-1]] if len(value) > 1 else [*value, "member"]
    if isinstance(value, str) and len(value) == 64:
        return crypto.SigningKey.generate().public_key.hex()
    if isinstance(value, str) and value.endswith(":26650"):
        return value.replace(":26650", ":26651")
    return f"{value}x"


def test_every_field_moves_the_hash_or_is_refused(genesis_file: Path) -> None:
    """Change each leaf of the document in turn: the hash changes, or the file is refused.
    Never the same hash for a different file."""
    doc = tomllib.loads(genesis_file.read_text())
    base = parse_genesis(doc, "g").hash
    paths = _leaf_paths(doc)
    assert len(paths) > 20
    for path in paths:
        edited = tomllib.loads(genesis_file.read_text())
        node = edited
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = _changed(node[path[-1]])
        try:
            moved = parse_genesis(edited, "g").hash
        except ConfigError:
            continue
        assert moved != base, path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    d = tmp_path / "h"
    init_home(d, chain_id="demo", name="n0", listen="127.0.0.1:26650")
    return d


CONFIG_MISTAKES: list[tuple[Edit, str]] = [
    (lambda t: _first(t, "[node]\n", "[node]\nnmae = 1\n"), r"\[node\]: unknown field `nmae`"),
    (lambda t: _first(t, "[p2p]\n", "[p2p]\nlisten_addr = 1\n"), r"\[p2p\]: unknown field"),
    (lambda t: _first(t, "[rpc]\n", "[rpc]\nsock = 1\n"), r"\[rpc\]: unknown field `sock`"),
    (lambda t: _first(t, "[mempool]\n", "[mempool]\nsize = 1\n"), r"\[mempool\]: unknown"),
    (lambda t: _first(t, "[storage]\n", "[storage]\nfsync = 1\n"), r"\[storage\]: unknown"),
    (lambda t: "top = 1\n" + t, "unknown section `top`"),
    (lambda t: t + "\n[p2p.extra]\nx = 1\n", r"\[p2p\]: unknown field `extra`"),
    (lambda t: _first(t, "peers = []", 'peers = ["nokey"]'), r"peers\[0\].*public key hex>@"),
    (lambda t: _first(t, "peers = []", 'peers = ["abcd@h:1"]'), r"peers\[0\].*64 hex"),
    (lambda t: _first(t, "allow = []", 'allow = ["zz"]'), r"allow\[0\]"),
    (lambda t: _first(t, 'advertise = ""', 'advertise = "0.0.0.0:26650"'), "advertise"),
    (lambda t: _first(t, 'advertise = ""', 'advertise = "host"'), "advertise"),
]


@pytest.mark.parametrize(("edit", "expected"), CONFIG_MISTAKES)
def test_config_mistakes_are_refused_with_file_and_field(
    home: Path, edit: Edit, expected: str
) -> None:
    path = home / "config.toml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(home)
    assert str(path) in str(info.value)


def test_config_round_trips_with_advertise(home: Path) -> None:
    path = home / "config.toml"
    path.write_text(
        _first(path.read_text(), 'advertise = ""', 'advertise = "org1.example.net:443"')
    )
    config = load_config(home)
    assert config.advertised_address == "org1.example.net:443"
    path.write_text(render_config(config))
    assert load_config(home) == config
