"""Strict JSON for evidence documents, and the error every check raises.

One document has one text: no duplicate keys, integers only (no fraction, exponent, NaN or
Infinity), lowercase even-length hex for bytes, exact key sets (docs/PROTOCOL.md, section
16.1, rule "shape"). Documents are written sorted, two-space indented, UTF-8, with a final newline.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*")
_MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class VerificationError(Exception):
    """A document does not verify; `part` names the failed part, `reason` says why, and
    `rule` is the id of the rule broken (docs/PROTOCOL.md; set by the verifier's entry
    points from the rule being checked)."""

    def __init__(self, part: str, reason: str, rule: str = "") -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason
        self.rule = rule


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise VerificationError("document", f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise VerificationError("document", f"number {text} is not an integer")


def _no_constant(text: str) -> Any:
    raise VerificationError("document", f"{text} is not allowed")


def load_json(data: bytes | str) -> Any:
    """Parse JSON strictly: no duplicate keys, no floats, no NaN/Infinity, bounded size."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VerificationError("document", f"larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, VerificationError):
            raise
        raise VerificationError("document", f"not valid JSON: {exc}") from None


def dump_json(doc: Any) -> str:
    """The one text form documents are written in (sorted keys, two-space indent)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def exact_map(value: object, keys: frozenset[str], part: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError(part, "must be an object")
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise VerificationError(part, f"wrong keys (missing {missing}, unexpected {extra})")
    return value


def hex_bytes(value: object, part: str, length: int | None = None, max_bytes: int = 0) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise VerificationError(part, "must be lowercase hex with an even number of digits")
    if max_bytes and len(value) > 2 * max_bytes:
        raise VerificationError(part, f"longer than {max_bytes} bytes")
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise VerificationError(part, f"must be {length} bytes, got {len(raw)}")
    return raw


def uint(value: object, part: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VerificationError(part, f"must be an integer >= {minimum}")
    return value


def hash_list(value: object, part: str, max_count: int) -> list[bytes]:
    if not isinstance(value, list) or len(value) > max_count:
        raise VerificationError(part, f"must be a list of at most {max_count} hashes")
    return [hex_bytes(v, f"{part}[{i}]", 32) for i, v in enumerate(value)]


def normalise(value: dict[str, Any]) -> dict[str, Any]:
    """A statement as it reads back from JSON (tuples become lists, and so on)."""
    normal: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True))
    return normal


def check_statement(given: object, derived: dict[str, Any]) -> None:
    try:
        given_text = json.dumps(given, sort_keys=True)
    except (TypeError, ValueError):
        raise VerificationError("statement", "is not plain JSON") from None
    if given_text != json.dumps(derived, sort_keys=True):
        raise VerificationError("statement", "does not match what the verified parts show")


def utc_text(timestamp_ms: int) -> str:
    """ "YYYY-MM-DD HH:MM:SS.mmm UTC" (proleptic Gregorian); out of range says so."""
    if not 0 <= timestamp_ms <= _MAX_TIME_MS:
        return f"{timestamp_ms} ms since 1970 (out of calendar range)"
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp_ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"
