"""View change and new view, message by message and on a small synchronous cluster."""

from __future__ import annotations

from consensus_testkit import (
    CHAIN_ID,
    SyncCluster,
    broadcasts,
    delivered,
    kinds,
    make_harness,
    sha256,
)

from consensus import (
    Misbehaviour,
    NewView,
    Persist,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    vote_signing_bytes,
)
from consensus.viewchange import ViewChangeRules


def _prepared(h, height: int, view: int, payload: bytes, signers=(0, 2, 3)) -> PreparedCertificate:  # type: ignore[no-untyped-def]
    digest = sha256(payload)
    sigs = tuple(
        (i, h.keys.sign(i, vote_signing_bytes(CHAIN_ID, "prepare", view, height, digest)))
        for i in sorted(signers)
    )
    return PreparedCertificate(height, view, digest, sigs)


def test_timeout_starts_a_view_change_persisted_before_it_is_sent() -> None:
    h = make_harness(me=2, view_timeout_ticks=5)
    for _ in range(4):
        assert h.replica.tick() == []
    actions = h.replica.tick()
    assert kinds(actions) == ["Persist", "Broadcast"]
    state = actions[0].state  # type: ignore[union-attr]
    assert state.view == 1 and state.in_view_change and state.last_view_change == 1
    vc = broadcasts(actions, ViewChange)[0]
    assert vc.new_view == 1 and vc.sender == 2
    assert h.replica.status()["mode"] == "view-change"


def test_new_leader_builds_new_view_from_a_quorum() -> None:
    h = make_harness(me=1, view_timeout_ticks=5)  # leader of view 1
    for _ in range(5):
        h.replica.tick()
    assert h.feed(h.view_change(1, 2)) == []  # 2 of 3
    actions = h.feed(h.view_change(1, 3))
    (nv,) = broadcasts(actions, NewView)
    assert nv.view == 1 and [vc.sender for vc in nv.view_changes] == [1, 2, 3]
    assert nv.pre_prepare is None
    assert isinstance(actions[0], Persist)
    assert h.replica.status()["mode"] == "normal" and h.replica.can_propose


def test_new_view_re_proposes_the_prepared_block_without_validating_it() -> None:
    h = make_harness(me=1, view_timeout_ticks=5)
    payload = b"prepared in view 0"
    prepared = _prepared(h, 1, 0, payload)
    h.replica.tick()
    for _ in range(5):
        h.replica.tick()
    h.feed(h.view_change(1, 2, prepared=prepared, prepared_payload=payload))
    actions = h.feed(h.view_change(1, 3))
    (nv,) = broadcasts(actions, NewView)
    assert nv.pre_prepare is not None and nv.pre_prepare.digest == prepared.digest
    assert nv.pre_prepare.view == 1 and nv.pre_prepare.payload == payload
    assert broadcasts(actions, Prepare)[0].digest == prepared.digest
    assert h.app.validated == []  # accepted on the certificate, not re-validated
    assert not h.replica.can_propose


def _new_view(h, view: int, vcs, proposal: PrePrepare | None, sender: int | None = None) -> NewView:  # type: ignore[no-untyped-def]
    sender = view % h.n if sender is None else sender
    stripped = tuple(vc.without_payload() for vc in vcs)
    unsigned = NewView(view, stripped, proposal, sender, b"")
    return NewView(
        view, stripped, proposal, sender, h.keys.sign(sender, unsigned.signing_bytes(CHAIN_ID))
    )


def test_backup_accepts_a_valid_new_view_and_prepares_the_re_proposal() -> None:
    h = make_harness(me=2)
    payload = b"prepared"
    prepared = _prepared(h, 1, 0, payload)
    vcs = [
        h.view_change(1, 0),
        h.view_change(1, 1, prepared=prepared, prepared_payload=payload),
        h.view_change(1, 3),
    ]
    proposal = h.pre_prepare(1, 1, payload)
    actions = h.feed(_new_view(h, 1, vcs, proposal))
    assert isinstance(actions[0], Persist)
    assert broadcasts(actions, Prepare)[0].digest == prepared.digest
    assert h.replica.view == 1 and h.replica.status()["mode"] == "normal"


