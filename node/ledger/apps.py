"""Deterministic execution of blocks: the built-in transaction types and their rules.

Execution never raises for a rule refusal: a transaction that its rules refuse (no
permission, unknown item, not the custodian) gets a failure result and a reason, and its
nonce is consumed. Structural validity (signature, chain, nonce order, known sender) is
checked before execution by `check_block_txs`; a block that fails it is invalid.

State keys (values are canonical msgpack maps):
  acct/<account id>        {"name", "roles", "nonce", "since"[, "key"]} (accounts.py: an id is
                           the account's first key; "key" is its signing key once rotated)
  acct/<other key>         {"alias_of": id[, "retired": true]}
  gov/...                  governance, epochs and the validator set (governance.py)
  item/<item id>           {"custodian", "registrant", "meta", "parents", "height", "tx", "steps"}
  rec/<ns>\\0<key>          {"owner", "value", "version", "height", "tx"}
  notary/<digest>          {"submitter", "height", "tx", "timestamp_ms", "meta"}
  tsa/<height, 8 bytes BE> {"response", "block_hash", "gen_time_ms", "submitter", "height",
                           "tx"}: an RFC 3161 timestamp of block <height> (timestamps.py)
Index entries (not state; written with the block): item history and record history.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.ledger import encoding, governance, timestamps
from node.ledger.accounts import ROTATED, acct_key, resolve, rotate
from node.ledger.block import Block
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import Genesis
from node.ledger.merkle import merkle_root
from node.ledger.schema import RESERVED_ROLES
from node.ledger.tx import Transaction

ITEM = b"item/"
REC = b"rec/"
NOTARY = b"notary/"


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


def item_key(item_id: str) -> bytes:
    return ITEM + item_id.encode()


def record_key(ns: str, key: str) -> bytes:
    return REC + ns.encode() + b"\x00" + key.encode()


def notary_key(digest: bytes) -> bytes:
    return NOTARY + digest


def item_history_key(item_id: str, seq: int) -> bytes:
    return item_id.encode() + b"\x00" + struct.pack(">Q", seq)


def record_history_key(ns: str, key: str, version: int) -> bytes:
    return ns.encode() + b"\x00" + key.encode() + b"\x00" + struct.pack(">Q", version)


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_id: bytes
    ok: bool
    code: str
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
            "data": self.data,
        }

    def encode(self) -> bytes:
        return encoding.pack(self.to_obj())


@dataclass
class BlockOutcome:
    writes: dict[bytes, bytes | None]
    results: list[TxResult]
    encoded_results: list[bytes]  # each result's canonical bytes: hashed into the root, stored
    item_history: list[tuple[bytes, bytes]]  # (key, value) for the item history index
    record_history: list[tuple[bytes, bytes]]
    results_root: bytes


class Overlay:
    """Reads through to committed state, writes kept in memory until the block commits.

    A value put is packed once, when the block's writes are taken (packed_writes), not at
    every put: in a busy block an account is put once per transaction it sends. Handlers treat
    values as immutable (they put fresh dicts), so packing later packs the same value."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._dirty: dict[bytes, dict[str, Any] | None] = {}
        self._cache: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any:
        if key in self._cache:
            return self._cache[key]
        raw = self._base.get(key)  # every key put or deleted is in the cache
        value = None if raw is None else encoding.unpack_fast(raw)
        self._cache[key] = value
        return value

    def put(self, key: bytes, value: dict[str, Any]) -> None:
        self._dirty[key] = value
        self._cache[key] = value

    def delete(self, key: bytes) -> None:
        self._dirty[key] = None
        self._cache[key] = None

    def packed_writes(self) -> dict[bytes, bytes | None]:
        """The block's changes, packed canonically (None = deleted); packs them all, so the
        block's execution calls it once, at its end."""
        return {
            key: None if value is None else encoding.pack(value)
            for key, value in self._dirty.items()
        }


