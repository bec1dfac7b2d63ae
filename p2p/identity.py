"""Node identity: an Ed25519 key and the self-signed X.509 certificate that carries it.

A node id is the raw 32-byte Ed25519 public key. The certificate exists only because TLS
needs one: peers pin each other's certificates (they are listed in genesis), so nothing here
depends on a certificate authority, a host name or an expiry date that could lapse.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID

NODE_ID_LEN = 32

# Fixed validity: a pinned certificate must never expire under a running consortium, and a
# node whose clock is wrong must still accept it. Key rotation is done by governance, not
# by certificate expiry.
VALID_FROM = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
VALID_UNTIL = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


class IdentityError(ValueError):
    """A certificate or key is malformed or is not an Ed25519 one."""


def node_id_of(private_key: Ed25519PrivateKey) -> bytes:
    """The node id (raw 32-byte public key) of a private key."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def make_certificate(private_key: Ed25519PrivateKey, common_name: str) -> bytes:
    """A PEM self-signed certificate for private_key, valid 2000-01-01 to 9999-12-31."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise IdentityError("node identity keys are Ed25519")
    if not common_name:
        raise IdentityError("common_name must not be empty")
    # The trust store finds a certificate's issuer by subject name: two pinned certificates
    # with one subject (a node's key rotated under the same name) make OpenSSL try the wrong
    # one and refuse the right one ("self-signed certificate"). The key in the subject, and
    # the key identifiers, keep every node key's certificate apart.
    node_id = node_id_of(private_key)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, node_id.hex()),
        ]
    )
    key_id = x509.SubjectKeyIdentifier.from_public_key(private_key.public_key())
    # The serial number is derived from the key so that re-creating a node's certificate
    # gives the same subject/serial pair; peers pin the whole certificate anyway.
    serial = int.from_bytes(node_id[:16], "big") >> 1 or 1
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(serial)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_id, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    certificate = builder.sign(private_key, None)  # Ed25519 takes no separate hash
    return certificate.public_bytes(serialization.Encoding.PEM)


def _public_key_of(certificate: x509.Certificate) -> bytes:
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise IdentityError(
            f"certificate key is {type(public_key).__name__}, node identities are Ed25519"
        )
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def certificate_public_key(pem: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key (node id) in a PEM certificate.

    Raises IdentityError when the PEM is not a certificate or the key is not Ed25519.
    """
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise IdentityError(f"not a PEM X.509 certificate: {exc}") from exc
    return _public_key_of(certificate)


def der_certificate_public_key(der: bytes) -> bytes:
    """Same as certificate_public_key, for the DER form TLS hands back after a handshake."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise IdentityError(f"not a DER X.509 certificate: {exc}") from exc
    return _public_key_of(certificate)


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM of a private key (what TLS loads; keep it mode 0600)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise IdentityError("node identity keys are Ed25519")
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
