"""Hostile peers against a node's p2p port, with the stdlib only (blocking sockets)."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import tempfile
import time

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2p.identity import make_certificate, private_key_pem


def _client_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the attacker does not care who answers
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, cert_pem + key_pem)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


def tls_attempt(
    port: int,
    cert_pem: bytes,
    key_pem: bytes,
    first_frame: bytes | None = None,
    timeout_s: float = 5.0,
) -> bytes:
    """Handshake (TLS 1.3 lets a refused client think it succeeded), maybe send a frame,
    then read: returns what the node sent before closing (b"" when refused at once)."""
    ctx = _client_context(cert_pem, key_pem)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                if first_frame is not None:
                    tls.sendall(first_frame)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    received += chunk
        except (ssl.SSLError, OSError):
            pass
    return received


def stranger_identity(name: str) -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    return make_certificate(key, name), private_key_pem(key)


def silent_connection(port: int) -> socket.socket:
    """A TCP connection that never starts TLS (caller closes it)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def garbage_before_tls(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
            s.recv(1024)
        except OSError:
            pass


def frame(obj: object) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def garbage_after_hello(
    port: int,
    cert_pem: bytes,
    key_pem: bytes,
    node_id: bytes,
    chain_id: str,
    garbage: bytes,
    timeout_s: float = 5.0,
) -> bool:
    """An allowed peer that completes the hello exchange, then sends a bad frame.

    Returns True when the node answered our hello (so the garbage came after it) and then
    closed the link."""
    hello = frame({"t": "hello", "version": 1, "chain_id": chain_id, "node_id": node_id})
    ctx = _client_context(cert_pem, key_pem)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    with raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(hello)
        got = b""
        while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
            chunk = tls.recv(65536)
            if not chunk:
                return False
            got += chunk
        if msgpack.unpackb(got[4 : 4 + struct.unpack(">I", got[:4])[0]]).get("t") != "hello":
            return False
        tls.sendall(garbage)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if not tls.recv(65536):
                    return True
        except (ssl.SSLError, OSError):
            return True
    return False
