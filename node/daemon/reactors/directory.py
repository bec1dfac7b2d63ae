"""Who the validators are right now, for the reactors: the set of the epoch the replica
runs (consensus indexes refer to it) and the keys whose consensus messages are accepted
(that set and the one scheduled next, whose members may already be at the next height).
The driver updates it when it moves to a new epoch."""

from __future__ import annotations

from collections.abc import Sequence


class ValidatorDirectory:
    def __init__(self, current: Sequence[bytes]) -> None:
        self.current: tuple[bytes, ...] = tuple(current)
        self.accepted: frozenset[bytes] = frozenset(current)

    def update(self, current: Sequence[bytes], upcoming: Sequence[bytes] = ()) -> None:
        self.current = tuple(current)
        self.accepted = frozenset(current) | frozenset(upcoming)

    def key_of(self, index: int) -> bytes | None:
        return self.current[index] if 0 <= index < len(self.current) else None
