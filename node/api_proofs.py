"""JSON-RPC methods for receipts and state proofs (filled in by the receipts work)."""

from __future__ import annotations

from typing import Any


def proof_methods(api: Any) -> dict[str, Any]:
    return {}
