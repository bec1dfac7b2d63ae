"""What a faulty validator can make a replica hold or compute: bounded in bytes, far-future
views refused, payloads screened before the node spends anything on them."""

from __future__ import annotations

import dataclasses

from consensus_testkit import make_harness, sha256

from consensus import UNATTRIBUTABLE, Misbehaviour, Prepare, PrePrepare

FAR = 2**64 - 1


def test_far_future_views_are_dropped_not_buffered() -> None:
    h = make_harness(me=1, max_future_views=4)
    leader_of_far = FAR % 4
    for i in range(16):  # heights 1 and 2: within the epoch the replica knows
        msg = h.pre_prepare(FAR, 1 + i % 2, b"x" * 1000 + bytes([i]), sender=leader_of_far)
        assert h.feed(msg) == []
    status = h.replica.status()
    assert status["log"]["buffered_messages"] == 0
    assert status["counters"]["dropped.far_future_view"] == 16
    # A view within the window is still buffered (a replica a little behind catches up).
    near = h.pre_prepare(4, 1, b"near", sender=0)
    h.feed(near)
    assert h.replica.status()["log"]["buffered_messages"] == 1


def test_future_buffer_is_bounded_in_bytes_per_sender() -> None:
    h = make_harness(me=1, max_payload_bytes=10_000, max_buffered_bytes_per_sender=25_000)
    for i in range(8):  # 0 leads views 4, 8, 12, 16; each proposal about 10 KB
        h.feed(h.pre_prepare(4 + 4 * (i // 2), 1 + i % 2, bytes([i]) * 9_000, sender=0))
    status = h.replica.status()
    assert status["log"]["buffered_messages"] == 2  # 2 x (9,000 + overhead) fit, not 3
    assert status["counters"]["dropped.buffer_bytes_full"] == 6
    # Small votes of the same sender still fit in what is left.
    h.feed(h.prepare(4, 1, sha256(b"p"), sender=0))
    assert h.replica.status()["log"]["buffered_messages"] == 3


def test_only_screened_payloads_are_named_for_preparation() -> None:
    h = make_harness(me=1)  # view 0, leader 0, next height 1
    good = h.pre_prepare(0, 1, b"block")
    assert h.replica.payloads_to_prepare(good) == (b"block",)
    not_leader = h.pre_prepare(0, 1, b"junk", sender=3)
    far = h.pre_prepare(FAR, 1, b"junk", sender=FAR % 4)
    stale_height = h.pre_prepare(0, 0, b"junk")
    forged = dataclasses.replace(good, signature=b"\0" * 32)
    for msg in (not_leader, far, stale_height, forged):
        assert h.replica.payloads_to_prepare(msg) == (), msg
    # A buffered future proposal of the leader of a near view is prepared too (it will be
    # digested when replayed).
    near = h.pre_prepare(1, 1, b"next view", sender=1 % 4)
    h2 = make_harness(me=2)
    assert h2.replica.payloads_to_prepare(near) == (b"next view",)
    # Votes carry no payload.
    assert h.replica.payloads_to_prepare(h.prepare(0, 1, sha256(b"block"), 2)) == ()


def test_a_view_change_payload_is_prepared_only_with_a_valid_prepared_certificate() -> None:
    from consensus_testkit import CHAIN_ID

    from consensus import PreparedCertificate, vote_signing_bytes

    h = make_harness(me=1)
    digest = sha256(b"prepared block")
    sigs = tuple(
        (i, h.keys.sign(i, vote_signing_bytes(CHAIN_ID, "prepare", 0, 1, digest)))
        for i in (0, 2, 3)
    )
    prepared = PreparedCertificate(1, 0, digest, sigs)
    vc = h.view_change(1, 2, prepared=prepared, prepared_payload=b"prepared block")
    assert h.replica.payloads_to_prepare(vc) == (b"prepared block",)
    short = PreparedCertificate(1, 0, digest, sigs[:1])
    vc_short = h.view_change(1, 2, prepared=short, prepared_payload=b"junk")
    assert h.replica.payloads_to_prepare(vc_short) == ()


def test_bad_signatures_are_marked_unattributable() -> None:
    h = make_harness(me=1)
    forged = Prepare(0, 1, sha256(b"x"), 2, b"\0" * 32)
    (evidence,) = [a for a in h.feed(forged) if isinstance(a, Misbehaviour)]
    assert evidence.kind == "bad-signature" and evidence.kind in UNATTRIBUTABLE
    # Evidence that a valid signature proves names its signer: attributable.
    wrong_leader = h.pre_prepare(0, 1, b"b", sender=3)
    (evidence,) = [a for a in h.feed(wrong_leader) if isinstance(a, Misbehaviour)]
    assert evidence.kind == "wrong-leader" and evidence.kind not in UNATTRIBUTABLE
    assert isinstance(wrong_leader, PrePrepare)
