"""Checkpoint votes, the stable checkpoint (low watermark) and the high watermark."""

from __future__ import annotations

from consensus.certificates import CheckpointProof
from consensus.messages import Checkpoint

ADDED = "added"
OLD = "old"
DUPLICATE = "duplicate"
EQUIVOCATION = "equivocation"


class CheckpointTracker:
    def __init__(self, window: int, stable: CheckpointProof | None, floor: int = 0) -> None:
        """floor: the low watermark while no checkpoint of this epoch is stable (the height
        before the epoch's first), so that a later epoch's heights are not above the high
        watermark from the start."""
        self._window = window
        self.stable = stable
        self._floor = floor
        # height -> sender -> vote, only for heights inside (low, high].
        self._votes: dict[int, dict[int, Checkpoint]] = {}
        # sender -> its highest vote above the high watermark: how a replica that fell far
        # behind learns it from f + 1 matching checkpoints.
        self._ahead: dict[int, Checkpoint] = {}

    @property
    def low(self) -> int:
        return self._floor if self.stable is None else max(self._floor, self.stable.height)

    @property
    def high(self) -> int:
        return self.low + self._window

    def add(self, vote: Checkpoint) -> str:
        if vote.height <= self.low:
            return OLD
        if vote.height > self.high:
            previous = self._ahead.get(vote.sender)
            if previous is not None and previous.height >= vote.height:
                return OLD
            self._ahead[vote.sender] = vote
            return ADDED
        votes = self._votes.setdefault(vote.height, {})
        previous = votes.get(vote.sender)
        if previous is not None:
            return DUPLICATE if previous.state_root == vote.state_root else EQUIVOCATION
        votes[vote.sender] = vote
        return ADDED

    def matching(self, height: int, state_root: bytes) -> list[Checkpoint]:
        """Votes for (height, state_root), sorted by sender."""
        found: dict[int, Checkpoint] = {}
        for sender, vote in self._votes.get(height, {}).items():
            if vote.state_root == state_root:
                found[sender] = vote
        for sender, vote in self._ahead.items():
            if vote.height == height and vote.state_root == state_root:
                found[sender] = vote
        return [found[sender] for sender in sorted(found)]

    def proof_with(self, height: int, needed: int) -> CheckpointProof | None:
        """A proof for `height` from `needed` matching votes, if there are that many."""
        for root in self._roots_at(height):
            votes = self.matching(height, root)
            if len(votes) >= needed:
                signatures = tuple((vote.sender, vote.signature) for vote in votes)
                return CheckpointProof(height, root, signatures)
        return None

    def highest_supported(self, above: int, needed: int) -> tuple[int, list[int]] | None:
        """The highest height above `above` with `needed` matching votes, and their senders."""
        heights = sorted(
            {height for height in self._votes if height > above}
            | {vote.height for vote in self._ahead.values() if vote.height > above},
            reverse=True,
        )
        for height in heights:
            for root in self._roots_at(height):
                votes = self.matching(height, root)
                if len(votes) >= needed:
                    return height, [vote.sender for vote in votes]
        return None

    def advance(self, proof: CheckpointProof) -> None:
        """Make `proof` the stable checkpoint and drop every vote at or below it."""
        if proof.height <= self.low:
            return
        self.stable = proof
        for height in sorted(self._votes):
            if height <= proof.height:
                del self._votes[height]
        for sender in sorted(self._ahead):
            vote = self._ahead[sender]
            if vote.height <= proof.height:
                del self._ahead[sender]
            elif vote.height <= self.high:
                del self._ahead[sender]
                self._votes.setdefault(vote.height, {})[sender] = vote

    def vote_count(self) -> int:
        return sum(len(votes) for votes in self._votes.values()) + len(self._ahead)

    def _roots_at(self, height: int) -> list[bytes]:
        roots: list[bytes] = []
        votes = self._votes.get(height, {})
        for sender in sorted(votes):
            if votes[sender].state_root not in roots:
                roots.append(votes[sender].state_root)
        for sender in sorted(self._ahead):
            vote = self._ahead[sender]
            if vote.height == height and vote.state_root not in roots:
                roots.append(vote.state_root)
        return roots


def last_checkpoint_height(height: int, interval: int) -> int:
    """The highest checkpoint height at or below `height` (0: none yet)."""
    if interval <= 0:
        raise ValueError("the checkpoint interval must be positive")
    return height - height % interval
