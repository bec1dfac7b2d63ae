"""The one signature facade: Ed25519 keys, signing and verification.

Every other module signs and verifies through here, so that the library underneath can be
swapped in one place. Verification uses libsodium (through PyNaCl) when it is installed: in
the running node it costs about half of what OpenSSL (through cryptography) does, and every
validator checks every client signature (BENCHMARKS.md). Without PyNaCl, OpenSSL verifies.

Both give the same verdict on every input, so nodes with and without PyNaCl can never
disagree on a transaction: libsodium refuses, before its (cofactorless) equation, a
non-canonical S, an R or a public key of small order, and a non-canonical public key;
OpenSSL runs the same equation but accepts some of those, so the OpenSSL path refuses them
first with the same checks (libsodium's blocklist, sign bit ignored).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

_sodium_sign_open: Callable[[bytes, bytes], bytes] | None
try:  # libsodium, about twice as fast as OpenSSL's Ed25519 verify (releases the GIL too)
    from nacl.bindings import crypto_sign_open as _sodium_sign_open
    from nacl.exceptions import BadSignatureError as _SodiumBadSignature
except ImportError:  # pragma: no cover - depends on the installation
    _sodium_sign_open = None

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
BACKEND = "libsodium" if _sodium_sign_open is not None else "cryptography"

_FIELD_P = 2**255 - 19
_GROUP_L = 2**252 + 27742317777372353535851937790883648493
# libsodium's ge25519_has_small_order blocklist; compared with the sign bit cleared.
_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "00" * 32,
        "01" + "00" * 31,
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ec" + "ff" * 30 + "7f",
        "ed" + "ff" * 30 + "7f",
        "ee" + "ff" * 30 + "7f",
    )
)


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
    if _sodium_sign_open is not None:
        return verify_sodium(public_key, signature, message)
    return verify_openssl(public_key, signature, message)


def verify_sodium(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if _sodium_sign_open is None:
        raise RuntimeError("PyNaCl is not installed")
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        _sodium_sign_open(signature + message, public_key)
    except (_SodiumBadSignature, ValueError):
        return False
    return True


def _has_small_order(point: bytes) -> bool:
    return point[:31] + bytes((point[31] & 0x7F,)) in _SMALL_ORDER


def verify_openssl(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """OpenSSL's verdict, after libsodium's refusals (see the module docstring)."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    if int.from_bytes(signature[32:], "little") >= _GROUP_L or _has_small_order(signature[:32]):
        return False
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    if y >= _FIELD_P or _has_small_order(public_key):
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
