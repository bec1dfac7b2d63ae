"""A replica runs one epoch (a validator set, heights first_height..last_height): it never
votes on or judges another epoch's heights, view changes name their epoch, and the next
epoch's replica starts from the view and the last-signed guard only."""

from __future__ import annotations

import dataclasses

from consensus_testkit import CHAIN_ID, make_harness, sha256

from consensus import (
    CommitCertificate,
    FetchBlocks,
    Misbehaviour,
    PersistedState,
    Prepare,
    ViewChange,
    vote_signing_bytes,
)

ROOT = sha256(b"root")


def test_the_epoch_end_stops_proposals_and_drops_later_heights_without_evidence() -> None:
    h = make_harness(n=4, me=0)  # leader of view 0
    h.replica.end_epoch_at(1)
    assert h.replica.can_propose
    h.replica.propose(b"block 1")
    # Votes for height 2 belong to the next epoch's set: no verdict, no evidence.
    forged = Prepare(0, 2, sha256(b"x"), 2, b"\0" * 32)
    assert h.feed(forged) == []
    assert h.replica.status()["counters"]["dropped.next_epoch"] == 1
    for sender in (1, 2):
        h.feed(h.commit(0, 1, sha256(b"block 1"), sender))
    h.feed(h.prepare(0, 1, sha256(b"block 1"), 1), h.prepare(0, 1, sha256(b"block 1"), 2))
    h.replica.executed(1, ROOT)
    assert h.replica.epoch_finished and not h.replica.can_propose
    for _ in range(200):  # a finished epoch starts no view change
        assert not [a for a in h.replica.tick() if isinstance(a, Misbehaviour)]
    assert h.replica.view == 0


def test_earlier_heights_and_other_epochs_are_dropped_before_any_check() -> None:
    h = make_harness(n=4, me=1, epoch=3, first_height=10)
    bad_sig = Prepare(0, 9, sha256(b"old"), 2, b"\0" * 32)
    assert h.feed(bad_sig) == []  # not "bad-signature": index 2 of another set
    other = h.view_change(1, 2)  # epoch 0 (the kit's default)
    assert h.feed(other) == []
    counters = h.replica.status()["counters"]
    assert counters["dropped.earlier_epoch"] == 1 and counters["dropped.other_epoch"] == 1
    assert h.replica.status()["epoch"] == 3


def test_view_changes_name_their_epoch_and_carry_nothing_from_before_it() -> None:
    h = make_harness(n=4, me=1, epoch=2, first_height=5, view_timeout_ticks=2)
    actions = []
    for _ in range(3):
        actions += h.replica.tick()
    (vc,) = [a.msg for a in actions if hasattr(a, "msg") and isinstance(a.msg, ViewChange)]
    assert vc.epoch == 2
    # A view change that smuggles a certificate of height 4 (the epoch before) is refused.
    old_cert = h.certificate(0, 4, sha256(b"b4"), [0, 2, 3])
    smuggled = h.view_change(1, 2, last_commit=old_cert)
    smuggled = dataclasses.replace(smuggled, epoch=2)
    signed = dataclasses.replace(
        smuggled, signature=h.keys.sign(2, smuggled.signing_bytes(CHAIN_ID))
    )
    evidence = [a for a in h.feed(signed) if isinstance(a, Misbehaviour)]
    assert [e.kind for e in evidence] == ["bad-view-change"]
    assert "before this epoch" in evidence[0].detail


def test_the_next_epoch_starts_from_the_view_and_the_guard_only() -> None:
    h = make_harness(n=4, me=1)
    h.feed(h.pre_prepare(0, 1, b"a"))
    state = h.replica._snapshot()  # what it persisted
    assert state.last_prepare is not None
    carried = state.for_next_epoch(epoch=1, first_height=2)
    assert carried.view == state.view and carried.last_prepare == state.last_prepare
    assert carried.prepared is None and carried.last_commit is None
    assert carried.stable_checkpoint is None and carried.view_floor_height == 2
    assert (state.epoch, carried.epoch) == (0, 1)
    assert PersistedState.from_bytes(carried.to_bytes()) == carried


def test_a_replica_of_a_later_epoch_can_propose_its_first_height() -> None:
    """The low watermark starts at the height before the epoch (found on a real testnet:
    the next epoch's first height lay above the high watermark, so nobody proposed)."""
    from consensus_testkit import ROOT0, Keys, RecordingApp

    from consensus import Replica, ReplicaConfig

    keys = Keys(5)
    config = ReplicaConfig(
        chain_id=CHAIN_ID, validators=keys.public, my_index=0, epoch=1, first_height=58
    )
    replica = Replica(
        config,
        RecordingApp(),
        keys.signer(0),
        keys.verify,
        committed_height=57,
        committed_state_root=ROOT0,
        persisted=None,
    )
    assert replica.can_propose and replica.next_height == 58
    assert replica.status()["high_watermark"] >= 58


def test_a_lagging_replica_does_not_judge_heights_another_set_may_sign() -> None:
    """A replica that executed height 0 cannot know the set of height 4: a change in blocks
    1 or 2 it has not executed may have put another set there (found by the simulator: a
    lagging validator reported honest ones for a certificate of the next set, whose
    indexes and keys are not its own). It drops such messages without evidence, and only
    learns from what its own set verifiably signed (here: that it is behind)."""
    from consensus_testkit import Keys

    h = make_harness(n=4, me=1)
    next_set = Keys(5)  # the same first four keys, and a fifth validator
    digest = sha256(b"block 3")
    sigs = tuple(
        (i, next_set.sign(i, vote_signing_bytes(CHAIN_ID, "commit", 0, 3, digest)))
        for i in (0, 2, 3, 4)
    )
    foreign = CommitCertificate(3, 0, digest, sigs, (0,) * len(sigs))
    proposal = h.pre_prepare(0, 4, b"block 4", sender=0, last_commit=foreign)
    actions = h.feed(proposal)
    assert not [a for a in actions if isinstance(a, Misbehaviour)]
    assert h.replica.status()["counters"]["dropped.epoch_unknown"] == 1
    ours = h.certificate(0, 3, digest, [0, 2, 3])
    actions = h.feed(h.pre_prepare(0, 4, b"block 4'", sender=0, last_commit=ours))
    assert not [a for a in actions if isinstance(a, Misbehaviour)]
    assert [a for a in actions if isinstance(a, FetchBlocks)]  # behind: it fetches
