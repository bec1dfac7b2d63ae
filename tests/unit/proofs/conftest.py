"""Fixtures for receipt and proof tests; the helpers live in proofkit.py (tests/ has no
packages under importlib mode, so this folder goes on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from proofkit import CertifiedChain, fill_busy, open_chain  # noqa: E402


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[CertifiedChain]:
    c = open_chain(tmp_path / "db")
    yield c
    c.store.close()


@pytest.fixture
def busy_chain(chain: CertifiedChain) -> CertifiedChain:
    """A chain holding every transaction type, ok and refused, over several blocks."""
    return fill_busy(chain)
