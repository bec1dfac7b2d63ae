"""The shape of each built-in transaction type's args (stateless checks only).

A wrong shape is a structural error (the mempool refuses it, a block holding it is invalid);
whether the state allows the transaction is decided at execution (node.ledger.apps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.ledger import errors as E
from p2p.identity import IdentityError, certificate_public_key

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 1024
MAX_PARENTS = 64
MAX_ROLES = 8
ROLES = ("admin", "member", "inspector", "governor", "candidate")
# Given only by genesis or by governance, never by account.grant.
RESERVED_ROLES = ("governor", "candidate")
MAX_CERT_CHARS = 4096
MAX_TSA_RESPONSE_BYTES = 12 * 1024  # = timestamps.MAX_RESPONSE_BYTES
LIVE_PARAMS = (
    "max_block_txs",
    "max_block_interval_ms",
    "max_clock_drift_ms",
    "view_timeout_ms",
    "max_view_timeout_ms",
    "censorship_timeout_ms",
)

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


def _blob(max_bytes: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, bytes) or not 0 < len(v) <= max_bytes:
            return f"must be 1 to {max_bytes} bytes"
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


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _positive(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**63:
        return "must be a positive integer"
    return None


def _address(v: Any) -> str | None:
    reason = _text(255)(v)
    if reason:
        return reason
    host, _, port = v.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be host:port"
    return None


def _fields(required: dict[str, Check], optional: dict[str, Check]) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "must be a map"
        missing = sorted(set(required) - set(v))
        if missing:
            return f"misses {', '.join(missing)}"
        unknown = sorted(set(v) - set(required) - set(optional))
        if unknown:
            return f"has unknown field(s) {', '.join(unknown)}"
        for name, value in v.items():
            reason = (required.get(name) or optional[name])(value)
            if reason:
                return f"field {name!r} {reason}"
        return None

    return check


def _certificate_for(v: dict[str, Any]) -> str | None:
    """A validator's TLS certificate must carry the validator's key (checked statelessly)."""
    try:
        key = certificate_public_key(v["certificate"].encode())
    except (IdentityError, ValueError) as exc:
        return f"certificate is not a valid Ed25519 certificate ({exc})"
    if key != v["public_key"]:
        return "certificate is not for public_key"
    return None


def _params(v: Any) -> str | None:
    if not isinstance(v, dict) or not v:
        return "must be a non-empty map"
    for name, value in v.items():
        if name not in LIVE_PARAMS:
            return f"{name!r} cannot change live; these can: {', '.join(LIVE_PARAMS)}"
        reason = _positive(value)
        if reason:
            return f"{name!r} {reason}"
    return None


_VALIDATOR_NAME = _text(MAX_NAME_CHARS)
_ACTIONS: dict[str, Check] = {}


def _action(v: Any) -> str | None:
    if not isinstance(v, dict) or v.get("type") not in _ACTIONS:
        return f"must be a map whose type is one of {', '.join(sorted(_ACTIONS))}"
    reason = _ACTIONS[v["type"]](v)
    if reason:
        return reason
    if "certificate" in v:
        return _certificate_for(v)
    if v["type"] == "update-validator" and not ({"address", "public_key"} & set(v)):
        return "must change address, or public_key and certificate"
    return None


ID = _text(MAX_ID_CHARS)
KEY32 = _bytes(32)
_TYPE = _text(32)


def _pem(v: Any) -> str | None:
    if not isinstance(v, str) or not v or len(v) > MAX_CERT_CHARS:
        return f"must be a PEM certificate of at most {MAX_CERT_CHARS} characters"
    if any(ord(c) < 32 and c != "\n" for c in v):
        return "contains control characters other than newlines"
    return None


_CERT = _pem
_ACTIONS.update(
    {
        "add-validator": _fields(
            {
                "type": _TYPE,
                "name": _VALIDATOR_NAME,
                "public_key": KEY32,
                "address": _address,
                "certificate": _CERT,
            },
            {},
        ),
        "remove-validator": _fields({"type": _TYPE, "name": _VALIDATOR_NAME}, {}),
        "update-validator": _fields(
            {"type": _TYPE, "name": _VALIDATOR_NAME},
            {"address": _address, "public_key": KEY32, "certificate": _CERT},
        ),
        "set-params": _fields({"type": _TYPE, "params": _params}, {}),
    }
)

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
    "account.rotate": (
        {"new_key": KEY32},
        {},
    ),
    "gov.propose": (
        {"action": _action},
        {"note": _text(MAX_TEXT_CHARS, empty=True)},
    ),
    "gov.vote": (
        {"proposal": _positive, "approve": _bool},
        {"note": _text(MAX_TEXT_CHARS, empty=True)},
    ),
    "validator.join": (
        {"proposal": _positive, "height": _positive, "block_hash": KEY32},
        {},
    ),
    # An RFC 3161 response (DER TimeStampResp) over block `height` (node/ledger/timestamps.py).
    "checkpoint.timestamp": (
        {"height": _positive, "response": _blob(MAX_TSA_RESPONSE_BYTES)},
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
