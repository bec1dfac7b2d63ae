"""Persistence and the last-signed guard: a restarted replica never signs a conflicting vote
and carries what it prepared into the next view."""

from __future__ import annotations

from consensus_testkit import SyncCluster, broadcasts, kinds, make_harness, sha256

from consensus import (
    Action,
    Broadcast,
    Commit,
    Misbehaviour,
    Persist,
    PersistedState,
    Prepare,
    PrePrepare,
    ViewChange,
)


def _last_persisted(actions: list[Action]) -> PersistedState:
    states = [a.state for a in actions if isinstance(a, Persist)]
    assert states, "expected a Persist action"
    return PersistedState.from_bytes(states[-1].to_bytes())


def test_every_signed_vote_is_persisted_before_it_is_sent() -> None:
    cluster = SyncCluster(4)
    orders: list[list[str]] = []
    seen: set[tuple[int, str, int, int]] = set()
    original = cluster.perform

    def record(i: int, actions: list[Action]) -> None:
        fresh = False
        for a in actions:
            msg = a.msg if isinstance(a, Broadcast) else None
            if isinstance(msg, PrePrepare | Prepare | Commit) and msg.sender == i:
                key = (i, type(msg).__name__, msg.view, msg.height)
            elif isinstance(msg, ViewChange) and msg.sender == i:
                key = (i, "ViewChange", msg.new_view, 0)
            else:
                continue
            fresh = fresh or key not in seen  # a retransmission needs no new Persist
            seen.add(key)
        if fresh:
            orders.append(kinds(actions))
        original(i, actions)

    cluster.perform = record  # type: ignore[method-assign]
    cluster.run_blocks(5)
    cluster.cut = {cluster.replicas[0].leader}
    cluster.tick(30)
    cluster.run_blocks(2)
    assert len(orders) > 20
    for order in orders:
        assert order[0] == "Persist"


def test_restarted_replica_refuses_a_conflicting_proposal() -> None:
    h = make_harness(me=2)
    first = h.pre_prepare(0, 1, b"first")
    state = _last_persisted(h.feed(first))
    h.restart(state, committed_height=0)
    actions = h.feed(h.pre_prepare(0, 1, b"equivocating leader's second block"))
    assert not broadcasts(actions, Prepare)
    assert any(isinstance(a, Misbehaviour) and a.kind == "equivocation" for a in actions)
    # The same block again is fine: it is the vote it already signed.
    assert broadcasts(h.feed(first), Prepare)[0].digest == first.digest


def test_restarted_replica_keeps_out_of_the_view_it_left() -> None:
    h = make_harness(me=2, view_timeout_ticks=2)
    h.replica.tick()
    state = _last_persisted(h.replica.tick())
    assert state.in_view_change and state.view == 1
    h.restart(state, committed_height=0)
    assert h.replica.view == 1 and h.replica.status()["mode"] == "view-change"
    assert not broadcasts(h.feed(h.pre_prepare(0, 1, b"old view")), Prepare)
    resent = [a for _ in range(10) for a in h.replica.tick()]
    assert broadcasts(resent, ViewChange)  # it keeps asking for view 1


def test_prepared_block_survives_a_whole_cluster_restart() -> None:
    cluster = SyncCluster(4, view_timeout_ticks=3)
    cluster.run_blocks(2)
    cluster.propose(b"prepared everywhere")
    # Deliver pre-prepares and prepares and commits from nobody: every replica prepares.
    for _ in range(200):
        if not cluster._queue:
            break
        target, item = cluster._queue.pop(0)
        if isinstance(item, tuple) and isinstance(item[1], PrePrepare | Prepare):
            cluster._handle(target, item)
    cluster._queue.clear()
    for i in range(4):
        assert cluster.persisted[i] is not None
        assert cluster.persisted[i].prepared is not None  # type: ignore[union-attr]
        cluster.restart(i)
    cluster.tick(20)
    cluster.run_blocks(1, prefix=b"after")
    for chain in cluster.chains:
        assert chain[2].payload == b"prepared everywhere"


def test_replica_restarted_after_it_voted_rejoins_without_conflict() -> None:
    cluster = SyncCluster(4, view_timeout_ticks=3)
    cluster.run_blocks(3)
    cluster.restart(2)
    cluster.run_blocks(3)
    cluster.restart(0)  # the leader itself
    cluster.tick(15)
    cluster.run_blocks(3)
    heights = cluster.heights()
    assert min(heights) >= 8
    for height in range(min(heights)):
        assert len({chain[height].payload for chain in cluster.chains}) == 1


def test_restart_with_blocks_delivered_but_not_executed_fetches_them() -> None:
    h = make_harness(me=2)
    proposal = h.pre_prepare(0, 1, b"one")
    h.feed(proposal, h.prepare(0, 1, proposal.digest, 0), h.prepare(0, 1, proposal.digest, 3))
    actions = h.feed(h.commit(0, 1, proposal.digest, 0), h.commit(0, 1, proposal.digest, 3))
    state = PersistedState.from_bytes(
        [a.state for a in actions + h.replica.tick() if isinstance(a, Persist)][-1].to_bytes()
        if any(isinstance(a, Persist) for a in actions)
        else h.replica._snapshot().to_bytes()
    )
    assert state.last_commit is not None and state.last_commit.height == 1
    h.restart(state, committed_height=0)  # the node crashed before executing block 1
    fetches = [a for a in h.replica.tick() if type(a).__name__ == "FetchBlocks"]
    assert fetches and fetches[0].from_height == 1  # type: ignore[attr-defined]
    assert sha256(b"one") == proposal.digest


def _crash_after_committing_next_block(cluster: SyncCluster) -> None:
    """The lone validator stores its next block and dies before executed() reaches the
    replica (crash step 2: the durable write, then the commit), then starts again."""
    before = cluster.heights()[0]
    cluster.hosts[0].arm_crash(2)
    cluster.run_blocks(1, prefix=b"crashed at")
    assert cluster.hosts[0].crashed and cluster.heights()[0] == before + 1
    cluster.restart(0)


def test_restarts_around_checkpoints_never_stall_a_lone_validator() -> None:
    """The transcript of a kill -9 test that once stalled at the high watermark: the stable
    checkpoint is not forced to disk, so each restart must sign again the last checkpoint
    it executed (and take it as stable when its own vote is the quorum)."""
    cluster = SyncCluster(1, checkpoint_interval=10, watermark_window=20)
    cluster.run_blocks(39)
    _crash_after_committing_next_block(cluster)  # block 40 stored, its checkpoint unsigned
    assert cluster.replicas[0].status()["stable_checkpoint"] == 40
    cluster.run_blocks(5)
    cluster.restart(0)  # at 45: the checkpoint at 40 is behind the head
    assert cluster.replicas[0].status()["stable_checkpoint"] == 40
    cluster.run_blocks(4)
    _crash_after_committing_next_block(cluster)  # block 50, at the old high watermark
    replica = cluster.replicas[0]
    assert replica.status()["stable_checkpoint"] == 50
    assert replica.can_propose
    cluster.run_blocks(25)
    assert cluster.heights() == [75]
