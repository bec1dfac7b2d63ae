"""Canonical msgpack: the one byte encoding that is hashed and signed.

A value is canonical when it uses only None, bool, int (64-bit range), bytes, str, lists
and maps with str keys, and maps are written with keys sorted by their UTF-8 bytes.
msgpack already writes the shortest form of each int and length, so sorting keys is all
that is left to make the encoding unique. Decoding is strict: bytes that would not be
re-encoded to themselves are refused, so that two byte strings never mean one value.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack  # type: ignore[import-untyped]

MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


class EncodingError(ValueError):
    """The bytes or the value are not canonical msgpack."""


_THREAD = threading.local()
# Exact types that encode as themselves. Checked by `type(v) in ...` (one hash lookup) before
# the isinstance chain: packing and the canonical check run several times per transaction.
_LEAVES = frozenset({type(None), bool, bytes, str})
_DECODED_LEAVES = frozenset({type(None), bool, bytes, str, int})
# Sorted key order per key tuple: our maps have a handful of shapes (accounts, items, results,
# tx bodies), and sorting by UTF-8 bytes with a key function is the costliest part of a pack.
# Bounded in entries and in keys per entry; cleared when full (rebuilt on use).
_KEY_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}
_KEY_ORDERS_MAX = 1024
_KEY_ORDER_MAX_KEYS = 32


def _sorted_keys(value: dict[Any, Any]) -> tuple[str, ...] | list[str]:
    keys = tuple(value)
    order = _KEY_ORDERS.get(keys)
    if order is not None:
        # Only tuples of exact str are stored, and a hit means every key equals (and hashes
        # like) a stored str: for str keys that is identity of value.
        return order
    for key in keys:
        if not isinstance(key, str):
            raise EncodingError(f"map key must be str, got {type(key).__name__}")
    ordered = sorted(keys, key=lambda k: k.encode("utf-8"))
    if len(keys) <= _KEY_ORDER_MAX_KEYS and all(type(k) is str for k in keys):
        if len(_KEY_ORDERS) >= _KEY_ORDERS_MAX:
            _KEY_ORDERS.clear()
        _KEY_ORDERS[keys] = tuple(ordered)
    return ordered


def _normalise(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"integer out of 64-bit range: {value}")
        return value
    if kind is dict:
        keys = _sorted_keys(value)
        child = _child_depth(value, depth)
        leaves = _LEAVES
        out = {}
        for k in keys:
            v = value[k]
            t = type(v)
            if t in leaves or (t is int and INT_MIN <= v <= INT_MAX):
                out[k] = v
            else:
                out[k] = _normalise(v, child)
        return out
    if kind is list or kind is tuple:
        child = _child_depth(value, depth)
        leaves = _LEAVES
        return [v if type(v) in leaves else _normalise(v, child) for v in value]
    return _normalise_subclass(value, depth)


def _child_depth(container: Any, depth: int) -> int:
    # Children are checked at depth + 1; leaves skip the call, so check for them here.
    if depth + 1 > MAX_DEPTH and container:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    return depth + 1


def _normalise_subclass(value: Any, depth: int) -> Any:
    """The general rules, for subclasses and the types the fast path does not name."""
    if value is None or isinstance(value, bool | bytes | str):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"integer out of 64-bit range: {value}")
        return value
    if isinstance(value, list | tuple):
        return [_normalise(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(value[k], depth + 1) for k in _sorted_keys(value)}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise EncodingError(f"type {type(value).__name__} is not allowed in canonical encoding")


def _check_decoded(value: Any, depth: int) -> None:
    """Raise unless a freshly decoded value is canonical apart from integer and length forms
    (which the caller checks by re-encoding): allowed types only, str keys in UTF-8 order,
    nesting within MAX_DEPTH. Code point order is UTF-8 byte order for the valid UTF-8 that
    msgpack decodes, so comparing the str keys themselves is exact."""
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind in _DECODED_LEAVES:
        return
    leaves = _DECODED_LEAVES
    if kind is dict:
        previous: str | None = None
        for key in value:
            if type(key) is not str:
                raise EncodingError(f"map key must be str, got {type(key).__name__}")
            if previous is not None and not previous < key:
                raise EncodingError("encoding is not canonical: map keys are not sorted")
            previous = key
        child = _child_depth(value, depth)
        for item in value.values():
            if type(item) not in leaves:
                _check_decoded(item, child)
        return
    if kind is list:
        child = _child_depth(value, depth)
        for item in value:
            if type(item) not in leaves:
                _check_decoded(item, child)
        return
    raise EncodingError(f"type {kind.__name__} is not allowed in canonical encoding")


def _packer() -> msgpack.Packer:
    # One Packer per thread: `packb` builds a new one per call, which costs more than packing
    # a small map. Each pack() call runs to completion in C, so a thread's packer is never
    # re-entered.
    try:
        return _THREAD.packer
    except AttributeError:
        _THREAD.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        return _THREAD.packer


def pack(value: Any) -> bytes:
    """Encode a value canonically; raises EncodingError for floats, non-str keys, etc."""
    return _packer().pack(_normalise(value, 0))  # type: ignore[no-any-return]


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
    # Same verdict as `pack(value) != data`, without rebuilding every map: check types, key
    # order and depth in place, then re-encode as decoded (map order kept) and compare.
    _check_decoded(value, 0)
    if _packer().pack(value) != data:
        raise EncodingError("encoding is not canonical")
    return value


def unpack_fast(data: bytes) -> Any:
    """Decode msgpack without the canonical check, for data we wrote ourselves (our store)."""
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)


def unpack_first_of_pair(data: bytes, *, max_len: int) -> Any:
    """The first element of a msgpack array of two, read without decoding the second (a
    block's header before its transactions). Canonical checks apply to that element only;
    whoever needs the whole value calls `unpack` on it later."""
    if len(data) > max_len:
        raise EncodingError(f"encoding is {len(data)} bytes, limit {max_len}")
    unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=True, max_buffer_size=0)
    unpacker.feed(data)
    try:
        if unpacker.read_array_header() != 2:
            raise EncodingError("not an array of two")
        first = unpacker.unpack()
    except EncodingError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise EncodingError(f"not valid msgpack: {exc}") from exc
    _check_decoded(first, 1)
    return first
