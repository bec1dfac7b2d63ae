"""Checkpoints, watermarks, garbage collection, and learning that one is behind."""

from __future__ import annotations

from consensus_testkit import SyncCluster, broadcasts, make_harness, sha256

from consensus import Checkpoint, FetchBlocks, Misbehaviour


def test_checkpoints_become_stable_and_collect_garbage() -> None:
    cluster = SyncCluster(4, checkpoint_interval=5, watermark_window=10)
    cluster.run_blocks(12)
    for replica in cluster.replicas:
        status = replica.status()
        assert status["stable_checkpoint"] == 10
        assert status["low_watermark"] == 10 and status["high_watermark"] == 20
        assert status["log"]["checkpoint_votes"] == 0  # type: ignore[index]
        assert status["prepared_height"] == 0


def test_leader_stops_at_the_high_watermark_until_a_checkpoint_is_stable() -> None:
    cluster = SyncCluster(4, checkpoint_interval=2, watermark_window=4)
    cluster.cut = set()
    # Drop every checkpoint: nothing ever becomes stable.
    original = cluster._handle

    def drop_checkpoints(target: int, item: object) -> None:
        if isinstance(item, tuple) and isinstance(item[1], Checkpoint):
            return
        original(target, item)

    cluster._handle = drop_checkpoints  # type: ignore[method-assign]
    for k in range(4):
        cluster.propose(b"b%d" % k)
        cluster.settle()
    assert cluster.heights() == [4, 4, 4, 4]
    assert not any(r.can_propose for r in cluster.replicas)  # height 5 > high watermark 4
    cluster._handle = original  # type: ignore[method-assign]
    cluster.tick(6)  # retransmitted checkpoints arrive
    assert cluster.replicas[0].status()["stable_checkpoint"] == 4
    cluster.run_blocks(1)
    assert cluster.heights() == [5, 5, 5, 5]


def test_f_plus_one_matching_checkpoints_above_us_trigger_a_fetch() -> None:
    h = make_harness(me=3, checkpoint_interval=5, watermark_window=10)
    root = sha256(b"state at 50")
    assert not [a for a in h.feed(h.checkpoint(50, root, 0)) if isinstance(a, FetchBlocks)]
    actions = h.feed(h.checkpoint(50, root, 1))
    (fetch,) = [a for a in actions if isinstance(a, FetchBlocks)]
    assert fetch.from_height == 1 and fetch.peers == (0, 1)


def test_checkpoint_misbehaviour_reported() -> None:
    h = make_harness(me=3, checkpoint_interval=5, watermark_window=10)
    (evidence,) = h.feed(h.checkpoint(7, sha256(b"x"), 0))
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "bad-checkpoint"
    h.feed(h.checkpoint(5, sha256(b"x"), 1))
    (evidence,) = h.feed(h.checkpoint(5, sha256(b"y"), 1))
    assert isinstance(evidence, Misbehaviour) and evidence.kind == "equivocation"


def test_lagging_replica_catches_up_through_fetch() -> None:
    cluster = SyncCluster(4, checkpoint_interval=3, watermark_window=6)
    cluster.cut = {3}
    cluster.run_blocks(14)
    assert cluster.heights() == [14, 14, 14, 0]
    cluster.cut = set()
    cluster.tick(10)
    cluster.run_blocks(2)
    assert cluster.heights() == [16, 16, 16, 16]
    assert [b.payload for b in cluster.chains[3]] == [b.payload for b in cluster.chains[0]]


def test_own_checkpoint_is_resent_until_stable() -> None:
    h = make_harness(me=1, checkpoint_interval=2, watermark_window=4, retransmit_interval_ticks=2)
    p1, p2 = h.pre_prepare(0, 1, b"one"), h.pre_prepare(0, 2, b"two")
    for p, height in ((p1, 1), (p2, 2)):
        h.feed(p, *(h.prepare(0, height, p.digest, i) for i in (0, 2)))
        h.feed(*(h.commit(0, height, p.digest, i) for i in (0, 2)))
        actions = h.replica.executed(height, sha256(b"root%d" % height))
    (checkpoint,) = broadcasts(actions, Checkpoint)
    assert checkpoint.height == 2
    resent = [a for _ in range(4) for a in h.replica.tick()]
    assert checkpoint in broadcasts(resent, Checkpoint)
