"""Node configuration (config.toml in the node home) with errors that name file and field."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.ledger.genesis import ADDRESS_RE, ConfigError, check_fields

CONFIG_FILE = "config.toml"
MAX_SOCKET_PATH_BYTES = 100


class StartError(ConfigError):
    """The node cannot start: its p2p port or control socket is taken, or another process
    runs on its home. The message names the address or file and what to do; printed without
    a traceback (a ConfigError), exit status 1."""


@dataclass(frozen=True)
class NodeSection:
    name: str = "node"
    key_file: str = "node_key"
    cert_file: str = "node_cert.pem"
    genesis_file: str = "genesis.toml"
    data_dir: str = "data"
    log_level: str = "info"
    # "text" for people, "json" for log shippers: one JSON object per line.
    log_format: str = "text"


@dataclass(frozen=True)
class P2PSection:
    listen: str = "127.0.0.1:26650"
    # The host:port the others dial (what `chain genesis member` exports), when it differs
    # from `listen`: a DNS name, a NAT's public address, "0.0.0.0" listening. "" = listen.
    advertise: str = ""
    # Non-validator peers: "hex public key@host:port" (validators come from genesis).
    peers: tuple[str, ...] = ()
    # Public keys (hex) of non-validator full nodes allowed to connect, with their cert files.
    allow: tuple[str, ...] = ()
    max_frame_bytes: int = 16 * 1024 * 1024
    send_queue_frames: int = 1024
    # Per peer; a frame is up to max_frame_bytes, so frames alone would allow gigabytes.
    send_queue_bytes: int = 48 * 1024 * 1024
    handshake_timeout_ms: int = 5000


@dataclass(frozen=True)
class RpcSection:
    socket: str = "control.sock"
    max_connections: int = 64
    max_line_bytes: int = 8 * 1024 * 1024
    # A request line must be complete this long after its first byte (slow-loris guard).
    line_timeout_ms: int = 10_000


@dataclass(frozen=True)
class GatewaySection:
    """The HTTPS gateway (docs/GATEWAY.md): off by default; TLS always (its CA, server
    certificate and credential register live in <home>/gateway, see `chain gateway`)."""

    enabled: bool = False
    listen: str = "127.0.0.1:8443"
    max_connections: int = 256
    max_connections_per_ip: int = 32
    # Concurrent HTTP requests plus open WebSockets of one credential.
    max_in_flight_per_client: int = 16
    handshake_timeout_ms: int = 5000
    # The request head must arrive within this; it is also how long a kept-alive
    # connection may idle between requests.
    header_timeout_ms: int = 5000
    body_timeout_ms: int = 10_000
    write_timeout_ms: int = 10_000
    # A WebSocket with no subscription that sends nothing for this long is closed.
    ws_idle_timeout_ms: int = 60_000
    max_body_bytes: int = 8 * 1024 * 1024
    # Requests per second per credential, by role (a credential may carry its own rate).
    rate_read: int = 50
    rate_submit: int = 200
    rate_admin: int = 1000
    explorer: bool = True


@dataclass(frozen=True)
class MempoolSection:
    max_txs: int = 100_000
    max_bytes: int = 128 * 1024 * 1024
    nonce_window: int = 10_000


@dataclass(frozen=True)
class ConsensusSection:
    """This node's own timing as a proposer (nothing here changes what is valid)."""

    # How long the first waiting transaction waits for company before this node, when it
    # leads, proposes it (a full block goes at once). A block round costs every validator
    # about the same CPU whatever it carries (BENCHMARKS.md "Block round cost": ~7 ms per
    # validator), so a block per transaction spends the cores on rounds at light load
    # (50 tx/s once made 53 blocks/s and took 1.5 of the 2 cores). Under load the oldest
    # waiting transaction has waited a whole round already, so this adds nothing there.
    # The same delay, counted from the last commit, holds back the block that certifies a
    # non-empty block's state root, so that it carries the transactions arriving meanwhile
    # instead of running as an empty round of its own. Longer: fewer rounds, less CPU, that
    # much more latency (as CometBFT's timeout_commit or Fabric's BatchTimeout).
    batch_ms: int = 100


MAX_BATCH_MS = 5000


@dataclass(frozen=True)
class StorageSection:
    map_size_mb: int = 16 * 1024
    sync: bool = True


