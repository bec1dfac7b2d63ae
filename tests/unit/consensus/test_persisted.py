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


def test_must_sync_on_every_field_that_guards_a_signature() -> None:
    base = _state()
    assert not base.must_sync(base)
    vote = SignedVote(3, 10, bytes(32))
    for change in (
        {"view": 4},
        {"in_view_change": False},
        {"view_floor_height": 10},
        {"last_pre_prepare": vote},
        {"last_prepare": vote},
        {"last_commit_vote": vote},
        {"last_view_change": 4},
        {"last_new_view": 3},
        {"prepared": PreparedCertificate(10, 3, D, ((0, b"a"), (1, b"b"), (2, b"c")))},
    ):
        assert _state(**change).must_sync(base), change


def test_must_sync_ignores_what_is_recoverable_or_only_shrinks() -> None:
    """As etcd raft's MustSync ignores the commit index."""
    base = _state()
    for change in (
        {"last_commit": CommitCertificate(9, 2, D, ((0, b"a"), (1, b"b"), (2, b"c")))},
        {"last_commit": None},
        {"stable_checkpoint": CheckpointProof(10, D, ((0, b"a"), (1, b"b"), (2, b"c")))},
        {"prepared": None, "prepared_payload": None},  # cleared by a delivery or by GC
    ):
        assert not _state(**change).must_sync(base), change


def test_a_prepared_certificate_without_its_payload_is_refused() -> None:
    data = _state(prepared_payload=None).to_bytes()
    with pytest.raises(ValueError, match="without payload"):
        PersistedState.from_bytes(data)


def test_sync_fields_hold_every_field_must_sync_reads() -> None:
    """The replica skips must_sync when sync_fields are unchanged: that is only right if
    every change that forces a write also changes them."""
    base = _state()
    vote = SignedVote(3, 10, bytes(32))
    other = PreparedCertificate(10, 3, D, ((0, b"a"), (1, b"b"), (2, b"c")))
    changes: list[dict[str, object]] = [
        {"view": 0},
        {"view": 4},
        {"in_view_change": False},
        {"view_floor_height": 1},
        {"view_floor_height": 10},
        {"last_commit": None},
        {"prepared": None, "prepared_payload": None},
        {"prepared": other},
        {"prepared_payload": b"other"},
        {"stable_checkpoint": None},
        {"last_pre_prepare": None},
        {"last_pre_prepare": vote},
        {"last_prepare": None},
        {"last_prepare": vote},
        {"last_commit_vote": None},
        {"last_commit_vote": vote},
        {"last_view_change": 0},
        {"last_view_change": 4},
        {"last_new_view": 3},
        {"epoch": 1},
    ]
    assert {name for change in changes for name in change} == set(
        PersistedState.__dataclass_fields__
    )
    forcing = 0
    for change in changes:
        changed = _state(**change)
        if changed.must_sync(base):
            forcing += 1
            assert changed.sync_fields() != base.sync_fields(), change
    assert forcing == 15  # the changes that must be durable: a test that checks something
