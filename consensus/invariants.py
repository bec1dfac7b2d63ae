"""Rules the replica's own state satisfies after every input, checked explicitly.

A violation is a bug in consensus/ (or a persisted record that no correct replica could have
written), never the fault of a remote validator: remote input is reported as evidence and
dropped long before it could break one of these. The checks raise InvariantViolation rather
than use `assert`, so that they also hold under `python -O`.
"""

from __future__ import annotations

from consensus.certificates import PreparedCertificate
from consensus.persisted import SignedVote


class InvariantViolation(Exception):
    """The replica's state broke a rule it must always keep (a bug, not bad input)."""


def check_replica_state(
    *,
    executed: int,
    delivered: int,
    floor: int,
    view: int,
    slot_height: int,
    slot_view: int,
    prepared: PreparedCertificate | None,
    prepared_payload: bytes | None,
    last_votes: tuple[SignedVote | None, ...],
    last_view_change: int,
    last_new_view: int,
) -> None:
    """Raise InvariantViolation when the replica's state breaks one of its rules."""
    if delivered < executed:
        raise InvariantViolation(f"delivered height {delivered} < executed height {executed}")
    if (prepared is None) != (prepared_payload is None):
        raise InvariantViolation("the prepared certificate and its payload are not set together")
    if prepared is not None and prepared.height <= delivered:
        # Delivering (or fetching) a height clears a prepared certificate at or below it.
        raise InvariantViolation(
            f"prepared height {prepared.height} kept after delivering {delivered}"
        )
    if slot_height != max(delivered + 1, floor) or slot_view != view:
        raise InvariantViolation(
            f"slot {slot_view}/{slot_height} is not the one in flight "
            f"(view {view}, delivered {delivered}, floor {floor})"
        )
    if view < last_view_change or view < last_new_view:
        raise InvariantViolation(
            f"view {view} below a view change ({last_view_change}) or new view "
            f"({last_new_view}) this replica signed"
        )
    for vote in last_votes:
        if vote is not None and vote.view > view:
            raise InvariantViolation(f"signed a vote in view {vote.view} above its view {view}")
