"""The genesis ceremony on each organisation's machine: make a node home without a genesis,
export its public parts as a member file, build a genesis from member files, install one.

    chain init --home DIR --name ORG --listen HOST:PORT [--advertise HOST:PORT]
    chain genesis member --home DIR -o ORG.member.toml        (public parts only)
    chain genesis build A.member.toml B.member.toml ... --chain-id ID -o genesis.toml
    chain genesis install --home DIR genesis.toml              (prints the hash to compare)
    chain peer allow --home DIR FULLNODE.member.toml           (a full node may connect)

Private keys (node_key, accounts/*.key) are made here and never read into anything that is
written elsewhere: a member file holds public keys and the self-signed certificate only.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from node.daemon.config import (
    CONFIG_FILE,
    NodeConfig,
    NodeSection,
    P2PSection,
    load_config,
    render_config,
    split_address,
)
from node.daemon.home import create_node_identity, now_iso
from node.ledger import crypto
from node.ledger.genesis import (
    ConfigError,
    ConsensusParams,
    Genesis,
    load_genesis,
    render_genesis,
)
from node.ledger.member import (
    Member,
    MemberAccount,
    build_genesis,
    check_name,
    check_roles,
    load_member,
    render_member,
)
from p2p.identity import IdentityError, certificate_public_key

ACCOUNTS_DIR = "accounts"


@dataclass(frozen=True)
class InitResult:
    home: Path
    name: str
    node_public_key: bytes
    account_key: Path
    advertise: str


def init_member_home(home: Path, *, name: str, listen: str, advertise: str = "") -> InitResult:
    """A node home for a ceremony: node key and certificate, the organisation's first account
    key (accounts/<name>.key), config.toml; no genesis (that comes from `genesis install`)."""
    home = Path(home)
    check_name(name, "--name")
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home / CONFIG_FILE} already exists; refusing to overwrite a node home")
    split_address(listen, "--listen")
    key, _cert = create_node_identity(home, name)
    account = crypto.SigningKey.generate()
    account_path = home / ACCOUNTS_DIR / f"{name}.key"
    crypto.write_key_file(account_path, account)
    config = NodeConfig(
        home=home,
        node=NodeSection(name=name),
        p2p=P2PSection(listen=listen, advertise=advertise),
    )
    (home / CONFIG_FILE).write_text(render_config(config))
    try:
        config = load_config(home)  # the same checks `chain start` makes, now
    except ConfigError:
        (home / CONFIG_FILE).unlink()
        raise
    return InitResult(home, name, key.public_key, account_path, config.advertised_address)


def parse_account_spec(spec: str) -> MemberAccount:
    """NAME=KEY[:ROLE,ROLE][:governor] where KEY is 64 hex characters or a key file (only
    its public key is read out). Roles default to member."""
    name, sep, rest = spec.partition("=")
    if not sep or not rest:
        raise ConfigError(f"--account {spec!r}: expected NAME=KEY[:ROLES][:governor]")
    parts = rest.split(":")
    key_text, options = parts[0], parts[1:]
    governor = "governor" in options
    options = [o for o in options if o != "governor"]
    if len(options) > 1:
        raise ConfigError(f"--account {spec!r}: expected NAME=KEY[:ROLES][:governor]")
    roles = [r for r in (options[0] if options else "member").split(",") if r]
    return MemberAccount(
        check_name(name, "--account name"),
        _public_key_of(key_text, f"--account {name}"),
        check_roles(roles, f"--account {name}"),
        governor,
    )


def _public_key_of(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"{what}: {text!r} is neither 64 hex characters nor a key file")
    return crypto.read_key_file(path).public_key


def own_account_keys(home: Path) -> dict[str, bytes]:
    """The accounts whose keys this home holds (accounts/<name>.key): name -> public key."""
    out: dict[str, bytes] = {}
    for path in sorted((Path(home) / ACCOUNTS_DIR).glob("*.key")):
        out[path.stem] = crypto.read_key_file(path).public_key
    return out


def export_member(
    home: Path,
    *,
    full_node: bool = False,
    roles: Sequence[str] = ("member",),
    governor: bool = False,
    extra_accounts: Sequence[MemberAccount] = (),
    own_accounts: bool = True,
) -> Member:
    """The member file content of this home: node identity, advertised address, and the
    accounts: those of accounts/*.key (with `roles`, governing if `governor`) unless
    own_accounts is False, then `extra_accounts`."""
    config = load_config(home)
    key = crypto.read_key_file(config.path(config.node.key_file))
    cert = config.path(config.node.cert_file).read_text()
    _check_certificate(cert, key.public_key, str(config.path(config.node.cert_file)))
    address = config.advertised_address
    if address.startswith(("0.0.0.0:", "[::]:")):
        raise ConfigError(
            f"{config.home / CONFIG_FILE}: [p2p] listen is {address} and no [p2p] advertise "
            "is set: set advertise to the host:port the other organisations dial"
        )
    accounts: list[MemberAccount] = []
    if own_accounts:
        for name, public_key in own_account_keys(home).items():
            accounts.append(
                MemberAccount(check_name(name, "account"), public_key, tuple(roles), governor)
            )
    accounts += extra_accounts
    member = Member(
        name=config.node.name,
        role="full-node" if full_node else "validator",
        public_key=key.public_key,
        address=address,
        certificate=cert,
        accounts=tuple(accounts),
    )
    check_name(member.name, f"{config.home / CONFIG_FILE}: [node] name")
    check_roles(roles, "--role")
    return member


def write_member(member: Member, out: Path, *, force: bool = False) -> None:
    _refuse_overwrite(out, force)
    out.write_text(render_member(member))
    load_member(out)  # what we wrote parses back


def _check_certificate(pem: str, public_key: bytes, where: str) -> None:
    try:
        ok = certificate_public_key(pem.encode()) == public_key
    except (IdentityError, ValueError) as exc:
        raise ConfigError(f"{where}: not a node certificate: {exc}") from exc
    if not ok:
        raise ConfigError(f"{where}: the certificate is not for the node's public key")


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it")


def build_genesis_file(
    member_files: Sequence[Path],
    out: Path,
    *,
    chain_id: str,
    genesis_time: str | None = None,
    consensus: dict[str, int] | None = None,
    governors: Sequence[str] = (),
    threshold: tuple[int, int] | None = None,
    proposal_ttl_blocks: int | None = None,
    force: bool = False,
) -> Genesis:
    """Read and check member files (each certificate must carry its node key), build the
    genesis and write it to `out`."""
    members = []
    for path in member_files:
        member = load_member(Path(path))
        _check_certificate(member.certificate, member.public_key, f"{path}: [node] certificate")
        members.append(member)
    params = ConsensusParams()
    for name, value in (consensus or {}).items():
        if not hasattr(params, name):
            known = ", ".join(vars(params))
            raise ConfigError(f"--consensus {name}: unknown parameter; known: {known}")
        params = replace(params, **{name: value})
    genesis = build_genesis(
        members,
        chain_id=chain_id,
        genesis_time=genesis_time or now_iso(),
        consensus=params,
        governors=governors,
        threshold=threshold,
        proposal_ttl_blocks=proposal_ttl_blocks,
    )
    _refuse_overwrite(out, force)
    out.write_text(render_genesis(genesis))
    return load_genesis(out)


@dataclass(frozen=True)
class Installed:
    genesis: Genesis
    validator: bool  # this node is a validator of the genesis
    accounts: dict[str, bool]  # the home's own account keys -> whether genesis lists them
    replaced: bool  # a different genesis was there before


def install_genesis(
    home: Path, source: Path, *, full_node: bool = False, force: bool = False
) -> Installed:
    """Check that `source` is a genesis for this node (its key, name, certificate and
    advertised address as a validator; or, with full_node, that it is not a validator) and
    copy it byte for byte to the home's genesis file."""
    config = load_config(home)
    genesis = load_genesis(Path(source))
    key = crypto.read_key_file(config.path(config.node.key_file))
    cert = config.path(config.node.cert_file).read_text()
    mine = [v for v in genesis.validators if v.public_key == key.public_key]
    where = f"{source}"
    if mine:
        v = mine[0]
        if full_node:
            raise ConfigError(f"{where}: lists this node as validator {v.name!r}; drop --full-node")
        if v.address != config.advertised_address:
            raise ConfigError(
                f"{where}: lists this node ({v.name}) at {v.address}, but it advertises "
                f"{config.advertised_address} ([p2p] advertise or listen in "
                f"{config.home / CONFIG_FILE}): fix one so that the others can dial it"
            )
        if v.certificate != cert:
            raise ConfigError(
                f"{where}: validator {v.name!r} has a certificate other than "
                f"{config.path(config.node.cert_file)}: was the member file made from this home?"
            )
        if v.name != config.node.name:
            raise ConfigError(
                f"{where}: this node is named {v.name!r} in genesis but {config.node.name!r} "
                f"in {config.home / CONFIG_FILE}"
            )
    elif not full_node:
        raise ConfigError(
            f"{where}: this node's key {key.public_key.hex()[:16]}... is not among its "
            f"{len(genesis.validators)} validators: ask the coordinator to include this "
            "organisation's member file, or pass --full-node if this node is a full node"
        )
    listed = {a.public_key for a in genesis.accounts}
    accounts = {name: pk in listed for name, pk in own_account_keys(home).items()}
    target = config.path(config.node.genesis_file)
    replaced = False
    if target.exists():
        try:
            previous = load_genesis(target)
        except ConfigError:
            previous = None
        if previous is None or previous.hash != genesis.hash:
            data = config.path(config.node.data_dir)
            if data.exists() and any(data.iterdir()):
                raise ConfigError(
                    f"{target}: this home already has another genesis and a data dir "
                    f"({data}); a node cannot change chains: use a fresh home"
                )
            if not force:
                raise ConfigError(f"{target} holds another genesis; pass --force to replace it")
            replaced = True
    if Path(source).resolve() != target.resolve():
        shutil.copyfile(source, target)
    return Installed(genesis, bool(mine), accounts, replaced)


def allow_peer(home: Path, member_file: Path) -> tuple[Member, bool]:
    """Let the node of `member_file` (a full node) connect to this one: its certificate goes
    to peers/<key hex>.pem and its key into [p2p] allow. (member, whether it was new)."""
    config = load_config(home)
    member = load_member(member_file)
    _check_certificate(member.certificate, member.public_key, f"{member_file}: [node] certificate")
    pub_hex = member.public_key.hex()
    peers = config.home / "peers"
    peers.mkdir(exist_ok=True)
    (peers / f"{pub_hex}.pem").write_text(member.certificate)
    if pub_hex in config.p2p.allow:
        return member, False
    p2p = replace(config.p2p, allow=(*config.p2p.allow, pub_hex))
    (config.home / CONFIG_FILE).write_text(render_config(replace(config, p2p=p2p)))
    load_config(home)
    return member, True
