from __future__ import annotations

import pytest

from consensus import max_faulty, quorum_size


@pytest.mark.parametrize(
    ("n", "f", "q"),
    [(1, 0, 1), (2, 0, 2), (3, 0, 2), (4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7)],
)
def test_known_sizes(n: int, f: int, q: int) -> None:
    assert max_faulty(n) == f
    assert quorum_size(n) == q


@pytest.mark.parametrize("n", range(1, 200))
def test_quorums_intersect_in_an_honest_validator_and_honest_alone_form_one(n: int) -> None:
    f, q = max_faulty(n), quorum_size(n)
    assert 2 * q - n >= f + 1  # any two quorums share f + 1, so at least one honest
    assert q <= n - f  # the honest validators alone can make progress
    if n % 3 == 1:
        assert q == 2 * f + 1


def test_zero_validators_is_an_error() -> None:
    with pytest.raises(ValueError):
        max_faulty(0)
