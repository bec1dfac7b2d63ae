"""The last-signed guard: a replica never signs two conflicting votes, even across restarts.

Rules (checked before every signature, recorded and persisted before the signature leaves;
recording a vote the rules forbid is a bug in the caller: InvariantViolation):
- votes (pre-prepare, prepare, commit) are signed in increasing (view, height) order per phase,
  and at most one digest per (phase, view, height);
- after a view change for view v, no vote for a view below v;
- view changes never go to a lower view; at most one new view per view.
"""

from __future__ import annotations

from consensus.certificates import PHASE_COMMIT, PHASE_PRE_PREPARE, PHASE_PREPARE
from consensus.invariants import InvariantViolation
from consensus.persisted import PersistedState, SignedVote


class SigningGuard:
    def __init__(self, persisted: PersistedState | None, *, allow_second_prepare: bool) -> None:
        # allow_second_prepare is the planted bug "a second pre-prepare for the same view and
        # height accepted": it lets a replica prepare two digests at one (view, height).
        self._allow_second_prepare = allow_second_prepare
        self.last_votes: dict[str, SignedVote | None] = {
            PHASE_PRE_PREPARE: None,
            PHASE_PREPARE: None,
            PHASE_COMMIT: None,
        }
        self.last_view_change = 0
        self.last_new_view = 0
        if persisted is not None:
            self.last_votes[PHASE_PRE_PREPARE] = persisted.last_pre_prepare
            self.last_votes[PHASE_PREPARE] = persisted.last_prepare
            self.last_votes[PHASE_COMMIT] = persisted.last_commit_vote
            self.last_view_change = persisted.last_view_change
            self.last_new_view = persisted.last_new_view

    def allows_vote(self, phase: str, view: int, height: int, digest: bytes) -> bool:
        if view < self.last_view_change:
            return False
        last = self.last_votes[phase]
        if last is None:
            return True
        if (view, height) < (last.view, last.height):
            return False
        if (view, height) == (last.view, last.height) and digest != last.digest:
            return phase == PHASE_PREPARE and self._allow_second_prepare
        return True

    def allows_fresh_proposal(self, view: int, height: int) -> bool:
        """True when a pre-prepare for (view, height) with any digest would be allowed."""
        if view < self.last_view_change:
            return False
        last = self.last_votes[PHASE_PRE_PREPARE]
        return last is None or (view, height) > (last.view, last.height)

    def record_vote(self, phase: str, view: int, height: int, digest: bytes) -> None:
        """Record a vote about to be signed (the replica persists the record first)."""
        if not self.allows_vote(phase, view, height, digest):
            raise InvariantViolation(f"the last-signed guard forbids {phase} {view}/{height}")
        self.last_votes[phase] = SignedVote(view, height, digest)

    def allows_view_change(self, view: int) -> bool:
        return view >= self.last_view_change

    def record_view_change(self, view: int) -> None:
        if not self.allows_view_change(view):
            raise InvariantViolation(f"the last-signed guard forbids a view change to {view}")
        self.last_view_change = view

    def allows_new_view(self, view: int) -> bool:
        return view > self.last_new_view and view >= self.last_view_change

    def record_new_view(self, view: int) -> None:
        if not self.allows_new_view(view):
            raise InvariantViolation(f"the last-signed guard forbids a second new view for {view}")
        self.last_new_view = view