def genesis_state(genesis: Genesis) -> dict[bytes, bytes]:
    """Everything a chain's state holds before block 1: accounts (governors with their role),
    the validator set of epoch 0 and the governance configuration."""
    governors = set(genesis.governor_keys())
    accounts = [
        (a.public_key, a.name, (*a.roles, "governor") if a.public_key in governors else a.roles)
        for a in genesis.accounts
    ]
    writes = genesis_writes(accounts)
    validators = [
        {
            "name": v.name,
            "public_key": v.public_key,
            "address": v.address,
            "certificate": v.certificate,
        }
        for v in genesis.validators
    ]
    gov = genesis.governance
    params = {name: getattr(genesis.consensus, name) for name in governance.LIVE_PARAMS}
    state = governance.genesis_state(
        validators,
        params,
        sorted(governors),
        (gov.threshold_num, gov.threshold_den),
        gov.proposal_ttl_blocks,
    )
    writes.update({key: encoding.pack(value) for key, value in state.items()})
    return writes


def genesis_writes(accounts: Iterable[tuple[bytes, str, tuple[str, ...]]]) -> dict[bytes, bytes]:
    return {
        acct_key(pub): encoding.pack({"name": name, "roles": list(roles), "nonce": 0, "since": 0})
        for pub, name, roles in accounts
    }


# --- structural checks -------------------------------------------------------------------


def check_block_txs(
    block: Block,
    state: StateReader,
    *,
    chain_id: str,
    signature_ok: Callable[[Transaction], bool],
    tx_known: Callable[[bytes], bool],
) -> None:
    """Raise BlockInvalid unless every tx is structurally valid in order against `state`."""
    next_nonce: dict[bytes, int] = {}
    seen: set[bytes] = set()
    # Every tx is checked against the state before the block, so a key resolves the same way
    # for all of a block's txs: resolved once per sender key, not once per tx.
    resolved: dict[bytes, tuple[bytes, dict[str, Any]] | str] = {}

    def reader(key: bytes) -> Any:
        raw = state.get(key)
        return None if raw is None else encoding.unpack_fast(raw)

    for i, tx in enumerate(block.txs):
        if tx.chain_id != chain_id:
            raise BlockInvalid(f"tx {i} is for chain {tx.chain_id!r}")
        if tx.tx_id in seen or tx_known(tx.tx_id):
            raise BlockInvalid(f"tx {i} ({tx.tx_id.hex()[:16]}) is already in the chain")
        seen.add(tx.tx_id)
        found = resolved.get(tx.sender)
        if found is None:
            found = resolved[tx.sender] = resolve(reader, tx.sender)
        if isinstance(found, str):
            what = "was rotated away" if found == ROTATED else "has no account"
            raise BlockInvalid(f"tx {i}: sender key {tx.sender.hex()[:16]} {what}")
        account_id, account = found
        expected = next_nonce.get(account_id, account["nonce"] + 1)
        if tx.nonce != expected:
            raise BlockInvalid(f"tx {i}: nonce {tx.nonce}, expected {expected}")
        next_nonce[account_id] = expected + 1
        if not signature_ok(tx):
            raise BlockInvalid(f"tx {i}: bad signature")


# --- execution -----------------------------------------------------------------------------


@dataclass
class _Ctx:
    state: Overlay
    height: int
    index: int
    timestamp_ms: int
    tx: Transaction
    item_history: list[tuple[bytes, bytes]]
    record_history: list[tuple[bytes, bytes]]
    sender_id: bytes = b""  # the account the sender's key signs for (accounts.py)


