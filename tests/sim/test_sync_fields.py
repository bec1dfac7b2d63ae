"""Replica._run decides whether a write is due from its live sync fields and skips
must_sync when they equal the last ones it checked. Across whole hostile runs — view
changes, crashes, restarts, epochs — that shortcut must never leave a write undone: after
every input, the replica's state must not need a write against what it last made durable,
and its live sync fields must be the snapshot's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consensus.replica import Replica
from simulator.world import run_seed


def test_no_input_leaves_a_due_write_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = {"inputs": 0, "writes": 0}
    original = Replica._run

    def checked_run(self: Replica, handler: Callable[..., None], *args: object) -> list[object]:
        durable = self._durable
        actions = original(self, handler, *args)
        state = self._snapshot()
        if self._sync_fields() != state.sync_fields():
            raise AssertionError("live sync fields differ from the snapshot's")
        if state.must_sync(self._durable):
            raise AssertionError("an input left a write that was due undone")
        checked["writes"] += self._durable is not durable
        checked["inputs"] += 1
        return actions  # type: ignore[return-value]

    monkeypatch.setattr(Replica, "_run", checked_run)
    for seed in range(40):
        result = run_seed(seed)
        assert result.ok, f"seed {seed}: {result.violation}"
    assert checked["inputs"] > 10_000 and checked["writes"] > 1_000, checked
