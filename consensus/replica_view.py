"""The view-change half of the Replica (a mixin, so that no file grows past ~600 lines).

The rules themselves (checking a view change, deciding a new view) are in viewchange.py.
"""

from __future__ import annotations

from consensus.certificates import (
    PHASE_PRE_PREPARE,
    CheckpointProof,
    CommitCertificate,
    PreparedCertificate,
    vote_signing_bytes,
)
from consensus.invariants import InvariantViolation
from consensus.messages import NewView, PrePrepare, ViewChange
from consensus.replica_base import ReplicaBase
from consensus.slot import Slot
from consensus.viewchange import NewViewDecision, reported_height


class ViewChangeMixin(ReplicaBase):
    # ------------------------------------------------------------------------- starting one

    def _on_censorship(self) -> None:
        if self._me is None or not self._normal:
            return
        if self._now - self._normal_since_tick < self._config.censorship_timeout_ticks:
            # Every leader gets a whole censorship timeout before it can be blamed: whatever
            # the node believes, suspicion cannot drive views faster than one per timeout.
            self._count("view_changes.censorship_ignored")
            return
        self._count("view_changes.censorship")
        self._start_view_change(self._view + 1)

    def _leader_lost(self, leader_reachable: bool) -> bool:
        """The view timeout's shortcut for a leader whose link is gone (kill -9 closes its
        sockets at once): vote to leave the view after leader_loss_ticks instead of the whole
        timeout. A view-change vote is always safe (it only costs liveness), so this rests on
        no one's word; what keeps it from driving views: the link must be down that many
        ticks in a row (a flapping link never gets there), with no block delivered or
        executed for as long (a leader that commits through the others is left alone), in a
        view that has run normally as long (a new leader gets time to connect). So it moves
        this replica at most one view per leader_loss_ticks, and alone it only waits in the
        view change: the others follow only when f + 1 ask (_maybe_join_view_change)."""
        if leader_reachable or self._config.leader_of(self._view) == self._me:
            self._leader_down_ticks = 0
            return False
        self._leader_down_ticks += 1
        need = self._config.leader_loss_ticks
        return (
            self._leader_down_ticks >= need
            and self._ticks_since_progress >= need
            and self._now - self._normal_since_tick >= need
        )

    def _start_view_change(self, target: int) -> None:
        """Vote to leave the current view for `target` (the new view and the guard's record
        make the input's output start with a Persist)."""
        if self._me is None or target <= self._view or self.epoch_finished:
            return
        if not self._guard.allows_view_change(target):
            return
        self._view = target
        self._normal = False
        self._failed_views += 1
        self._ticks_in_view_change = 0
        self._leader_down_ticks = 0
        self._new_view_message = None
        self._slot = Slot(max(self._delivered + 1, self._floor), target, self._now)
        own = self._make_view_change(target)
        self._view_changes[self._me] = own
        self._count("view_changes.started")
        self._broadcast(own)
        self._maybe_build_new_view()

    def _make_view_change(self, target: int) -> ViewChange:
        if self._me is None:
            raise InvariantViolation("a non-validator never signs a view change")
        stable, last_commit, prepared = self._view_change_contents()
        payload = self._prepared_payload if prepared is not None else None
        me, epoch = self._me, self._config.epoch
        unsigned = ViewChange(target, stable, last_commit, prepared, payload, me, b"", epoch)
        self._guard.record_view_change(target)
        signature = self._sign(unsigned.signing_bytes(self._config.chain_id))
        return ViewChange(target, stable, last_commit, prepared, payload, me, signature, epoch)

    def _view_change_contents(
        self,
    ) -> tuple[CheckpointProof | None, CommitCertificate | None, PreparedCertificate | None]:
        """What a view change carries, without what belongs to an earlier epoch (those
        certificates name its validators: they never travel in this one)."""
        first = self._config.first_height
        stable = self._checkpoints.stable
        last_commit = self._last_commit
        prepared = self._prepared
        return (
            None if stable is None or stable.height < first else stable,
            None if last_commit is None or last_commit.height < first else last_commit,
            None if prepared is None or prepared.height < first else prepared,
        )

    def _refresh_own_view_change(self) -> None:
        """Re-send this replica's view change, re-signed if what it knows has grown."""
        if self._me is None:
            return
        own = self._view_changes.get(self._me)
        stable, last_commit, prepared = self._view_change_contents()
        stale = (
            own is None
            or own.new_view != self._view
            or own.stable_checkpoint != stable
            or own.last_commit != last_commit
            or own.prepared != prepared
        )
        if stale:
            own = self._make_view_change(self._view)
            self._view_changes[self._me] = own
        if own is not None:
            self._broadcast(own)

    # --------------------------------------------------------------------- receiving them

    def _on_view_change(self, vc: ViewChange) -> None:
        error = self._rules.check(vc, require_payload=True, check_signature=False)
        if error is not None:
            self._report(vc.sender, "bad-view-change", error)
            return
        if vc.last_commit is not None:
            self._learn_from_certificate(vc.last_commit, vc.sender)
        if vc.stable_checkpoint is not None and vc.stable_checkpoint.height > self._delivered:
            proof = vc.stable_checkpoint
            self._learn_committed(proof.height, [index for index, _ in proof.signatures])
        if self._normal and vc.new_view <= self._view:
            self._help(vc.sender, reported_height(vc) + 1, vc.new_view - 1)
            return
        if not self._normal and vc.new_view < self._view:
            self._help(vc.sender, reported_height(vc) + 1, vc.new_view)
            return
        previous = self._view_changes.get(vc.sender)
        if previous is None or vc.new_view >= previous.new_view:
            self._view_changes[vc.sender] = vc
        self._maybe_join_view_change()
        self._maybe_build_new_view()

    def _view_change_support(self, view: int) -> int:
        """How many validators asked to leave view - 1: a view change for a later view asks
        that too (each validator's highest is kept). Counting only `view` itself deadlocked
        a quorum split across two views (found by the simulator with epochs: one validator
        had finished the epoch and left, one honest was a view ahead, two waited below)."""
        return sum(1 for vc in self._view_changes.values() if vc.new_view >= view)

    def _maybe_join_view_change(self) -> None:
        """f + 1 replicas want a view above ours: one of them is honest, so follow."""
        if self._me is None:
            return
        higher = sorted(
            vc.new_view
            for sender, vc in self._view_changes.items()
            if sender != self._me and vc.new_view > self._view
        )
        if len(higher) >= self._f + 1:
            self._count("view_changes.joined")
            self._start_view_change(higher[0])

    # ----------------------------------------------------------------------------- new view

    def _maybe_build_new_view(self) -> None:
        me = self._me
        if me is None or self._normal or self._config.leader_of(self._view) != me:
            return
        if not self._guard.allows_new_view(self._view):
            return
        own = self._view_changes.get(me)
        others = [
            self._view_changes[sender]
            for sender in sorted(self._view_changes)
            if sender != me and self._view_changes[sender].new_view == self._view
        ]
        chosen = ([own] if own is not None and own.new_view == self._view else []) + others
        if len(chosen) < self._quorum:
            return
        chosen = chosen[: self._quorum]
        decision = self._rules.decide(chosen)
        proposal = self._reproposal(decision, chosen)
        if decision.reproposal is not None and proposal is None:
            return
        unsigned = NewView(
            self._view,
            tuple(vc.without_payload() for vc in chosen),
            proposal,
            me,
            b"",
            self._config.epoch,
        )
        self._guard.record_new_view(self._view)
        signature = self._sign(unsigned.signing_bytes(self._config.chain_id))
        message = NewView(
            unsigned.view, unsigned.view_changes, proposal, me, signature, self._config.epoch
        )
        self._count("new_views_sent")
        self._broadcast(message)
        self._enter_view(message, decision)

    def _reproposal(self, decision: NewViewDecision, chosen: list[ViewChange]) -> PrePrepare | None:
        prepared = decision.reproposal
        if prepared is None or self._me is None:
            return None
        payload = None
        for vc in chosen:
            if vc.prepared == prepared and vc.prepared_payload is not None:
                payload = vc.prepared_payload
                break
        if payload is None:
            return None
        signature = self._sign_vote(PHASE_PRE_PREPARE, self._view, prepared.height, prepared.digest)
        if signature is None:
            return None
        last_commit = self._certificates.get(prepared.height - 1)
        return PrePrepare(
            self._view, prepared.height, prepared.digest, payload, last_commit, self._me, signature
        )

    def _on_new_view(self, nv: NewView) -> None:
        if nv.sender != self._config.leader_of(nv.view):
            self._report(nv.sender, "wrong-leader", f"new view {nv.view}")
            return
        if nv.view < self._view or (nv.view == self._view and self._normal):
            self._count("dropped.stale_new_view")
            return
        decision_or_error = self._check_new_view(nv)
        if isinstance(decision_or_error, str):
            self._report(nv.sender, "bad-new-view", decision_or_error)
            return
        self._count("new_views_accepted")
        self._enter_view(nv, decision_or_error)

    def _check_new_view(self, nv: NewView) -> NewViewDecision | str:
        senders = [vc.sender for vc in nv.view_changes]
        if len(set(senders)) != len(senders) or len(senders) < self._quorum:
            return f"needs {self._quorum} view changes from distinct validators"
        for vc in nv.view_changes:
            if vc.new_view != nv.view:
                return f"carries a view change for view {vc.new_view}"
            known = self._view_changes.get(vc.sender)
            if (
                known is not None
                and known.signature == vc.signature
                and known.new_view == vc.new_view
            ):
                continue  # verified when it arrived; the signature covers what decide() reads
            error = self._rules.check(vc, require_payload=False, check_signature=True)
            if error is not None:
                return f"view change from {vc.sender}: {error}"
        decision = self._rules.decide(nv.view_changes)
        proposal = nv.pre_prepare
        expected = decision.reproposal
        if expected is None:
            return "an unexpected re-proposal" if proposal is not None else decision
        if proposal is None:
            return f"misses the re-proposal of height {expected.height}"
        if (
            proposal.view != nv.view
            or proposal.height != expected.height
            or proposal.digest != expected.digest
            or proposal.sender != nv.sender
        ):
            return "re-proposal does not match the prepared certificate"
        key = self._config.validators[nv.sender]
        signing_bytes = vote_signing_bytes(
            self._config.chain_id,
            PHASE_PRE_PREPARE,
            proposal.view,
            proposal.height,
            proposal.digest,
        )
        if not self._rules.verify(key, proposal.signature, signing_bytes):
            return "re-proposal signature invalid"
        if self._rules.digest(proposal.payload) != proposal.digest:
            return "re-proposal payload does not match its digest"
        return decision

    def _enter_view(self, nv: NewView, decision: NewViewDecision) -> None:
        self._view = nv.view
        self._normal = True
        self._floor = decision.floor_height
        self._new_view_message = nv
        self._ticks_since_progress = 0
        self._leader_down_ticks = 0
        self._normal_since_tick = self._now
        for sender in sorted(self._view_changes):
            if self._view_changes[sender].new_view <= nv.view:
                del self._view_changes[sender]
        self._slot = Slot(max(self._delivered + 1, self._floor), nv.view, self._now)
        if self._delivered < decision.committed_height:
            peers = [vc.sender for vc in nv.view_changes if reported_height(vc) > self._delivered]
            self._learn_committed(decision.committed_height, peers)
        proposal = nv.pre_prepare
        if proposal is not None and proposal.height == self._slot.height:
            self._accept_proposal(proposal)
        self._deliver_from_certificates()
        self._replay_future()
