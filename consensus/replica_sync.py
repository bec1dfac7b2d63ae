"""Buffering, helping and catching up, and checkpoints: the Replica's bookkeeping part.

A replica learns that it is behind only from a valid commit certificate (carried by a
pre-prepare, a commit notice or a view change) or from f + 1 matching checkpoints, and then
asks the node to fetch the blocks it lacks (FetchBlocks)."""

from __future__ import annotations

from consensus.actions import FetchBlocks
from consensus.certificates import (
    CertificateError,
    CommitCertificate,
    checkpoint_signing_bytes,
    verify_certificate,
)
from consensus.checkpoints import EQUIVOCATION
from consensus.config import MUTATION_GC_ON_F_PLUS_1
from consensus.messages import (
    Checkpoint,
    Commit,
    CommitNotice,
    Message,
    Prepare,
    PrePrepare,
)
from consensus.replica_base import ReplicaBase

# A vote, with its signature and the dataclass around it, as counted against a sender's buffer.
MESSAGE_OVERHEAD_BYTES = 512


class CatchUpMixin(ReplicaBase):
    def _buffer(self, msg: Message) -> None:
        config = self._config
        queue = self._future.setdefault(msg.sender, [])
        if len(queue) >= config.max_buffered_per_sender:
            self._count("dropped.buffer_full")
            return
        held = sum(buffered_bytes(m) for m in queue)
        if held + buffered_bytes(msg) > config.max_buffered_bytes_per_sender:
            self._count("dropped.buffer_bytes_full")
            return
        queue.append(msg)

    def _replay_future(self) -> None:
        """Re-handle buffered messages after the slot or the view changed."""
        if self._replaying:
            self._replay_requested = True
            return
        self._replaying = True
        try:
            # Each round either consumes messages or leaves the buffer as it was; bound it.
            for _ in range(self._n * self._config.max_buffered_per_sender + 2):
                self._replay_requested = False
                pending = self._future
                self._future = {}
                for sender in sorted(pending):
                    for msg in pending[sender]:
                        self._receive(msg, verified=True)
                if not self._replay_requested:
                    break
        finally:
            self._replaying = False

    def _help(self, sender: int, height: int, view: int) -> None:
        """A replica voted on a decided height or an old view: send it what it lacks."""
        if self._me is None:
            return
        last = self._last_help_tick.get(sender)
        if last is not None and self._now - last < self._config.retransmit_interval_ticks:
            return
        helped = False
        recent = self._now - self._delivered_at_tick >= self._config.retransmit_interval_ticks
        if height < self._delivered or (height == self._delivered and recent):
            certificate = self._certificates.get(height) or self._highest_certificate()
            if certificate is not None:
                signature = self._sign(
                    CommitNotice(certificate, self._me, b"").signing_bytes(self._config.chain_id)
                )
                self._send(sender, CommitNotice(certificate, self._me, signature))
                helped = True
        if view < self._view:
            if self._normal and self._new_view_message is not None:
                self._send(sender, self._new_view_message)
                helped = True
            elif not self._normal and self._me in self._view_changes:
                self._send(sender, self._view_changes[self._me])
                helped = True
        if helped:
            self._count("help_sent")
            self._last_help_tick[sender] = self._now

    # ----------------------------------------------------------------- learning and catching up

    def _learn_from_certificate(self, certificate: CommitCertificate, source: int) -> bool:
        """Check a commit certificate carried by a message; False (and evidence) if invalid."""
        if certificate.height <= self._delivered:
            return True
        try:
            verify_certificate(
                certificate,
                self._config.chain_id,
                self._config.validators,
                self._verify,
                quorum=self._quorum,
            )
        except CertificateError as error:
            self._report(source, "bad-certificate", error.reason)
            return False
        self._remember_certificate(certificate)
        slot = self._slot
        if certificate.height == slot.height and slot.decided is None:
            slot.decided = certificate
            self._try_deliver()
        elif not self._deliver_from_certificates():
            self._learn_committed(certificate.height, (*certificate.signers(), source))
        return True

    def _deliver_from_certificates(self) -> bool:
        """Deliver the next height when its certificate is known and its payload is at hand
        (say a block this replica prepared, decided by others while its slot moved on)."""
        delivered_any = False
        for _ in range(self._config.certificate_cache_size):
            certificate = self._certificates.get(self._delivered + 1)
            if certificate is None:
                break
            payload = self._payload_for(certificate.height, certificate.digest)
            if payload is None:
                break
            self._count("delivered_from_certificate")
            self._deliver(certificate, payload)
            delivered_any = True
        return delivered_any

    def _learn_from_unknown_epoch(self, msg: Message) -> None:
        """A message for a height whose set this replica does not know yet can still show
        that it is behind, without judging anyone: a commit certificate it carries that a
        quorum of this set signed, or checkpoints (f + 1 matching) this set's keys signed.
        What does not verify is dropped silently: it may be the next set's, and proves
        nothing. Such checkpoints never make a checkpoint stable here (that height may lie
        beyond this epoch); they only send the replica fetching."""
        config = self._config
        if isinstance(msg, PrePrepare | CommitNotice):
            certificate = msg.last_commit if isinstance(msg, PrePrepare) else msg.certificate
            if certificate is None or certificate.height <= self._delivered:
                return
            try:
                verify_certificate(
                    certificate,
                    config.chain_id,
                    config.validators,
                    self._verify,
                    quorum=self._quorum,
                )
            except CertificateError:
                return
            self._learn_committed(certificate.height, certificate.signers())
        elif isinstance(msg, Checkpoint):
            if not 0 <= msg.sender < self._n or msg.sender == self._me:
                return
            key = config.validators[msg.sender]
            if self._verify(key, msg.signature, msg.signing_bytes(config.chain_id)):
                # That key signed it, whatever the set: its misbehaviour is evidence.
                self._on_checkpoint(msg, stabilise=False)

    def _on_commit_notice(self, msg: CommitNotice) -> None:
        self._learn_from_certificate(msg.certificate, msg.sender)

    def _learn_committed(self, height: int, peers: tuple[int, ...] | list[int]) -> None:
        """Block `height` is known final (certificate or f + 1 checkpoints): fetch what we lack.

        The first request goes to the validators known to hold the block; a retry goes to
        every other validator, so that one that refuses to serve cannot stall us."""
        if height <= self._delivered:
            return
        hinted = self._others(peers)
        if height > self._fetch_target:
            self._fetch_target = height
            self._fetch_peers = hinted or self._all_others()
            self._emit_fetch()
        elif self._now - self._last_fetch_tick >= self._config.fetch_retry_ticks:
            self._fetch_peers = self._all_others()
            self._emit_fetch()

    def _all_others(self) -> tuple[int, ...]:
        return self._others(list(range(self._n)))

    def _emit_fetch(self) -> None:
        self._last_fetch_tick = self._now
        self._count("fetch_requests")
        self._out.append(FetchBlocks(self._delivered + 1, self._fetch_peers))

    # ---------------------------------------------------------------------------- checkpoints

    def _sign_checkpoint(self, height: int, state_root: bytes) -> Checkpoint | None:
        if self._me is None:
            return None
        signing_bytes = checkpoint_signing_bytes(self._config.chain_id, height, state_root)
        checkpoint = Checkpoint(height, state_root, self._me, self._sign(signing_bytes))
        self._checkpoints.add(checkpoint)
        return checkpoint

    def _send_checkpoint(self, height: int, state_root: bytes) -> None:
        checkpoint = self._sign_checkpoint(height, state_root)
        if checkpoint is None:
            return
        self._own_checkpoint = checkpoint
        self._broadcast(checkpoint)
        self._check_stable(height)

    def _retransmit_checkpoint(self) -> None:
        checkpoint = self._own_checkpoint
        if checkpoint is not None and checkpoint.height > self._checkpoints.low:
            self._broadcast(checkpoint)

    def _on_checkpoint(self, msg: Checkpoint, *, stabilise: bool = True) -> None:
        if msg.height == 0 or msg.height % self._config.checkpoint_interval != 0:
            self._report(msg.sender, "bad-checkpoint", f"checkpoint at height {msg.height}")
            return
        if self._checkpoints.add(msg) == EQUIVOCATION:
            self._report(msg.sender, "equivocation", f"two state roots at height {msg.height}")
            return
        if stabilise:
            self._check_stable(msg.height)
        supported = self._checkpoints.highest_supported(self._delivered, self._f + 1)
        if supported is not None:
            height, senders = supported
            self._learn_committed(height, senders)

    def _check_stable(self, height: int) -> None:
        if MUTATION_GC_ON_F_PLUS_1 in self._config.mutations:
            weak = self._checkpoints.proof_with(height, self._f + 1)
            if weak is not None:
                self._collect_garbage(height)
        proof = self._checkpoints.proof_with(height, self._quorum)
        if proof is None or proof.height <= self._checkpoints.low:
            return
        self._checkpoints.advance(proof)
        self._count("stable_checkpoints")
        self._collect_garbage(proof.height)

    def _collect_garbage(self, height: int) -> None:
        """Forget what lies at or below a stable checkpoint: a view change no longer needs it."""
        if height <= self._gc_height:
            return
        self._gc_height = height
        if self._last_commit is not None and self._last_commit.height <= height:
            self._last_commit = None
        if self._prepared is not None and self._prepared.height <= height:
            if self._prepared.height > self._delivered:
                self._count("gc.prepared_not_delivered")
            self._prepared = None
            self._prepared_payload = None
        for sender in sorted(self._future):
            kept = [msg for msg in self._future[sender] if _message_height(msg) > height]
            if kept:
                self._future[sender] = kept
            else:
                del self._future[sender]


def buffered_bytes(msg: Message) -> int:
    """What a buffered message costs in memory, roughly: its payload and a fixed overhead."""
    if isinstance(msg, PrePrepare):
        return len(msg.payload) + MESSAGE_OVERHEAD_BYTES
    return MESSAGE_OVERHEAD_BYTES


def _message_height(msg: Message) -> int:
    if isinstance(msg, PrePrepare | Prepare | Commit | Checkpoint):
        return msg.height
    if isinstance(msg, CommitNotice):
        return msg.certificate.height
    return 2**64  # view changes and new views are not tied to one height
