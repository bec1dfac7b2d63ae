"""State and plumbing shared by the parts of the Replica (replica.py, replica_view.py,
replica_sync.py). The parts are mixins of one object; this base declares what they share."""

from __future__ import annotations

from consensus.actions import Action, Broadcast, Misbehaviour, Send
from consensus.certificates import (
    PHASE_COMMIT,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    CommitCertificate,
    PreparedCertificate,
    vote_signing_bytes,
)
from consensus.checkpoints import CheckpointTracker
from consensus.config import DIGEST_BYTES, App, ReplicaConfig, Signer, Verifier
from consensus.guard import SigningGuard
from consensus.invariants import check_replica_state
from consensus.messages import Checkpoint, Message, NewView, PrePrepare, ViewChange
from consensus.persisted import PersistedState
from consensus.slot import Slot
from consensus.viewchange import ViewChangeRules

_MAX_TIMEOUT_DOUBLINGS = 30


class ReplicaBase:
    # Every field is set by Replica.__init__.
    _config: ReplicaConfig
    _app: App
    _sign: Signer
    _verify: Verifier
    _me: int | None
    _n: int
    _f: int
    _quorum: int
    _rules: ViewChangeRules
    _guard: SigningGuard
    _now: int
    _clock_ms: int  # the host's latest clock reading (Replica.clock), signed into commits
    # Chain progress: delivered >= executed; both only grow (checked, invariants.py).
    _executed: int
    _delivered: int
    _delivered_at_tick: int
    _last_commit: CommitCertificate | None
    _certificates: dict[int, CommitCertificate]
    # Set and cleared together, and only above the delivered height (checked).
    _prepared: PreparedCertificate | None
    _prepared_payload: bytes | None
    # View state.
    _view: int
    _normal: bool
    _floor: int
    _view_changes: dict[int, ViewChange]
    _new_view_message: NewView | None
    _failed_views: int
    _ticks_since_progress: int
    _normal_since_tick: int  # when the current view started normal operation
    _ticks_in_view_change: int
    _leader_down_ticks: int  # ticks in a row the node reported the leader's link down
    _slot: Slot
    # Checkpoints and garbage collection.
    _checkpoints: CheckpointTracker
    _gc_height: int
    _own_checkpoint: Checkpoint | None
    # Catching up and buffering.
    _future: dict[int, list[Message]]
    _replaying: bool
    _replay_requested: bool
    _last_help_tick: dict[int, int]
    _fetch_target: int
    _fetch_peers: tuple[int, ...]
    _last_fetch_tick: int
    # The epoch: heights up to _last_height (None until the next change is scheduled).
    _last_height: int | None
    # Output of the input being handled.
    _out: list[Action]
    _durable: PersistedState  # the state last handed out in a Persist (or restored from)
    _checked_fields: tuple[object, ...]  # sync fields whose must_sync(_durable) was False
    _counters: dict[str, int]

    @property
    def epoch(self) -> int:
        """The epoch (validator set) this replica runs."""
        return self._config.epoch

    @property
    def last_height(self) -> int | None:
        return self._last_height

    @property
    def epoch_finished(self) -> bool:
        """Every height of this epoch is delivered: the next epoch's replica takes over."""
        return self._last_height is not None and self._delivered >= self._last_height

    def _check_invariants(self) -> None:
        guard = self._guard
        votes = guard.last_votes
        check_replica_state(
            executed=self._executed,
            delivered=self._delivered,
            floor=self._floor,
            view=self._view,
            slot_height=self._slot.height,
            slot_view=self._slot.view,
            prepared=self._prepared,
            prepared_payload=self._prepared_payload,
            last_votes=(votes[PHASE_PRE_PREPARE], votes[PHASE_PREPARE], votes[PHASE_COMMIT]),
            last_view_change=guard.last_view_change,
            last_new_view=guard.last_new_view,
        )

    def _count(self, name: str, amount: int = 1) -> None:
        self._counters[name] = self._counters.get(name, 0) + amount

    def _report(self, validator: int, kind: str, detail: str) -> None:
        self._count(f"evidence.{kind}")
        self._out.append(Misbehaviour(validator, kind, detail))

    def _broadcast(self, msg: Message) -> None:
        if self._n > 1:
            self._out.append(Broadcast(msg))

    def _send(self, to: int, msg: Message) -> None:
        self._out.append(Send(to, msg))

    def _others(self, peers: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        return tuple(sorted({p for p in peers if p != self._me and 0 <= p < self._n}))

    def _digest(self, payload: bytes) -> bytes:
        digest = self._app.digest(payload)
        if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
            raise TypeError(f"App.digest must return {DIGEST_BYTES} bytes")
        return digest

    def _sign_vote(
        self, phase: str, view: int, height: int, digest: bytes, time_ms: int = 0
    ) -> bytes | None:
        """Sign a vote if the last-signed guard allows it; the record is persisted first (the
        guard's record changed, so the input's output starts with a Persist). A commit vote
        signs time_ms too; the guard judges (phase, view, height, digest) only."""
        if self._me is None or not self._guard.allows_vote(phase, view, height, digest):
            return None
        self._guard.record_vote(phase, view, height, digest)
        return self._sign(
            vote_signing_bytes(self._config.chain_id, phase, view, height, digest, time_ms)
        )

    def _timeout_ticks(self) -> int:
        doublings = min(self._failed_views, _MAX_TIMEOUT_DOUBLINGS)
        base = self._config.view_timeout_ticks << doublings
        return min(base, self._config.max_view_timeout_ticks)

    def _on_progress(self) -> None:
        self._ticks_since_progress = 0
        self._failed_views = 0

    def _highest_certificate(self) -> CommitCertificate | None:
        if not self._certificates:
            return None
        return self._certificates[max(self._certificates)]

    def _remember_certificate(self, certificate: CommitCertificate) -> None:
        self._certificates[certificate.height] = certificate
        while len(self._certificates) > self._config.certificate_cache_size:
            del self._certificates[min(self._certificates)]

    def status(self) -> dict[str, object]:
        slot = self._slot
        stable = self._checkpoints.stable
        return {
            "view": self._view,
            "leader": self._config.leader_of(self._view),
            "epoch": self._config.epoch,
            "epoch_first_height": self._config.first_height,
            "epoch_last_height": self._last_height,
            "mode": "normal" if self._normal else "view-change",
            "next_height": slot.height,
            "delivered_height": self._delivered,
            "executed_height": self._executed,
            "view_floor_height": self._floor,
            "stable_checkpoint": 0 if stable is None else stable.height,
            "low_watermark": self._checkpoints.low,
            "high_watermark": self._checkpoints.high,
            "gc_height": self._gc_height,
            "prepared_height": 0 if self._prepared is None else self._prepared.height,
            "fetch_target": self._fetch_target,
            "timeout_ticks": self._timeout_ticks(),
            "ticks_since_progress": self._ticks_since_progress,
            "failed_views": self._failed_views,
            "quorum": self._quorum,
            "max_faulty": self._f,
            "log": self.log_sizes(),
            "counters": {key: self._counters[key] for key in sorted(self._counters)},
        }

    def log_sizes(self) -> dict[str, int]:
        """How much each message log holds now (status()["log"]; bounded by log_bounds())."""
        return {
            "slot_votes": self._slot.vote_count(),
            "buffered_messages": sum(len(msgs) for msgs in self._future.values()),
            "checkpoint_votes": self._checkpoints.vote_count(),
            "view_changes": len(self._view_changes),
            "certificates": len(self._certificates),
            "help_timers": len(self._last_help_tick),
        }

    def slot_votes(self) -> dict[str, object]:
        """Who has voted for the height in flight in the current view, by phase, and how long
        (in ticks) that slot has been open. Read-only; for diagnostics (`chain doctor`)."""
        slot = self._slot
        return {
            "height": slot.height,
            "view": slot.view,
            "age_ticks": self._now - slot.started_tick,
            "proposal": slot.proposal is not None or slot.pending is not None,
            "prepares": sorted(slot.prepares),
            "commits": sorted(slot.commits),
        }

    def log_bounds(self) -> dict[str, int]:
        """Upper bounds of the log sizes in log_sizes() (the simulator checks them)."""
        n = self._n
        config = self._config
        return {
            "slot_votes": 2 * n,
            "buffered_messages": n * config.max_buffered_per_sender,
            "checkpoint_votes": n * (config.watermark_window // config.checkpoint_interval + 1),
            "view_changes": n,
            "certificates": config.certificate_cache_size,
            "help_timers": n,
        }

    # Implemented by the parts (declared for the type checker).
    def _receive(self, msg: Message, *, verified: bool) -> None:
        raise NotImplementedError

    def _accept_proposal(self, msg: PrePrepare) -> None:
        raise NotImplementedError

    def _try_deliver(self) -> None:
        raise NotImplementedError

    def _help(self, sender: int, height: int, view: int) -> None:
        raise NotImplementedError

    def _replay_future(self) -> None:
        raise NotImplementedError

    def _learn_committed(self, height: int, peers: tuple[int, ...] | list[int]) -> None:
        raise NotImplementedError

    def _all_others(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _emit_fetch(self) -> None:
        raise NotImplementedError

    def _deliver(self, certificate: CommitCertificate, payload: bytes) -> None:
        raise NotImplementedError

    def _payload_for(self, height: int, digest: bytes) -> bytes | None:
        raise NotImplementedError

    def _deliver_from_certificates(self) -> bool:
        raise NotImplementedError

    def _learn_from_certificate(self, certificate: CommitCertificate, source: int) -> bool:
        raise NotImplementedError

    def _learn_from_unknown_epoch(self, msg: Message) -> None:
        raise NotImplementedError
