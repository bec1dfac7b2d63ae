"""RFC 3161 timestamps of checkpoint blocks: the request a node sends, and what the chain
reads from the response it records (transaction `checkpoint.timestamp`).

The time-stamped data is a block's hashed bytes, b"chain-header-v1\\x00" || canonical header,
with SHA-256: so the token's message imprint IS the block hash, and anyone can check it
with stock tools (`openssl ts -verify -digest <block hash> -in token.tsr -CAfile ca.pem`).

The ASN.1 is parsed by rfc3161-client (strict DER, Trail of Bits), never by hand. Parsing
is deterministic, so every node reaches the same verdict on a recorded response; the chain
checks its shape and imprint only. Trust in the authority (its signature and certificate
chain) is the verifier's to judge offline, against the CA it trusts (node/proofs/tsa.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    decode_timestamp_response,
)

from node.ledger.block import HEADER_DOMAIN

TSA = b"tsa/"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
MAX_RESPONSE_BYTES = 12 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TokenError(Exception):
    """Bytes that are not a granted RFC 3161 response over a SHA-256 imprint."""


def tsa_key(height: int) -> bytes:
    """The state key of block `height`'s recorded timestamp (heights sort as numbers)."""
    return TSA + struct.pack(">Q", height)


def request_for_header(header_bytes: bytes) -> bytes:
    """The DER TimeStampReq over a block: SHA-256 of domain || header = the block hash."""
    request = (
        TimestampRequestBuilder()
        .data(HEADER_DOMAIN + header_bytes)
        .hash_algorithm(HashAlgorithm.SHA256)
        .cert_request(cert_request=True)
        .build()
    )
    return bytes(request.as_bytes())


@dataclass(frozen=True)
class TokenInfo:
    imprint: bytes  # the time-stamped SHA-256 (a block hash)
    gen_time_ms: int  # the authority's time, ms since 1970
    serial: int
    response: TimeStampResponse


def read_response(der: bytes) -> TokenInfo:
    """The imprint and time of a DER TimeStampResp; TokenError unless it is a granted
    response with a SHA-256 imprint."""
    if not isinstance(der, bytes) or not 0 < len(der) <= MAX_RESPONSE_BYTES:
        raise TokenError(f"a response is 1 to {MAX_RESPONSE_BYTES} bytes")
    try:
        response = decode_timestamp_response(der)
        status = PKIStatus(response.status)
        info = response.tst_info
        algorithm = info.message_imprint.hash_algorithm.dotted_string
        imprint = bytes(info.message_imprint.message)
        gen_time = info.gen_time
        serial = int(info.serial_number)
    except (ValueError, TypeError, AttributeError) as exc:
        raise TokenError(f"not an RFC 3161 response: {exc}") from None
    if status != PKIStatus.GRANTED:
        raise TokenError(f"the authority did not grant it (status {status.name})")
    if algorithm != SHA256_OID or len(imprint) != 32:
        raise TokenError("the message imprint is not SHA-256")
    if response.as_bytes() != der:
        raise TokenError("not DER: re-encoding differs")
    # Integer arithmetic: a float of ms since 1970 would round some times.
    gen_time_ms = (gen_time - _EPOCH) // timedelta(milliseconds=1)
    return TokenInfo(imprint, gen_time_ms, serial, response)
