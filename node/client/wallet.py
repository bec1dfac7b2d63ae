"""Signing and sending transactions over the control socket or the gateway (used by the CLI
and tests). The account key stays here, on the caller's side: no node ever holds it."""

from __future__ import annotations

from typing import Any

from node.client.connect import Caller, with_backpressure
from node.ledger import crypto
from node.ledger.tx import Transaction, make_tx


class Wallet:
    """One account's key plus a node connection; tracks the next nonce locally."""

    def __init__(self, rpc: Caller, key: crypto.SigningKey, chain_id: str | None = None) -> None:
        self.rpc = rpc
        self.key = key
        self.chain_id = chain_id or str(rpc.call("node_status")["chain_id"])  # type: ignore[index]
        self._next_nonce: int | None = None

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def next_nonce(self) -> int:
        if self._next_nonce is None:
            account = self.rpc.call("account_get", {"account": self.key.public_key.hex()})
            self._next_nonce = int(account["next_nonce"])  # type: ignore[index]
        nonce = self._next_nonce
        self._next_nonce += 1
        return nonce

    def sign(self, tx_type: str, args: dict[str, Any]) -> Transaction:
        return make_tx(self.key, self.chain_id, self.next_nonce(), tx_type, args)

    def submit(self, tx: Transaction, backpressure_s: float = 30.0) -> str:
        """Submit; waits out "mempool full" back-pressure for up to `backpressure_s`."""
        result: Any = with_backpressure(
            lambda: self.rpc.call("tx_submit", {"tx": tx.raw.hex()}), backpressure_s
        )
        return str(result["tx_id"])

    def send(
        self, tx_type: str, args: dict[str, Any], *, wait: bool = True, timeout_ms: int = 30_000
    ) -> dict[str, Any]:
        tx = self.sign(tx_type, args)
        try:
            tx_id = self.submit(tx)
        except Exception:
            self._next_nonce = None  # resynchronise with the node next time
            raise
        if not wait:
            return {"tx_id": tx_id, "status": "pending"}
        return dict(self.rpc.call("tx_wait", {"tx_id": tx_id, "timeout_ms": timeout_ms}))  # type: ignore[arg-type]
