"""Identity certificates: Ed25519 only, fixed validity, deterministic, key extractable."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from p2p.identity import (
    IdentityError,
    certificate_public_key,
    der_certificate_public_key,
    make_certificate,
    node_id_of,
    private_key_pem,
)


def test_certificate_carries_the_raw_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    pem = make_certificate(key, "validator-0")
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    node_id = certificate_public_key(pem)
    assert len(node_id) == 32
    assert node_id == node_id_of(key)
    assert node_id == key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_certificate_is_self_signed_and_valid_2000_to_9999() -> None:
    key = Ed25519PrivateKey.generate()
    certificate = x509.load_pem_x509_certificate(make_certificate(key, "org-a"))
    assert certificate.not_valid_before_utc == datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    assert certificate.not_valid_after_utc.year == 9999
    assert certificate.not_valid_after_utc.month == 12
    assert certificate.not_valid_after_utc.day == 31
    assert certificate.subject == certificate.issuer
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "org-a"
    # The signature verifies under the certificate's own key.
    certificate.verify_directly_issued_by(certificate)


def test_certificate_is_deterministic_for_a_key_and_name() -> None:
    key = Ed25519PrivateKey.generate()
    assert make_certificate(key, "n") == make_certificate(key, "n")
    assert make_certificate(key, "n") != make_certificate(key, "m")


def test_der_form_gives_the_same_key() -> None:
    key = Ed25519PrivateKey.generate()
    pem = make_certificate(key, "n")
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert der_certificate_public_key(der) == node_id_of(key)


def test_private_key_pem_loads_back_to_the_same_key() -> None:
    key = Ed25519PrivateKey.generate()
    pem = private_key_pem(key)
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert node_id_of(loaded) == node_id_of(key)


def _ecdsa_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-ed25519")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_non_ed25519_certificate_is_refused() -> None:
    with pytest.raises(IdentityError, match="Ed25519"):
        certificate_public_key(_ecdsa_certificate())


@pytest.mark.parametrize("garbage", [b"", b"not a pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(IdentityError):
        certificate_public_key(garbage)
    with pytest.raises(IdentityError):
        der_certificate_public_key(garbage)


def test_other_key_types_and_empty_names_are_refused() -> None:
    with pytest.raises(IdentityError):
        make_certificate(ec.generate_private_key(ec.SECP256R1()), "x")  # type: ignore[arg-type]
    with pytest.raises(IdentityError):
        make_certificate(Ed25519PrivateKey.generate(), "")
