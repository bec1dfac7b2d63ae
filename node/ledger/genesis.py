"""The genesis file: chain id, validators, initial accounts and roles, consensus parameters.

Genesis is TOML for people; its identity is genesis_hash = SHA-256 of the canonical msgpack of
the parsed document (public keys as bytes), which block 1 names as its previous hash.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.ledger import crypto, encoding
from node.ledger.schema import RESERVED_ROLES, ROLES

CHAIN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# host:port where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
ADDRESS_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)"
    r":(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})$"
)


class ConfigError(Exception):
    """A config or genesis file is missing or wrong; the message names file, field and fix."""


def check_fields(
    table: Any, where: str, known: Iterable[str], what: str = "field"
) -> dict[str, Any]:
    """`table` as a dict, provided it is a TOML table whose every key is in `known`.

    Used at every level of genesis.toml, config.toml and member files: a misspelt key
    (`adress`) must never be dropped silently, because what is dropped is neither applied
    nor covered by the genesis hash, and two organisations could then hold different files
    with the same hash."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {table!r}")
    names = sorted(known)
    unknown = sorted(k for k in table if k not in names)
    if unknown:
        listed = ", ".join(f"`{k}`" for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(
            f"{where}: unknown {what}{plural} {listed} (nothing is ignored: fix or remove "
            f"it); known {what}s: {', '.join(names)}"
        )
    return table


@dataclass(frozen=True)
class ValidatorInfo:
    name: str
    public_key: bytes
    address: str  # host:port for p2p
    certificate: str  # PEM of the node's self-signed TLS certificate ("" if not yet made)


@dataclass(frozen=True)
class AccountInfo:
    name: str
    public_key: bytes
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ConsensusParams:
    max_block_txs: int = 2000
    max_block_bytes: int = 8 * 1024 * 1024
    max_tx_bytes: int = 16 * 1024
    max_block_interval_ms: int = 2000
    max_clock_drift_ms: int = 10_000
    checkpoint_interval: int = 10
    tick_ms: int = 100
    view_timeout_ms: int = 4000
    max_view_timeout_ms: int = 60_000
    censorship_timeout_ms: int = 30_000


@dataclass(frozen=True)
class GovernanceConfig:
    """[governance]: the accounts that vote on membership and live parameters, and the share
    of them a proposal needs: strictly more than threshold_num / threshold_den."""

    governors: tuple[str, ...] = ()  # account names from [[accounts]]
    threshold_num: int = 2
    threshold_den: int = 3
    proposal_ttl_blocks: int = 10_000


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time: str
    validators: tuple[ValidatorInfo, ...]
    accounts: tuple[AccountInfo, ...]
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    hash: bytes = b""
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)

    def governor_keys(self) -> tuple[bytes, ...]:
        by_name = {a.name: a.public_key for a in self.accounts}
        return tuple(by_name[name] for name in self.governance.governors)

    @property
    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(v.public_key for v in self.validators)

    def to_obj(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "validators": [
                {
                    "name": v.name,
                    "public_key": v.public_key,
                    "address": v.address,
                    "certificate": v.certificate,
                }
                for v in self.validators
            ],
            "accounts": [
                {"name": a.name, "public_key": a.public_key, "roles": list(a.roles)}
                for a in self.accounts
            ],
            "consensus": dict(vars(self.consensus)),
            # Only when present, so that chains made before governance keep their hash.
            **({"governance": dict(vars(self.governance))} if self.governance.governors else {}),
        }


def compute_hash(genesis: Genesis) -> bytes:
    return crypto.sha256(b"chain-genesis-v1\x00" + encoding.pack(genesis.to_obj()))


