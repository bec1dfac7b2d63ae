"""Canonical msgpack: the one byte encoding that is hashed and signed.

A value is canonical when it uses only None, bool, int (64-bit range), bytes, str, lists
and maps with str keys, and maps are written with keys sorted by their UTF-8 bytes.
msgpack already writes the shortest form of each int and length, so sorting keys is all
that is left to make the encoding unique. Decoding is strict: bytes that would not be
re-encoded to themselves are refused, so that two byte strings never mean one value.
"""

from __future__ import annotations

from typing import Any

import msgpack

MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


class EncodingError(ValueError):
    """The bytes or the value are not canonical msgpack."""


def _normalise(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | bytes | str):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"integer out of 64-bit range: {value}")
        return value
    if isinstance(value, list | tuple):
        return [_normalise(v, depth + 1) for v in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise EncodingError(f"map key must be str, got {type(key).__name__}")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: _normalise(value[k], depth + 1) for k in keys}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise EncodingError(f"type {type(value).__name__} is not allowed in canonical encoding")


def pack(value: Any) -> bytes:
    """Encode a value canonically; raises EncodingError for floats, non-str keys, etc."""
    return msgpack.packb(_normalise(value, 0), use_bin_type=True)


def unpack(data: bytes, *, max_len: int = 16 * 1024 * 1024) -> Any:
    """Decode canonical msgpack; refuses non-canonical or oversized input."""
    if len(data) > max_len:
        raise EncodingError(f"encoding is {len(data)} bytes, limit {max_len}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
        )
    except Exception as exc:  # msgpack raises several unrelated types
        raise EncodingError(f"not valid msgpack: {exc}") from exc
    if pack(value) != data:
        raise EncodingError("encoding is not canonical")
    return value


def unpack_fast(data: bytes) -> Any:
    """Decode msgpack without the canonical check, for data we wrote ourselves (our store)."""
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
