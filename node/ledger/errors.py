"""Errors of the ledger, each with a stable code that the RPC layer maps to a JSON-RPC code.

Structural errors (TxInvalid) make a transaction unacceptable anywhere: the mempool refuses it
and a block that holds one is invalid. Rule refusals are not errors: they are failure
results recorded in the block (see node.ledger.apps).
"""

from __future__ import annotations


class TxInvalid(Exception):
    """A structurally invalid transaction. `code` is one of the TX_* names below."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Codes (stable; documented in docs/RPC.md and docs/PROTOCOL.md).
MALFORMED = "malformed"
TOO_LARGE = "too_large"
BAD_SIGNATURE = "bad_signature"
WRONG_CHAIN = "wrong_chain"
STALE_NONCE = "stale_nonce"
FUTURE_NONCE = "future_nonce"
DUPLICATE = "duplicate"
NOT_PERMITTED = "not_permitted"
UNKNOWN_TYPE = "unknown_type"
BAD_ARGS = "bad_args"
MEMPOOL_FULL = "mempool_full"
NONCE_PENDING = "nonce_pending"


class BlockInvalid(Exception):
    """A proposed or fetched block that no honest node may accept."""
