"""A throwaway RFC 3161 time-stamping authority for tests: `openssl ts -reply` behind a tiny
HTTP responder on 127.0.0.1 (no network). The CA and the TSA certificate are made with the
openssl command line, as an operator would; everything lives in the given directory."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")

_CONFIG = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ tsa_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL or "openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass
class LocalTsa:
    directory: Path
    url: str = ""

    @property
    def ca_pem(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert_pem(self) -> Path:
        return self.directory / "tsa.pem"

    def reply(self, query: bytes) -> bytes:
        """openssl ts -reply for one DER TimeStampReq: the DER TimeStampResp."""
        with self._lock:
            (self.directory / "query.tsq").write_bytes(query)
            _run(
                "ts", "-reply", "-config", "openssl.cnf", "-queryfile", "query.tsq",
                "-out", "reply.tsr", cwd=self.directory,
            )  # fmt: skip
            return (self.directory / "reply.tsr").read_bytes()

    def __post_init__(self) -> None:
        self._lock = threading.Lock()


def make_tsa(directory: Path) -> LocalTsa:
    """A CA and a TSA certificate it issued (EKU timeStamping, critical)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "openssl.cnf").write_text(_CONFIG.format(dir=directory))
    (directory / "serial").write_text("01\n")
    run = lambda *a: _run(*a, cwd=directory)  # noqa: E731
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key")
    run(
        "req", "-new", "-x509", "-key", "ca.key", "-subj", "/CN=Test Time CA", "-days", "3650",
        "-config", "openssl.cnf", "-extensions", "ca_ext", "-out", "ca.pem",
    )  # fmt: skip
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "tsa.key")
    run("req", "-new", "-key", "tsa.key", "-subj", "/CN=Test TSA", "-config", "openssl.cnf",
        "-out", "tsa.csr")  # fmt: skip
    run(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2",
        "-days", "3650", "-extfile", "openssl.cnf", "-extensions", "tsa_ext", "-out", "tsa.pem",
    )  # fmt: skip
    return LocalTsa(directory)


@contextmanager
def serve_tsa(tsa: LocalTsa) -> Iterator[LocalTsa]:
    """RFC 3161 over HTTP (POST application/timestamp-query) on 127.0.0.1, one thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            query = self.rfile.read(min(length, 1 << 16))
            try:
                body, status = tsa.reply(query), 200
            except subprocess.CalledProcessError:
                body, status = b"", 400
            self.send_response(status)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tsa.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield tsa
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
