"""The host contract (consensus/ready.py): batches, the journal, the restart rule."""

from __future__ import annotations

import pytest
from consensus_testkit import make_harness, sha256

from consensus import (
    CommitCertificate,
    Deliver,
    FetchBlocks,
    Misbehaviour,
    Persist,
    Send,
)
from consensus.config import MUTATION_PERSIST_AFTER_SEND
from consensus.invariants import InvariantViolation, check_replica_state
from consensus.ready import batch_of, journal_entries, replay_on_start


def _deliver(height: int) -> Deliver:
    payload = b"block %d" % height
    return Deliver(height, payload, CommitCertificate(height, 0, sha256(payload), ((0, b"s"),)))


def test_a_batch_groups_one_inputs_actions_by_what_the_host_does() -> None:
    h = make_harness(me=0)
    actions = h.replica.propose(b"b1")
    state = actions[0].state  # type: ignore[union-attr]
    extra = [
        _deliver(1),
        _deliver(2),
        FetchBlocks(3, (1, 2)),
        Misbehaviour(2, "equivocation", "x"),
        Send(1, actions[1].msg),  # type: ignore[union-attr]
    ]
    batch = batch_of([*actions, *extra])
    assert batch.persist == state and batch.unguarded == ()
    assert [d.height for d in batch.decided] == [1, 2]
    assert len(batch.messages) == 3 and isinstance(batch.messages[2], Send)
    assert batch.fetches == (extra[2],) and batch.evidence == (extra[3],)
    assert batch_of([]).empty and not batch.empty


def test_without_a_persist_every_message_is_plain() -> None:
    msg = make_harness(me=0).replica.propose(b"b1")[1]
    batch = batch_of([msg])
    assert batch.messages == (msg,) and batch.unguarded == ()


def test_the_planted_bug_persist_after_send_stays_visible_to_the_host() -> None:
    h = make_harness(me=0, mutations=frozenset({MUTATION_PERSIST_AFTER_SEND}))
    actions = h.replica.propose(b"b1")
    assert isinstance(actions[-1], Persist)
    batch = batch_of(actions)
    assert len(batch.unguarded) == 2 and batch.messages == ()  # sent before the write


def test_output_no_replica_produces_is_refused() -> None:
    persist = make_harness(me=0).replica.propose(b"b1")[0]
    with pytest.raises(ValueError):
        batch_of([persist, persist])
    with pytest.raises(ValueError):
        batch_of([_deliver(2), _deliver(1)])
    with pytest.raises(TypeError):
        batch_of([object()])  # type: ignore[list-item]


def test_the_journal_holds_the_decided_blocks_above_the_stored_chain() -> None:
    decided = [_deliver(4), _deliver(5), _deliver(6)]
    entries = journal_entries(decided, stored_height=4)
    assert [e[0] for e in entries] == [5, 6]
    assert entries[0] == (5, b"block 5", decided[1].certificate.to_bytes())
    assert journal_entries(decided, stored_height=6) == []


def test_on_start_the_journaled_blocks_that_continue_the_chain_are_committed() -> None:
    journal = [(h, b"p%d" % h, b"c%d" % h) for h in (7, 5, 6, 9)]
    assert [e[0] for e in replay_on_start(journal, head_height=4)] == [5, 6, 7]  # 9: a gap
    assert [e[0] for e in replay_on_start(journal, head_height=6)] == [7]
    assert replay_on_start(journal, head_height=3) == []  # 4 is missing: fetch instead
    assert replay_on_start([], head_height=0) == []


def test_invariants_are_checked_explicitly() -> None:
    fine = dict(
        executed=3,
        delivered=4,
        floor=1,
        view=2,
        slot_height=5,
        slot_view=2,
        prepared=None,
        prepared_payload=None,
        last_votes=(None, None, None),
        last_view_change=2,
        last_new_view=0,
    )
    check_replica_state(**fine)  # type: ignore[arg-type]
    for broken in (
        {"executed": 5},
        {"prepared_payload": b"payload without certificate"},
        {"slot_height": 4},
        {"slot_view": 1},
        {"last_view_change": 3},
    ):
        with pytest.raises(InvariantViolation):
            check_replica_state(**{**fine, **broken})  # type: ignore[arg-type]
