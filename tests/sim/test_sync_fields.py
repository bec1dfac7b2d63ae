"""The replica decides whether a write is due from its live sync fields, without a snapshot
(Replica._run's fast path): across whole hostile runs — view changes, crashes, restarts,
epochs — those live fields must equal the snapshot's after every input."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consensus.replica import Replica
from simulator.world import run_seed


def test_live_sync_fields_equal_the_snapshots_after_every_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = {"inputs": 0, "writes": 0}
    original = Replica._run

    def checked_run(self: Replica, handler: Callable[[], None]) -> list[object]:
        durable = self._durable
        actions = original(self, handler)
        if self._sync_fields() != self._snapshot().sync_fields():
            raise AssertionError("live sync fields differ from the snapshot's")
        if self._durable is not durable:
            checked["writes"] += 1
            if self._durable_fields != self._durable.sync_fields():
                raise AssertionError("the durable fields were not updated with the write")
        checked["inputs"] += 1
        return actions  # type: ignore[return-value]

    monkeypatch.setattr(Replica, "_run", checked_run)
    for seed in range(40):
        result = run_seed(seed)
        assert result.ok, f"seed {seed}: {result.violation}"
    assert checked["inputs"] > 10_000 and checked["writes"] > 1_000, checked
