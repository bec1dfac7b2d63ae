"""The shape of each built-in transaction type's args (stateless checks only).

A wrong shape is a structural error (the mempool refuses it, a block holding it is invalid);
whether the state allows the transaction is decided at execution (node.ledger.apps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.ledger import errors as E

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 1024
MAX_PARENTS = 64
MAX_ROLES = 8
ROLES = ("admin", "member", "inspector")

Check = Callable[[Any], str | None]  # returns a reason when the value is wrong


def _text(max_chars: int, *, empty: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "must be a string"
        if not empty and not v:
            return "must not be empty"
        if len(v) > max_chars:
            return f"longer than {max_chars} characters"
        if any(ord(c) < 32 for c in v):
            return "contains control characters"
        return None

    return check


def _bytes(length: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, bytes) or len(v) != length:
            return f"must be {length} bytes"
        return None

    return check


def _optional(inner: Check) -> Check:
    def check(v: Any) -> str | None:
        return None if v is None else inner(v)

    return check


def _map(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be a map"


def _int(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        return "must be a non-negative integer"
    return None


def _list_of(inner: Check, max_len: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return "must be a list"
        if len(v) > max_len:
            return f"more than {max_len} entries"
        for i, item in enumerate(v):
            reason = inner(item)
            if reason:
                return f"entry {i} {reason}"
        if len({repr(x) for x in v}) != len(v):
            return "has duplicate entries"
        return None

    return check


def _role(v: Any) -> str | None:
    return None if v in ROLES else f"must be one of {', '.join(ROLES)}"


def _any(v: Any) -> str | None:
    return None


ID = _text(MAX_ID_CHARS)
KEY32 = _bytes(32)

# type -> (required fields, optional fields)
SCHEMAS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "record.put": (
        {"ns": _text(MAX_NAME_CHARS), "key": _text(MAX_ID_CHARS * 2), "value": _any},
        {},
    ),
    "item.register": (
        {"item": ID},
        {"meta": _map, "parents": _list_of(ID, MAX_PARENTS)},
    ),
    "item.transfer": (
        {"item": ID, "to": KEY32},
        {"note": _text(MAX_TEXT_CHARS, empty=True)},
    ),
    "item.event": (
        {"item": ID, "kind": _text(MAX_NAME_CHARS)},
        {
            "location": _text(MAX_TEXT_CHARS, empty=True),
            "time_ms": _int,
            "digest": _optional(KEY32),
            "note": _text(MAX_TEXT_CHARS, empty=True),
        },
    ),
    "notary.anchor": (
        {"digest": KEY32},
        {"meta": _map},
    ),
    "account.grant": (
        {"account": KEY32, "roles": _list_of(_role, MAX_ROLES)},
        {"name": _text(MAX_NAME_CHARS)},
    ),
    "account.revoke": (
        {"account": KEY32},
        {},
    ),
}

TX_TYPES = tuple(sorted(SCHEMAS))


def check_args(tx_type: str, args: dict[str, Any]) -> None:
    schema = SCHEMAS.get(tx_type)
    if schema is None:
        raise E.TxInvalid(
            E.UNKNOWN_TYPE, f"unknown transaction type {tx_type!r}; known: {', '.join(TX_TYPES)}"
        )
    required, optional = schema
    missing = sorted(set(required) - set(args))
    if missing:
        raise E.TxInvalid(E.BAD_ARGS, f"{tx_type}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        raise E.TxInvalid(E.BAD_ARGS, f"{tx_type}: unknown field(s) {', '.join(unknown)}")
    for name, value in args.items():
        check = required.get(name) or optional[name]
        reason = check(value)
        if reason:
            raise E.TxInvalid(E.BAD_ARGS, f"{tx_type}: field {name!r} {reason}")
