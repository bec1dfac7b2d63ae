"""The gateway's certificate authority and its register of issued credentials.

Layout in the node home (`chain gateway init` creates it; the node reads it at start and
re-reads `revoked.txt` and `clients.toml` when they change, so revocation needs no restart):

    gateway/ca.key  ca.pem          the gateway CA (ECDSA P-256; key mode 0600)
    gateway/server.key  server.pem  the gateway's TLS certificate, signed by the CA
    gateway/clients.toml            issued client certificates and bearer tokens (hashes only)
    gateway/revoked.txt             revoked certificate serials, one hex serial per line

ECDSA P-256 rather than the nodes' Ed25519: browsers, curl, Java and Go TLS stacks all accept
it as a client and server certificate, which Ed25519 is not yet everywhere. The CA is
separate from the p2p identity: a leaked client CA key must not let anyone join consensus.

Tokens are 256 random bits, so a plain SHA-256 of one is as good as a slow password hash
(nothing to brute-force) and costs microseconds: checking one cannot starve the event loop.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.ledger.genesis import ConfigError

GATEWAY_DIR: Final = "gateway"
ROLES: Final = ("read", "submit", "admin")
TOKEN_PREFIX: Final = "chain_"
MAX_TOKEN_CHARS: Final = 128
CA_DAYS: Final = 3650
SERVER_DAYS: Final = 825  # the longest lifetime browsers accept for a server certificate
CLIENT_DAYS: Final = 730


class GatewayCaError(ConfigError):
    """The gateway CA or its register is missing or unusable; the message says what to do."""


@dataclass(frozen=True)
class ClientEntry:
    """One issued credential: a client certificate (serial) or a token (sha256 of it)."""

    name: str
    role: str
    kind: str  # "cert" or "token"
    serial: str = ""  # hex, lower case (certificates)
    sha256: str = ""  # hex (tokens)
    rate: int = 0  # requests per second; 0 = the role's default from config
    issued: str = ""


@dataclass
class Register:
    clients: list[ClientEntry] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def by_serial(self) -> dict[str, ClientEntry]:
        return {c.serial: c for c in self.clients if c.kind == "cert"}

    def by_token_hash(self) -> dict[str, ClientEntry]:
        return {c.sha256: c for c in self.clients if c.kind == "token"}


def gateway_dir(home: Path) -> Path:
    return Path(home) / GATEWAY_DIR


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (never wider, never overwritten)."""
    if path.exists():
        raise GatewayCaError(f"{path} already exists; refusing to overwrite a private key")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attrs)


