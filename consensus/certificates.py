"""Signing bytes, certificates, and their verification.

Every signature in the protocol is over a msgpack array that starts with the domain tag
"chain-pbft-v1" and the chain id, so a signature from one chain or one phase can never be
replayed as another (docs/CONSENSUS.md lists every layout).

Commit votes carry the signer's clock reading (time_ms, inside the signed bytes), so that a
commit certificate certifies not only a block but the time a quorum saw it committed
(consensus/bfttime.py derives the certified time and its window). Certificates made before
that (encoding version 1, untimed) still decode and verify, with the old vote bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import msgpack  # type: ignore[import-untyped]

from consensus.config import DIGEST_BYTES, MAX_VALIDATORS, Verifier
from consensus.quorum import quorum_size

DOMAIN_TAG = "chain-pbft-v1"
PHASE_PRE_PREPARE = "pre-prepare"
PHASE_PREPARE = "prepare"
PHASE_COMMIT = "commit"
VOTE_PHASES = (PHASE_PRE_PREPARE, PHASE_PREPARE, PHASE_COMMIT)
MAX_SIGNATURE_BYTES = 256
MAX_UINT64 = 2**64 - 1

Signatures = tuple[tuple[int, bytes], ...]
# The encoding version of a timed commit certificate: [2, height, view, digest, entries].
TIMED_CERTIFICATE_VERSION = 2


class CertificateError(Exception):
    """A certificate is malformed or does not hold a quorum of valid signatures."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


SIGNING_BYTES_CACHE_ENTRIES = 4096


def _pack(value: object) -> bytes:
    packed = msgpack.packb(value, use_bin_type=True)
    if not isinstance(packed, bytes):
        raise TypeError("msgpack.packb did not return bytes")
    return packed


# Every vote's bytes are built again by each check of it: on receipt, inside each certificate
# that carries it, in view changes. The functions are pure; typed=True keeps True and 1 apart
# (msgpack packs them differently).
@lru_cache(maxsize=SIGNING_BYTES_CACHE_ENTRIES, typed=True)
def vote_signing_bytes(
    chain_id: str, phase: str, view: int, height: int, digest: bytes, time_ms: int = 0
) -> bytes:
    """The bytes a validator signs for a pre-prepare, prepare or commit vote.

    A commit vote also signs the signer's clock reading (a 7-element array); time_ms is
    ignored for the other phases."""
    if phase not in VOTE_PHASES:
        raise ValueError(f"unknown vote phase {phase!r}")
    if phase == PHASE_COMMIT:
        return _pack([DOMAIN_TAG, chain_id, phase, view, height, digest, time_ms])
    return _pack([DOMAIN_TAG, chain_id, phase, view, height, digest])


def untimed_commit_signing_bytes(chain_id: str, view: int, height: int, digest: bytes) -> bytes:
    """The commit vote bytes of version 1 certificates (before commits carried a time)."""
    return _pack([DOMAIN_TAG, chain_id, PHASE_COMMIT, view, height, digest])


@lru_cache(maxsize=SIGNING_BYTES_CACHE_ENTRIES, typed=True)
def checkpoint_signing_bytes(chain_id: str, height: int, state_root: bytes) -> bytes:
    return _pack([DOMAIN_TAG, chain_id, "checkpoint", height, state_root])


