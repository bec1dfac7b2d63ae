"""The genesis ceremony (issue 11, item 1): homes without genesis, member files with public
parts only, a build whose hash does not depend on who builds it, an install that checks the
node against the genesis."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from node.cli.main import main
from node.daemon.ceremony import (
    allow_peer,
    build_genesis_file,
    export_member,
    init_member_home,
    install_genesis,
    parse_account_spec,
    write_member,
)
from node.daemon.config import load_config
from node.daemon.node import Node
from node.ledger import crypto
from node.ledger.genesis import ConfigError, load_genesis
from node.ledger.member import load_member

TIME = "2026-06-01T00:00:00Z"


def _org(root: Path, i: int, *, full_node: bool = False, governor: bool = True) -> Path:
    home = root / f"org{i}"
    init_member_home(
        home, name=f"org{i}", listen=f"0.0.0.0:{26650 + i}", advertise=f"org{i}.example:26650"
    )
    member = export_member(
        home,
        full_node=full_node,
        roles=("admin", "member") if i == 1 else ("member",),
        governor=governor and not full_node,
    )
    write_member(member, root / f"org{i}.member.toml")
    return home


@pytest.fixture
def consortium(tmp_path: Path) -> Path:
    for i in range(1, 5):
        _org(tmp_path, i)
    _org(tmp_path, 5, full_node=True)
    return tmp_path


def _members(root: Path) -> list[Path]:
    return sorted(root.glob("org*.member.toml"))


def test_init_makes_keys_and_config_but_no_genesis(tmp_path: Path) -> None:
    home = _org(tmp_path, 1)
    assert (home / "node_key").exists() and (home / "accounts" / "org1.key").exists()
    assert not (home / "genesis.toml").exists()
    config = load_config(home)
    assert config.p2p.listen == "0.0.0.0:26651"
    assert config.advertised_address == "org1.example:26650"
    with pytest.raises(ConfigError, match="chain genesis install"):
        Node.from_home(home)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        init_member_home(home, name="org1", listen="127.0.0.1:1")


def test_member_file_holds_public_parts_only(consortium: Path) -> None:
    home = consortium / "org1"
    text = (consortium / "org1.member.toml").read_text()
    secrets = [
        crypto.read_key_file(home / "node_key"),
        crypto.read_key_file(home / "accounts" / "org1.key"),
    ]
    for key in secrets:
        raw = key.private_key.private_bytes_raw()
        assert raw.hex() not in text and raw.hex().upper() not in text
        assert key.public_key.hex() in text
    assert "PRIVATE" not in text
    member = load_member(consortium / "org1.member.toml")
    assert member.address == "org1.example:26650" and member.is_validator
    assert member.accounts[0].roles == ("admin", "member") and member.accounts[0].governor


def test_build_gives_one_hash_whatever_the_order(consortium: Path) -> None:
    files = _members(consortium)
    a = build_genesis_file(files, consortium / "a.toml", chain_id="c1", genesis_time=TIME)
    b = build_genesis_file(files[::-1], consortium / "b.toml", chain_id="c1", genesis_time=TIME)
    assert a.hash == b.hash
    assert [v.name for v in a.validators] == ["org1", "org2", "org3", "org4"]  # not org5
    assert [x.name for x in a.accounts] == ["org1", "org2", "org3", "org4", "org5"]
    assert a.governance.governors == ("org1", "org2", "org3", "org4")
    assert a.validators[0].address == "org1.example:26650"


def test_build_governance_options(consortium: Path) -> None:
    g = build_genesis_file(
        _members(consortium),
        consortium / "g.toml",
        chain_id="c1",
        genesis_time=TIME,
        governors=["org5"],
        threshold=(3, 4),
        proposal_ttl_blocks=500,
        consensus={"view_timeout_ms": 9000},
    )
    gov = g.governance
    assert gov.governors[-1] == "org5" and (gov.threshold_num, gov.threshold_den) == (3, 4)
    assert gov.proposal_ttl_blocks == 500 and g.consensus.view_timeout_ms == 9000
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_genesis_file(
            _members(consortium), consortium / "x.toml", chain_id="c1", consensus={"tick": 1}
        )
    with pytest.raises(ConfigError, match="governor 'nobody' is not an account"):
        build_genesis_file(
            _members(consortium), consortium / "y.toml", chain_id="c1", governors=["nobody"]
        )


def test_build_without_governors_has_no_governance(tmp_path: Path) -> None:
    for i in (1, 2):
        _org(tmp_path, i, governor=False)
    g = build_genesis_file(_members(tmp_path), tmp_path / "g.toml", chain_id="c1")
    assert not g.governance.governors
    assert "[governance]" not in (tmp_path / "g.toml").read_text()
    with pytest.raises(ConfigError, match="need governors"):
        build_genesis_file(_members(tmp_path), tmp_path / "h.toml", chain_id="c1", threshold=(1, 2))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_build_refuses_bad_member_files(consortium: Path) -> None:
    files = _members(consortium)
    out = consortium / "g.toml"
    with pytest.raises(ConfigError, match="two member files are for 'org1'"):
        build_genesis_file([*files, files[0]], out, chain_id="c1")
    bad = consortium / "org2.member.toml"
    original = bad.read_text()
    _edit(bad, "address =", "adress =")
    with pytest.raises(ConfigError, match=r"\[node\]: unknown field `adress`"):
        build_genesis_file(files, out, chain_id="c1")
    bad.write_text(original)
    # org2's file carrying org3's certificate: pinned TLS would fail at run time.
    cert3 = load_member(consortium / "org3.member.toml").certificate
    cert2 = load_member(bad).certificate
    _edit(bad, cert2, cert3)
    with pytest.raises(ConfigError, match="not for the node's public key"):
        build_genesis_file(files, out, chain_id="c1")
    bad.write_text(original)
    _edit(bad, 'name = "org2"\npublic_key', 'name = "org1"\npublic_key')  # account clash
    with pytest.raises(ConfigError, match="account 'org1' is in both"):
        build_genesis_file(files, out, chain_id="c1")
    bad.write_text(original)
    _edit(bad, 'roles = ["member"]', 'roles = ["governor"]')
    with pytest.raises(ConfigError, match="cannot be given here"):
        build_genesis_file(files, out, chain_id="c1")
    bad.write_text(original)
    with pytest.raises(ConfigError, match="no member file is for a validator"):
        build_genesis_file([consortium / "org5.member.toml"], out, chain_id="c1")
    assert not out.exists()
    build_genesis_file(files, out, chain_id="c1")
    with pytest.raises(ConfigError, match="--force"):
        build_genesis_file(files, out, chain_id="c1")


def test_install_checks_the_node_against_the_genesis(consortium: Path) -> None:
    genesis_path = consortium / "genesis.toml"
    built = build_genesis_file(_members(consortium), genesis_path, chain_id="c1")
    done = install_genesis(consortium / "org1", genesis_path)
    assert done.validator and done.genesis.hash == built.hash and done.accounts == {"org1": True}
    assert (consortium / "org1" / "genesis.toml").read_bytes() == genesis_path.read_bytes()
    assert load_genesis(consortium / "org1" / "genesis.toml").hash == built.hash
    # The full node is not a validator: it must say so.
    with pytest.raises(ConfigError, match="--full-node"):
        install_genesis(consortium / "org5", genesis_path)
    assert not install_genesis(consortium / "org5", genesis_path, full_node=True).validator
    with pytest.raises(ConfigError, match="drop --full-node"):
        install_genesis(consortium / "org2", genesis_path, full_node=True)
    # An organisation that changed its advertised address after exporting its member file.
    _edit(consortium / "org2" / "config.toml", 'advertise = "org2.example:26650"', 'advertise = ""')
    with pytest.raises(ConfigError, match=r"lists this node \(org2\) at org2\.example:26650"):
        install_genesis(consortium / "org2", genesis_path)
    # Another genesis over an installed one needs --force; over a data dir, a fresh home.
    other = consortium / "other.toml"
    build_genesis_file(_members(consortium), other, chain_id="c2")
    with pytest.raises(ConfigError, match="--force"):
        install_genesis(consortium / "org1", other)
    (consortium / "org1" / "data").mkdir()
    (consortium / "org1" / "data" / "data.mdb").write_bytes(b"x")
    with pytest.raises(ConfigError, match="cannot change chains"):
        install_genesis(consortium / "org1", other, force=True)
    install_genesis(consortium / "org3", other, force=True)


def test_allow_peer_pins_the_full_node(consortium: Path) -> None:
    member, new = allow_peer(consortium / "org1", consortium / "org5.member.toml")
    assert new
    config = load_config(consortium / "org1")
    assert config.p2p.allow == (member.public_key.hex(),)
    pem = consortium / "org1" / "peers" / f"{member.public_key.hex()}.pem"
    assert pem.read_text() == member.certificate
    assert allow_peer(consortium / "org1", consortium / "org5.member.toml")[1] is False


def test_account_specs(tmp_path: Path) -> None:
    key = crypto.SigningKey.generate()
    crypto.write_key_file(tmp_path / "k.key", key)
    a = parse_account_spec(f"lab={tmp_path / 'k.key'}:member,inspector:governor")
    assert (a.public_key, a.roles, a.governor) == (key.public_key, ("member", "inspector"), True)
    b = parse_account_spec(f"court={key.public_key.hex()}")
    assert b.roles == ("member",) and not b.governor
    for bad in ("x", "x=zz", f"x={key.public_key.hex()}:king", "bad name=00"):
        with pytest.raises(ConfigError):
            parse_account_spec(bad)


def test_cli_init_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--home", str(tmp_path / "a"), "--chain-id", "x"]) == 1
    assert "--single" in capsys.readouterr().err
    assert main(["init", "--home", str(tmp_path / "a")]) == 1
    assert "--name ORG and --listen" in capsys.readouterr().err
    assert main(["init", "--single", "--home", str(tmp_path / "s"), "--chain-id", "solo"]) == 0
    assert load_genesis(tmp_path / "s" / "genesis.toml").chain_id == "solo"
    home = tmp_path / "c"
    args = ["init", "--home", str(home), "--name", "c", "--listen", "10.1.0.1:26650"]
    assert main(args) == 0
    member = tmp_path / "c.member.toml"
    assert main(["genesis", "member", "--home", str(home), "-o", str(member), "--json"]) == 0
    capsys.readouterr()
    genesis = tmp_path / "genesis.toml"
    build = ["genesis", "build", str(member), "--chain-id", "cc", "-o", str(genesis), "--json"]
    assert main(build) == 0
    built = tomllib.loads(genesis.read_text())
    assert built["validators"][0]["address"] == "10.1.0.1:26650"
    capsys.readouterr()
    assert main(["genesis", "install", "--home", str(home), str(genesis)]) == 0
    printed = capsys.readouterr().out
    assert f"genesis hash {load_genesis(genesis).hash.hex()}" in printed
    assert main(["genesis", "hash", str(genesis)]) == 0
    assert capsys.readouterr().out.strip() == load_genesis(genesis).hash.hex()
