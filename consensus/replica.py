"""The PBFT replica: a deterministic state machine with no I/O, no clock and no randomness.

Inputs: receive(msg), propose(payload), tick(), executed(height, state_root),
suspect_censorship(). Each returns the actions (actions.py) the caller carries out in order.
docs/CONSENSUS.md describes the protocol; viewchange.py holds the view-change rules.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.actions import (
    Action,
    Deliver,
    Persist,
)
from consensus.certificates import (
    PHASE_COMMIT,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    CommitCertificate,
    PreparedCertificate,
)
from consensus.checkpoints import CheckpointTracker, last_checkpoint_height
from consensus.config import (
    DIGEST_BYTES,
    MUTATION_ACCEPT_SECOND_PRE_PREPARE,
    MUTATION_NEW_VIEW_SKIPS_PREPARED,
    MUTATION_PERSIST_AFTER_SEND,
    MUTATION_QUORUM_2F,
    App,
    ReplicaConfig,
    Signer,
    Verifier,
)
from consensus.guard import SigningGuard
from consensus.invariants import InvariantViolation
from consensus.messages import (
    MESSAGE_TYPES,
    Checkpoint,
    Commit,
    CommitNotice,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
)
from consensus.persisted import PersistedState
from consensus.quorum import max_faulty, quorum_size
from consensus.replica_sync import CatchUpMixin
from consensus.replica_view import ViewChangeMixin
from consensus.screen import ScreenMixin
from consensus.slot import Slot
from consensus.viewchange import ViewChangeRules

# The counter each received message type bumps (a lookup, not a format, per message).
RECEIVED_COUNTERS: dict[type, str] = {kind: f"received.{kind.__name__}" for kind in MESSAGE_TYPES}


class Replica(ViewChangeMixin, CatchUpMixin, ScreenMixin):
    def __init__(
        self,
        config: ReplicaConfig,
        app: App,
        sign: Signer,
        verify: Verifier,
        *,
        committed_height: int,
        committed_state_root: bytes,
        persisted: PersistedState | None,
        committed_certificate: CommitCertificate | None = None,
        checkpoint_state_root: bytes | None = None,
    ) -> None:
        """Rebuild a replica after a (re)start.

        committed_height: the last height the node executed and stored (0: genesis only).
        persisted: the last PersistedState the node made durable (None on first start).
        committed_certificate: the stored certificate of block committed_height. Pass it:
        without it this replica cannot prove its height to others after a restart.
        checkpoint_state_root: the state root after the last checkpoint height at or below
        committed_height, when that height is below committed_height. Pass it: the stable
        checkpoint is not forced to disk, so a restart can find it behind a checkpoint the
        node already executed, and without our vote for it the watermarks may never move."""
        if committed_height < 0:
            raise ValueError("committed_height must be >= 0")
        if len(committed_state_root) != DIGEST_BYTES:
            raise ValueError(f"committed_state_root must be {DIGEST_BYTES} bytes")
        self._config = config
        self._app = app
        self._sign = sign
        self._verify = verify
        self._n = config.n
        self._f = max_faulty(self._n)
        self._quorum = quorum_size(self._n)
        if MUTATION_QUORUM_2F in config.mutations:
            self._quorum = max(1, 2 * self._f)
        self._me = config.my_index
        self._rules = ViewChangeRules(
            chain_id=config.chain_id,
            validators=config.validators,
            verify=verify,
            quorum=self._quorum,
            checkpoint_interval=config.checkpoint_interval,
            digest=self._digest,
            skip_prepared=MUTATION_NEW_VIEW_SKIPS_PREPARED in config.mutations,
            epoch=config.epoch,
            first_height=config.first_height,
        )
        self._last_height = config.last_height
        self._now = 0
        self._clock_ms = 0  # the host's clock, given by clock(); signed into commit votes
        self._executed = committed_height
        self._delivered = committed_height
        self._delivered_at_tick = 0
        self._certificates: dict[int, CommitCertificate] = {}  # height -> certificate
        self._counters: dict[str, int] = {}
        self._out: list[Action] = []
        self._future: dict[int, list[Message]] = {}  # sender -> messages for later
        self._replaying = False
        self._replay_requested = False
        self._last_help_tick: dict[int, int] = {}
        self._fetch_target = 0
        self._fetch_peers: tuple[int, ...] = ()
        self._last_fetch_tick = -config.fetch_retry_ticks
        self._ticks_since_progress = 0
        self._normal_since_tick = 0
        self._ticks_in_view_change = 0
        self._leader_down_ticks = 0
        self._failed_views = 0
        self._view_changes: dict[int, ViewChange] = {}  # sender -> its highest view change
        self._new_view_message: NewView | None = None
        self._own_checkpoint: Checkpoint | None = None
        self._guard = SigningGuard(
            persisted,
            allow_second_prepare=MUTATION_ACCEPT_SECOND_PRE_PREPARE in config.mutations,
        )
        self._restore(persisted)
        if committed_certificate is not None:
            if committed_certificate.height != committed_height:
                raise ValueError("committed_certificate is not for committed_height")
            self._remember_certificate(committed_certificate)
            last = self._last_commit
            if last is None or last.height < committed_height:
                self._last_commit = committed_certificate
        self._resign_checkpoint(committed_height, committed_state_root, checkpoint_state_root)
        self._slot = Slot(max(self._delivered + 1, self._floor), self._view, self._now)
        self._durable = self._snapshot()  # equal to `persisted` in every field must_sync reads
        self._checked_fields = self._durable.sync_fields()
        self._checked_state: tuple[object, ...] = ()  # what _check_invariants last passed
        self._checked_payload: bytes | None = None
        self._check_invariants()

    def _resign_checkpoint(
        self, committed_height: int, committed_root: bytes, checkpoint_root: bytes | None
    ) -> None:
        """Our checkpoint votes died with the process; a stable checkpoint may need ours.

        Signs again the last checkpoint height we executed, when it is above the stable one,
        and takes it as stable when our vote completes a quorum (a lone validator's does):
        else a restart after that height stalls at the high watermark, since peers resend
        only checkpoints they still lack a quorum for."""
        height = last_checkpoint_height(committed_height, self._config.checkpoint_interval)
        if height <= self._checkpoints.low or height <= 0:
            return
        root = committed_root if height == committed_height else checkpoint_root
        if root is None:
            return
        if len(root) != DIGEST_BYTES:
            raise ValueError(f"checkpoint_state_root must be {DIGEST_BYTES} bytes")
        self._own_checkpoint = self._sign_checkpoint(height, root)
        self._check_stable(height)

    def _restore(self, persisted: PersistedState | None) -> None:
        self._view = 0
        self._normal = True
        self._floor = 1
        self._last_commit: CommitCertificate | None = None
        self._prepared: PreparedCertificate | None = None
        self._prepared_payload: bytes | None = None
        floor = self._config.first_height - 1
        self._checkpoints = CheckpointTracker(self._config.watermark_window, None, floor)
        self._gc_height = 0
        if persisted is None:
            return
        if persisted.epoch != self._config.epoch:
            raise ValueError(
                f"persisted state of epoch {persisted.epoch} for a replica of epoch "
                f"{self._config.epoch}: carry it over with for_next_epoch"
            )
        self._view = persisted.view
        self._normal = not persisted.in_view_change
        self._floor = persisted.view_floor_height
        self._checkpoints = CheckpointTracker(
            self._config.watermark_window, persisted.stable_checkpoint, floor
        )
        self._gc_height = self._checkpoints.low
        commit = persisted.last_commit
        if commit is not None:
            self._last_commit = commit
            self._certificates[commit.height] = commit
            if commit.height > self._delivered:
                # Decided before the crash but not executed: fetch it (learned from a valid
                # commit certificate, our own).
                self._fetch_target = commit.height
                self._fetch_peers = self._others(commit.signers())
        prepared = persisted.prepared
        if prepared is not None and prepared.height > self._delivered:
            self._prepared = prepared
            self._prepared_payload = persisted.prepared_payload
        if not self._normal and self._me is not None:
            self._view_changes[self._me] = self._make_view_change(self._view)

    # ------------------------------------------------------------------------ public interface

    def clock(self, now_ms: int) -> None:
        """The host's clock reading (ms since 1970), given before an input: the replica reads
        no clock itself, and signs the latest reading into the commit votes it makes."""
        if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
            raise ValueError("now_ms must be a non-negative integer")
        self._clock_ms = now_ms

    def tick(self, *, leader_reachable: bool = True) -> list[Action]:
        """One tick. leader_reachable: False when the node's link to the leader of the
        current view is down (a liveness hint only: see _leader_lost)."""
        return self._run(lambda: self._on_tick(leader_reachable))

    def receive(self, msg: Message) -> list[Action]:
        """Handle one message from the network. Never raises on bad remote input."""
        return self._run(self._receive, msg)

    def propose(self, payload: bytes) -> list[Action]:
        if not self.can_propose:
            raise RuntimeError("propose() called while can_propose is False")
        if len(payload) > self._config.max_payload_bytes:
            raise ValueError(f"payload of {len(payload)} bytes exceeds max_payload_bytes")
        return self._run(lambda: self._propose(payload))

    def executed(
        self, height: int, state_root: bytes, certificate: CommitCertificate | None = None
    ) -> list[Action]:
        """The node executed and stored block `height` (delivered by this replica, or fetched
        by block sync). Pass the block's certificate for fetched blocks: it lets this replica
        prove its height in view changes and help others catch up."""
        return self._run(lambda: self._on_executed(height, state_root, certificate))

    def suspect_censorship(self) -> list[Action]:
        return self._run(self._on_censorship)

    def end_epoch_at(self, last_height: int) -> list[Action]:
        """The next validator set signs from last_height + 1: this replica's epoch ends at
        last_height (the node learns it two blocks ahead, from state). It proposes, votes
        and judges nothing above it; once it has delivered last_height the node replaces
        it with the next epoch's replica."""
        if last_height < self._delivered or last_height < self._config.first_height - 1:
            raise ValueError(f"the epoch cannot end at {last_height}: {self._delivered} delivered")
        if self._last_height is not None and last_height != self._last_height:
            raise ValueError(f"the epoch already ends at {self._last_height}")
        self._last_height = last_height
        return []

    @property
    def can_propose(self) -> bool:
        slot = self._slot
        return (
            self._me is not None
            and self._normal
            and self._config.leader_of(self._view) == self._me
            and slot.view == self._view
            and slot.proposal is None
            and slot.pending is None
            and slot.decided is None
            and slot.height == self._delivered + 1
            and self._executed == self._delivered
            and slot.height <= self._checkpoints.high
            and (self._last_height is None or slot.height <= self._last_height)
            and self._guard.allows_fresh_proposal(self._view, slot.height)
        )

    @property
    def view(self) -> int:
        return self._view

    def persisted_state(self) -> PersistedState:
        """What this replica would persist now (the next epoch's replica starts from it)."""
        return self._snapshot()

    @property
    def normal_for_ticks(self) -> int:
        """How long the current view has run normally (0 while a view change is on)."""
        return self._now - self._normal_since_tick if self._normal else 0

    @property
    def leader(self) -> int:
        return self._config.leader_of(self._view)

    @property
    def next_height(self) -> int:
        return self._slot.height

    @property
    def delivered_height(self) -> int:
        return self._delivered

    @property
    def executed_height(self) -> int:
        return self._executed

    @property
    def quorum(self) -> int:
        return self._quorum

    # ------------------------------------------------------------------------------- plumbing

    def _run(self, handler: Callable[..., None], *args: object) -> list[Action]:
        self._out = []
        handler(*args)
        actions = self._out
        self._out = []
        fields = self._sync_fields()
        if fields != self._checked_fields:
            # must_sync reads only these fields, and _durable changes only here: for fields
            # equal to the last checked ones its answer is known to be False.
            self._checked_fields = fields
            state = self._snapshot()
            if state.must_sync(self._durable):
                # Durable before any action of this list: every signature in it depends on it.
                self._durable = state
                persist = Persist(state)
                if MUTATION_PERSIST_AFTER_SEND in self._config.mutations:
                    actions.append(persist)  # the planted bug: the votes leave first
                else:
                    actions.insert(0, persist)
        slot = self._slot
        # Every input of check_replica_state: the check is a pure function of them, so for
        # the inputs it last passed it passes again (most messages change none of them).
        inputs = (fields, self._executed, self._delivered, slot.height, slot.view)
        if inputs != self._checked_state or self._prepared_payload is not self._checked_payload:
            self._check_invariants()
            self._checked_state = inputs
            self._checked_payload = self._prepared_payload
        return actions

    def _sync_fields(self) -> tuple[object, ...]:
        """The live values of PersistedState.sync_fields, in its order, without a snapshot."""
        votes = self._guard.last_votes
        return (
            self._view,
            not self._normal,
            self._floor,
            votes[PHASE_PRE_PREPARE],
            votes[PHASE_PREPARE],
            votes[PHASE_COMMIT],
            self._guard.last_view_change,
            self._guard.last_new_view,
            self._prepared,
        )

    def _snapshot(self) -> PersistedState:
        return PersistedState(
            view=self._view,
            in_view_change=not self._normal,
            view_floor_height=self._floor,
            last_commit=self._last_commit,
            prepared=self._prepared,
            prepared_payload=self._prepared_payload,
            stable_checkpoint=self._checkpoints.stable,
            last_pre_prepare=self._guard.last_votes[PHASE_PRE_PREPARE],
            last_prepare=self._guard.last_votes[PHASE_PREPARE],
            last_commit_vote=self._guard.last_votes[PHASE_COMMIT],
            last_view_change=self._guard.last_view_change,
            last_new_view=self._guard.last_new_view,
            epoch=self._config.epoch,
        )

    # ---------------------------------------------------------------------------------- ticks

    def _on_tick(self, leader_reachable: bool = True) -> None:
        self._now += 1
        if self._me is not None and not self.epoch_finished:
            if self._normal:
                self._ticks_since_progress += 1
                if self._leader_lost(leader_reachable):
                    self._count("view_changes.leader_lost")
                    self._start_view_change(self._view + 1)
                    return
                if self._ticks_since_progress >= self._timeout_ticks():
                    self._count("view_changes.timeout")
                    self._start_view_change(self._view + 1)
                    return
            else:
                self._ticks_in_view_change += 1
                if (
                    self._ticks_in_view_change >= self._timeout_ticks()
                    and self._view_change_support(self._view) >= self._quorum
                ):
                    self._count("view_changes.escalated")
                    self._start_view_change(self._view + 1)
                    return
            self._maybe_retransmit()
        if (
            self._delivered < self._fetch_target
            and self._now - self._last_fetch_tick >= self._config.fetch_retry_ticks
        ):
            self._fetch_peers = self._all_others()  # the hinted holders did not deliver
            self._emit_fetch()

    def _maybe_retransmit(self) -> None:
        interval = self._config.retransmit_interval_ticks
        if self._normal:
            slot = self._slot
            elapsed = self._now - slot.started_tick
            if elapsed <= 0 or elapsed % interval != 0 or slot.decided is not None:
                return
            self._count("retransmissions")
            me = self._me
            if slot.proposal is not None and slot.proposal.sender == me:
                self._broadcast(slot.proposal)
            for votes in (slot.prepares, slot.commits):
                mine = votes.get(me) if me is not None else None
                if mine is not None:
                    self._broadcast(mine)
            self._retransmit_checkpoint()
        elif self._ticks_in_view_change % interval == 0:
            self._count("retransmissions")
            self._refresh_own_view_change()
            self._retransmit_checkpoint()

    # ----------------------------------------------------------------------- message dispatch

    def _receive(self, msg: Message, *, verified: bool = False) -> None:
        if not isinstance(msg, MESSAGE_TYPES):
            self._count("dropped.not_a_message")
            return
        if not self._for_this_epoch(msg):
            return
        sender = msg.sender
        if not 0 <= sender < self._n:
            self._report(sender, "non-validator", f"{type(msg).__name__} from index {sender}")
            return
        if sender == self._me:
            self._count("dropped.own_message")
            return
        if not verified:
            key = self._config.validators[sender]
            if not self._verify(key, msg.signature, msg.signing_bytes(self._config.chain_id)):
                self._report(sender, "bad-signature", f"{type(msg).__name__} signature invalid")
                return
        kind = type(msg)
        self._count(RECEIVED_COUNTERS.get(kind) or f"received.{kind.__name__}")
        if isinstance(msg, PrePrepare):
            self._on_pre_prepare(msg)
        elif isinstance(msg, Prepare):
            self._on_prepare(msg)
        elif isinstance(msg, Commit):
            self._on_commit(msg)
        elif isinstance(msg, Checkpoint):
            self._on_checkpoint(msg)
        elif isinstance(msg, ViewChange):
            self._on_view_change(msg)
        elif isinstance(msg, NewView):
            self._on_new_view(msg)
        else:
            self._on_commit_notice(msg)

    def _for_this_epoch(self, msg: Message) -> bool:
        """Another epoch's messages are no evidence of anything: its indexes name other
        validators. Dropped (counted) before their signatures are even looked at."""
        if isinstance(msg, ViewChange | NewView):
            if msg.epoch != self._config.epoch:
                self._count("dropped.other_epoch")
                return False
            return True
        height = msg.certificate.height if isinstance(msg, CommitNotice) else msg.height
        if height < self._config.first_height:
            self._count("dropped.earlier_epoch")
            return False
        if self._last_height is not None and height > self._last_height:
            self._count("dropped.next_epoch")
            return False
        if not self._epoch_known(height):
            self._count("dropped.epoch_unknown")
            self._learn_from_unknown_epoch(msg)
            return False
        return True

    def _epoch_known(self, height: int) -> bool:
        """True when this replica knows that `height` is in its epoch. The set that signs a
        height is fixed by the chain up to two blocks before it, and the node calls
        end_epoch_at once the block that schedules a change is executed: so heights up to
        executed + 2 are this epoch's unless told otherwise. Beyond, a change this node has
        not executed yet may have put another set there, whose indexes name other
        validators: such a message is judged by nobody (no vote counted, no evidence)."""
        return self._last_height is not None or height <= self._executed + 2

    def _is_current(self, msg: PrePrepare | Prepare | Commit) -> bool:
        """True when msg is for the slot; buffers future messages and helps stale senders."""
        if msg.view < self._view:
            self._count("dropped.stale_view")
            self._help(msg.sender, msg.height, msg.view)
            return False
        if msg.view > self._view + self._config.max_future_views:
            self._count("dropped.far_future_view")
            return False
        if msg.view > self._view or not self._normal:
            self._buffer(msg)
            return False
        if msg.height < self._slot.height:
            self._count("dropped.stale_height")
            self._help(msg.sender, msg.height, msg.view)
            return False
        if msg.height > self._checkpoints.high and msg.height > self._delivered + 1:
            self._count("dropped.above_high_watermark")
            return False
        if msg.height > self._slot.height:
            self._buffer(msg)
            return False
        return True

    # ---------------------------------------------------------------------------- normal case

    def _propose(self, payload: bytes) -> None:
        digest = self._digest(payload)
        height = self._slot.height
        signature = self._sign_vote(PHASE_PRE_PREPARE, self._view, height, digest)
        if signature is None or self._me is None:
            raise InvariantViolation("the last-signed guard refused a proposal can_propose allowed")
        last_commit = self._certificates.get(height - 1)
        proposal = PrePrepare(self._view, height, digest, payload, last_commit, self._me, signature)
        self._count("proposed")
        self._broadcast(proposal)
        self._accept_proposal(proposal)

    def _on_pre_prepare(self, msg: PrePrepare) -> None:
        if msg.sender != self._config.leader_of(msg.view):
            self._report(msg.sender, "wrong-leader", f"pre-prepare for view {msg.view}")
            return
        last_commit = msg.last_commit
        if (
            last_commit is not None
            and last_commit.height >= self._slot.height
            and not self._learn_from_certificate(last_commit, msg.sender)
        ):
            return
        if not self._is_current(msg):
            return
        slot = self._slot
        if self._digest(msg.payload) != msg.digest:
            self._report(msg.sender, "bad-digest", f"pre-prepare {msg.view}/{msg.height}")
            return
        existing = slot.proposal or slot.pending
        if existing is not None:
            if existing.digest == msg.digest:
                self._count("dropped.duplicate")
                return
            self._report(msg.sender, "equivocation", f"two pre-prepares {msg.view}/{msg.height}")
            if MUTATION_ACCEPT_SECOND_PRE_PREPARE not in self._config.mutations:
                return
        if slot.rejected_digest == msg.digest:
            return
        if self._executed < msg.height - 1:
            slot.pending = msg  # validated once height - 1 is executed
            return
        self._consider_proposal(msg)

    def _consider_proposal(self, msg: PrePrepare) -> None:
        if not self._app.validate(msg.height, msg.payload):
            self._slot.rejected_digest = msg.digest
            self._report(msg.sender, "invalid-proposal", f"block {msg.height} refused by the app")
            return
        self._accept_proposal(msg)

    def _accept_proposal(self, msg: PrePrepare) -> None:
        """Take `msg` as the slot's proposal and prepare it (validated or carried by a new
        view's prepared certificate)."""
        slot = self._slot
        slot.pending = None
        if self._me is not None:
            signature = self._sign_vote(PHASE_PREPARE, msg.view, msg.height, msg.digest)
            if signature is None:
                self._report(
                    msg.sender, "equivocation", f"conflicts with a signed prepare {msg.height}"
                )
                return
            slot.proposal = msg
            prepare = Prepare(msg.view, msg.height, msg.digest, self._me, signature)
            slot.prepares[self._me] = prepare
            self._broadcast(prepare)
        else:
            slot.proposal = msg
        self._check_prepared()

    def _on_prepare(self, msg: Prepare) -> None:
        if not self._is_current(msg):
            return
        slot = self._slot
        previous = slot.prepares.get(msg.sender)
        if previous is not None:
            if previous.digest != msg.digest:
                self._report(msg.sender, "equivocation", f"two prepares {msg.view}/{msg.height}")
            return
        slot.prepares[msg.sender] = msg
        self._check_prepared()

    def _on_commit(self, msg: Commit) -> None:
        if not self._is_current(msg):
            return
        slot = self._slot
        previous = slot.commits.get(msg.sender)
        if previous is not None:
            if previous.digest != msg.digest:
                self._report(msg.sender, "equivocation", f"two commits {msg.view}/{msg.height}")
            return
        slot.commits[msg.sender] = msg
        self._check_committed()

    def _check_prepared(self) -> None:
        slot = self._slot
        proposal = slot.proposal
        if proposal is None or slot.prepared or len(slot.prepares) < self._quorum:
            return
        signatures = slot.prepare_signatures(proposal.digest)
        if len(signatures) < self._quorum:
            return
        slot.prepared = True
        if self._me is not None:
            self._prepared = PreparedCertificate(
                slot.height, slot.view, proposal.digest, signatures
            )
            self._prepared_payload = proposal.payload
            # _run persists the new prepared certificate before the commit leaves.
            time_ms = self._clock_ms
            signature = self._sign_vote(
                PHASE_COMMIT, slot.view, slot.height, proposal.digest, time_ms
            )
            if signature is not None:
                commit = Commit(
                    slot.view, slot.height, proposal.digest, self._me, signature, time_ms
                )
                slot.commits[self._me] = commit
                self._broadcast(commit)
        self._check_committed()

    def _check_committed(self) -> None:
        slot = self._slot
        if slot.decided is not None or len(slot.commits) < self._quorum:
            return
        for digest in slot.commit_digests():
            signatures = slot.commit_signatures(digest)
            if len(signatures) >= self._quorum:
                certificate = slot.commit_certificate(digest)
                self._remember_certificate(certificate)
                slot.decided = certificate
                self._try_deliver()
                return

    def _payload_for(self, height: int, digest: bytes) -> bytes | None:
        slot = self._slot
        for proposal in (slot.proposal, slot.pending):
            if proposal is not None and proposal.height == height and proposal.digest == digest:
                return proposal.payload
        prepared = self._prepared
        if prepared is not None and prepared.height == height and prepared.digest == digest:
            return self._prepared_payload
        return None

    def _try_deliver(self) -> None:
        slot = self._slot
        certificate = slot.decided
        if certificate is None:
            return
        if self._delivered < slot.height - 1:
            self._learn_committed(slot.height, certificate.signers())
            return
        payload = self._payload_for(certificate.height, certificate.digest)
        if payload is None:
            self._learn_committed(slot.height, certificate.signers())
            return
        self._deliver(certificate, payload)

    def _deliver(self, certificate: CommitCertificate, payload: bytes) -> None:
        if certificate.height != self._delivered + 1:
            raise InvariantViolation("deliveries must be in height order")
        self._out.append(Deliver(certificate.height, payload, certificate))
        self._count("delivered")
        self._delivered = certificate.height
        self._delivered_at_tick = self._now
        self._last_commit = certificate
        self._on_progress()
        if self._prepared is not None and self._prepared.height <= self._delivered:
            self._prepared = None
            self._prepared_payload = None
        self._reset_slot()

    def _reset_slot(self) -> None:
        height = max(self._delivered + 1, self._floor)
        slot = self._slot
        if slot.height == height and slot.view == self._view:
            return
        self._slot = Slot(height, self._view, self._now)
        self._replay_future()

    def _on_executed(
        self, height: int, state_root: bytes, certificate: CommitCertificate | None
    ) -> None:
        if height <= self._executed:
            return
        if height != self._executed + 1:
            raise ValueError(f"executed({height}) after {self._executed}: heights must be in order")
        if self._last_height is not None and height > self._last_height:
            raise ValueError(f"executed({height}) beyond this epoch's last height")
        if len(state_root) != DIGEST_BYTES:
            raise ValueError(f"state_root must be {DIGEST_BYTES} bytes")
        if certificate is not None:
            if certificate.height != height:
                raise ValueError("the certificate passed to executed() is for another height")
            self._remember_certificate(certificate)
        self._executed = height
        if height > self._delivered:
            self._count("fetched")
            self._delivered = height
            self._delivered_at_tick = self._now
            self._on_progress()
            if certificate is not None:
                self._last_commit = certificate
            if self._prepared is not None and self._prepared.height <= height:
                self._prepared = None
                self._prepared_payload = None
        if height % self._config.checkpoint_interval == 0:
            self._send_checkpoint(height, state_root)
        self._reset_slot()
        slot = self._slot
        pending = slot.pending
        if pending is not None and self._normal and self._executed == slot.height - 1:
            slot.pending = None
            self._consider_proposal(pending)
        self._try_deliver()
        self._deliver_from_certificates()
