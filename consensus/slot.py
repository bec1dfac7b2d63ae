"""The votes for the one height in flight, in the replica's current view."""

from __future__ import annotations

from consensus.certificates import CommitCertificate, Signatures
from consensus.messages import Commit, Prepare, PrePrepare


class Slot:
    def __init__(self, height: int, view: int, started_tick: int) -> None:
        self.height = height
        self.view = view
        self.started_tick = started_tick
        self.proposal: PrePrepare | None = None  # the proposal this replica accepted
        self.pending: PrePrepare | None = None  # waits until height - 1 is executed
        self.rejected_digest: bytes | None = None  # the app refused this proposal
        self.prepares: dict[int, Prepare] = {}  # sender -> its prepare
        self.commits: dict[int, Commit] = {}  # sender -> its commit
        self.prepared = False
        self.decided: CommitCertificate | None = None

    def prepare_signatures(self, digest: bytes) -> Signatures:
        return tuple(
            (sender, self.prepares[sender].signature)
            for sender in sorted(self.prepares)
            if self.prepares[sender].digest == digest
        )

    def commit_signatures(self, digest: bytes) -> Signatures:
        return tuple(
            (sender, self.commits[sender].signature)
            for sender in sorted(self.commits)
            if self.commits[sender].digest == digest
        )

    def commit_certificate(self, digest: bytes) -> CommitCertificate:
        """The timed certificate of the commits for `digest` (each with its signer's time)."""
        senders = [s for s in sorted(self.commits) if self.commits[s].digest == digest]
        return CommitCertificate(
            self.height,
            self.view,
            digest,
            tuple((s, self.commits[s].signature) for s in senders),
            tuple(self.commits[s].time_ms for s in senders),
        )

    def commit_digests(self) -> list[bytes]:
        """Distinct digests that have commits, in sender order (deterministic)."""
        digests: list[bytes] = []
        for sender in sorted(self.commits):
            digest = self.commits[sender].digest
            if digest not in digests:
                digests.append(digest)
        return digests

    def vote_count(self) -> int:
        return len(self.prepares) + len(self.commits)
