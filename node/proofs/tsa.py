"""RFC 3161 timestamps in documents (docs/PROTOCOL.md, "RFC 3161 timestamps").

A version 3 document may carry "timestamps": each entry links the document's last certified
header forward, by prev_hash, to a checkpoint block that a time-stamping authority (TSA)
signed, and holds the authority's response. Since the stamped block's hash commits to every
block before it, the token shows that the document's block existed by the authority's time:
outside time, independent of the validators' clocks.

Checked offline: the header chain (tsa-chain), that the token's imprint is the checkpoint's
block hash (tsa-imprint), and, given the CA certificate(s) the reader trusts, the token's
signature and certificate chain (tsa-signature; rfc3161-client does the CMS and X.509 work,
at the token's own time). Without trusted certificates the first two are still checked and
the entry is reported as not checked against an authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import VerificationError as TsaVerificationError
from rfc3161_client import VerifierBuilder

from node.ledger.block import BlockHeader
from node.ledger.genesis import Genesis
from node.ledger.timestamps import TokenError, read_response
from node.proofs.epochs import MAX_HEADER_BYTES, CertifiedHeader, decode_header
from node.proofs.jsondoc import VerificationError, exact_map, hex_bytes, utc_text
from node.proofs.rules import RuleLog

MAX_TIMESTAMPS = 16
MAX_LINK_HEADERS = 4096  # a checkpoint every K <= 4096 blocks
TIMESTAMP_KEYS = frozenset({"headers", "response"})


@dataclass(frozen=True)
class TimestampFacts:
    height: int  # the time-stamped block
    block_hash: bytes
    gen_time_ms: int  # the authority's time
    serial: int
    authority: str  # the signing certificate's subject, as the token carries it
    trusted: bool  # signature and chain checked against certificates the reader gave


class TsaTrust:
    """The certificates a reader trusts for timestamps: CA roots, and optionally the TSA's
    own certificate (one with extended key usage timeStamping), which is then pinned."""

    def __init__(self, certificates: list[x509.Certificate]) -> None:
        self.roots: list[x509.Certificate] = []
        self.pinned: list[x509.Certificate] = []
        for cert in certificates:
            (self.pinned if _is_tsa_certificate(cert) else self.roots).append(cert)
        if not self.roots:
            raise ValueError("no CA certificate: give the certificate of the TSA's issuing CA")

    @classmethod
    def from_pem(cls, data: bytes) -> TsaTrust:
        try:
            return cls(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ValueError(f"not PEM certificates: {exc}") from None

    def verify(self, response: Any, block_hash: bytes) -> None:
        """Raise TsaVerificationError unless the response is a valid token over block_hash
        from an authority these certificates vouch for."""
        errors: list[str] = []
        pins: list[x509.Certificate | None] = [*self.pinned] or [None]
        for pin in pins:
            builder = VerifierBuilder()
            for root in self.roots:
                builder = builder.add_root_certificate(root)
            if pin is not None:
                builder = builder.tsa_certificate(pin)
            try:
                builder.build().verify(response, block_hash)
                return
            except (TsaVerificationError, ValueError) as exc:  # untrusted bytes: any refusal
                errors.append(str(exc))
        raise TsaVerificationError("; ".join(errors))


def _is_tsa_certificate(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.TIME_STAMPING in usage


def _authority(response: Any) -> str:
    for der in response.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if _is_tsa_certificate(cert):
            return str(cert.subject.rfc4514_string())
    return ""


def _link(
    raw_headers: object, part: str, start: CertifiedHeader, genesis: Genesis
) -> tuple[int, bytes]:
    """Follow the headers after `start` by prev_hash; (height, hash) of the last one."""
    if not isinstance(raw_headers, list) or len(raw_headers) > MAX_LINK_HEADERS:
        raise VerificationError(part, f"must be a list of at most {MAX_LINK_HEADERS} headers")
    height, block_hash = start.header.height, start.block_hash
    for j, raw in enumerate(raw_headers):
        where = f"{part}[{j}]"
        header: BlockHeader = decode_header(
            hex_bytes(raw, where, max_bytes=MAX_HEADER_BYTES), where, genesis
        )
        if header.height != height + 1 or header.prev_hash != block_hash:
            raise VerificationError(where, f"does not follow block {height} by prev_hash")
        height, block_hash = header.height, header.hash()
    return height, block_hash


def check_timestamps(
    entries: object,
    start: CertifiedHeader,
    genesis: Genesis,
    log: RuleLog,
    trust: TsaTrust | None,
) -> tuple[TimestampFacts, ...]:
    """Verify a document's "timestamps" from its last certified header `start`."""
    if not isinstance(entries, list) or len(entries) > MAX_TIMESTAMPS:
        raise VerificationError("timestamps", f"must be a list of at most {MAX_TIMESTAMPS}")
    out: list[TimestampFacts] = []
    for i, raw in enumerate(entries):
        part = f"timestamps[{i}]"
        entry = exact_map(raw, TIMESTAMP_KEYS, part)
        log.checked("tsa-chain")
        height, block_hash = _link(entry["headers"], f"{part}.headers", start, genesis)
        log.checked("tsa-imprint")
        der = hex_bytes(entry["response"], f"{part}.response", max_bytes=1 << 16)
        try:
            info = read_response(der)
        except TokenError as exc:
            raise VerificationError(f"{part}.response", str(exc)) from None
        if info.imprint != block_hash:
            raise VerificationError(
                f"{part}.response", f"the token time-stamps another hash than block {height}'s"
            )
        if trust is not None:
            log.checked("tsa-signature")
            try:
                trust.verify(info.response, block_hash)
            except TsaVerificationError as exc:
                raise VerificationError(
                    f"{part}.response", f"not signed by an authority you trust: {exc}"
                ) from None
        out.append(
            TimestampFacts(
                height,
                block_hash,
                info.gen_time_ms,
                info.serial,
                _authority(info.response),
                trust is not None,
            )
        )
    return tuple(out)


def stamp_line(stamp: TimestampFacts) -> str:
    who = stamp.authority or "an authority"
    trust = "" if stamp.trusted else " (authority NOT checked: pass --tsa-cert CA.pem)"
    return (
        f"block {stamp.height} existed by {utc_text(stamp.gen_time_ms)}, per {who}, "
        f"serial {stamp.serial}{trust}"
    )
