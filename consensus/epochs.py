"""The host's epoch rule: which replica runs, and when it learns where its epoch ends.

A host runs one Replica per epoch (docs/CONSENSUS.md "Epochs"). The set that signs block h
is fixed by the chain up to h - 2, so after every commit the host knows the epoch of
head + 1 (the height in flight) and of head + 2. From those and its replica it decides:

- swap: the epoch of head + 1 is not the replica's (it delivered its last height, or the
  node restarted between two epochs): build the next epoch's replica, carrying the old
  one's state over with `carry_over` (the view and the last-signed guard only);
- end: the epoch of head + 2 differs from the one in force and the (possibly new) replica
  has not been told yet: call `replica.end_epoch_at(end_at)`, the height before it;
- neither.

One function for every host: node/daemon/driver.py and simulator/host.py run this same rule
(the simulator checks the node's decision, not a copy of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consensus.persisted import PersistedState


class EpochLike(Protocol):
    """What the rule reads of an epoch (node.ledger.governance.Epoch, the simulator's)."""

    @property
    def number(self) -> int: ...

    @property
    def start_height(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EpochStep:
    swap: bool  # build the replica of the epoch of head + 1 now
    end_at: int | None  # then tell the (new) replica its epoch ends at this height


def follow_schedule(
    replica_epoch: int,
    replica_last_height: int | None,
    current: EpochLike,
    upcoming: EpochLike,
) -> EpochStep:
    """The step after a commit (or on start): `current` is the epoch of head + 1, `upcoming`
    the epoch of head + 2; the replica runs `replica_epoch` and knows its end
    `replica_last_height` (None: not told yet)."""
    swap = current.number != replica_epoch
    last_height = None if swap else replica_last_height
    end_at = None
    if upcoming.number != current.number and last_height is None:
        end_at = upcoming.start_height - 1
    return EpochStep(swap, end_at)


def carry_over(persisted: PersistedState | None, epoch: EpochLike) -> PersistedState | None:
    """The persisted state a replica of `epoch` starts from: as stored when it is that
    epoch's, else carried over (stopped between an epoch's last block and the next epoch's
    first vote, or the state of the replica just replaced)."""
    if persisted is None or persisted.epoch == epoch.number:
        return persisted
    return persisted.for_next_epoch(epoch.number, epoch.start_height)
