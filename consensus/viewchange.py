"""Pure rules of the view change: checking view-change messages and deciding a new view.

With one block in flight, a view change only needs what lies above the sender's stable
checkpoint: its last commit certificate and its highest prepared certificate. From a quorum of
view changes the new leader computes
  committed = the highest height any of them proves final (stable checkpoint, commit
              certificate, or prepared height - 1: an honest replica prepares h only after
              h - 1 was executed), and
  reproposal = the prepared certificate at committed + 1 with the highest view, if any.
The new view's proposals start at committed + 1, and when a reproposal exists the block at
committed + 1 is exactly that block: a block prepared in an old view is never replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consensus.certificates import (
    CertificateError,
    PreparedCertificate,
    verify_certificate,
    verify_checkpoint_proof,
    verify_prepared,
)
from consensus.config import Verifier
from consensus.messages import ViewChange


@dataclass(frozen=True, slots=True)
class NewViewDecision:
    committed_height: int  # heights up to here are final; the new view starts above
    reproposal: PreparedCertificate | None  # must be re-proposed at committed_height + 1

    @property
    def floor_height(self) -> int:
        return self.committed_height + 1


@dataclass(frozen=True, slots=True)
class ViewChangeRules:
    chain_id: str
    validators: tuple[bytes, ...]
    verify: Verifier
    quorum: int
    checkpoint_interval: int
    digest: Callable[[bytes], bytes]
    skip_prepared: bool  # planted bug: new view ignores prepared certificates
    epoch: int = 0
    first_height: int = 1

    def check(self, vc: ViewChange, *, require_payload: bool, check_signature: bool) -> str | None:
        """None when `vc` is well formed and every certificate in it holds; else the reason."""
        if vc.new_view == 0:
            return "a view change to view 0"
        if vc.epoch != self.epoch:
            return f"a view change of epoch {vc.epoch}, this is epoch {self.epoch}"
        for cert in (vc.stable_checkpoint, vc.last_commit, vc.prepared):
            if cert is not None and cert.height < self.first_height:
                return f"a certificate of height {cert.height}, before this epoch"
        if vc.sender >= len(self.validators):
            return f"sender {vc.sender} is not a validator"
        if check_signature and not self.verify(
            self.validators[vc.sender], vc.signature, vc.signing_bytes(self.chain_id)
        ):
            return "bad signature"
        try:
            return self._check_certificates(vc, require_payload)
        except CertificateError as error:
            return error.reason

    def _check_certificates(self, vc: ViewChange, require_payload: bool) -> str | None:
        stable = vc.stable_checkpoint
        if stable is not None:
            if stable.height == 0 or stable.height % self.checkpoint_interval != 0:
                return f"stable checkpoint at height {stable.height} is not a checkpoint height"
            verify_checkpoint_proof(
                stable, self.chain_id, self.validators, self.verify, self.quorum
            )
        commit = vc.last_commit
        if commit is not None:
            # A replica waiting for view v may learn of a commit made in view v (or later)
            # by the others: the certificate proves a height final whatever its view.
            verify_certificate(
                commit, self.chain_id, self.validators, self.verify, quorum=self.quorum
            )
        prepared = vc.prepared
        if prepared is None:
            if vc.prepared_payload is not None:
                return "a payload without a prepared certificate"
            return None
        if prepared.view >= vc.new_view:
            return "prepared certificate from a view not below the new view"
        if prepared.height == 0:
            return "prepared certificate at height 0"
        verify_prepared(prepared, self.chain_id, self.validators, self.verify, self.quorum)
        payload = vc.prepared_payload
        if payload is None:
            return "prepared certificate without its payload" if require_payload else None
        if self.digest(payload) != prepared.digest:
            return "payload does not match the prepared digest"
        return None

    def decide(self, view_changes: Sequence[ViewChange]) -> NewViewDecision:
        committed = max((reported_height(vc) for vc in view_changes), default=0)
        if self.skip_prepared:
            return NewViewDecision(committed, None)
        best: PreparedCertificate | None = None
        for vc in view_changes:
            prepared = vc.prepared
            if prepared is None or prepared.height != committed + 1:
                continue
            if best is None or (prepared.view, prepared.digest) > (best.view, best.digest):
                best = prepared
        return NewViewDecision(committed, best)


def reported_height(vc: ViewChange) -> int:
    """The highest height a view change proves final."""
    height = 0
    if vc.stable_checkpoint is not None:
        height = max(height, vc.stable_checkpoint.height)
    if vc.last_commit is not None:
        height = max(height, vc.last_commit.height)
    if vc.prepared is not None:
        height = max(height, vc.prepared.height - 1)
    return height
