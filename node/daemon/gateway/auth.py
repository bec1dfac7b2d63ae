"""Who is calling, what their role lets them call, and how often: the gateway's Gate.

Roles are method allow-lists derived from method names, so a method that a colleague adds
to api/ appears on the gateway with a role at once, and an unfamiliar verb is admin-only
(deny by default):

    read    *_get, *_list, *_status, *_history, *_wait, *_diagnose, subscribe, unsubscribe
    submit  read + tx_submit, tx_submit_batch (clients sign their own transactions)
    admin   every registered method

Each credential has a token bucket (rate per second, burst of two seconds' worth); a batch
costs one token per request in it. All checks are a dictionary lookup, a set lookup and a
few additions: no CPU-heavy work is ever done for a caller before it is known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from node.daemon.gateway import ca
from node.rpc.errors import FORBIDDEN, RATE_LIMITED, UNAUTHENTICATED, RpcError

ROLE_RANK: Final = {"read": 0, "submit": 1, "admin": 2}
READ_SUFFIXES: Final = ("_get", "_list", "_status", "_history", "_wait", "_diagnose")
READ_METHODS: Final = frozenset({"subscribe", "unsubscribe"})
SUBMIT_METHODS: Final = frozenset({"tx_submit", "tx_submit_batch"})
RELOAD_INTERVAL_S: Final = 1.0
MAX_BUCKETS: Final = 100_000


def role_for(method: str) -> str:
    """The least role that may call `method`."""
    if method in READ_METHODS or method.endswith(READ_SUFFIXES):
        return "read"
    if method in SUBMIT_METHODS:
        return "submit"
    return "admin"


def methods_for(role: str, registered: Sequence[str]) -> list[str]:
    rank = ROLE_RANK[role]
    return sorted(m for m in registered if ROLE_RANK[role_for(m)] <= rank)


@dataclass(frozen=True)
class Credential:
    name: str
    role: str
    kind: str  # "cert" or "token"
    key: str  # the certificate serial or the token hash: what revocation and buckets use
    rate: float  # requests per second


class TokenBucket:
    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, 2 * rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, cost: float, now: float) -> float:
        """0 when `cost` tokens were taken, else the seconds until they would be there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        missing = min(cost, self.capacity) - self.tokens
        return missing / self.rate if self.rate > 0 else math.inf


class Authenticator:
    """Reads the register (clients.toml, revoked.txt) and answers who a caller is.

    The files are re-read at most once per RELOAD_INTERVAL_S, and only when their mtime
    changed, so `chain gateway revoke` takes effect within about a second."""

    def __init__(self, home: Path, role_rates: dict[str, float]) -> None:
        self._directory = ca.gateway_dir(home)
        self._home = Path(home)
        self._role_rates = dict(role_rates)
        self._stamp: tuple[float, float] = (-1.0, -1.0)
        self._checked = -math.inf
        self._by_serial: dict[str, ca.ClientEntry] = {}
        self._by_hash: dict[str, ca.ClientEntry] = {}
        self._revoked: set[str] = set()
        self._buckets: dict[str, TokenBucket] = {}
        self.reload(force=True)

    def reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_INTERVAL_S:
            return
        self._checked = now
        stamp = (_mtime(self._directory / "clients.toml"), _mtime(self._directory / "revoked.txt"))
        if stamp == self._stamp and not force:
            return
        register = ca.read_register(self._home)
        self._by_serial = register.by_serial()
        self._by_hash = register.by_token_hash()
        self._revoked = register.revoked
        self._stamp = stamp

    def _credential(self, entry: ca.ClientEntry, key: str) -> Credential:
        rate = float(entry.rate) if entry.rate > 0 else self._role_rates[entry.role]
        return Credential(entry.name, entry.role, entry.kind, key, rate)

    def from_certificate_serial(self, serial: str) -> Credential | RpcError:
        """A client certificate the TLS layer verified against the gateway CA."""
        self.reload()
        if serial in self._revoked:
            return unauthenticated(f"certificate serial {serial} is revoked; ask for a new one")
        entry = self._by_serial.get(serial)
        if entry is None:
            # Only a certificate our CA signed gets here (TLS verified it): one just issued.
            self.reload(force=True)
            entry = self._by_serial.get(serial)
        if entry is None:
            return unauthenticated(f"certificate serial {serial} is not in this gateway's register")
        return self._credential(entry, serial)

    def from_token(self, token: str) -> Credential | RpcError:
        self.reload()
        if len(token) > ca.MAX_TOKEN_CHARS:
            return unauthenticated("bearer token too long")
        digest = ca.token_hash(token)
        entry = self._by_hash.get(digest)
        if entry is None:
            return unauthenticated("unknown or revoked bearer token")
        return self._credential(entry, digest)

    def is_revoked(self, credential: Credential) -> bool:
        self.reload()
        if credential.kind == "cert":
            return credential.key in self._revoked
        return credential.key not in self._by_hash

    def take(self, credential: Credential, cost: float) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(credential.key)
        if bucket is None or bucket.rate != credential.rate:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()  # bounded memory; at worst a client gets a fresh burst
            bucket = self._buckets[credential.key] = TokenBucket(credential.rate, now)
        return bucket.take(cost, now)


def unauthenticated(reason: str) -> RpcError:
    return RpcError(
        UNAUTHENTICATED,
        f"authentication required: {reason} (present a client certificate issued by "
        "`chain gateway issue-client`, or `Authorization: Bearer <token>`)",
    )


class CredentialGate:
    """node.rpc's Gate for one authenticated caller: revocation, rate, role."""

    def __init__(self, auth: Authenticator, credential: Credential) -> None:
        self._auth = auth
        self.credential = credential
        self.refused: dict[int, int] = {}

    def admit(self, methods: Sequence[str]) -> RpcError | None:
        credential = self.credential
        if self._auth.is_revoked(credential):
            return unauthenticated(f"the credential {credential.name!r} was revoked")
        wait_s = self._auth.take(credential, max(1, len(methods)))
        if wait_s > 0:
            retry_ms = math.ceil(wait_s * 1000) if math.isfinite(wait_s) else 60_000
            return RpcError(
                RATE_LIMITED,
                f"rate limit: {credential.name!r} may make {credential.rate:g} requests per "
                f"second; retry in {retry_ms} ms",
                {"retry_after_ms": retry_ms, "rate_per_s": credential.rate},
            )
        return None

    def allows(self, method: str) -> RpcError | None:
        needed = role_for(method)
        if ROLE_RANK[self.credential.role] >= ROLE_RANK[needed]:
            return None
        return RpcError(
            FORBIDDEN,
            f"{method} needs role {needed}; credential {self.credential.name!r} has role "
            f"{self.credential.role} (the node operator issues credentials per role)",
            {"method": method, "role": self.credential.role, "needs": needed},
        )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