def test_new_view_that_drops_a_prepared_block_is_rejected() -> None:
    h = make_harness(me=2)
    payload = b"prepared"
    prepared = _prepared(h, 1, 0, payload)
    vcs = [
        h.view_change(1, 0),
        h.view_change(1, 1, prepared=prepared, prepared_payload=payload),
        h.view_change(1, 3),
    ]
    bad_cases = [
        _new_view(h, 1, vcs, None),  # re-proposal missing
        _new_view(h, 1, vcs, h.pre_prepare(1, 1, b"a fresh block instead")),
        _new_view(h, 1, vcs[:2], h.pre_prepare(1, 1, payload)),  # not a quorum
        _new_view(h, 1, [vcs[0], vcs[0], vcs[1]], h.pre_prepare(1, 1, payload)),  # duplicates
        _new_view(h, 1, [*vcs[:2], h.view_change(2, 3)], h.pre_prepare(1, 1, payload)),
    ]
    for nv in bad_cases:
        (evidence,) = h.feed(nv)
        assert isinstance(evidence, Misbehaviour) and evidence.kind == "bad-new-view"
    (evidence,) = h.feed(_new_view(h, 1, vcs, h.pre_prepare(1, 1, payload, sender=3), sender=3))
    assert evidence.kind == "wrong-leader"  # type: ignore[union-attr]
    assert h.replica.view == 0


def test_view_change_with_forged_prepared_certificate_is_rejected() -> None:
    h = make_harness(me=2)
    prepared = _prepared(h, 1, 0, b"x", signers=(0, 3))  # too few prepares
    (evidence,) = h.feed(h.view_change(1, 0, prepared=prepared, prepared_payload=b"x"))
    assert evidence.kind == "bad-view-change"  # type: ignore[union-attr]
    prepared = _prepared(h, 1, 0, b"x")
    (evidence,) = h.feed(h.view_change(1, 0, prepared=prepared, prepared_payload=b"not x"))
    assert evidence.kind == "bad-view-change"  # type: ignore[union-attr]


def test_f_plus_one_view_changes_make_a_replica_join() -> None:
    h = make_harness(me=2)
    assert h.feed(h.view_change(3, 0)) == []
    actions = h.feed(h.view_change(5, 1))
    (vc,) = broadcasts(actions, ViewChange)
    assert vc.new_view == 3  # the smallest view f + 1 replicas asked for


def test_no_vote_in_a_view_after_leaving_it() -> None:
    h = make_harness(me=2, view_timeout_ticks=3)
    for _ in range(3):
        h.replica.tick()
    assert h.replica.view == 1
    actions = h.feed(h.pre_prepare(0, 1, b"late proposal"))
    assert not broadcasts(actions, Prepare)


def test_timeouts_double_while_views_fail_and_reset_after_progress() -> None:
    cluster = SyncCluster(7, view_timeout_ticks=4, max_view_timeout_ticks=16)
    cluster.run_blocks(2)
    assert cluster.replicas[0].status()["timeout_ticks"] == 4
    cluster.cut = {1, 2}  # the leaders of views 1 and 2 are down
    ticks = 0
    while cluster.replicas[3].view < 3 or cluster.replicas[3].status()["mode"] != "normal":
        cluster.tick()
        ticks += 1
        assert ticks < 200
    # Views 1 and 2 failed: 4, then 8, then 16 (capped) ticks.
    assert cluster.replicas[3].status()["timeout_ticks"] == 16
    assert ticks >= 4 + 8
    cluster.run_blocks(1)
    assert cluster.replicas[3].status()["timeout_ticks"] == 4  # reset by progress


def test_lone_replica_does_not_escalate_views() -> None:
    cluster = SyncCluster(4, view_timeout_ticks=3)
    cluster.run_blocks(1)
    cluster.cut = {3}
    for _ in range(30):
        cluster.tick()
        cluster.run_blocks(1)
    assert cluster.replicas[3].view == 1  # it asked for view 1, alone, and waits there


