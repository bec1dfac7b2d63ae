"""Certified time: commit votes carry the signer's clock; the certificate's readings give a
median and a window that the faulty signers cannot move outside the honest readings."""

from __future__ import annotations

import pytest
from consensus_testkit import SyncCluster
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import CommitCertificate, max_faulty, quorum_size
from consensus.bfttime import certified_time, certified_time_of


def test_median_and_window_of_a_four_validator_quorum() -> None:
    # n = 4, f = 1: three readings; the window is the narrowest pair holding the median.
    assert certified_time_of([1000, 1005, 0], 4) == (1000, (1000, 1005))
    assert certified_time_of([1000, 1005, 9999], 4) == (1005, (1000, 1005))
    assert certified_time_of([1000, 1002, 1005], 4) == (1002, (1000, 1002))
    assert certified_time_of([7], 1) == (7, (7, 7))
    with pytest.raises(ValueError):
        certified_time_of([], 4)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=13),
    st.data(),
)
def test_faulty_readings_cannot_leave_the_honest_ones(n: int, data: st.DataObject) -> None:
    """Whatever f signers report, the median lies between two honest readings and the window
    holds at least one honest reading."""
    f = max_faulty(n)
    k = data.draw(st.integers(min_value=quorum_size(n), max_value=n))
    faulty = data.draw(st.integers(min_value=0, max_value=min(f, k - 1)))
    honest = data.draw(st.lists(st.integers(0, 10**6), min_size=k - faulty, max_size=k - faulty))
    bad = data.draw(st.lists(st.integers(0, 2**63), min_size=faulty, max_size=faulty))
    median, (low, high) = certified_time_of(honest + bad, n)
    assert min(honest) <= median <= max(honest)
    assert any(low <= t <= high for t in honest)
    assert low <= median <= high


def test_certified_time_of_a_timed_certificate_and_not_of_an_untimed_one() -> None:
    cert = CommitCertificate(1, 0, b"d" * 32, ((0, b"a"), (2, b"b"), (3, b"c")), (30, 10, 20))
    ct = certified_time(cert, 4)
    assert (ct.median_ms, ct.window_ms) == (20, (10, 20))
    assert ct.readings == ((0, 30), (2, 10), (3, 20))
    with pytest.raises(ValueError, match="untimed"):
        certified_time(CommitCertificate(1, 0, b"d" * 32, ((0, b"a"),)), 4)


def test_replicas_sign_the_clock_they_are_given_into_their_commits() -> None:
    cluster = SyncCluster(4)
    for i, replica in enumerate(cluster.replicas):
        replica.clock(1_700_000_000_000 + 10 * i)
    cluster.run_blocks(2)
    for store in cluster.stores:
        for block in store.blocks:
            cert = block.certificate
            assert cert.times is not None
            expected = {i: 1_700_000_000_000 + 10 * i for i, _ in cert.signatures}
            assert dict(zip(cert.signers(), cert.times, strict=True)) == expected
    with pytest.raises(ValueError):
        cluster.replicas[0].clock(-1)