def notice_signing_bytes(chain_id: str, height: int, view: int, digest: bytes) -> bytes:
    return _pack([DOMAIN_TAG, chain_id, "commit-notice", height, view, digest])


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """quorum_size(n) commit votes for one block: proof that the block is final.

    `times` holds each signer's clock reading (ms since 1970), parallel to `signatures`; None
    for a version 1 (untimed) certificate, whose votes signed no time."""

    height: int
    view: int
    digest: bytes
    signatures: Signatures  # (validator index, signature), sorted by index, distinct
    times: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.times is not None and len(self.times) != len(self.signatures):
            raise ValueError("a timed certificate has one time per signature")

    @property
    def timed(self) -> bool:
        return self.times is not None

    def to_wire(self) -> list[object]:
        if self.times is None:
            return [self.height, self.view, self.digest, [[i, s] for i, s in self.signatures]]
        entries = [[i, s, t] for (i, s), t in zip(self.signatures, self.times, strict=True)]
        return [TIMED_CERTIFICATE_VERSION, self.height, self.view, self.digest, entries]

    @classmethod
    def from_wire(cls, value: object) -> CommitCertificate:
        if isinstance(value, list) and len(value) == 5:
            return _parse_timed_certificate(value)
        height, view, digest, signatures = _parse_vote_certificate(value, "commit certificate")
        return cls(height, view, digest, signatures)

    def signing_bytes(self, chain_id: str, position: int) -> bytes:
        """The vote bytes that the signature at `position` signed."""
        if self.times is None:
            return untimed_commit_signing_bytes(chain_id, self.view, self.height, self.digest)
        return vote_signing_bytes(
            chain_id, PHASE_COMMIT, self.view, self.height, self.digest, self.times[position]
        )

    def to_bytes(self) -> bytes:
        return _pack(self.to_wire())

    @classmethod
    def from_bytes(cls, data: bytes) -> CommitCertificate:
        return cls.from_wire(_unpack(data))

    def signers(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self.signatures)


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """quorum_size(n) prepare votes for one block in one view: the block may have committed."""

    height: int
    view: int
    digest: bytes
    signatures: Signatures

    def to_wire(self) -> list[object]:
        return [self.height, self.view, self.digest, [[i, s] for i, s in self.signatures]]

    @classmethod
    def from_wire(cls, value: object) -> PreparedCertificate:
        height, view, digest, signatures = _parse_vote_certificate(value, "prepared certificate")
        return cls(height, view, digest, signatures)


@dataclass(frozen=True, slots=True)
class CheckpointProof:
    """quorum_size(n) checkpoint votes for one (height, state root): a stable checkpoint."""

    height: int
    state_root: bytes
    signatures: Signatures

    def to_wire(self) -> list[object]:
        return [self.height, self.state_root, [[i, s] for i, s in self.signatures]]

    @classmethod
    def from_wire(cls, value: object) -> CheckpointProof:
        if not isinstance(value, list) or len(value) != 3:
            raise CertificateError("checkpoint proof: not a 3-element array")
        height = parse_uint(value[0], "checkpoint proof height")
        state_root = parse_digest(value[1], "checkpoint proof state root")
        signatures = parse_signatures(value[2], "checkpoint proof")
        return cls(height, state_root, signatures)


def _unpack(data: bytes) -> object:
    if not isinstance(data, bytes):
        raise CertificateError("certificate bytes must be bytes")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_map_len=0)
    except Exception as error:  # any parse failure of untrusted bytes is a malformed cert
        raise CertificateError(f"not valid msgpack: {error}") from None


def parse_uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_UINT64:
        raise CertificateError(f"{what}: not an unsigned 64-bit integer")
    return value


