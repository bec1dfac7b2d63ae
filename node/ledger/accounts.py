"""Accounts and their keys: an account keeps the id it was created with (its first public
key) for ever; `account.rotate` hands it to a new signing key, and the old key is refused
from then on. Roles, nonce, custody of items and ownership of records all stay with the id,
so history shows one continuous account.

State:
  acct/<id>        {"name", "roles", "nonce", "since"[, "key": current signing key]}
  acct/<other key> {"alias_of": id[, "retired": true]}   a key the account signs (or signed) with
A key is the account's signing key when acct/<key> is its record without "key" (never
rotated) or with "key" == key, or when acct/<key> is an alias that is not retired.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.ledger import encoding

ACCT = b"acct/"
ROTATED = "key_rotated"

Get = Callable[[bytes], Any]  # decoded state value or None


def acct_key(pub: bytes) -> bytes:
    return ACCT + pub


def resolve(get: Get, key: bytes) -> tuple[bytes, dict[str, Any]] | str:
    """(account id, account record) for a signing key, or why the key may not sign."""
    record = get(acct_key(key))
    if record is None:
        return "unknown"
    if "alias_of" in record:
        if record.get("retired"):
            return ROTATED
        account_id = record["alias_of"]
        account = get(acct_key(account_id))
        if account is None or account.get("key") != key:
            return ROTATED
        return account_id, account
    if record.get("key", key) != key:
        return ROTATED
    return key, record


def account_for_key(get_raw: Callable[[bytes], bytes | None], key: bytes) -> dict[str, Any] | None:
    """The account a key signs for, or None (unknown, or a key rotated away): for the
    mempool, which reads raw committed state."""

    def get(k: bytes) -> Any:
        raw = get_raw(k)
        return None if raw is None else encoding.unpack_fast(raw)

    found = resolve(get, key)
    return None if isinstance(found, str) else found[1]


def rotate(
    put: Callable[[bytes, dict[str, Any]], None],
    get: Get,
    account_id: bytes,
    account: dict[str, Any],
    old_key: bytes,
    new_key: bytes,
) -> str | None:
    """Hand account `account_id` from `old_key` to `new_key`; None, or why not."""
    if new_key == old_key:
        return "the new key is the current key"
    if get(acct_key(new_key)) is not None:
        return "the new key already belongs to an account"
    if old_key != account_id:
        put(acct_key(old_key), {"alias_of": account_id, "retired": True})
    if new_key != account_id:
        put(acct_key(new_key), {"alias_of": account_id})
    put(acct_key(account_id), {**account, "key": new_key})
    return None
