"""Invariants the simulator checks after every step. A violation stops the run.

- agreement: no two honest nodes execute or deliver different blocks at one height, and no
  two different blocks are ever certified at one height, by a quorum of any epoch's set
  (every commit certificate any node sends is looked at, whoever sent it);
- validity: every delivered block is a valid body on top of the agreed chain, was proposed by
  the leader of the view it names in its height's epoch (a view not after its certificate's),
  carries only the next planned membership change, and no tx id appears twice in the chain;
- certificates: every delivered or fetched block carries quorum_size(n) valid commits from
  distinct validators of the set of its height's epoch, as the agreed chain defines it
  (checked with the true quorum, whatever the replica under test believes);
- honest replicas never sign conflicting votes: one digest per (phase, view, height), and no
  vote for a view below one they already signed a view change for (even across restarts);
- honest replicas sign only for epochs they are in: a vote (pre-prepare, prepare, commit,
  checkpoint) for height h only as a member of h's epoch, with that epoch's index and key; a
  view change or new view only for an epoch they are a member of, carrying nothing from
  outside that epoch's heights;
- honest replicas never accuse honest ones (no false evidence);
- the node rules: validate(h) only after h - 1 was executed, proposals only on top of the
  executed chain, deliveries in height order;
- bounded logs: every log of every replica stays under its bound.
"""

from __future__ import annotations

from consensus import (
    CertificateError,
    Checkpoint,
    Commit,
    CommitCertificate,
    CommitNotice,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    quorum_size,
    verify_certificate,
)
from simulator.app import GENESIS_DIGEST, block_is_valid, decode_body, sha256
from simulator.epochs import Change, EpochSchedule, SimEpoch
from simulator.keys import KeyRing


