"""Certified time: what a timed commit certificate says about when its block committed.

Each commit vote signs its signer's clock reading, so a certificate of k >= quorum entries
holds k readings, of which at most f = max_faulty(n) come from faulty validators. Sorted
t[0] <= ... <= t[k-1]:

- the certified time is the lower median t[(k - 1) // 2]: at least f + 1 readings are at or
  below it and at least f + 1 at or above it, so one honest reading lies on each side (as
  CometBFT's BFT time, which takes the median of the last commit's times);
- the window [a, b] is the narrowest run of f + 1 consecutive readings that holds the median
  (the lowest such run on a tie). It holds f + 1 readings, so at least one of them is an
  honest validator's: an honest clock read a time in [a, b] when its validator signed.

Neither rests on the proposer: f faulty signers can move the median only within the
honest readings, and cannot make a window that holds no honest reading. Pure functions:
the offline verifier runs them on a certificate it has checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.certificates import CommitCertificate
from consensus.quorum import max_faulty


@dataclass(frozen=True, slots=True)
class CertifiedTime:
    median_ms: int
    window_ms: tuple[int, int]
    readings: tuple[tuple[int, int], ...]  # (validator index, time_ms), certificate order


def certified_time_of(readings: Sequence[int], n: int) -> tuple[int, tuple[int, int]]:
    """(median, window) of k >= 1 readings from a set of n validators (see the docstring)."""
    if not readings:
        raise ValueError("no readings")
    times = sorted(readings)
    k = len(times)
    f = max_faulty(n)
    median_index = (k - 1) // 2
    run = min(f + 1, k)
    best: tuple[int, int] | None = None
    # Runs [s, s + run - 1] that contain median_index, narrowest first, then lowest.
    for start in range(max(0, median_index - run + 1), min(median_index, k - run) + 1):
        low, high = times[start], times[start + run - 1]
        if best is None or high - low < best[1] - best[0]:
            best = (low, high)
    if best is None:  # unreachable: run <= k always leaves one start
        raise ValueError("no window")
    return times[median_index], best


def certified_time(certificate: CommitCertificate, n: int) -> CertifiedTime:
    """The certified time of a timed certificate over a set of n validators."""
    if certificate.times is None:
        raise ValueError("an untimed (version 1) certificate certifies no time")
    median, window = certified_time_of(certificate.times, n)
    readings = tuple(
        (index, t) for (index, _), t in zip(certificate.signatures, certificate.times, strict=True)
    )
    return CertifiedTime(median, window, readings)