class Refused(Exception):
    def __init__(self, code: str, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.data = data or {}


def execute_block(block: Block, state: StateReader) -> BlockOutcome:
    overlay = Overlay(state)
    governance.begin_block(overlay, block.height, block.header.prev_hash)
    results: list[TxResult] = []
    item_history: list[tuple[bytes, bytes]] = []
    record_history: list[tuple[bytes, bytes]] = []
    for index, tx in enumerate(block.txs):
        ctx = _Ctx(
            overlay,
            block.height,
            index,
            block.header.timestamp_ms,
            tx,
            item_history,
            record_history,
        )
        results.append(_execute_tx(ctx))
    governance.end_block(overlay, block.height)
    encoded = [r.encode() for r in results]
    return BlockOutcome(
        writes=overlay.packed_writes(),
        results=results,
        encoded_results=encoded,
        item_history=item_history,
        record_history=record_history,
        results_root=merkle_root(encoded),
    )


def _execute_tx(ctx: _Ctx) -> TxResult:
    tx = ctx.tx
    found = resolve(ctx.state.get, tx.sender)
    if isinstance(found, str) or found[1]["nonce"] + 1 != tx.nonce:
        # check_block_txs ran first; reaching this means the block was not checked.
        raise BlockInvalid(f"tx {tx.tx_id.hex()} executed without a structural check")
    account_id, account = found
    ctx.sender_id = account_id
    account = {**account, "nonce": tx.nonce}
    ctx.state.put(acct_key(account_id), account)
    if not account["roles"]:
        return TxResult(tx.tx_id, False, "not_permitted", "sender's account is revoked")
    if account["roles"] == ["candidate"] and tx.type != "validator.join":
        return TxResult(
            tx.tx_id, False, "not_permitted", "a validator candidate may only report ready"
        )
    handler = HANDLERS[tx.type]
    try:
        data = handler(ctx, account)
    except Refused as refusal:
        return TxResult(tx.tx_id, False, refusal.code, refusal.reason, refusal.data)
    return TxResult(tx.tx_id, True, "ok", "", data or {})


def _step(ctx: _Ctx, item_id: str, item: dict[str, Any], kind: str, extra: dict[str, Any]) -> None:
    seq = item["steps"]
    ctx.item_history.append(
        (
            item_history_key(item_id, seq),
            encoding.pack(
                {
                    "seq": seq,
                    "kind": kind,
                    "height": ctx.height,
                    "index": ctx.index,
                    "tx_id": ctx.tx.tx_id,
                    "by": ctx.sender_id,
                    "timestamp_ms": ctx.timestamp_ms,
                    **extra,
                }
            ),
        )
    )
    item["steps"] = seq + 1


def _record_put(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    key = record_key(a["ns"], a["key"])
    current = ctx.state.get(key)
    if current is not None and current["owner"] != ctx.sender_id:
        raise Refused(
            "not_owner",
            f"record {a['ns']}/{a['key']} belongs to another account",
            {"owner": current["owner"]},
        )
    version = 1 if current is None else current["version"] + 1
    ctx.state.put(
        key,
        {
            "owner": ctx.sender_id,
            "value": a["value"],
            "version": version,
            "height": ctx.height,
            "tx": ctx.tx.tx_id,
        },
    )
    ctx.record_history.append(
        (
            record_history_key(a["ns"], a["key"], version),
            encoding.pack(
                {
                    "version": version,
                    "height": ctx.height,
                    "index": ctx.index,
                    "tx_id": ctx.tx.tx_id,
                    "value": a["value"],
                }
            ),
        )
    )
    return {"version": version}


def _item_register(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    key = item_key(a["item"])
    if ctx.state.get(key) is not None:
        raise Refused("item_exists", f"item {a['item']!r} is already registered")
    parents = a.get("parents", [])
    for parent in parents:
        p = ctx.state.get(item_key(parent))
        if p is None:
            raise Refused("unknown_item", f"parent item {parent!r} is not registered")
        if p["custodian"] != ctx.sender_id:
            raise Refused("not_custodian", f"sender is not the custodian of parent {parent!r}")
    item = {
        "custodian": ctx.sender_id,
        "registrant": ctx.sender_id,
        "meta": a.get("meta", {}),
        "parents": parents,
        "height": ctx.height,
        "tx": ctx.tx.tx_id,
        "steps": 0,
    }
    _step(ctx, a["item"], item, "register", {"meta": item["meta"], "parents": parents})
    ctx.state.put(key, item)
    return {"item": a["item"]}


def _registered_item(ctx: _Ctx) -> tuple[bytes, dict[str, Any]]:
    item_id = ctx.tx.args["item"]
    key = item_key(item_id)
    item = ctx.state.get(key)
    if item is None:
        raise Refused("unknown_item", f"item {item_id!r} is not registered")
    return key, item


def _item_transfer(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    key, item = _registered_item(ctx)
    if item["custodian"] != ctx.sender_id:
        raise Refused(
            "not_custodian",
            f"only the current custodian may transfer {a['item']!r}",
            {"custodian": item["custodian"]},
        )
    recipient = resolve(ctx.state.get, a["to"])
    if isinstance(recipient, str) or not recipient[1]["roles"]:
        raise Refused("unknown_account", "the recipient is not an active account of this chain")
    to = recipient[0]
    item = {**item, "custodian": to}
    _step(
        ctx,
        a["item"],
        item,
        "transfer",
        {"from": ctx.sender_id, "to": to, "note": a.get("note", "")},
    )
    ctx.state.put(key, item)
    return {"custodian": to}


def _item_event(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    key, item = _registered_item(ctx)
    if item["custodian"] != ctx.sender_id and "inspector" not in account["roles"]:
        raise Refused(
            "not_custodian", "only the custodian or an inspector may record events on this item"
        )
    item = dict(item)
    _step(
        ctx,
        a["item"],
        item,
        "event",
        {
            "event": a["kind"],
            "location": a.get("location", ""),
            "time_ms": a.get("time_ms"),
            "digest": a.get("digest"),
            "note": a.get("note", ""),
        },
    )
    ctx.state.put(key, item)
    return {"seq": item["steps"] - 1}


def _notary_anchor(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    key = notary_key(a["digest"])
    existing = ctx.state.get(key)
    if existing is not None:
        raise Refused(
            "already_anchored",
            f"digest was first anchored at height {existing['height']}",
            {
                "original_height": existing["height"],
                "original_submitter": existing["submitter"],
                "original_tx": existing["tx"],
            },
        )
    ctx.state.put(
        key,
        {
            "submitter": ctx.sender_id,
            "height": ctx.height,
            "tx": ctx.tx.tx_id,
            "timestamp_ms": ctx.timestamp_ms,
            "meta": a.get("meta", {}),
        },
    )
    return {"height": ctx.height, "timestamp_ms": ctx.timestamp_ms}


def _checkpoint_timestamp(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    """Record an RFC 3161 response over a recent block: its imprint must be that block's
    hash (known from the last RECENT_BLOCKS hashes); the first one recorded for a height
    stays. The authority's signature is the offline verifier's to judge."""
    a = ctx.tx.args
    height = a["height"]
    try:
        info = timestamps.read_response(a["response"])
    except timestamps.TokenError as exc:
        raise Refused("bad_token", str(exc)) from None
    recent = ctx.state.get(governance.RECENT)
    known = {h: bh for h, bh in recent["blocks"]} if recent is not None else {}
    if height not in known:
        raise Refused(
            "unknown_block",
            f"block {height} is not among the last {governance.RECENT_BLOCKS} blocks before "
            f"{ctx.height}: record a timestamp soon after its block",
        )
    if info.imprint != known[height]:
        raise Refused("wrong_block", f"the token time-stamps another hash than block {height}'s")
    key = timestamps.tsa_key(height)
    existing = ctx.state.get(key)
    if existing is not None:
        raise Refused(
            "already_stamped",
            f"block {height} was time-stamped at height {existing['height']}",
            {"original_height": existing["height"], "original_tx": existing["tx"]},
        )
    ctx.state.put(
        key,
        {
            "response": a["response"],
            "block_hash": info.imprint,
            "gen_time_ms": info.gen_time_ms,
            "submitter": ctx.sender_id,
            "height": ctx.height,
            "tx": ctx.tx.tx_id,
        },
    )
    return {"block": height, "gen_time_ms": info.gen_time_ms}


def _require_admin(account: dict[str, Any]) -> None:
    if "admin" not in account["roles"]:
        raise Refused("not_permitted", "only an admin account may grant or revoke roles")


def _account_grant(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    _require_admin(account)
    a = ctx.tx.args
    reserved = sorted(set(a["roles"]) & set(RESERVED_ROLES))
    if reserved:
        raise Refused("not_permitted", f"role(s) {', '.join(reserved)} come only from governance")
    found = resolve(ctx.state.get, a["account"])
    if found == ROTATED:
        raise Refused("key_rotated", "that key was rotated away; grant the account's current key")
    if isinstance(found, str):
        account_id, existing = a["account"], None
    else:
        account_id, existing = found
    kept = [r for r in existing["roles"] if r in RESERVED_ROLES] if existing else []
    name = a.get("name", existing["name"] if existing else "")
    roles = sorted(set(a["roles"]) | set(kept)) or ["member"]
    record = {**(existing or {"nonce": 0}), "name": name, "roles": roles, "since": ctx.height}
    ctx.state.put(acct_key(account_id), record)
    return {"roles": roles}


def _account_revoke(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    _require_admin(account)
    a = ctx.tx.args
    found = resolve(ctx.state.get, a["account"])
    if isinstance(found, str):
        raise Refused("unknown_account", "no such account (or a key rotated away)")
    account_id, existing = found
    if account_id == ctx.sender_id:
        raise Refused("not_permitted", "an admin cannot revoke its own account")
    ctx.state.put(acct_key(account_id), {**existing, "roles": [], "since": ctx.height})
    return {}


def _account_rotate(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    new_key = ctx.tx.args["new_key"]
    reason = rotate(ctx.state.put, ctx.state.get, ctx.sender_id, account, ctx.tx.sender, new_key)
    if reason:
        raise Refused("bad_rotation", reason)
    return {"account": ctx.sender_id, "key": new_key}


def _governed(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except governance.GovernanceRefused as refusal:
        raise Refused(refusal.code, refusal.reason) from None


def _gov_propose(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    action = ctx.tx.args["action"]
    proposal_id = _governed(
        lambda: governance.propose(ctx.state, ctx.sender_id, action, ctx.height)
    )
    status = ctx.state.get(governance.prop_key(proposal_id))["status"]
    return {"proposal": proposal_id, "status": status}


def _gov_vote(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    status = _governed(
        lambda: governance.vote(ctx.state, ctx.sender_id, a["proposal"], a["approve"], ctx.height)
    )
    return {"proposal": a["proposal"], "status": status}


def _validator_join(ctx: _Ctx, account: dict[str, Any]) -> dict[str, Any]:
    a = ctx.tx.args
    _governed(
        lambda: governance.join(
            ctx.state, ctx.tx.sender, a["proposal"], a["height"], a["block_hash"], ctx.height
        )
    )
    return {"proposal": a["proposal"], "status": governance.QUEUED}


HANDLERS: dict[str, Callable[[_Ctx, dict[str, Any]], dict[str, Any]]] = {
    "record.put": _record_put,
    "item.register": _item_register,
    "item.transfer": _item_transfer,
    "item.event": _item_event,
    "notary.anchor": _notary_anchor,
    "account.grant": _account_grant,
    "account.revoke": _account_revoke,
    "account.rotate": _account_rotate,
    "gov.propose": _gov_propose,
    "gov.vote": _gov_vote,
    "validator.join": _validator_join,
    "checkpoint.timestamp": _checkpoint_timestamp,
}