class SimViolation(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Checker:
    def __init__(
        self,
        chain_id: str,
        keys: KeyRing,
        honest: frozenset[int],
        genesis: EpochSchedule,
        changes: tuple[Change, ...] = (),
    ) -> None:
        self._chain_id = chain_id
        self._keys = keys
        self.honest = honest
        self.schedule = genesis  # the epochs the agreed chain defines
        self._changes = changes
        self.decided: dict[int, bytes] = {}  # height -> digest agreed by honest nodes
        # Heights at which some certificate (valid for some epoch's set) names another block
        # than the agreed one, or a block not agreed yet: height -> digest.
        self.certified: dict[int, bytes] = {}
        self._looked_at: set[tuple[CommitCertificate, int]] = set()
        self._tx_height: dict[int, int] = {}  # tx id -> height of the block holding it
        # Every payload a leader (honest or byzantine) produced: digest -> proposer identity.
        self.proposals: dict[bytes, int] = {}
        self._votes: dict[tuple[int, str, int, int], bytes] = {}  # (id, phase, view, h)
        self._left_views: dict[int, int] = {}  # identity -> highest view-change view signed
        self.max_height = 0

    # --------------------------------------------------------------------------- blocks

    def on_block(
        self, identity: int, height: int, payload: bytes, certificate: CommitCertificate, via: str
    ) -> None:
        """An honest node delivered (via="deliver") or executed a fetched block."""
        digest = sha256(payload)
        agreed = self.decided.get(height)
        if agreed is None and height > 1 and height - 1 not in self.decided:
            raise SimViolation("validity", f"block {height} delivered before block {height - 1}")
        self._check_certificate(height, digest, certificate)
        if agreed is not None:
            if agreed != digest:
                raise SimViolation(
                    "agreement",
                    f"identity {identity} {via} {digest.hex()[:12]} at height {height}, "
                    f"others have {agreed.hex()[:12]}",
                )
            return
        self._check_validity(height, payload, digest, certificate)
        other = self.certified.get(height)
        if other is not None and other != digest:
            raise SimViolation("agreement", f"another block was certified at height {height}")
        self.decided[height] = digest
        self.max_height = max(self.max_height, height)
        body = decode_body(payload)
        if body is not None:
            for tx in body.tx_ids:
                self._tx_height[tx] = height
            if body.change is not None:
                self.schedule = self.schedule.after(height, body.change) or self.schedule

    def _check_certificate(self, height: int, digest: bytes, cert: CommitCertificate) -> None:
        if cert.height != height or cert.digest != digest:
            raise SimViolation("certificate", f"certificate does not match block {height}")
        epoch = self.schedule.epoch_for(height)
        try:
            self._verify(cert, epoch)
        except CertificateError as error:
            raise SimViolation(
                "certificate", f"block {height} (epoch {epoch.number}): {error.reason}"
            ) from None

    def _verify(self, cert: CommitCertificate, epoch: SimEpoch) -> None:
        keys = tuple(self._keys.public_keys[key] for key in epoch.key_indices)
        verify_certificate(
            cert, self._chain_id, keys, self._keys.verify, quorum=quorum_size(epoch.n)
        )

    def on_message_certificates(self, msg: Message) -> None:
        """Every commit certificate a message carries: one that some epoch's quorum signed
        for a block other than the agreed one at its height is a second certified block."""
        if isinstance(msg, PrePrepare):
            self._certificate_seen(msg.last_commit)
        elif isinstance(msg, CommitNotice):
            self._certificate_seen(msg.certificate)
        elif isinstance(msg, ViewChange):
            self._certificate_seen(msg.last_commit)
        elif isinstance(msg, NewView):
            for vc in msg.view_changes:
                self._certificate_seen(vc.last_commit)

    def _certificate_seen(self, cert: CommitCertificate | None) -> None:
        if cert is None or self.decided.get(cert.height) == cert.digest:
            return
        key = (cert, len(self.schedule.epochs))
        if key in self._looked_at:
            return
        self._looked_at.add(key)
        for epoch in self.schedule.epochs:
            try:
                self._verify(cert, epoch)
            except CertificateError:
                continue
            agreed = self.decided.get(cert.height) or self.certified.get(cert.height)
            if agreed is not None and agreed != cert.digest:
                raise SimViolation(
                    "agreement",
                    f"two blocks certified at height {cert.height} (one by epoch "
                    f"{epoch.number}'s set)",
                )
            self.certified[cert.height] = cert.digest
            return

    def _check_validity(
        self, height: int, payload: bytes, digest: bytes, cert: CommitCertificate
    ) -> None:
        prev = GENESIS_DIGEST if height == 1 else self.decided.get(height - 1)
        if prev is None:
            raise SimViolation("validity", f"block {height} delivered before block {height - 1}")
        chain_txs = {tx for tx, h in self._tx_height.items() if h < height}
        if not block_is_valid(payload, height, prev, chain_txs, self.schedule, self._changes):
            raise SimViolation("validity", f"block {height} is not a valid block on the chain")
        body = decode_body(payload)
        if body is None or body.view > cert.view:
            raise SimViolation("validity", f"block {height} names a view after its certificate")
        proposer = self.proposals.get(digest)
        if proposer is None or proposer != self.schedule.epoch_for(height).leader(body.view):
            raise SimViolation("validity", f"block {height} was not proposed by its leader")
        duplicated = [tx for tx in body.tx_ids if self._tx_height.get(tx, height) != height]
        if duplicated:
            raise SimViolation("validity", f"tx ids {duplicated} appear twice in the chain")

    # ---------------------------------------------------------------------------- signing

    def on_signed(self, identity: int, msg: Message) -> None:
        """An honest replica sent `msg`: it must not conflict with anything it signed before,
        and it must be signed for an epoch the identity is a member of, as that member."""
        if identity not in self.honest:
            return
        self._check_epoch(identity, msg)
        if isinstance(msg, PrePrepare):
            self._vote(identity, "pre-prepare", msg.view, msg.height, msg.digest)
        elif isinstance(msg, Prepare):
            self._vote(identity, "prepare", msg.view, msg.height, msg.digest)
        elif isinstance(msg, Commit):
            self._vote(identity, "commit", msg.view, msg.height, msg.digest)
        elif isinstance(msg, ViewChange):
            self._left_views[identity] = max(self._left_views.get(identity, 0), msg.new_view)
        elif isinstance(msg, NewView) and msg.pre_prepare is not None:
            proposal = msg.pre_prepare
            self._vote(identity, "pre-prepare", proposal.view, proposal.height, proposal.digest)

    def _check_epoch(self, identity: int, msg: Message) -> None:
        if isinstance(msg, ViewChange | NewView):
            epoch = self.schedule.epoch(msg.epoch)
            if epoch is None:
                raise SimViolation(
                    "epoch-signing", f"identity {identity} named unknown epoch {msg.epoch}"
                )
            self._member(identity, msg, epoch, type(msg).__name__)
            heights = _carried_heights(msg)
            end = self._end_of(epoch)
            outside = [h for h in heights if h < epoch.start_height or (end and h > end)]
            if outside:
                raise SimViolation(
                    "epoch-signing",
                    f"identity {identity}'s {type(msg).__name__} of epoch {epoch.number} "
                    f"carries heights {outside} outside it",
                )
            return
        if isinstance(msg, PrePrepare | Prepare | Commit | Checkpoint):
            if msg.height - 2 > self.max_height:
                raise SimViolation(
                    "epoch-signing",
                    f"identity {identity} signed height {msg.height} before the chain to "
                    f"{msg.height - 2} (which fixes its set) was agreed",
                )
            epoch = self.schedule.epoch_for(msg.height)
            self._member(identity, msg, epoch, f"{type(msg).__name__} {msg.height}")

    def _end_of(self, epoch: SimEpoch) -> int | None:
        following = self.schedule.epoch(epoch.number + 1)
        return None if following is None else following.start_height - 1

    def _member(
        self,
        identity: int,
        msg: PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView,
        epoch: SimEpoch,
        what: str,
    ) -> None:
        """`msg` names the identity's index in `epoch` and is signed with its key there."""
        index, key = epoch.index_of(identity), epoch.key_of(identity)
        signed = key is not None and self._keys.verify(
            self._keys.public_keys[key], msg.signature, msg.signing_bytes(self._chain_id)
        )
        if index != msg.sender or not signed:
            raise SimViolation(
                "epoch-signing",
                f"identity {identity} signed {what} as index {msg.sender}"
                f"{'' if signed else ', not with its key'}: epoch {epoch.number} has it as "
                f"index {index} with key {key}",
            )

    def _vote(self, identity: int, phase: str, view: int, height: int, digest: bytes) -> None:
        left = self._left_views.get(identity, 0)
        if view < left:
            raise SimViolation(
                "honest-signing",
                f"identity {identity} signed a {phase} in view {view} after a view change to "
                f"{left}",
            )
        key = (identity, phase, view, height)
        previous = self._votes.setdefault(key, digest)
        if previous != digest:
            raise SimViolation(
                "honest-signing",
                f"identity {identity} signed two {phase}s at view {view} height {height}",
            )

    def on_misbehaviour(self, reporter: int, accused: int, kind: str, detail: str) -> None:
        if reporter in self.honest and accused in self.honest:
            raise SimViolation(
                "false-evidence", f"identity {reporter} accused honest {accused}: {kind} {detail}"
            )

    def on_log_sizes(self, identity: int, sizes: dict[str, int], bounds: dict[str, int]) -> None:
        for name, size in sizes.items():
            if size > bounds[name]:
                raise SimViolation("bounded-logs", f"identity {identity} log {name} = {size}")

    def forget_votes_below(self, height: int) -> None:
        """Keep the signing record bounded on long runs (votes far below the top are safe)."""
        if len(self._votes) < 50_000:
            return
        for key in [k for k in self._votes if k[3] < height]:
            del self._votes[key]


def _carried_heights(msg: ViewChange | NewView) -> list[int]:
    """The heights of what a view change (or a new view's own proposal) carries."""
    if isinstance(msg, NewView):
        return [] if msg.pre_prepare is None else [msg.pre_prepare.height]
    return [
        item.height
        for item in (msg.stable_checkpoint, msg.last_commit, msg.prepared)
        if item is not None
    ]