@dataclass(frozen=True)
class TsaSection:
    """RFC 3161 timestamps of checkpoints (node/daemon/reactors/timestamps.py); off while
    `url` is empty. key_file: an account key file ("ed25519:" + hex seed) whose account
    signs the checkpoint.timestamp transactions (grant it an account first)."""

    url: str = ""
    key_file: str = ""
    timeout_ms: int = 10_000


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    gateway: GatewaySection = field(default_factory=GatewaySection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    storage: StorageSection = field(default_factory=StorageSection)
    tsa: TsaSection = field(default_factory=TsaSection)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    @property
    def socket_path(self) -> Path:
        return self.path(self.rpc.socket)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_address(self.p2p.listen, f"{self.home / CONFIG_FILE}: [p2p] listen")

    @property
    def advertised_address(self) -> str:
        """The address other nodes dial: [p2p] advertise, or listen when that is empty."""
        return self.p2p.advertise or self.p2p.listen


def split_address(address: str, where: str) -> tuple[str, int]:
    """(host, port) of "host:port" or "[v6]:port" (brackets dropped, as sockets want)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: {address!r} must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _check_public_key_hex(text: str, where: str) -> None:
    try:
        ok = len(bytes.fromhex(text)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: {text!r} is not a public key (64 hex characters)")


SECTIONS = {
    "node": NodeSection,
    "p2p": P2PSection,
    "rpc": RpcSection,
    "gateway": GatewaySection,
    "mempool": MempoolSection,
    "consensus": ConsensusSection,
    "storage": StorageSection,
    "tsa": TsaSection,
}


def _section(cls: type, raw: Any, where: str) -> Any:
    check_fields(raw, where, [f.name for f in fields(cls)])
    values: dict[str, Any] = {}
    for name, value in raw.items():
        default = getattr(cls(), name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            kind = type(default).__name__.replace("tuple", "list of strings")
            raise ConfigError(f"{where}: `{name}` must be {kind}, got {value!r}")
        values[name] = value
    return cls(**values)


def load_config(home: Path) -> NodeConfig:
    home = Path(home)
    path = home / CONFIG_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: not found; create a node home with `chain init --home {home}`"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    check_fields(doc, str(path), SECTIONS, what="section")
    sections = {
        name: _section(cls, doc.get(name, {}), f"{path}: [{name}]")
        for name, cls in SECTIONS.items()
    }
    config = NodeConfig(home=home, **sections)
    if config.node.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{path}: [node] log_level must be debug, info, warning or error")
    config.listen_host_port  # noqa: B018 - validates the address
    if config.node.log_format not in ("text", "json"):
        raise ConfigError(f"{path}: [node] log_format must be text or json")
    split_address(config.gateway.listen, f"{path}: [gateway] listen")
    if config.consensus.batch_ms > MAX_BATCH_MS:
        raise ConfigError(f"{path}: [consensus] batch_ms must be at most {MAX_BATCH_MS}")
    _check_p2p(config.p2p, f"{path}: [p2p]")
    if config.tsa.url and not config.tsa.url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: [tsa] url must be an http:// or https:// URL")
    if config.tsa.url and not config.tsa.key_file:
        raise ConfigError(f"{path}: [tsa] needs key_file (the account that records tokens)")
    sock = str(config.socket_path.absolute())
    if len(sock.encode()) >= MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"{path}: [rpc] socket path {sock} is {len(sock.encode())} bytes; the limit is "
            f"{MAX_SOCKET_PATH_BYTES - 1}: use a shorter --home or an absolute short path"
        )
    return config


def _check_p2p(p2p: P2PSection, where: str) -> None:
    """Entries a node would otherwise trip over only once it dials or accepts someone."""
    if p2p.advertise and not ADDRESS_RE.match(p2p.advertise):
        raise ConfigError(
            f"{where} advertise: {p2p.advertise!r} must be host:port that others can dial "
            "(a DNS name or an IP address, not 0.0.0.0)"
        )
    if p2p.advertise.startswith(("0.0.0.0:", "[::]:")):
        raise ConfigError(f"{where} advertise: {p2p.advertise!r} cannot be dialled")
    for i, entry in enumerate(p2p.peers):
        pub_hex, sep, address = entry.partition("@")
        if not sep:
            raise ConfigError(f"{where} peers[{i}]: {entry!r} must be <public key hex>@host:port")
        _check_public_key_hex(pub_hex, f"{where} peers[{i}]")
        split_address(address, f"{where} peers[{i}]")
    for i, entry in enumerate(p2p.allow):
        _check_public_key_hex(entry, f"{where} allow[{i}]")


def render_config(config: NodeConfig) -> str:
    out = ["# Node configuration. Paths are relative to this file's directory.", ""]
    for name in SECTIONS:
        out.append(f"[{name}]")
        for f in fields(SECTIONS[name]):
            value = getattr(getattr(config, name), f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int):
                text = str(value)
            elif isinstance(value, tuple):
                text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
            else:
                text = f'"{value}"'
            out.append(f"{f.name} = {text}")
        out.append("")
    return "\n".join(out)