def parse_digest(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
        raise CertificateError(f"{what}: not {DIGEST_BYTES} bytes")
    return value


def parse_signatures(value: object, what: str) -> Signatures:
    if not isinstance(value, list) or len(value) > MAX_VALIDATORS:
        raise CertificateError(f"{what}: signatures must be an array of at most {MAX_VALIDATORS}")
    parsed: list[tuple[int, bytes]] = []
    for entry in value:
        if not isinstance(entry, list) or len(entry) != 2:
            raise CertificateError(f"{what}: each signature is an [index, bytes] pair")
        index = parse_uint(entry[0], f"{what} signer index")
        signature = entry[1]
        if not isinstance(signature, bytes) or not 0 < len(signature) <= MAX_SIGNATURE_BYTES:
            raise CertificateError(f"{what}: signature must be 1 to {MAX_SIGNATURE_BYTES} bytes")
        if parsed and index <= parsed[-1][0]:
            raise CertificateError(f"{what}: signer indices must be strictly increasing")
        parsed.append((index, signature))
    return tuple(parsed)


def _parse_vote_certificate(value: object, what: str) -> tuple[int, int, bytes, Signatures]:
    if not isinstance(value, list) or len(value) != 4:
        raise CertificateError(f"{what}: not a 4-element array")
    height = parse_uint(value[0], f"{what} height")
    view = parse_uint(value[1], f"{what} view")
    digest = parse_digest(value[2], f"{what} digest")
    signatures = parse_signatures(value[3], what)
    return height, view, digest, signatures


def _parse_timed_certificate(value: list[object]) -> CommitCertificate:
    what = "commit certificate"
    if type(value[0]) is not int or value[0] != TIMED_CERTIFICATE_VERSION:
        raise CertificateError(f"{what}: unknown encoding version {value[0]!r}")
    height = parse_uint(value[1], f"{what} height")
    view = parse_uint(value[2], f"{what} view")
    digest = parse_digest(value[3], f"{what} digest")
    entries = value[4]
    if not isinstance(entries, list) or len(entries) > MAX_VALIDATORS:
        raise CertificateError(f"{what}: signatures must be an array of at most {MAX_VALIDATORS}")
    pairs: list[object] = []
    times: list[int] = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3:
            raise CertificateError(f"{what}: each entry is an [index, signature, time_ms] triple")
        pairs.append(entry[:2])
        times.append(parse_uint(entry[2], f"{what} time_ms"))
    signatures = parse_signatures(pairs, what)
    return CommitCertificate(height, view, digest, signatures, tuple(times))


def verify_signatures(
    signatures: Signatures,
    validators: Sequence[bytes],
    verify: Verifier,
    signing_bytes: bytes,
    quorum: int,
    what: str,
) -> None:
    """Raise CertificateError unless `signatures` are `quorum` or more distinct valid ones.

    Every listed signature must be valid: a certificate padded with garbage is rejected."""
    previous = -1
    for index, signature in signatures:
        if index <= previous:
            raise CertificateError(f"{what}: signer indices must be strictly increasing")
        previous = index
        if index >= len(validators):
            raise CertificateError(f"{what}: signer {index} is not a validator")
        if not verify(validators[index], signature, signing_bytes):
            raise CertificateError(f"{what}: bad signature from validator {index}")
    if len(signatures) < quorum:
        raise CertificateError(
            f"{what}: {len(signatures)} signatures, a quorum of {len(validators)} is {quorum}"
        )


def verify_certificate(
    certificate: CommitCertificate,
    chain_id: str,
    validators: Sequence[bytes],
    verify: Verifier,
    *,
    quorum: int | None = None,
) -> None:
    """Raise CertificateError unless `certificate` holds quorum_size(n) valid distinct commits.

    Anyone holding the validator public keys can run this check offline."""
    if not isinstance(certificate, CommitCertificate):
        raise CertificateError("not a CommitCertificate")
    if len(certificate.digest) != DIGEST_BYTES:
        raise CertificateError(f"commit certificate: digest is not {DIGEST_BYTES} bytes")
    needed = quorum_size(len(validators)) if quorum is None else quorum
    if certificate.times is None:
        signing_bytes = certificate.signing_bytes(chain_id, 0)
        verify_signatures(
            certificate.signatures, validators, verify, signing_bytes, needed, "commit certificate"
        )
        return
    # Timed: each signer signed its own clock reading, so each signature has its own bytes.
    for position, signature in enumerate(certificate.signatures):
        verify_signatures(
            (signature,),
            validators,
            verify,
            certificate.signing_bytes(chain_id, position),
            0,
            "commit certificate",
        )
    verify_signatures(
        certificate.signatures, validators, lambda *_: True, b"", needed, "commit certificate"
    )


def verify_prepared(
    certificate: PreparedCertificate,
    chain_id: str,
    validators: Sequence[bytes],
    verify: Verifier,
    quorum: int,
) -> None:
    signing_bytes = vote_signing_bytes(
        chain_id, PHASE_PREPARE, certificate.view, certificate.height, certificate.digest
    )
    verify_signatures(
        certificate.signatures, validators, verify, signing_bytes, quorum, "prepared certificate"
    )


def verify_checkpoint_proof(
    proof: CheckpointProof,
    chain_id: str,
    validators: Sequence[bytes],
    verify: Verifier,
    quorum: int,
) -> None:
    signing_bytes = checkpoint_signing_bytes(chain_id, proof.height, proof.state_root)
    verify_signatures(proof.signatures, validators, verify, signing_bytes, quorum, "checkpoint")
