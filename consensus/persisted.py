"""The state a replica makes durable before any of its signatures leaves the process.

Rebuilt from it after a crash, a replica never signs a vote that conflicts with one it signed
before (the last-signed guard, as CometBFT's privval) and still carries its prepared block
into the next view change, so a block prepared before a whole-cluster restart is never lost.

The replica does not flag what is dirty: after every input it compares its state with the
last state it asked to persist (`must_sync`, as etcd raft's MustSync compares HardState) and
emits a Persist with the whole state when a field that guards a signature differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack  # type: ignore[import-untyped]

from consensus.certificates import (
    CertificateError,
    CheckpointProof,
    CommitCertificate,
    PreparedCertificate,
    parse_digest,
    parse_uint,
)

STATE_TAG_V1 = "chain-pbft-state-v1"
STATE_TAG = "chain-pbft-state-v2"  # v2 adds the epoch (v1 reads as epoch 0)


@dataclass(frozen=True, slots=True)
class SignedVote:
    """The last vote signed in one phase: never sign another for the same (view, height)."""

    view: int
    height: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class PersistedState:
    view: int
    in_view_change: bool  # True: this replica voted to leave view - 1 and waits for `view`
    view_floor_height: int  # the lowest height a proposal of `view` may have
    last_commit: CommitCertificate | None
    prepared: PreparedCertificate | None
    prepared_payload: bytes | None
    stable_checkpoint: CheckpointProof | None
    last_pre_prepare: SignedVote | None
    last_prepare: SignedVote | None
    last_commit_vote: SignedVote | None
    last_view_change: int  # the highest view this replica signed a view change for (0: none)
    last_new_view: int  # the highest view this replica signed a new view for (0: none)
    epoch: int = 0  # the epoch (validator set) these certificates and votes belong to

    def must_sync(self, previous: PersistedState) -> bool:
        """True when this state must be durable before the output that comes with it is
        carried out, given that `previous` is the last state made durable.

        Forcing: the view, the view-change mode and the view's floor height, the last-signed
        record (pre-prepare, prepare and commit votes, view change, new view), and a prepared
        certificate newly set (durable before the commit vote that follows it). Not forcing,
        as etcd raft's MustSync ignores the commit index: what is recoverable or only shrinks,
        namely the last commit certificate (the node stores it with its block), the stable
        checkpoint (a quorum signed it; peers keep it) and a prepared certificate cleared by a
        delivery or by garbage collection. A write, when there is one, carries every field."""
        return (
            self.view != previous.view
            or self.in_view_change != previous.in_view_change
            or self.view_floor_height != previous.view_floor_height
            or self.last_pre_prepare != previous.last_pre_prepare
            or self.last_prepare != previous.last_prepare
            or self.last_commit_vote != previous.last_commit_vote
            or self.last_view_change != previous.last_view_change
            or self.last_new_view != previous.last_new_view
            or (self.prepared is not None and self.prepared != previous.prepared)
        )

    def sync_fields(self) -> tuple[object, ...]:
        """Every field must_sync reads: when these are equal, must_sync is False. The
        replica compares its live values of them (Replica._sync_fields, same order) before
        it builds a whole snapshot, since most inputs change none of them."""
        return (
            self.view,
            self.in_view_change,
            self.view_floor_height,
            self.last_pre_prepare,
            self.last_prepare,
            self.last_commit_vote,
            self.last_view_change,
            self.last_new_view,
            self.prepared,
        )

    def to_bytes(self) -> bytes:
        value = [
            STATE_TAG,
            self.view,
            self.in_view_change,
            self.view_floor_height,
            _opt(self.last_commit),
            _opt(self.prepared),
            self.prepared_payload,
            _opt(self.stable_checkpoint),
            _vote(self.last_pre_prepare),
            _vote(self.last_prepare),
            _vote(self.last_commit_vote),
            self.last_view_change,
            self.last_new_view,
            self.epoch,
        ]
        packed = msgpack.packb(value, use_bin_type=True)
        if not isinstance(packed, bytes):
            raise TypeError("msgpack.packb did not return bytes")
        return packed

    def for_next_epoch(self, epoch: int, first_height: int) -> PersistedState:
        """What the next epoch's replica starts from: the view (views only grow) and the
        last-signed guard (it never signs against itself), in normal mode; nothing of this
        epoch's certificates, which name this epoch's validators."""
        return PersistedState(
            view=self.view,
            in_view_change=False,
            view_floor_height=first_height,
            last_commit=None,
            prepared=None,
            prepared_payload=None,
            stable_checkpoint=None,
            last_pre_prepare=self.last_pre_prepare,
            last_prepare=self.last_prepare,
            last_commit_vote=self.last_commit_vote,
            last_view_change=self.last_view_change,
            last_new_view=self.last_new_view,
            epoch=epoch,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PersistedState:
        """Parse bytes written by to_bytes; raise ValueError when they are not such bytes."""
        try:
            value = msgpack.unpackb(data, raw=False, strict_map_key=True, max_map_len=0)
        except Exception as error:  # corrupt bytes on disk: report, do not guess
            raise ValueError(f"persisted consensus state is not valid msgpack: {error}") from None
        if isinstance(value, list) and len(value) == 13 and value[0] == STATE_TAG_V1:
            value = [*value, 0]
        elif not isinstance(value, list) or len(value) != 14 or value[0] != STATE_TAG:
            raise ValueError("persisted consensus state has an unknown layout")
        try:
            return cls._from_fields(value)
        except CertificateError as error:
            raise ValueError(f"persisted consensus state: {error.reason}") from None

    @classmethod
    def _from_fields(cls, value: list[object]) -> PersistedState:
        if not isinstance(value[2], bool):
            raise ValueError("persisted consensus state: in_view_change is not a bool")
        payload = value[6]
        if payload is not None and not isinstance(payload, bytes):
            raise ValueError("persisted consensus state: prepared payload is not bytes")
        if (value[5] is None) != (payload is None):
            raise ValueError("persisted consensus state: prepared certificate without payload")
        return cls(
            view=parse_uint(value[1], "view"),
            in_view_change=value[2],
            view_floor_height=parse_uint(value[3], "view floor height"),
            last_commit=None if value[4] is None else CommitCertificate.from_wire(value[4]),
            prepared=None if value[5] is None else PreparedCertificate.from_wire(value[5]),
            prepared_payload=payload,
            stable_checkpoint=None if value[7] is None else CheckpointProof.from_wire(value[7]),
            last_pre_prepare=_parse_vote(value[8]),
            last_prepare=_parse_vote(value[9]),
            last_commit_vote=_parse_vote(value[10]),
            last_view_change=parse_uint(value[11], "last view change"),
            last_new_view=parse_uint(value[12], "last new view"),
            epoch=parse_uint(value[13], "epoch"),
        )


def _opt(value: CommitCertificate | PreparedCertificate | CheckpointProof | None) -> object:
    return None if value is None else value.to_wire()


def _vote(vote: SignedVote | None) -> object:
    return None if vote is None else [vote.view, vote.height, vote.digest]


def _parse_vote(value: object) -> SignedVote | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError("persisted consensus state: a signed vote is not [view, height, digest]")
    return SignedVote(
        parse_uint(value[0], "signed view"),
        parse_uint(value[1], "signed height"),
        parse_digest(value[2], "signed digest"),
    )
