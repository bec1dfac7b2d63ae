"""Governance: the consortium's votes that change the validator set and the parameters that
are safe to change live, and the epochs those changes make (docs/CONSENSUS.md, "Epochs").

An epoch is a validator set and its live parameters. The set that signs block h is fixed by
the state after block h - 2: a change that passes (or whose candidate reports ready) while
block H executes is scheduled for H + 2, so the header of block H + 1 - certified by the old
set - already names the new set (`next_validators_hash`); that header and its certificate
are the proof of the change. At most one change is scheduled at a time; others wait in line.

State (canonical msgpack maps):
  gov/config        {"governors": [ids], "threshold": [num, den], "ttl_blocks": n}
  gov/epoch         the current epoch {"epoch", "start_height", "set", "params", "proposal"}
  gov/next          the scheduled epoch, same fields (absent when none)
  gov/epochs/<e:8>  every epoch since genesis (history for receipts and `chain validators`)
  gov/prop/<id:8>   a proposal {"id", "proposer", "action", "created", "expires", "approve",
                    "reject", "status", "reason", "effective_height"}
  gov/open          {"ids": [...]} proposals open, waiting for their candidate, or queued
  gov/seq           {"next": n}
  gov/recent        {"blocks": [[height, hash], ...]} the last RECENT_BLOCKS block hashes
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from node.ledger import crypto, encoding

CONFIG = b"gov/config"
EPOCH = b"gov/epoch"
NEXT = b"gov/next"
EPOCHS = b"gov/epochs/"
PROP = b"gov/prop/"
OPEN = b"gov/open"
SEQ = b"gov/seq"
RECENT = b"gov/recent"
SET_DOMAIN = b"chain-validators-v1\x00"

RECENT_BLOCKS = 64
JOIN_MAX_LAG = 16  # a candidate proves it is caught up to within this many blocks
MAX_OPEN = 64
MAX_EPOCHS = 1_000_000  # a bound for scans of the history, never reached in practice
MAX_VALIDATORS = 1024  # consensus.config.MAX_VALIDATORS
LIVE_PARAMS = (
    "max_block_txs",
    "max_block_interval_ms",
    "max_clock_drift_ms",
    "view_timeout_ms",
    "max_view_timeout_ms",
    "censorship_timeout_ms",
)
ACTIONS = ("add-validator", "remove-validator", "update-validator", "set-params")

# Proposal states. Final: passed actions end "enacted" or "failed"; others "rejected" or
# "expired".
OPEN_STATUS = "open"
WAITING = "waiting-for-candidate"
QUEUED = "queued"
SCHEDULED = "scheduled"
ENACTED = "enacted"
FAILED = "failed"
REJECTED = "rejected"
EXPIRED = "expired"
LIVE_STATUSES = (OPEN_STATUS, WAITING, QUEUED, SCHEDULED)


class Reader(Protocol):
    def get(self, key: bytes) -> Any: ...


class State(Protocol):
    """Decoded state values, read through and written to the block's overlay."""

    def get(self, key: bytes) -> Any: ...

    def put(self, key: bytes, value: dict[str, Any]) -> None: ...

    def delete(self, key: bytes) -> None: ...


class GovernanceRefused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def prop_key(proposal_id: int) -> bytes:
    return PROP + struct.pack(">Q", proposal_id)


def epoch_key(epoch: int) -> bytes:
    return EPOCHS + struct.pack(">Q", epoch)


def validator_set_hash(entries: Sequence[dict[str, Any]]) -> bytes:
    """What a header's next_validators_hash holds: the signers in order (index = validator id)
    by name and public key. Addresses and certificates are in state, not in the hash: what an
    offline verifier needs to check a certificate is who may sign."""
    rows = [[v["name"], v["public_key"]] for v in entries]
    return crypto.sha256(SET_DOMAIN + encoding.pack(rows))


def quorum_of(n: int) -> int:
    f = (n - 1) // 3
    return (n + f + 2) // 2  # ceil((n + f + 1) / 2)


