"""Member files of a genesis ceremony, and the genesis built from them.

Each organisation makes its keys on its own machine (`chain init`) and exports only public
parts (`chain genesis member`): its name, its node's public key, self-signed certificate and
advertised address, whether that node is a validator or a full node, and the accounts it
brings with their roles (and whether each governs). A coordinator assembles the files
(`chain genesis build`); every organisation installs the result and compares its hash out of
band. No private key is ever in a member file, so none leaves its organisation.

Like genesis.toml, a member file is parsed strictly: an unknown key is refused (check_fields).
Pure: no I/O beyond reading the one file named, no clock (the caller passes genesis_time).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.ledger.genesis import (
    ADDRESS_RE,
    AccountInfo,
    ConfigError,
    ConsensusParams,
    Genesis,
    GovernanceConfig,
    ValidatorInfo,
    _toml_str,
    account_toml_lines,
    check_fields,
    compute_hash,
    parse_genesis,
    render_genesis,
)
from node.ledger.schema import RESERVED_ROLES, ROLES

MEMBER_FORMAT = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NODE_ROLES = ("validator", "full-node")

MEMBER_FIELDS = ("member_format", "name", "node", "accounts")
NODE_FIELDS = ("role", "public_key", "address", "certificate")
ACCOUNT_FIELDS = ("name", "public_key", "roles", "governor")


@dataclass(frozen=True)
class MemberAccount:
    name: str
    public_key: bytes
    roles: tuple[str, ...]
    governor: bool = False


@dataclass(frozen=True)
class Member:
    name: str  # the organisation; also its validator's name in genesis
    role: str  # "validator" or "full-node"
    public_key: bytes  # the node's Ed25519 identity
    address: str  # host:port that the other nodes dial (DNS names allowed)
    certificate: str  # PEM of the node's self-signed TLS certificate
    accounts: tuple[MemberAccount, ...] = ()

    @property
    def is_validator(self) -> bool:
        return self.role == "validator"


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_roles(roles: Iterable[str], where: str) -> tuple[str, ...]:
    out = tuple(roles)
    for role in out:
        if role not in ROLES or role in RESERVED_ROLES:
            allowed = ", ".join(r for r in ROLES if r not in RESERVED_ROLES)
            raise ConfigError(
                f"{where}: role {role!r} cannot be given here; roles are {allowed} "
                "(governors are marked with `governor = true`)"
            )
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: a role is listed twice")
    return out


def _public_key(table: Mapping[str, Any], where: str) -> bytes:
    text = table.get("public_key")
    try:
        key = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: `public_key` must be 64 hex characters (an Ed25519 key)")
    return key


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: field `{key}` must be a non-empty string, got {value!r}")
    return value


def parse_member(doc: Mapping[str, Any], source: str) -> Member:
    check_fields(doc, source, MEMBER_FIELDS)
    version = doc.get("member_format")
    if version != MEMBER_FORMAT:
        raise ConfigError(
            f"{source}: `member_format` is {version!r}; this build reads {MEMBER_FORMAT}"
        )
    name = check_name(_string(doc, "name", source), f"{source}: `name`")
    where = f"{source}: [node]"
    node = check_fields(doc.get("node"), where, NODE_FIELDS)
    role = _string(node, "role", where)
    if role not in NODE_ROLES:
        raise ConfigError(f"{where}: `role` must be one of {', '.join(NODE_ROLES)}, not {role!r}")
    address = _string(node, "address", where)
    if not ADDRESS_RE.match(address) or address.startswith(("0.0.0.0:", "[::]:")):
        raise ConfigError(f"{where}: `address` {address!r} must be a host:port others can dial")
    raw_accounts = doc.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"{source}: `accounts` must be a list of [[accounts]] tables")
    accounts = []
    for i, raw in enumerate(raw_accounts):
        at = f"{source}: accounts[{i}]"
        check_fields(raw, at, ACCOUNT_FIELDS)
        roles = raw.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"{at}: `roles` must be a list of strings")
        governor = raw.get("governor", False)
        if not isinstance(governor, bool):
            raise ConfigError(f"{at}: `governor` must be true or false")
        accounts.append(
            MemberAccount(
                name=check_name(_string(raw, "name", at), f"{at}: `name`"),
                public_key=_public_key(raw, at),
                roles=check_roles(roles, at),
                governor=governor,
            )
        )
    return Member(
        name=name,
        role=role,
        public_key=_public_key(node, where),
        address=address,
        certificate=_string(node, "certificate", where),
        accounts=tuple(accounts),
    )


def load_member(path: Path) -> Member:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: member file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_member(doc, str(path))


def render_member(member: Member) -> str:
    lines = [
        f"# Member file of {member.name!r} for a genesis ceremony: public parts only (no key).",
        "# Send it to the coordinator, and tell them its node public key by another channel.",
        f"member_format = {MEMBER_FORMAT}",
        f"name = {_toml_str(member.name)}",
        "",
        "[node]",
        f"role = {_toml_str(member.role)}",
        f'public_key = "{member.public_key.hex()}"',
        f"address = {_toml_str(member.address)}",
        f"certificate = {_toml_str(member.certificate)}",
    ]
    for a in member.accounts:
        lines += account_toml_lines(a.name, a.public_key, a.roles)
        lines.append(f"governor = {'true' if a.governor else 'false'}")
    return "\n".join(lines) + "\n"


def build_genesis(
    members: Sequence[Member],
    *,
    chain_id: str,
    genesis_time: str,
    consensus: ConsensusParams | None = None,
    governors: Sequence[str] = (),
    threshold: tuple[int, int] | None = None,
    proposal_ttl_blocks: int | None = None,
) -> Genesis:
    """The genesis of `members`: validators sorted by organisation name (so that any two
    organisations building from the same files and time get the same hash whatever order
    they list them in), every member's accounts, governors = the accounts marked
    `governor = true` plus `governors` by name. Checked with parse_genesis's own rules, so
    what build writes is exactly what install will accept."""
    if not members:
        raise ConfigError("genesis build: give at least one member file")
    by_name: dict[str, Member] = {}
    node_keys: dict[bytes, str] = {}
    for m in members:
        if m.name in by_name:
            raise ConfigError(f"genesis build: two member files are for {m.name!r}")
        if m.public_key in node_keys:
            raise ConfigError(
                f"genesis build: {m.name!r} and {node_keys[m.public_key]!r} have the same "
                "node key (one organisation's file sent twice under two names?)"
            )
        by_name[m.name] = m
        node_keys[m.public_key] = m.name
    ordered = [by_name[name] for name in sorted(by_name)]
    validators = tuple(
        ValidatorInfo(m.name, m.public_key, m.address, m.certificate)
        for m in ordered
        if m.is_validator
    )
    if not validators:
        raise ConfigError("genesis build: no member file is for a validator")
    accounts: list[AccountInfo] = []
    marked: list[str] = []
    owner: dict[str, str] = {}
    for m in ordered:
        for a in m.accounts:
            if a.name in owner:
                raise ConfigError(
                    f"genesis build: account {a.name!r} is in both {owner[a.name]!r} and "
                    f"{m.name!r}; account names are unique in a chain"
                )
            owner[a.name] = m.name
            accounts.append(AccountInfo(a.name, a.public_key, a.roles))
            if a.governor:
                marked.append(a.name)
    all_governors = marked + [g for g in governors if g not in marked]
    if (threshold is not None or proposal_ttl_blocks is not None) and not all_governors:
        raise ConfigError(
            "genesis build: --threshold and --proposal-ttl-blocks need governors "
            "(--governor ACCOUNT, or `governor = true` in a member file)"
        )
    governance = GovernanceConfig()
    if all_governors:
        num, den = threshold or (governance.threshold_num, governance.threshold_den)
        governance = GovernanceConfig(
            governors=tuple(all_governors),
            threshold_num=num,
            threshold_den=den,
            proposal_ttl_blocks=proposal_ttl_blocks or governance.proposal_ttl_blocks,
        )
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        validators=validators,
        accounts=tuple(accounts),
        consensus=consensus or ConsensusParams(),
        governance=governance,
    )
    # Round-trip through the parser: every rule genesis.toml has (unique keys, chain id
    # syntax, governors being accounts, thresholds below 1) applies to what we write.
    parsed = parse_genesis(tomllib.loads(render_genesis(genesis)), "genesis build")
    if parsed.hash != compute_hash(genesis):
        raise AssertionError("rendered genesis does not parse back to itself")
    return parsed
