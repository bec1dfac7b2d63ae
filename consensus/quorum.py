"""Quorum sizes for any number of validators.

f = max_faulty(n) = (n - 1) // 3 is the number of byzantine validators the protocol tolerates.
A quorum is quorum_size(n) = ceil((n + f + 1) / 2) distinct validators. Two quorums then share
at least 2q - n >= f + 1 validators, so at least one honest validator is in both (safety), and
q <= n - f, so the honest validators alone form a quorum (liveness). For n = 3f + 1 this is the
classic 2f + 1; for n = 1 it is 1 (the single validator certifies every block on its own).
"""

from __future__ import annotations


def max_faulty(n: int) -> int:
    """The number of byzantine validators that n validators tolerate."""
    if n < 1:
        raise ValueError(f"a validator set needs at least one validator, got {n}")
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """The smallest number of distinct validators whose votes form a quorum: ceil((n+f+1)/2)."""
    faulty = max_faulty(n)
    return (n + faulty + 2) // 2