def test_censorship_suspicion_votes_for_a_view_change() -> None:
    h = make_harness(me=3, censorship_timeout_ticks=3, view_timeout_ticks=20)
    for _ in range(3):
        h.replica.tick()
    actions = h.replica.suspect_censorship()
    assert kinds(actions) == ["Persist", "Broadcast"]
    assert broadcasts(actions, ViewChange)[0].new_view == 1
    assert h.replica.suspect_censorship() == []  # already changing view


def test_censorship_suspicion_is_ignored_until_the_view_has_run_a_whole_timeout() -> None:
    """However often the node suspects, views cannot change faster than one per timeout."""
    h = make_harness(me=3, censorship_timeout_ticks=5, view_timeout_ticks=20)
    for _ in range(4):
        h.replica.tick()
        assert h.replica.suspect_censorship() == []
    assert h.replica.status()["counters"]["view_changes.censorship_ignored"] == 4
    h.replica.tick()
    assert kinds(h.replica.suspect_censorship()) == ["Persist", "Broadcast"]
    assert h.replica.view == 1


def test_leader_crash_mid_round_the_prepared_block_survives() -> None:
    cluster = SyncCluster(4, view_timeout_ticks=4)
    cluster.run_blocks(3)
    leader = cluster.propose(b"in flight")
    # Deliver only the pre-prepare and the prepares; then the leader is cut off.
    for _ in range(40):
        if not cluster._queue:
            break
        target, item = cluster._queue.pop(0)
        if isinstance(item, tuple) and not isinstance(item[1], PrePrepare | Prepare):
            continue
        cluster._handle(target, item)
    cluster._queue.clear()
    cluster.cut = {leader}
    cluster.tick(12)
    survivors = [i for i in range(4) if i != leader]
    blocks = {cluster.chains[i][3].payload for i in survivors}
    assert blocks == {b"in flight"}


def test_rules_pick_the_highest_view_prepared_certificate() -> None:
    h = make_harness(me=0)
    rules = ViewChangeRules(CHAIN_ID, h.keys.public, h.keys.verify, 3, 10, sha256, False)
    old = _prepared(h, 5, 1, b"old")
    new = _prepared(h, 5, 3, b"new")
    lower = _prepared(h, 4, 4, b"below the committed height")
    vcs = [
        h.view_change(6, 0, prepared=old),
        h.view_change(6, 1, prepared=new),
        h.view_change(6, 2, prepared=lower),
    ]
    decision = rules.decide(vcs)
    assert decision.committed_height == 4 and decision.reproposal == new
    assert (
        ViewChangeRules(CHAIN_ID, h.keys.public, h.keys.verify, 3, 10, sha256, True)
        .decide(vcs)
        .reproposal
        is None
    )  # the planted bug


def test_delivered_blocks_survive_any_sequence_of_view_changes() -> None:
    cluster = SyncCluster(4, view_timeout_ticks=3)
    for round_number in range(8):
        cluster.run_blocks(2, prefix=b"round %d" % round_number)
        cluster.cut = {cluster.replicas[0].leader}
        cluster.tick(10)
        cluster.cut = set()
        cluster.tick(10)
    heights = cluster.heights()
    top = min(heights)
    assert top >= 16
    for height in range(top):
        assert len({chain[height].payload for chain in cluster.chains}) == 1
    assert {r.view for r in cluster.replicas} == {cluster.replicas[0].view}
    assert delivered([]) == []


def test_a_view_change_for_a_later_view_supports_escalating_from_ours() -> None:
    """Validator 0 is down; 3 escalated to view 2 (its quorum for view 1 included 0's view
    change, which 1 and 2 never got); 1 (leader of view 1) and 2 wait in view 1. 3's view
    change for view 2 asks to leave view 1 too: with it 1 has a quorum for leaving view 1
    and escalates, instead of all three waiting for ever (found by the simulator)."""
    h = make_harness(me=1, view_timeout_ticks=2)
    for _ in range(2):
        h.replica.tick()
    assert h.replica.view == 1 and h.replica.status()["mode"] != "normal"
    h.feed(h.view_change(1, 2), h.view_change(2, 3))
    asked = []
    for _ in range(50):
        asked += [vc.new_view for vc in broadcasts(h.replica.tick(), ViewChange)]
    assert 2 in asked and h.replica.view == 2
