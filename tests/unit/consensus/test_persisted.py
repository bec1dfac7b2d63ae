from __future__ import annotations

import pytest

from consensus import (
    CheckpointProof,
    CommitCertificate,
    PersistedState,
    PreparedCertificate,
    SignedVote,
)

D = bytes(range(32))


def _state(**overrides: object) -> PersistedState:
    fields: dict[str, object] = dict(
        view=3,
        in_view_change=True,
        view_floor_height=9,
        last_commit=CommitCertificate(8, 2, D, ((0, b"a"), (1, b"b"), (2, b"c"))),
        prepared=PreparedCertificate(9, 2, D, ((0, b"a"), (1, b"b"), (3, b"d"))),
        prepared_payload=b"block nine",
        stable_checkpoint=CheckpointProof(5, D, ((0, b"a"), (1, b"b"), (2, b"c"))),
        last_pre_prepare=SignedVote(2, 9, D),
        last_prepare=SignedVote(2, 9, D),
        last_commit_vote=SignedVote(2, 9, D),
        last_view_change=3,
        last_new_view=0,
    )
    fields.update(overrides)
    return PersistedState(**fields)  # type: ignore[arg-type]


def test_round_trip() -> None:
    for state in (
        _state(),
        _state(
            last_commit=None,
            prepared=None,
            prepared_payload=None,
            stable_checkpoint=None,
            last_pre_prepare=None,
        ),
    ):
        assert PersistedState.from_bytes(state.to_bytes()) == state


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x90", b"\x92\xa1x\x01"])
def test_garbage_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        PersistedState.from_bytes(data)


def test_truncated_state_raises_value_error() -> None:
    data = _state().to_bytes()
    for cut in range(0, len(data) - 1, 7):
        with pytest.raises(ValueError):
            PersistedState.from_bytes(data[:cut])
