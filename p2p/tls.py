"""TLS 1.3 contexts with pinned Ed25519 certificates, and the post-handshake identity check.

Python's ssl module has no verification callback, so pinning is done in two steps:

1. OpenSSL verifies the peer's certificate chain against a trust store that holds exactly
   the allowed peers' self-signed certificates (`cadata`). A certificate that is not one of
   them -- including a forgery that copies a pinned certificate's subject name -- fails
   the signature check, and TLS 1.3's CertificateVerify proves the peer holds the key.
2. After the handshake the caller reads the peer certificate and compares its public key
   with the node it meant to reach (outbound) or with the allowed set (inbound), because
   step 1 only proves "one of the allowed nodes", not which one.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

import trio

from p2p.identity import IdentityError, certificate_public_key, der_certificate_public_key


class PeerIdentityError(Exception):
    """The TLS peer is not who we expected (or presented no usable certificate)."""


def _write_private_file(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    # O_EXCL + mode 0600: created private, never following a planted file or symlink.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _load_identity(
    context: ssl.SSLContext,
    cert_pem: bytes,
    key_pem: bytes,
    cert_path: Path | None,
    key_path: Path | None,
) -> None:
    if (cert_path is None) != (key_path is None):
        raise ValueError("give both cert_path and key_path, or neither")
    if cert_path is not None and key_path is not None:
        context.load_cert_chain(certfile=cert_path, keyfile=key_path)
        return
    # ssl can only load a certificate and key from files. Write them into a fresh 0700
    # directory as 0600 files and remove them as soon as OpenSSL has read them.
    directory = tempfile.mkdtemp(prefix="p2p-tls-")
    try:
        cert_file = _write_private_file(directory, "cert.pem", cert_pem)
        key_file = _write_private_file(directory, "key.pem", key_pem)
        context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    finally:
        for name in ("cert.pem", "key.pem"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def _make_context(
    server_side: bool,
    cert_pem: bytes,
    key_pem: bytes,
    pinned_pems: Iterable[bytes],
    cert_path: Path | None,
    key_path: Path | None,
) -> ssl.SSLContext:
    pinned = [pem.decode("ascii") for pem in pinned_pems]
    if not pinned:
        raise ValueError("at least one pinned peer certificate is needed")
    for pem in pinned:
        try:
            certificate_public_key(pem.encode("ascii"))
        except IdentityError as exc:
            raise ValueError(f"a pinned certificate is not an Ed25519 certificate: {exc}") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    # Peers are identified by pinned key, not by host name (addresses change, keys do not).
    # check_hostname must be off before verify_mode may be anything but CERT_REQUIRED; set
    # both explicitly so that the two sides read the same.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _load_identity(context, cert_pem, key_pem, cert_path, key_path)
    context.load_verify_locations(cadata="".join(pinned))
    if server_side:
        # Links are long-lived and never resumed: session tickets would only cost a
        # round of writes after every handshake.
        context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    return context


def make_server_context(
    cert_pem: bytes,
    key_pem: bytes,
    pinned_pems: Iterable[bytes],
    *,
    cert_path: Path | None = None,
    key_path: Path | None = None,
) -> ssl.SSLContext:
    """Context for accepted links: TLS 1.3 only, client certificate required and pinned.

    Our certificate and key come from cert_path/key_path when given (the node home), else
    from the PEM bytes through a private temporary file that is removed at once.
    """
    return _make_context(True, cert_pem, key_pem, pinned_pems, cert_path, key_path)


def make_client_context(
    cert_pem: bytes,
    key_pem: bytes,
    pinned_pems: Iterable[bytes],
    *,
    cert_path: Path | None = None,
    key_path: Path | None = None,
) -> ssl.SSLContext:
    """Context for dialled links: TLS 1.3 only, server certificate required and pinned."""
    return _make_context(False, cert_pem, key_pem, pinned_pems, cert_path, key_path)


def peer_node_id(stream: trio.SSLStream[trio.SocketStream]) -> bytes:
    """The node id (Ed25519 public key) in the certificate the peer proved it holds.

    Call only after do_handshake(). Raises PeerIdentityError when there is none.
    """
    der = stream.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    try:
        return der_certificate_public_key(der)
    except IdentityError as exc:
        raise PeerIdentityError(str(exc)) from exc


def is_certificate_rejection(exc: BaseException) -> bool:
    """True when a failed server-side handshake means "the peer's certificate is not pinned".

    trio wraps ssl errors in BrokenResourceError; the cause says why.
    """
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return True
    if isinstance(cause, ssl.SSLError):
        return cause.reason in {"CERTIFICATE_VERIFY_FAILED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"}
    return False