# --- genesis ---------------------------------------------------------------------------------


def genesis_state(
    validators: Sequence[dict[str, Any]],
    params: dict[str, int],
    governors: Sequence[bytes],
    threshold: tuple[int, int],
    ttl_blocks: int,
) -> dict[bytes, dict[str, Any]]:
    epoch = {
        "epoch": 0,
        "start_height": 1,
        "set": list(validators),
        "params": {k: params[k] for k in LIVE_PARAMS},
        "proposal": 0,
    }
    return {
        CONFIG: {
            "governors": sorted(governors),
            "threshold": list(threshold),
            "ttl_blocks": ttl_blocks,
        },
        EPOCH: epoch,
        epoch_key(0): epoch,
        OPEN: {"ids": []},
        SEQ: {"next": 1},
        RECENT: {"blocks": []},
    }


# --- reading the schedule --------------------------------------------------------------------


def epoch_for_height(state: Reader, height: int) -> dict[str, Any]:
    """The epoch that signs block `height`, from a state at height - 2 or later (but before
    the next change after `height`). Raises if the state does not know it."""
    scheduled = state.get(NEXT)
    if scheduled is not None and scheduled["start_height"] <= height:
        return dict(scheduled)
    current = state.get(EPOCH)
    if current is None:
        raise ValueError("state has no validator set (a pre-governance store?)")
    return dict(current)


# --- block boundaries ------------------------------------------------------------------------


def begin_block(state: State, height: int, prev_hash: bytes) -> None:
    """Before block `height`'s txs: enact the epoch that starts here, expire proposals, note
    the previous block's hash (for candidates' readiness proofs)."""
    if state.get(CONFIG) is None:
        return  # a chain without governance
    scheduled = state.get(NEXT)
    if scheduled is not None and scheduled["start_height"] == height:
        state.put(EPOCH, scheduled)
        state.put(epoch_key(scheduled["epoch"]), scheduled)
        state.delete(NEXT)
        proposal = state.get(prop_key(scheduled["proposal"]))
        if proposal is not None:
            _finish(state, proposal, ENACTED, f"in force from height {height}")
    recent = list(state.get(RECENT)["blocks"])
    if height > 1:
        recent.append([height - 1, prev_hash])
    state.put(RECENT, {"blocks": recent[-RECENT_BLOCKS:]})
    for proposal in _live(state):
        if proposal["status"] in (OPEN_STATUS, WAITING) and proposal["expires"] < height:
            why = "the candidate never reported ready" if proposal["status"] == WAITING else ""
            _finish(state, proposal, EXPIRED, why or "too few votes before it expired")


def end_block(state: State, height: int) -> None:
    """After block `height`'s txs: if nothing is scheduled, schedule the first queued change
    for height + 2 (checked again against the set then in force)."""
    if state.get(CONFIG) is None or state.get(NEXT) is not None:
        return
    for proposal in _live(state):
        if proposal["status"] != QUEUED:
            continue
        current = state.get(EPOCH)
        try:
            new_set, new_params = apply_action(
                current["set"], current["params"], proposal["action"]
            )
        except GovernanceRefused as refusal:
            _finish(state, proposal, FAILED, refusal.reason)
            continue
        start = height + 2
        state.put(
            NEXT,
            {
                "epoch": current["epoch"] + 1,
                "start_height": start,
                "set": new_set,
                "params": new_params,
                "proposal": proposal["id"],
            },
        )
        state.put(
            prop_key(proposal["id"]),
            {**proposal, "status": SCHEDULED, "effective_height": start},
        )
        return


# --- transactions ----------------------------------------------------------------------------


