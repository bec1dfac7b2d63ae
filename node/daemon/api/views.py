"""JSON views of stored records shared by the methods and the status report."""

from __future__ import annotations

from typing import Any

from consensus import CommitCertificate
from node.ledger.genesis import Genesis


def certificate_json(genesis: Genesis, raw: bytes | None) -> Any:
    """A stored commit certificate with each signer's name from genesis."""
    if raw is None:
        return None
    cert = CommitCertificate.from_bytes(raw)
    names = genesis.validators
    times = cert.times or (None,) * len(cert.signatures)
    return {
        "version": 2 if cert.timed else 1,
        "height": cert.height,
        "view": cert.view,
        "digest": cert.digest.hex(),
        "signatures": [
            {
                "validator": i,
                "name": names[i].name if i < len(names) else "?",
                "signature": s.hex(),
                # The signer's clock when it signed (version 2 certificates; null before).
                "time_ms": t,
            }
            for (i, s), t in zip(cert.signatures, times, strict=True)
        ],
    }
