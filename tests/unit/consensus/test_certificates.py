from __future__ import annotations

import pytest
from consensus_testkit import CHAIN_ID, Keys, sha256
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consensus import (
    CertificateError,
    CommitCertificate,
    verify_certificate,
    vote_signing_bytes,
)
from consensus.certificates import untimed_commit_signing_bytes

D = sha256(b"block")


def _cert(
    keys: Keys,
    signers: list[int],
    *,
    phase: str = "commit",
    chain: str = CHAIN_ID,
    view: int = 1,
    height: int = 9,
) -> CommitCertificate:
    times = tuple(1_000 + i for i in signers)
    sigs = tuple(
        (i, keys.sign(i, vote_signing_bytes(chain, phase, view, height, D, t)))
        for i, t in zip(signers, times, strict=True)
    )
    return CommitCertificate(height, view, D, sigs, times)


def test_quorum_of_valid_commits_passes_and_round_trips() -> None:
    keys = Keys(4)
    cert = _cert(keys, [0, 2, 3])
    verify_certificate(cert, CHAIN_ID, keys.public, keys.verify)
    assert CommitCertificate.from_bytes(cert.to_bytes()) == cert


@pytest.mark.parametrize(
    ("signers", "kwargs", "reason"),
    [
        ([0, 2], {}, "signatures, a quorum"),
        ([0, 1, 2], {"phase": "prepare"}, "bad signature"),
        ([0, 1, 2], {"chain": "other-chain"}, "bad signature"),
    ],
)
def test_rejected(signers: list[int], kwargs: dict[str, str], reason: str) -> None:
    keys = Keys(4)
    with pytest.raises(CertificateError, match=reason):
        verify_certificate(_cert(keys, signers, **kwargs), CHAIN_ID, keys.public, keys.verify)


def test_duplicate_unsorted_and_unknown_signers_rejected() -> None:
    keys = Keys(4)
    good = _cert(keys, [0, 1, 2])
    t = good.times or ()
    duplicated = CommitCertificate(9, 1, D, (good.signatures[0], *good.signatures), (t[0], *t))
    unsorted = CommitCertificate(9, 1, D, tuple(reversed(good.signatures)), t[::-1])
    unknown = CommitCertificate(9, 1, D, (*good.signatures, (7, b"x" * 32)), (*t, 5))
    for cert in (duplicated, unsorted, unknown):
        with pytest.raises(CertificateError):
            verify_certificate(cert, CHAIN_ID, keys.public, keys.verify)


def test_one_forged_signature_among_a_quorum_rejects_the_certificate() -> None:
    keys = Keys(4)
    good = _cert(keys, [0, 1, 2, 3])
    forged = CommitCertificate(9, 1, D, (*good.signatures[:3], (3, b"\x00" * 32)), good.times)
    with pytest.raises(CertificateError, match="validator 3"):
        verify_certificate(forged, CHAIN_ID, keys.public, keys.verify)


def test_single_validator_certificate() -> None:
    keys = Keys(1)
    verify_certificate(_cert(keys, [0]), CHAIN_ID, keys.public, keys.verify)


def test_malformed_bytes_raise_certificate_error() -> None:
    for data in (b"", b"\xc1", b"\x93\x01\x02\x03", CommitCertificate(1, 1, D, ()).to_bytes()[:-1]):
        with pytest.raises(CertificateError):
            CommitCertificate.from_bytes(data)


def test_real_ed25519_signatures() -> None:
    keys = [Ed25519PrivateKey.from_private_bytes(sha256(b"k%d" % i)) for i in range(4)]
    public = tuple(
        k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for k in keys
    )

    def verify(pk: bytes, sig: bytes, msg: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        except Exception:
            return False
        return True

    signing = vote_signing_bytes(CHAIN_ID, "commit", 0, 1, D, 77)
    sigs = tuple((i, keys[i].sign(signing)) for i in (1, 2, 3))
    cert = CommitCertificate(1, 0, D, sigs, (77, 77, 77))
    verify_certificate(cert, CHAIN_ID, public, verify)
    with pytest.raises(CertificateError):
        verify_certificate(CommitCertificate(2, 0, D, sigs, (77,) * 3), CHAIN_ID, public, verify)
    with pytest.raises(CertificateError, match="validator 2"):
        verify_certificate(CommitCertificate(1, 0, D, sigs, (77, 78, 77)), CHAIN_ID, public, verify)


def test_untimed_version_1_certificates_still_verify() -> None:
    """Certificates stored before commits carried a time: 4-array, old vote bytes."""
    keys = Keys(4)
    signing = untimed_commit_signing_bytes(CHAIN_ID, 1, 9, D)
    cert = CommitCertificate(9, 1, D, tuple((i, keys.sign(i, signing)) for i in (0, 1, 2)))
    assert not cert.timed
    raw = cert.to_bytes()
    assert raw[0] == 0x94  # fixarray of 4: [height, view, digest, [[index, signature]...]]
    assert CommitCertificate.from_bytes(raw) == cert
    verify_certificate(cert, CHAIN_ID, keys.public, keys.verify)
    # A timed certificate with the untimed signatures does not verify (other bytes).
    timed = CommitCertificate(9, 1, D, cert.signatures, (0, 0, 0))
    with pytest.raises(CertificateError, match="bad signature"):
        verify_certificate(timed, CHAIN_ID, keys.public, keys.verify)


def test_timed_certificate_encoding() -> None:
    keys = Keys(4)
    cert = _cert(keys, [0, 2, 3])
    raw = cert.to_bytes()
    assert raw[:2] == bytes([0x95, 0x02])  # [2, height, view, digest, [[i, sig, time]...]]
    assert CommitCertificate.from_bytes(raw) == cert
    for bad in ([3, 9, 1, D, []], [2, 9, 1, D, [[0, b"s"]]], [2, 9, 1, D, [[0, b"s", -1]]]):
        with pytest.raises(CertificateError):
            CommitCertificate.from_wire(bad)
