"""What a Replica asks its caller to do. The caller carries out a list of actions in order."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.certificates import CommitCertificate
from consensus.messages import Message
from consensus.persisted import PersistedState


@dataclass(frozen=True, slots=True)
class Send:
    """Send `msg` to validator `to`."""

    to: int
    msg: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send `msg` to every other validator."""

    msg: Message


@dataclass(frozen=True, slots=True)
class Persist:
    """Make `state` durable BEFORE carrying out any later action of the same list."""

    state: PersistedState


@dataclass(frozen=True, slots=True)
class Deliver:
    """Block `height` is final: execute it. Emitted once per height, in height order."""

    height: int
    payload: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    """This replica is behind: fetch blocks >= from_height (with their certificates) from
    these validators, check the certificates, execute them and report each with executed()."""

    from_height: int
    peers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """Evidence against a remote validator (bad signature, equivocation, wrong leader, ...)."""

    validator: int
    kind: str
    detail: str


Action = Send | Broadcast | Persist | Deliver | FetchBlocks | Misbehaviour
