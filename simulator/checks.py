"""Invariants the simulator checks after every step. A violation stops the run.

- agreement: no two honest nodes execute or deliver different blocks at one height;
- validity: every delivered block is a valid body on top of the agreed chain, was proposed by
  the leader of the view it names (a view not after its certificate's), and no tx id appears
  twice in the chain;
- certificates: every delivered block carries quorum_size(n) valid commits from distinct
  validators (checked with the true quorum, whatever the replica under test believes);
- honest replicas never sign conflicting votes: one digest per (phase, view, height), and no
  vote for a view below one they already signed a view change for (even across restarts);
- honest replicas never accuse honest ones (no false evidence);
- the node rules: validate(h) only after h - 1 was executed, proposals only on top of the
  executed chain, deliveries in height order;
- bounded logs: every log of every replica stays under its bound.
"""

from __future__ import annotations

from consensus import (
    CertificateError,
    Commit,
    CommitCertificate,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    quorum_size,
    verify_certificate,
)
from simulator.app import GENESIS_DIGEST, block_is_valid, decode_body, sha256
from simulator.keys import KeyRing


class SimViolation(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Checker:
    def __init__(self, chain_id: str, n: int, keys: KeyRing, honest: frozenset[int]) -> None:
        self._chain_id = chain_id
        self._n = n
        self._keys = keys
        self.honest = honest
        self.decided: dict[int, bytes] = {}  # height -> digest agreed by honest nodes
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
        self._check_certificate(height, digest, certificate)
        agreed = self.decided.get(height)
        if agreed is not None:
            if agreed != digest:
                raise SimViolation(
                    "agreement",
                    f"identity {identity} {via} {digest.hex()[:12]} at height {height}, "
                    f"others have {agreed.hex()[:12]}",
                )
            return
        self._check_validity(height, payload, digest, certificate)
        self.decided[height] = digest
        self.max_height = max(self.max_height, height)
        body = decode_body(payload)
        if body is not None:
            for tx in body.tx_ids:
                self._tx_height[tx] = height

    def _check_certificate(self, height: int, digest: bytes, cert: CommitCertificate) -> None:
        if cert.height != height or cert.digest != digest:
            raise SimViolation("certificate", f"certificate does not match block {height}")
        try:
            verify_certificate(
                cert,
                self._chain_id,
                self._keys.public_keys,
                self._keys.verify,
                quorum=quorum_size(self._n),
            )
        except CertificateError as error:
            raise SimViolation("certificate", f"block {height}: {error.reason}") from None

    def _check_validity(
        self, height: int, payload: bytes, digest: bytes, cert: CommitCertificate
    ) -> None:
        prev = GENESIS_DIGEST if height == 1 else self.decided.get(height - 1)
        if prev is None:
            raise SimViolation("validity", f"block {height} delivered before block {height - 1}")
        chain_txs = {tx for tx, h in self._tx_height.items() if h < height}
        if not block_is_valid(payload, height, prev, chain_txs, self._n):
            raise SimViolation("validity", f"block {height} is not a valid block on the chain")
        body = decode_body(payload)
        if body is None or body.view > cert.view:
            raise SimViolation("validity", f"block {height} names a view after its certificate")
        proposer = self.proposals.get(digest)
        if proposer is None or proposer != body.view % self._n:
            raise SimViolation("validity", f"block {height} was not proposed by its leader")
        duplicated = [tx for tx in body.tx_ids if self._tx_height.get(tx, height) != height]
        if duplicated:
            raise SimViolation("validity", f"tx ids {duplicated} appear twice in the chain")

    # ---------------------------------------------------------------------------- signing

    def on_signed(self, identity: int, msg: Message) -> None:
        """An honest replica sent `msg`: it must not conflict with anything it signed before."""
        if identity not in self.honest:
            return
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
