"""Certified time in documents of format version 3 (docs/PROTOCOL.md, "Certified time").

A version 3 document's certificates are timed: each commit vote signed its signer's clock.
The statement then reports, besides the proposer's timestamp, the certified time of the
block (the median of the readings) and the window [a, b] that holds at least one honest
validator's reading (consensus/bfttime.py says why both hold with at most f faulty
signers). Derived from verified certificates only: no clock is read here.
"""

from __future__ import annotations

from typing import Any

from consensus.bfttime import certified_time
from node.proofs.epochs import CertifiedHeader
from node.proofs.jsondoc import utc_text


def time_statement(block: CertifiedHeader) -> dict[str, Any]:
    """The "certified_time" member of a version 3 statement, from block's certificate."""
    n = len(block.epoch.keys)
    ct = certified_time(block.certificate, n)
    low, high = ct.window_ms
    return {
        "median_ms": ct.median_ms,
        "median_utc": utc_text(ct.median_ms),
        "window_ms": [low, high],
        "window_utc": [utc_text(low), utc_text(high)],
        "readings": [
            {"validator": block.epoch.names[index], "time_ms": t} for index, t in ct.readings
        ],
    }


def time_lines(statement: dict[str, Any]) -> list[str]:
    """What `chain verify` prints about the certified time, when the document has one."""
    ct = statement.get("certified_time")
    if ct is None:
        return []
    low, high = ct["window_utc"]
    return [
        f"  certified    {ct['median_utc']} (median of {len(ct['readings'])} signers' clocks)",
        f"  window       {low} .. {high} (holds an honest validator's clock reading)",
    ]
