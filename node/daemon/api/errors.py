"""Application error codes of the JSON-RPC methods (docs/RPC.md), outside the JSON-RPC
reserved band (-32768..-32000): 1001-1010 transaction refusals, 1020 not found, 1030 node
halted, 1050 proof not ready, 1051 stored evidence does not verify, 1052 no timestamp yet."""

from __future__ import annotations

from node.ledger import errors as E
from node.rpc.errors import RpcError

TX_ERROR_CODES = {
    E.BAD_SIGNATURE: 1001,
    E.WRONG_CHAIN: 1002,
    E.STALE_NONCE: 1003,
    E.FUTURE_NONCE: 1004,
    E.DUPLICATE: 1005,
    E.TOO_LARGE: 1006,
    E.MALFORMED: 1007,
    E.BAD_ARGS: 1007,
    E.UNKNOWN_TYPE: 1007,
    E.NOT_PERMITTED: 1008,
    E.MEMPOOL_FULL: 1009,
    E.NONCE_PENDING: 1010,
}
NOT_FOUND = 1020
HALTED = 1030
PROOF_NOT_READY = 1050
EVIDENCE_BAD = 1051
NO_TIMESTAMP = 1052  # no RFC 3161 timestamp recorded yet at or after the block


def tx_error(exc: E.TxInvalid) -> RpcError:
    return RpcError(
        TX_ERROR_CODES.get(exc.code, 1007),
        f"transaction refused: {exc.message}",
        {"reason": exc.code},
    )


def not_found(what: str) -> RpcError:
    return RpcError(NOT_FOUND, f"{what} not found", None)