def propose(state: State, proposer: bytes, action: dict[str, Any], height: int) -> int:
    config = _governor_config(state, proposer)
    current = state.get(EPOCH)
    apply_action(current["set"], current["params"], action)  # refuse what cannot apply now
    if len(_live(state)) >= MAX_OPEN:
        raise GovernanceRefused("too_many_proposals", f"{MAX_OPEN} proposals are open already")
    seq = state.get(SEQ)
    proposal_id = int(seq["next"])
    state.put(SEQ, {"next": proposal_id + 1})
    proposal = {
        "id": proposal_id,
        "proposer": proposer,
        "action": action,
        "created": height,
        "expires": height + config["ttl_blocks"],
        "approve": [proposer],  # proposing is approving
        "reject": [],
        "status": OPEN_STATUS,
        "reason": "",
        "effective_height": 0,
    }
    open_ids = state.get(OPEN)
    state.put(OPEN, {"ids": [*open_ids["ids"], proposal_id]})
    _tally(state, proposal, config, height)
    return proposal_id


def vote(state: State, voter: bytes, proposal_id: int, approve: bool, height: int) -> str:
    config = _governor_config(state, voter)
    proposal = state.get(prop_key(proposal_id))
    if proposal is None:
        raise GovernanceRefused("unknown_proposal", f"no proposal {proposal_id}")
    if proposal["status"] != OPEN_STATUS:
        raise GovernanceRefused(
            "proposal_closed", f"proposal {proposal_id} is {proposal['status']}, not open"
        )
    approvals = [v for v in proposal["approve"] if v != voter]
    rejections = [v for v in proposal["reject"] if v != voter]
    (approvals if approve else rejections).append(voter)
    proposal = {**proposal, "approve": sorted(approvals), "reject": sorted(rejections)}
    return _tally(state, proposal, config, height)


def join(
    state: State, candidate: bytes, proposal_id: int, at: int, block_hash: bytes, height: int
) -> None:
    """The candidate of a passed add proves it is caught up: it names a recent block hash."""
    proposal = state.get(prop_key(proposal_id))
    if proposal is None or proposal["status"] != WAITING:
        raise GovernanceRefused("not_waiting", f"proposal {proposal_id} waits for no candidate")
    if proposal["action"]["public_key"] != candidate:
        raise GovernanceRefused("not_candidate", "the sender is not this proposal's candidate")
    if at < height - JOIN_MAX_LAG:
        raise GovernanceRefused(
            "candidate_behind",
            f"the candidate is at height {at}, more than {JOIN_MAX_LAG} behind {height}: let "
            "it catch up (it reports again by itself)",
        )
    recent = {h: bh for h, bh in state.get(RECENT)["blocks"]}
    if recent.get(at) != block_hash:
        raise GovernanceRefused("wrong_block", f"block {at} of this chain has another hash")
    state.put(prop_key(proposal_id), {**proposal, "status": QUEUED, "reason": ""})


# --- helpers ---------------------------------------------------------------------------------


def _governor_config(state: State, account_id: bytes) -> dict[str, Any]:
    config = state.get(CONFIG)
    if config is None or account_id not in config["governors"]:
        raise GovernanceRefused("not_governor", "only a governor named in genesis may do this")
    return dict(config)


def _live(state: State) -> list[dict[str, Any]]:
    open_ids = state.get(OPEN)
    out = []
    for proposal_id in open_ids["ids"] if open_ids else []:
        proposal = state.get(prop_key(proposal_id))
        if proposal is not None and proposal["status"] in LIVE_STATUSES:
            out.append(proposal)
    return out


def _finish(state: State, proposal: dict[str, Any], status: str, reason: str) -> None:
    state.put(prop_key(proposal["id"]), {**proposal, "status": status, "reason": reason})
    open_ids = state.get(OPEN)
    state.put(OPEN, {"ids": [i for i in open_ids["ids"] if i != proposal["id"]]})


