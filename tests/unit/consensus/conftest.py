"""Make consensus_testkit importable (tests/ has no packages under importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from consensus_testkit import Harness, make_harness  # noqa: E402


@pytest.fixture
def harness() -> Harness:
    return make_harness()