def _load_ca(home: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    directory = gateway_dir(home)
    try:
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except FileNotFoundError as exc:
        raise GatewayCaError(
            f"no gateway CA in {directory}: run `chain gateway init --home {home}` first"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise GatewayCaError(f"{directory / 'ca.key'} is not an ECDSA key")
    return key, cert


def _sign(builder: x509.CertificateBuilder, ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return builder.sign(ca_key, hashes.SHA256())


def init_ca(home: Path, node_name: str, server_names: tuple[str, ...] = ()) -> Path:
    """Create the gateway CA and the server certificate (SANs: localhost, 127.0.0.1 and
    `server_names`, each a DNS name or an IP address). Refuses to overwrite."""
    directory = gateway_dir(home)
    if (directory / "ca.key").exists():
        raise GatewayCaError(f"{directory} already has a gateway CA; refusing to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    subject = _name(f"chain gateway CA ({node_name})")
    ca_cert = _sign(
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
        ca_key,
    )
    _write_private(directory / "ca.key", _key_pem(ca_key))
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    issue_server_cert(home, node_name, server_names)
    if not (directory / "clients.toml").exists():
        write_register(home, Register())
    (directory / "revoked.txt").touch()
    return directory


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in ("localhost", "127.0.0.1", *names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    unique = list(dict.fromkeys(entries))
    return x509.SubjectAlternativeName(unique)


def issue_server_cert(home: Path, node_name: str, server_names: tuple[str, ...] = ()) -> None:
    ca_key, ca_cert = _load_ca(home)
    directory = gateway_dir(home)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = _sign(
        x509.CertificateBuilder()
        .subject_name(_name(f"{node_name} gateway"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(_san(server_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False),
        ca_key,
    )
    for old in ("server.key", "server.pem"):
        (directory / old).unlink(missing_ok=True)
    _write_private(directory / "server.key", _key_pem(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _check_name_role(name: str, role: str) -> None:
    if role not in ROLES:
        raise GatewayCaError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise GatewayCaError(f"name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")


def issue_client(
    home: Path, name: str, role: str, out_dir: Path, *, rate: int = 0, days: int = CLIENT_DAYS
) -> ClientEntry:
    """A client certificate for `name` in `out_dir` (client.pem, client.key mode 0600,
    client.p12 for browsers without a password, and ca.pem to check the server), recorded in
    clients.toml. The private key is written only to out_dir: hand the directory over and
    delete it."""
    _check_name_role(name, role)
    register = read_register(home)
    if any(c.name == name and c.serial not in register.revoked for c in register.clients):
        raise GatewayCaError(f"a live credential named {name!r} exists; revoke it or pick a name")
    ca_key, ca_cert = _load_ca(home)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    serial = x509.random_serial_number()
    cert = _sign(
        x509.CertificateBuilder()
        .subject_name(_name(name, f"role={role}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False),
        ca_key,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_private(out_dir / "client.key", _key_pem(key))
    (out_dir / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out_dir / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    p12 = pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, [ca_cert], serialization.NoEncryption()
    )
    _write_private(out_dir / "client.p12", p12)
    entry = ClientEntry(
        name=name,
        role=role,
        kind="cert",
        serial=f"{serial:x}",
        rate=rate,
        issued=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    register.clients.append(entry)
    write_register(home, register)
    return entry


def issue_token(home: Path, name: str, role: str, *, rate: int = 0) -> tuple[str, ClientEntry]:
    """A bearer token for `name`: returned once, stored only as its SHA-256."""
    _check_name_role(name, role)
    register = read_register(home)
    if any(c.name == name for c in register.clients if c.kind == "token"):
        raise GatewayCaError(f"a token named {name!r} exists; revoke it or pick a name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = ClientEntry(
        name=name,
        role=role,
        kind="token",
        sha256=token_hash(token),
        rate=rate,
        issued=_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    register.clients.append(entry)
    write_register(home, register)
    return token, entry


def revoke(home: Path, what: str) -> list[ClientEntry]:
    """Revoke by certificate serial (hex) or by name (every certificate of that name; a token
    of that name is removed from the register). Returns what was revoked."""
    register = read_register(home)
    wanted = what.lower().removeprefix("0x")
    hits = [c for c in register.clients if c.name == what or (c.serial and c.serial == wanted)]
    if not hits:
        raise GatewayCaError(
            f"no credential with name or serial {what!r} (see `chain gateway list`)"
        )
    lines = []
    for entry in hits:
        if entry.kind == "cert" and entry.serial not in register.revoked:
            lines.append(f"{entry.serial}  # {entry.name} revoked {_now():%Y-%m-%dT%H:%M:%SZ}\n")
    if lines:
        with (gateway_dir(home) / "revoked.txt").open("a") as f:
            f.writelines(lines)
    tokens = {id(c) for c in hits if c.kind == "token"}
    if tokens:
        register.clients = [c for c in register.clients if id(c) not in tokens]
        write_register(home, register)
    return hits


def read_revoked(path: Path) -> set[str]:
    serials: set[str] = set()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return serials
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip().lower().removeprefix("0x")
        if value:
            serials.add(value)
    return serials


def read_register(home: Path) -> Register:
    directory = gateway_dir(home)
    path = directory / "clients.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise GatewayCaError(
            f"{path} not found: run `chain gateway init --home {home}` first"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise GatewayCaError(f"{path}: not valid TOML: {exc}") from exc
    clients = []
    for kind, key in (("cert", "client"), ("token", "token")):
        for i, raw in enumerate(doc.get(key, [])):
            try:
                entry = ClientEntry(kind=kind, **raw)
            except TypeError as exc:
                raise GatewayCaError(f"{path}: [[{key}]] #{i + 1}: {exc}") from exc
            if entry.role not in ROLES:
                raise GatewayCaError(f"{path}: [[{key}]] {entry.name}: unknown role {entry.role}")
            clients.append(entry)
    return Register(clients, read_revoked(directory / "revoked.txt"))


def write_register(home: Path, register: Register) -> None:
    out = [
        "# Issued gateway credentials (`chain gateway issue-client|issue-token`).",
        "# Tokens are stored as SHA-256 only. Revoke certificates in revoked.txt.",
        "",
    ]
    for entry in register.clients:
        out.append("[[client]]" if entry.kind == "cert" else "[[token]]")
        fields = {
            "name": entry.name,
            "role": entry.role,
            "rate": entry.rate,
            "issued": entry.issued,
        }
        if entry.kind == "cert":
            fields["serial"] = entry.serial
        else:
            fields["sha256"] = entry.sha256
        for k, v in fields.items():
            out.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
        out.append("")
    path = gateway_dir(home) / "clients.toml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(out))
    os.replace(tmp, path)


def serial_of(der: bytes) -> str:
    """The hex serial of a DER certificate (as presented by a TLS peer)."""
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"
