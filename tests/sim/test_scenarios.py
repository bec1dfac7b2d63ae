"""Scenario transcripts: each file under scenarios/ must replay to exactly its text.

Regenerate after a deliberate change with SCENARIO_REWRITE=1 and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simulator.scenario import Scenario

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.txt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    expected = path.read_text()
    actual = Scenario().run_file(expected)
    if os.environ.get("SCENARIO_REWRITE") == "1":
        path.write_text(actual)
        return
    assert actual == expected, f"{path.name} replays differently; diff it with SCENARIO_REWRITE=1"


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 5
