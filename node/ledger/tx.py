"""Transactions: canonical body, Ed25519 signature, structural checks.

Wire form: canonical msgpack array [body, signature] where body is the canonical msgpack map
{"v": 1, "chain_id": str, "sender": 32 bytes, "nonce": int >= 1, "type": str, "args": map}.
Signature = Ed25519 over b"chain-tx-v1\\x00" + body. Tx id = SHA-256(body).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.ledger import crypto, encoding
from node.ledger import errors as E
from node.ledger.schema import check_args

TX_DOMAIN = b"chain-tx-v1\x00"
TX_VERSION = 1
DEFAULT_MAX_TX_BYTES = 16 * 1024
BODY_KEYS = frozenset({"v", "chain_id", "sender", "nonce", "type", "args"})
MAX_NONCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Transaction:
    raw: bytes  # the wire encoding, exactly as signed and hashed into blocks
    body: bytes
    signature: bytes
    tx_id: bytes
    chain_id: str
    sender: bytes
    nonce: int
    type: str
    args: dict[str, Any]
    # The signature's verdict once checked. Every path that meets a transaction again (the
    # mempool, a proposal, the block commit) shares the decoded object, so a node verifies
    # each signature once. Not part of the value: equality and hashing ignore it.
    verdict: bool | None = field(default=None, init=False, compare=False, repr=False)

    def signature_ok(self) -> bool:
        verdict = self.verdict
        if verdict is None:
            verdict = crypto.verify(self.sender, self.signature, TX_DOMAIN + self.body)
            object.__setattr__(self, "verdict", verdict)  # a cache, not a change of value
        return verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id.hex(),
            "chain_id": self.chain_id,
            "sender": self.sender.hex(),
            "nonce": self.nonce,
            "type": self.type,
            "args": jsonable(self.args),
        }


def jsonable(value: Any) -> Any:
    """Bytes become hex strings so that args can be shown over JSON-RPC."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def make_tx(
    key: crypto.SigningKey, chain_id: str, nonce: int, tx_type: str, args: dict[str, Any]
) -> Transaction:
    body = encoding.pack(
        {
            "v": TX_VERSION,
            "chain_id": chain_id,
            "sender": key.public_key,
            "nonce": nonce,
            "type": tx_type,
            "args": args,
        }
    )
    signature = key.sign(TX_DOMAIN + body)
    raw = encoding.pack([body, signature])
    return decode_tx(raw, max_tx_bytes=max(len(raw), DEFAULT_MAX_TX_BYTES))


def decode_tx(raw: bytes, *, max_tx_bytes: int = DEFAULT_MAX_TX_BYTES) -> Transaction:
    """Parse and structurally check a transaction (not its signature, not state)."""
    if len(raw) > max_tx_bytes:
        raise E.TxInvalid(E.TOO_LARGE, f"transaction is {len(raw)} bytes, limit {max_tx_bytes}")
    try:
        outer = encoding.unpack(raw)
    except encoding.EncodingError as exc:
        raise E.TxInvalid(E.MALFORMED, f"transaction encoding: {exc}") from exc
    if not (
        isinstance(outer, list)
        and len(outer) == 2
        and isinstance(outer[0], bytes)
        and isinstance(outer[1], bytes)
    ):
        raise E.TxInvalid(E.MALFORMED, "transaction must be [body: bytes, signature: bytes]")
    body_bytes, signature = outer
    if len(signature) != crypto.SIGNATURE_LEN:
        raise E.TxInvalid(E.BAD_SIGNATURE, "signature must be 64 bytes")
    try:
        body = encoding.unpack(body_bytes)
    except encoding.EncodingError as exc:
        raise E.TxInvalid(E.MALFORMED, f"transaction body: {exc}") from exc
    _check_body(body)
    check_args(body["type"], body["args"])
    return Transaction(
        raw=raw,
        body=body_bytes,
        signature=signature,
        tx_id=crypto.sha256(body_bytes),
        chain_id=body["chain_id"],
        sender=body["sender"],
        nonce=body["nonce"],
        type=body["type"],
        args=body["args"],
    )


def _check_body(body: Any) -> None:
    if not isinstance(body, dict) or set(body) != BODY_KEYS:
        raise E.TxInvalid(E.MALFORMED, f"body must be a map with keys {sorted(BODY_KEYS)}")
    if body["v"] != TX_VERSION:
        raise E.TxInvalid(E.MALFORMED, f"unsupported transaction version {body['v']!r}")
    if not isinstance(body["chain_id"], str):
        raise E.TxInvalid(E.MALFORMED, "chain_id must be a string")
    sender = body["sender"]
    if not isinstance(sender, bytes) or len(sender) != crypto.PUBLIC_KEY_LEN:
        raise E.TxInvalid(E.MALFORMED, "sender must be a 32-byte Ed25519 public key")
    nonce = body["nonce"]
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 1 <= nonce <= MAX_NONCE:
        raise E.TxInvalid(E.MALFORMED, "nonce must be an integer >= 1")
    if not isinstance(body["type"], str):
        raise E.TxInvalid(E.MALFORMED, "type must be a string")
    if not isinstance(body["args"], dict):
        raise E.TxInvalid(E.MALFORMED, "args must be a map")
