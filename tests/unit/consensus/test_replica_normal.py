"""The normal case, message by message: pre-prepare, prepare, commit, deliver."""

from __future__ import annotations

import pytest
from consensus_testkit import (
    CHAIN_ID,
    Harness,
    broadcasts,
    delivered,
    kinds,
    make_harness,
    sha256,
)

from consensus import (
    Commit,
    CommitNotice,
    Deliver,
    FetchBlocks,
    Misbehaviour,
    Persist,
    Prepare,
    PrePrepare,
    Replica,
    ReplicaConfig,
    verify_certificate,
)

ROOT1 = sha256(b"root1")


def test_single_validator_commits_every_proposal_alone() -> None:
    h = make_harness(n=1, me=0)
    for height in range(1, 6):
        assert h.replica.can_propose
        actions = h.replica.propose(b"block %d" % height)
        assert kinds(actions) == ["Persist", "Deliver"]  # nobody to broadcast to
        deliver = delivered(actions)[0]
        assert deliver.height == height
        assert deliver.certificate.signers() == (0,)
        verify_certificate(deliver.certificate, CHAIN_ID, h.keys.public, h.keys.verify)
        assert not h.replica.can_propose  # block `height` is not executed yet
        h.replica.executed(height, sha256(b"root %d" % height))
    assert h.replica.status()["delivered_height"] == 5


def test_backup_prepares_persisting_first_then_commits_then_delivers(harness: Harness) -> None:
    h = harness  # validator 1 of 4; leader of view 0 is 0
    proposal = h.pre_prepare(0, 1, b"block one")
    actions = h.feed(proposal)
    assert kinds(actions) == ["Persist", "Broadcast"]
    assert actions[0].state.last_prepare.digest == proposal.digest  # type: ignore[union-attr]
    prepare = broadcasts(actions, Prepare)[0]
    assert (prepare.view, prepare.height, prepare.digest, prepare.sender) == (
        0,
        1,
        proposal.digest,
        1,
    )
    assert h.app.validated == [(1, b"block one")]
    # One more prepare: 2 of 3 needed, nothing yet.
    assert h.feed(h.prepare(0, 1, proposal.digest, 0)) == []
    actions = h.feed(h.prepare(0, 1, proposal.digest, 2))
    assert kinds(actions) == ["Persist", "Broadcast"]
    persisted = actions[0].state  # type: ignore[union-attr]
    assert persisted.prepared.digest == proposal.digest  # durable before the commit leaves
    assert persisted.prepared_payload == b"block one"
    assert broadcasts(actions, Commit)[0].digest == proposal.digest
    assert h.feed(h.commit(0, 1, proposal.digest, 0)) == []
    actions = h.feed(h.commit(0, 1, proposal.digest, 3))
    (deliver,) = delivered(actions)
    assert deliver.payload == b"block one"
    assert deliver.certificate.signers() == (0, 1, 3)
    verify_certificate(deliver.certificate, CHAIN_ID, h.keys.public, h.keys.verify)
    assert h.replica.next_height == 2


def test_leader_proposes_and_counts_its_own_prepare() -> None:
    h = make_harness(me=0)
    assert h.replica.can_propose
    actions = h.replica.propose(b"b1")
    assert kinds(actions) == ["Persist", "Broadcast", "Broadcast"]
    proposal = broadcasts(actions, PrePrepare)[0]
    assert broadcasts(actions, Prepare)[0].digest == proposal.digest
    assert not h.replica.can_propose  # one block in flight
    with pytest.raises(RuntimeError):
        h.replica.propose(b"b1 again")
    actions = h.feed(h.prepare(0, 1, proposal.digest, 1), h.prepare(0, 1, proposal.digest, 2))
    assert broadcasts(actions, Commit)


def test_proposal_waits_until_previous_block_is_executed(harness: Harness) -> None:
    h = harness
    first = h.pre_prepare(0, 1, b"one")
    h.feed(first, *(h.prepare(0, 1, first.digest, i) for i in (0, 2)))
    h.feed(*(h.commit(0, 1, first.digest, i) for i in (0, 2)))
    assert h.replica.next_height == 2
    second = h.pre_prepare(0, 2, b"two")
    assert h.feed(second) == []  # block 1 delivered but not executed: no validate yet
    assert h.app.validated == [(1, b"one")]
    actions = h.replica.executed(1, ROOT1)
    assert broadcasts(actions, Prepare)[0].height == 2
    assert h.app.validated[-1] == (2, b"two")