def load_genesis(path: Path) -> Genesis:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: genesis file not found (install the consortium's with `chain genesis "
            "install`, or make a one-validator chain with `chain init --single`)"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_genesis(doc, str(path))


def _need(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise ConfigError(f"{where}: missing field `{key}`")
    value = doc[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}: field `{key}` must be {kind.__name__}, got {value!r}")
    return value


def _key(doc: dict[str, Any], where: str) -> bytes:
    text = _need(doc, "public_key", str, where)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: `public_key` must be 64 hex characters (an Ed25519 key)")
    return key


GENESIS_FIELDS = ("chain_id", "genesis_time", "validators", "accounts", "consensus", "governance")
VALIDATOR_FIELDS = ("name", "public_key", "address", "certificate")
ACCOUNT_FIELDS = ("name", "public_key", "roles")


def _opt_str(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        # e.g. an unquoted TOML date: str() of it would hash differently from its text.
        raise ConfigError(f"{where}: field `{key}` must be a string, got {value!r}")
    return value


def parse_genesis(doc: dict[str, Any], source: str) -> Genesis:
    check_fields(doc, source, GENESIS_FIELDS)
    chain_id = _need(doc, "chain_id", str, source)
    if not CHAIN_ID_RE.match(chain_id):
        raise ConfigError(f"{source}: `chain_id` {chain_id!r} must match {CHAIN_ID_RE.pattern}")
    genesis_time = _opt_str(doc, "genesis_time", source)
    validators = []
    for i, v in enumerate(_need(doc, "validators", list, source)):
        where = f"{source}: validators[{i}]"
        check_fields(v, where, VALIDATOR_FIELDS)
        address = _need(v, "address", str, where)
        if not ADDRESS_RE.match(address):
            raise ConfigError(
                f"{where}: `address` must be host:port (a DNS name or an IP address), "
                f"got {address!r}"
            )
        validators.append(
            ValidatorInfo(
                name=_need(v, "name", str, where),
                public_key=_key(v, where),
                address=address,
                certificate=_opt_str(v, "certificate", where),
            )
        )
    if not validators:
        raise ConfigError(f"{source}: `validators` must list at least one validator")
    if len({v.public_key for v in validators}) != len(validators):
        raise ConfigError(f"{source}: two validators share a public key")
    if len({v.name for v in validators}) != len(validators):
        raise ConfigError(f"{source}: two validators share a name")
    raw_accounts = doc.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"{source}: `accounts` must be a list of [[accounts]] tables")
    accounts = []
    for i, a in enumerate(raw_accounts):
        where = f"{source}: accounts[{i}]"
        check_fields(a, where, ACCOUNT_FIELDS)
        roles = _need(a, "roles", list, where)
        for r in roles:
            if r not in ROLES:
                raise ConfigError(f"{where}: role {r!r} unknown; roles are {', '.join(ROLES)}")
            if r in RESERVED_ROLES:
                raise ConfigError(
                    f"{where}: role {r!r} is not given in [[accounts]]; list governors "
                    "in [governance] governors"
                )
        accounts.append(
            AccountInfo(
                name=_need(a, "name", str, where), public_key=_key(a, where), roles=tuple(roles)
            )
        )
    if len({a.public_key for a in accounts}) != len(accounts):
        raise ConfigError(f"{source}: two accounts share a public key")
    if len({a.name for a in accounts}) != len(accounts):
        raise ConfigError(f"{source}: two accounts share a name")
    params = ConsensusParams()
    raw_params = check_fields(doc.get("consensus", {}), f"{source}: [consensus]", vars(params))
    for name, value in raw_params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{source}: [consensus] `{name}` must be a positive integer")
    params = ConsensusParams(**{**vars(params), **raw_params})
    if params.view_timeout_ms <= params.max_block_interval_ms:
        raise ConfigError(
            f"{source}: [consensus] view_timeout_ms must exceed max_block_interval_ms"
        )
    governance = _parse_governance(doc.get("governance"), accounts, source)
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        validators=tuple(validators),
        accounts=tuple(accounts),
        consensus=params,
        governance=governance,
    )
    return Genesis(**{**vars(genesis), "hash": compute_hash(genesis)})


def _parse_governance(raw: Any, accounts: list[AccountInfo], source: str) -> GovernanceConfig:
    where = f"{source}: [governance]"
    if raw is None:
        return GovernanceConfig()
    check_fields(raw, where, vars(GovernanceConfig()))
    governors = raw.get("governors", [])
    names = [a.name for a in accounts]
    if not isinstance(governors, list) or not all(isinstance(g, str) for g in governors):
        raise ConfigError(f"{where}: `governors` must be a list of account names")
    for g in governors:
        if g not in names:
            raise ConfigError(f"{where}: governor {g!r} is not an account in [[accounts]]")
    if len(set(governors)) != len(governors):
        raise ConfigError(f"{where}: a governor is listed twice")
    if not governors:
        # Without governors the section is left out of the hash (to_obj), so its other
        # fields would be ignored: refuse them rather than drop them.
        raise ConfigError(f"{where}: `governors` is empty; list governors or remove the section")
    config = GovernanceConfig(governors=tuple(governors))
    values = dict(vars(config))
    for name in ("threshold_num", "threshold_den", "proposal_ttl_blocks"):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}: `{name}` must be a positive integer")
            values[name] = value
    config = GovernanceConfig(**values)
    if config.threshold_num >= config.threshold_den:
        raise ConfigError(f"{where}: threshold_num / threshold_den must be below 1")
    if len(set(a.name for a in accounts)) != len(accounts) and governors:
        raise ConfigError(f"{where}: account names must be unique when they name governors")
    return config


def _toml_str(s: str) -> str:
    if "\n" in s:
        return '"""\n' + s.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_genesis(genesis: Genesis) -> str:
    """TOML text for a genesis (what `chain init` and `chain testnet` write)."""
    lines = [
        "# Genesis of a permissioned chain. Every node of the chain must hold this exact file.",
        f"chain_id = {_toml_str(genesis.chain_id)}",
        f"genesis_time = {_toml_str(genesis.genesis_time)}",
        "",
        "[consensus]",
    ]
    lines += [f"{k} = {v}" for k, v in vars(genesis.consensus).items()]
    for v in genesis.validators:
        lines += [
            "",
            "[[validators]]",
            f"name = {_toml_str(v.name)}",
            f'public_key = "{v.public_key.hex()}"',
            f"address = {_toml_str(v.address)}",
            f"certificate = {_toml_str(v.certificate)}",
        ]
    gov = genesis.governance
    if gov.governors:
        governors = ", ".join(_toml_str(g) for g in gov.governors)
        lines += [
            "",
            "[governance]",
            f"governors = [{governors}]",
            f"threshold_num = {gov.threshold_num}",
            f"threshold_den = {gov.threshold_den}",
            f"proposal_ttl_blocks = {gov.proposal_ttl_blocks}",
        ]
    for a in genesis.accounts:
        lines += account_toml_lines(a.name, a.public_key, a.roles)
    return "\n".join(lines) + "\n"


def account_toml_lines(name: str, public_key: bytes, roles: Sequence[str]) -> list[str]:
    """One [[accounts]] table of a genesis or member file."""
    listed = ", ".join(_toml_str(r) for r in roles)
    return [
        "",
        "[[accounts]]",
        f"name = {_toml_str(name)}",
        f'public_key = "{public_key.hex()}"',
        f"roles = [{listed}]",
    ]
