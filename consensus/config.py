"""Configuration and the callbacks a Replica is given (application, signer, verifier)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Signs bytes with this validator's private key.
Signer = Callable[[bytes], bytes]
# (public_key, signature, message) -> True when the signature is valid.
Verifier = Callable[[bytes, bytes, bytes], bool]

DIGEST_BYTES = 32
MAX_VALIDATORS = 1024
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
# Room in a sender's future buffer beyond one full payload: its small votes and certificates.
BUFFER_SLACK_BYTES = 1024 * 1024

# Planted bugs for the mutation tests. Each one switches off one safety rule; the simulator
# must catch every one of them. Never set in production.
MUTATION_NEW_VIEW_SKIPS_PREPARED = "new_view_skips_prepared_check"
MUTATION_QUORUM_2F = "quorum_2f"
MUTATION_PERSIST_AFTER_SEND = "persist_after_send"
MUTATION_GC_ON_F_PLUS_1 = "gc_on_f_plus_1"
MUTATION_ACCEPT_SECOND_PRE_PREPARE = "accept_second_pre_prepare"
KNOWN_MUTATIONS = frozenset(
    {
        MUTATION_NEW_VIEW_SKIPS_PREPARED,
        MUTATION_QUORUM_2F,
        MUTATION_PERSIST_AFTER_SEND,
        MUTATION_GC_ON_F_PLUS_1,
        MUTATION_ACCEPT_SECOND_PRE_PREPARE,
    }
)


class App(Protocol):
    """What the consensus core needs from the application (the node's ledger)."""

    def validate(self, height: int, payload: bytes) -> bool:
        """The application's verdict on a NEW proposal for `height`.

        Only called after the block at height - 1 was executed (see Replica.executed)."""
        ...

    def digest(self, payload: bytes) -> bytes:
        """The 32-byte block hash of a payload."""
        ...


@dataclass(frozen=True)
class ReplicaConfig:
    chain_id: str
    # Ed25519 public keys; the index in this tuple is the validator id, and
    # leader(view) = validators[view % n].
    validators: tuple[bytes, ...]
    # None for a non-validator: it follows the votes it sees but never signs anything.
    my_index: int | None
    checkpoint_interval: int = 10  # K, in heights
    watermark_window: int = 20  # high watermark = low watermark + window, in heights
    view_timeout_ticks: int = 20  # base view-change timeout; doubles per failed view
    max_view_timeout_ticks: int = 320
    # Used by the node (how long a valid tx may wait while blocks commit without it).
    censorship_timeout_ticks: int = 100
    # How often a replica re-sends its votes for a height that has not committed yet.
    retransmit_interval_ticks: int = 5
    # How often a replica that knows it is behind asks again for the blocks it lacks.
    fetch_retry_ticks: int = 10
    # A liveness shortcut: when the node reports its link to the view's leader down for this
    # many ticks in a row, with no progress for as long, in a view that has run normally as
    # long, the replica votes for a view change without waiting for its view timeout.
    leader_loss_ticks: int = 5
    # Messages for later heights or views kept per sender until they become current,
    # bounded in count and in bytes (one full proposal and its votes fit).
    max_buffered_per_sender: int = 16
    max_buffered_bytes_per_sender: int = DEFAULT_MAX_PAYLOAD_BYTES + BUFFER_SLACK_BYTES
    # Votes for views further ahead than this are dropped, not buffered: an honest replica
    # learns of far views from a NewView (which a quorum backs), and a faulty one must not
    # park messages for view 2**64 - 1 in our memory.
    max_future_views: int = 16
    # Recent commit certificates kept to help lagging replicas catch up.
    certificate_cache_size: int = 32
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    # The epoch this replica runs (docs/CONSENSUS.md "Epochs"): `validators` signs heights
    # from first_height on, up to last_height once the next change is scheduled (None: not
    # yet known; Replica.end_epoch_at sets it). A replica votes on, and judges, no height
    # outside its epoch: another epoch's indexes name other validators.
    epoch: int = 0
    first_height: int = 1
    last_height: int | None = None
    mutations: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        n = len(self.validators)
        if not 1 <= n <= MAX_VALIDATORS:
            raise ValueError(f"need 1 to {MAX_VALIDATORS} validators, got {n}")
        if len(set(self.validators)) != n:
            raise ValueError("validator public keys must be distinct")
        if any(not key for key in self.validators):
            raise ValueError("validator public keys must not be empty")
        if self.my_index is not None and not 0 <= self.my_index < n:
            raise ValueError(f"my_index {self.my_index} is not a validator index (n = {n})")
        _require_positive("checkpoint_interval", self.checkpoint_interval)
        _require_positive("view_timeout_ticks", self.view_timeout_ticks)
        _require_positive("retransmit_interval_ticks", self.retransmit_interval_ticks)
        _require_positive("fetch_retry_ticks", self.fetch_retry_ticks)
        _require_positive("leader_loss_ticks", self.leader_loss_ticks)
        _require_positive("max_buffered_per_sender", self.max_buffered_per_sender)
        _require_positive("certificate_cache_size", self.certificate_cache_size)
        _require_positive("max_payload_bytes", self.max_payload_bytes)
        _require_positive("max_future_views", self.max_future_views)
        _require_positive("first_height", self.first_height)
        if self.epoch < 0:
            raise ValueError("epoch must be >= 0")
        if self.last_height is not None and self.last_height < self.first_height - 1:
            raise ValueError("last_height must be >= first_height - 1")
        if self.max_buffered_bytes_per_sender < self.max_payload_bytes:
            # Else an honest leader's full proposal for the next height could never wait.
            raise ValueError("max_buffered_bytes_per_sender must be >= max_payload_bytes")
        _require_positive("censorship_timeout_ticks", self.censorship_timeout_ticks)
        if self.watermark_window < 2 * self.checkpoint_interval:
            # The next checkpoint after a lost one must stay reachable below the high
            # watermark, or the log fills up before any checkpoint can become stable.
            raise ValueError("watermark_window must be at least 2 * checkpoint_interval")
        if self.max_view_timeout_ticks < self.view_timeout_ticks:
            raise ValueError("max_view_timeout_ticks must be >= view_timeout_ticks")
        unknown = self.mutations - KNOWN_MUTATIONS
        if unknown:
            raise ValueError(f"unknown mutations: {sorted(unknown)}")

    @property
    def n(self) -> int:
        return len(self.validators)

    def leader_of(self, view: int) -> int:
        return view % len(self.validators)


def _require_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
