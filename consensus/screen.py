"""Which payloads deserve expensive work before a message reaches the replica.

A payload (a proposed block, up to max_payload_bytes) is what a faulty validator can make
costly: decoding it, checking its transactions' signatures. `Replica.payloads_to_prepare(msg)`
runs the cheap checks first (sender, signature, leader of the view, view and height windows,
prepared certificate) and names the payloads the replica will actually look at, so that the
node prepares those off its event loop (decode, signature checks) before calling receive().
Everything else goes to receive() as it is: there the replica drops or reports it without
touching its payload.

Evidence kinds in UNATTRIBUTABLE name the sender a message *claims*: nobody proved that it
sent it, so the node blames the link it came in on, not that validator.
"""

from __future__ import annotations

from consensus.certificates import CertificateError, verify_prepared
from consensus.messages import Message, NewView, PrePrepare, ViewChange
from consensus.replica_base import ReplicaBase

UNATTRIBUTABLE = frozenset({"bad-signature", "non-validator"})


class ScreenMixin(ReplicaBase):
    def payloads_to_prepare(self, msg: Message) -> tuple[bytes, ...]:
        """The payloads of `msg` that receive(msg) would digest or validate, given that the
        message passes every check that costs no more than a few signature verifications."""
        if isinstance(msg, PrePrepare):
            return self._screen_pre_prepare(msg)
        if isinstance(msg, ViewChange):
            return self._screen_view_change(msg)
        if isinstance(msg, NewView):
            return self._screen_new_view(msg)
        return ()

    def _signed_by_validator(self, msg: PrePrepare | ViewChange | NewView) -> bool:
        if not 0 <= msg.sender < self._n or msg.sender == self._me:
            return False
        key = self._config.validators[msg.sender]
        return self._verify(key, msg.signature, msg.signing_bytes(self._config.chain_id))

    def _screen_pre_prepare(self, msg: PrePrepare) -> tuple[bytes, ...]:
        config = self._config
        if (
            len(msg.payload) > config.max_payload_bytes
            or msg.sender != config.leader_of(msg.view)
            or msg.view < self._view
            or msg.view > self._view + config.max_future_views
            or msg.height < self._slot.height
            or (msg.height > self._checkpoints.high and msg.height > self._delivered + 1)
            or not self._signed_by_validator(msg)
        ):
            return ()
        return (msg.payload,)

    def _screen_view_change(self, msg: ViewChange) -> tuple[bytes, ...]:
        payload = msg.prepared_payload
        prepared = msg.prepared
        if (
            payload is None
            or prepared is None
            or len(payload) > self._config.max_payload_bytes
            or not self._signed_by_validator(msg)
        ):
            return ()
        try:  # a quorum prepared this digest: the payload is worth hashing
            verify_prepared(
                prepared, self._config.chain_id, self._config.validators, self._verify, self._quorum
            )
        except CertificateError:
            return ()
        return (payload,)

    def _screen_new_view(self, msg: NewView) -> tuple[bytes, ...]:
        proposal = msg.pre_prepare
        config = self._config
        if (
            proposal is None
            or len(proposal.payload) > config.max_payload_bytes
            or msg.sender != config.leader_of(msg.view)
            or msg.view < self._view
            or not self._signed_by_validator(msg)
        ):
            return ()
        return (proposal.payload,)