def test_future_messages_are_buffered_and_replayed(harness: Harness) -> None:
    h = harness
    first = h.pre_prepare(0, 1, b"one")
    second = h.pre_prepare(0, 2, b"two")
    # Everything for height 2 arrives before height 1 completes.
    h.feed(second, h.prepare(0, 2, second.digest, 0), h.prepare(0, 2, second.digest, 2))
    assert h.replica.status()["log"]["buffered_messages"] == 3  # type: ignore[index]
    h.feed(first, *(h.prepare(0, 1, first.digest, i) for i in (0, 2)))
    h.feed(*(h.commit(0, 1, first.digest, i) for i in (0, 2)))
    actions = h.replica.executed(1, ROOT1)
    commits = broadcasts(actions, Commit)
    assert commits and commits[0].height == 2  # prepared from the replayed buffer
    assert h.replica.status()["log"]["buffered_messages"] == 0  # type: ignore[index]


def test_invalid_proposal_refused_and_reported(harness: Harness) -> None:
    h = harness
    h.app.reject.add(b"bad block")
    actions = h.feed(h.pre_prepare(0, 1, b"bad block"))
    assert [type(a) for a in actions] == [Misbehaviour]
    assert actions[0].kind == "invalid-proposal" and actions[0].validator == 0  # type: ignore[union-attr]
    assert h.feed(h.pre_prepare(0, 1, b"bad block")) == []  # not validated twice


def test_bad_signature_non_validator_and_wrong_leader_rejected(harness: Harness) -> None:
    h = harness
    proposal = h.pre_prepare(0, 1, b"one")
    forged = PrePrepare(0, 1, proposal.digest, b"one", None, 0, b"\x00" * 32)
    (evidence,) = h.feed(forged)
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "bad-signature"
    (evidence,) = h.feed(Prepare(0, 1, proposal.digest, 9, b"x" * 32))
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "non-validator"
    (evidence,) = h.feed(h.pre_prepare(0, 1, b"one", sender=2))
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "wrong-leader"
    assert h.app.validated == []


def test_equivocations_reported_and_first_proposal_kept(harness: Harness) -> None:
    h = harness
    first = h.pre_prepare(0, 1, b"one")
    h.feed(first)
    (evidence,) = h.feed(h.pre_prepare(0, 1, b"other"))
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "equivocation"
    h.feed(h.prepare(0, 1, first.digest, 2))
    (evidence,) = h.feed(h.prepare(0, 1, sha256(b"other"), 2))
    assert evidence.kind == "equivocation" and evidence.validator == 2  # type: ignore[union-attr]
    assert h.feed(h.prepare(0, 1, first.digest, 2)) == []  # a duplicate is harmless


def test_payload_not_matching_digest_is_evidence(harness: Harness) -> None:
    h = harness
    good = h.pre_prepare(0, 1, b"one")
    signed_other = h.pre_prepare(0, 1, b"two")
    lying = PrePrepare(0, 1, signed_other.digest, b"one", None, 0, signed_other.signature)
    (evidence,) = h.feed(lying)
    assert evidence.kind == "bad-digest"  # type: ignore[union-attr]
    assert broadcasts(h.feed(good), Prepare)


def test_quorum_counts_distinct_validators_only(harness: Harness) -> None:
    h = harness
    proposal = h.pre_prepare(0, 1, b"one")
    h.feed(proposal)
    actions = h.feed(*[h.prepare(0, 1, proposal.digest, 0)] * 5)
    assert not broadcasts(actions, Commit)


def test_commits_alone_decide_and_missing_payload_is_fetched(harness: Harness) -> None:
    h = harness
    digest = sha256(b"never seen")
    actions = h.feed(*(h.commit(0, 1, digest, i) for i in (0, 2, 3)))
    (fetch,) = [a for a in actions if isinstance(a, FetchBlocks)]
    assert fetch.from_height == 1 and fetch.peers == (0, 2, 3)


