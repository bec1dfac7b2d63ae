"""The one signature facade: Ed25519 keys, signing and verification.

Every other module signs and verifies through here, so that the library underneath can be
swapped (cryptography today; libsodium is measured in BENCHMARKS.md) in one place.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed, or would be overwritten."""


class SigningKey:
    """An Ed25519 private key."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The underlying key object (for TLS certificates)."""
        return self._key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when signature is a valid Ed25519 signature by public_key over message."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- key files -------------------------------------------------------------------------
# A key file is one line: "ed25519:" + hex seed. Mode 0600; never overwritten.

KEY_PREFIX = "ed25519:"


def write_key_file(path: Path, key: SigningKey) -> None:
    path = Path(path)
    if path.exists():
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(KEY_PREFIX + key.seed().hex() + "\n")


def read_key_file(path: Path) -> SigningKey:
    path = Path(path)
    try:
        text = path.read_text().strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise KeyFileError(f"key file {path} has mode {mode:o}; run `chmod 600 {path}`")
    if not text.startswith(KEY_PREFIX):
        raise KeyFileError(f"key file {path} does not start with {KEY_PREFIX!r}")
    try:
        seed = bytes.fromhex(text[len(KEY_PREFIX) :])
    except ValueError as exc:
        raise KeyFileError(f"key file {path}: seed is not hex") from exc
    if len(seed) != 32:
        raise KeyFileError(f"key file {path}: seed must be 32 bytes, found {len(seed)}")
    return SigningKey.from_seed(seed)