def _tally(state: State, proposal: dict[str, Any], config: dict[str, Any], height: int) -> str:
    governors = config["governors"]
    num, den = config["threshold"]
    total = len(governors)
    approvals = sum(1 for v in proposal["approve"] if v in governors)
    rejections = sum(1 for v in proposal["reject"] if v in governors)
    if approvals * den > num * total:
        action = proposal["action"]
        status = WAITING if action["type"] == "add-validator" else QUEUED
        state.put(prop_key(proposal["id"]), {**proposal, "status": status})
        if status == WAITING:
            # The candidate's node key may now send one kind of tx: validator.join.
            key = b"acct/" + action["public_key"]
            if state.get(key) is None:
                state.put(
                    key,
                    {"name": action["name"], "roles": ["candidate"], "nonce": 0, "since": height},
                )
        return status
    if (total - rejections) * den <= num * total:
        _finish(state, proposal, REJECTED, f"rejected by {rejections} of {total} governors")
        return REJECTED
    state.put(prop_key(proposal["id"]), proposal)
    return OPEN_STATUS


def apply_action(
    current: Sequence[dict[str, Any]], params: dict[str, int], action: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The (set, params) after `action`, or GovernanceRefused saying why it cannot apply."""
    kind = action["type"]
    new_set = [dict(v) for v in current]
    new_params = dict(params)
    names = [v["name"] for v in new_set]
    if kind == "add-validator":
        if action["name"] in names:
            raise GovernanceRefused("name_taken", f"a validator named {action['name']!r} exists")
        if any(v["public_key"] == action["public_key"] for v in new_set):
            raise GovernanceRefused("key_taken", "that public key is already a validator's")
        new_set.append({k: action[k] for k in ("name", "public_key", "address", "certificate")})
    elif kind == "remove-validator":
        if action["name"] not in names:
            raise GovernanceRefused("unknown_validator", f"no validator named {action['name']!r}")
        new_set = [v for v in new_set if v["name"] != action["name"]]
    elif kind == "update-validator":
        if action["name"] not in names:
            raise GovernanceRefused("unknown_validator", f"no validator named {action['name']!r}")
        entry = new_set[names.index(action["name"])]
        if "public_key" in action:
            if any(v["public_key"] == action["public_key"] for v in new_set if v is not entry):
                raise GovernanceRefused("key_taken", "that public key is already a validator's")
            entry["public_key"] = action["public_key"]
            entry["certificate"] = action["certificate"]
        if "address" in action:
            entry["address"] = action["address"]
    elif kind == "set-params":
        new_params.update(action["params"])
        if new_params["view_timeout_ms"] <= new_params["max_block_interval_ms"]:
            raise GovernanceRefused(
                "bad_params", "view_timeout_ms must exceed max_block_interval_ms"
            )
        if new_params["max_view_timeout_ms"] < new_params["view_timeout_ms"]:
            raise GovernanceRefused("bad_params", "max_view_timeout_ms must be >= view_timeout_ms")
    else:
        raise GovernanceRefused("unknown_action", f"unknown action {kind!r}")
    _check_transition(current, new_set)
    return new_set, new_params


def _check_transition(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> None:
    """Each action changes one validator, so the old set certifies the hand-over block and
    both sets share all but one member; what is left to refuse is an empty set."""
    if not new:
        raise GovernanceRefused("no_validators", "the change would leave no validator")
    if len(new) > MAX_VALIDATORS:
        raise GovernanceRefused("too_many_validators", f"at most {MAX_VALIDATORS} validators")


@dataclass(frozen=True)
class Epoch:
    """A validator set and its live parameters, signing blocks from `start_height` on."""

    number: int
    start_height: int
    validators: tuple[dict[str, Any], ...]  # {"name", "public_key", "address", "certificate"}
    params: dict[str, int]
    proposal: int  # the proposal that made it (0 for genesis)

    @classmethod
    def from_state(cls, obj: dict[str, Any]) -> Epoch:
        return cls(
            number=obj["epoch"],
            start_height=obj["start_height"],
            validators=tuple(dict(v) for v in obj["set"]),
            params=dict(obj["params"]),
            proposal=obj["proposal"],
        )

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(v["public_key"] for v in self.validators)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v["name"] for v in self.validators)

    @property
    def set_hash(self) -> bytes:
        return validator_set_hash(self.validators)