def test_commit_notice_lets_a_prepared_replica_deliver(harness: Harness) -> None:
    h = harness
    proposal = h.pre_prepare(0, 1, b"one")
    h.feed(proposal, h.prepare(0, 1, proposal.digest, 0), h.prepare(0, 1, proposal.digest, 2))
    cert = h.certificate(0, 1, proposal.digest, [0, 2, 3])
    actions = h.feed(
        CommitNotice(cert, 2, h.keys.sign(2, CommitNotice(cert, 2, b"").signing_bytes(CHAIN_ID)))
    )
    (deliver,) = delivered(actions)
    assert deliver.certificate == cert


def test_forged_certificate_is_evidence(harness: Harness) -> None:
    h = harness
    digest = sha256(b"one")
    cert = h.certificate(0, 1, digest, [0, 2])  # one short of a quorum
    notice = CommitNotice(
        cert, 2, h.keys.sign(2, CommitNotice(cert, 2, b"").signing_bytes(CHAIN_ID))
    )
    (evidence,) = h.feed(notice)
    assert evidence.kind == "bad-certificate"  # type: ignore[union-attr]


def test_lagging_replica_learns_from_certificate_in_pre_prepare(harness: Harness) -> None:
    h = harness
    cert = h.certificate(0, 5, sha256(b"five"), [0, 2, 3])
    actions = h.feed(h.pre_prepare(0, 6, b"six", last_commit=cert))
    (fetch,) = [a for a in actions if isinstance(a, FetchBlocks)]
    assert fetch.from_height == 1 and 0 in fetch.peers


def test_stale_vote_gets_a_commit_notice() -> None:
    h = make_harness(me=1, retransmit_interval_ticks=2)
    proposal = h.pre_prepare(0, 1, b"one")
    h.feed(proposal, *(h.prepare(0, 1, proposal.digest, i) for i in (0, 2)))
    h.feed(*(h.commit(0, 1, proposal.digest, i) for i in (0, 2)))
    h.replica.tick()
    h.replica.tick()
    actions = h.feed(h.prepare(0, 1, proposal.digest, 3))  # replica 3 is still at height 1
    (send,) = actions
    assert send.to == 3 and isinstance(send.msg, CommitNotice)  # type: ignore[union-attr]
    assert send.msg.certificate.height == 1  # type: ignore[union-attr]


def test_executed_heights_must_be_in_order(harness: Harness) -> None:
    with pytest.raises(ValueError):
        harness.replica.executed(2, ROOT1)
    assert harness.replica.executed(0, ROOT1) == []  # already executed: ignored


def test_non_validator_follows_without_signing() -> None:
    h = make_harness(me=None)
    proposal = h.pre_prepare(0, 1, b"one")
    assert h.feed(proposal) == []
    assert not h.replica.can_propose
    actions = h.feed(*(h.commit(0, 1, proposal.digest, i) for i in (0, 2, 3)))
    assert [type(a) for a in actions] == [Deliver]
    for _ in range(100):
        assert not any(isinstance(a, Persist) for a in h.replica.tick())


def test_config_validation() -> None:
    keys = (b"a" * 32, b"b" * 32)
    with pytest.raises(ValueError):
        ReplicaConfig(chain_id="c", validators=(), my_index=None)
    with pytest.raises(ValueError):
        ReplicaConfig(chain_id="c", validators=(keys[0], keys[0]), my_index=None)
    with pytest.raises(ValueError):
        ReplicaConfig(chain_id="c", validators=keys, my_index=2)
    with pytest.raises(ValueError):
        ReplicaConfig(
            chain_id="c", validators=keys, my_index=0, checkpoint_interval=10, watermark_window=15
        )
    with pytest.raises(ValueError):
        ReplicaConfig(chain_id="c", validators=keys, my_index=0, mutations=frozenset({"x"}))
    with pytest.raises(ValueError):
        Replica(
            ReplicaConfig(chain_id="c", validators=keys, my_index=0),
            None,  # type: ignore[arg-type]
            lambda m: m,
            lambda *a: True,
            committed_height=0,
            committed_state_root=b"short",
            persisted=None,
        )


def test_status_reports_the_basics(harness: Harness) -> None:
    status = harness.replica.status()
    for key in (
        "view",
        "leader",
        "mode",
        "next_height",
        "stable_checkpoint",
        "log",
        "timeout_ticks",
        "counters",
    ):
        assert key in status
    assert status["mode"] == "normal" and status["leader"] == 0 and status["next_height"] == 1
