"""Validator keys for the simulator, the transcripts and the unit tests: one keyring class.

Keyed BLAKE2b (a MAC, 32-byte tags) keyed per validator stands in for Ed25519 in most runs
(fast: a third of HMAC-SHA256's cost through the hmac module; deterministic; checkable:
`verify` knows every secret); `real=True` gives real Ed25519 keys (cryptography).
Both are derived from `seed`, so a run replays exactly in any process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import partial
from hashlib import blake2b

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERIFY_CACHE_ENTRIES = 100_000
TAG_BYTES = 32


def _tag(secret: bytes, message: bytes) -> bytes:
    return blake2b(message, key=secret, digest_size=TAG_BYTES).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class KeyRing:
    def __init__(self, n: int, seed: int = 0, *, real: bool = False) -> None:
        self.real = real
        self._ed25519: list[Ed25519PrivateKey] = []
        self._secrets: list[bytes] = []
        if real:
            self._ed25519 = [
                Ed25519PrivateKey.from_private_bytes(_sha256(b"sim-ed25519/%d/%d" % (seed, i)))
                for i in range(n)
            ]
            self.public_keys = tuple(
                key.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
                for key in self._ed25519
            )
        else:
            self._secrets = [_sha256(b"sim-secret/%d/%d" % (seed, i)) for i in range(n)]
            self.public_keys = tuple(_sha256(b"sim-public/" + s) for s in self._secrets)
        self._index = {key: i for i, key in enumerate(self.public_keys)}
        # Every broadcast vote is checked by each receiver and again inside certificates:
        # verify is a pure function of its arguments, so remember its answers (bounded).
        self._verified: dict[tuple[bytes, bytes, bytes], bool] = {}

    @property
    def public(self) -> tuple[bytes, ...]:
        """The public keys (the short name the unit tests use)."""
        return self.public_keys

    def sign(self, index: int, message: bytes) -> bytes:
        if self.real:
            return self._ed25519[index].sign(message)
        return _tag(self._secrets[index], message)

    def signer(self, index: int) -> Callable[[bytes], bytes]:
        """The signer a Replica with this index is given."""
        if self.real:
            return self._ed25519[index].sign
        return partial(_tag, self._secrets[index])

    def verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        query = (public_key, signature, message)
        known = self._verified.get(query)
        if known is not None:
            return known
        if len(self._verified) >= VERIFY_CACHE_ENTRIES:
            self._verified.clear()
        answer = self._verify(public_key, signature, message)
        self._verified[query] = answer
        return answer

    def _verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        if self.real:
            if len(public_key) != 32 or len(signature) != 64:
                return False
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            except Exception:  # InvalidSignature or a malformed key: not valid
                return False
            return True
        index = self._index.get(public_key)
        if index is None:
            return False
        return hmac.compare_digest(_tag(self._secrets[index], message), signature)
