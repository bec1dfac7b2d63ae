"""CLI commands for receipts, proofs and offline verification (filled in by the receipts work)."""

from __future__ import annotations

from typing import Any


def add_proof_commands(sub: Any, make: Any, client_opts: Any) -> None:
    """Register `chain receipt`, `chain verify`, `chain item export` (not yet built)."""
