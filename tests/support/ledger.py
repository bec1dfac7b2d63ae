from __future__ import annotations

from node.ledger import crypto, encoding
from node.ledger.tx import Transaction, make_tx

CHAIN = "test-chain"


class DictState:
    """Committed state as a plain dict, for executing blocks without LMDB."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v

    def obj(self, key: bytes) -> object:
        raw = self.data.get(key)
        return None if raw is None else encoding.unpack(raw)


class Account:
    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.key = crypto.SigningKey.from_seed(bytes([seed]) * 32)
        self.nonce = 0

    @property
    def pub(self) -> bytes:
        return self.key.public_key

    def tx(self, tx_type: str, args: dict, *, nonce: int | None = None) -> Transaction:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        return make_tx(self.key, CHAIN, nonce, tx_type, args)
