"""The benchmark's workload: many accounts, a use-case transaction mix, pre-signed in bulk.

Each account gets a deterministic key from the run seed. Its operations are drawn from a
seeded RNG so that every transaction it signs is valid when executed in nonce order: it
registers items, records events on items it holds, hands some of them to other accounts (and
never touches them again), anchors document digests and writes lab records under keys it
owns. Cross-account ordering therefore never matters: all results are "ok" whatever order the
leader picks between senders.

Signing runs in a process pool before any measurement, so that the load generator spends
its measured time only on sending bytes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.ledger import crypto, encoding
from node.ledger.tx import TX_DOMAIN, TX_VERSION

# (weight, kind): the shape of a traceability / notary / data-sharing consortium's traffic.
MIX: tuple[tuple[int, str], ...] = (
    (25, "item.register"),
    (30, "item.event"),
    (10, "item.transfer"),
    (20, "notary.anchor"),
    (15, "record.put"),
)
LOCATIONS = ("Port of Genoa", "Rotterdam DC-4", "Hamburg cold store", "Lyon hub", "Customs Basel")
EVENT_KINDS = ("inspected", "loaded", "unloaded", "temperature", "sealed")
MAX_HELD_ITEMS = 64  # per account: bounded, oldest handed on first


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes
    tx_id: bytes
    sender_index: int
    nonce: int
    kind: str
    item: str | None = None  # the item an item.* transaction is about


def account_key(run_seed: int, index: int) -> crypto.SigningKey:
    seed = hashlib.sha256(f"bench-account/{run_seed}/{index}".encode()).digest()
    return crypto.SigningKey.from_seed(seed)


def sign_body(key: crypto.SigningKey, chain_id: str, nonce: int, kind: str, args: Any) -> bytes:
    """Wire bytes of one transaction (the format of node/ledger/tx.py, without re-decoding)."""
    body = encoding.pack(
        {
            "v": TX_VERSION,
            "chain_id": chain_id,
            "sender": key.public_key,
            "nonce": nonce,
            "type": kind,
            "args": args,
        }
    )
    return encoding.pack([body, key.sign(TX_DOMAIN + body)])


def tx_id_of(raw: bytes) -> bytes:
    body, _signature = encoding.unpack_fast(raw)
    return crypto.sha256(body)


@dataclass
class _AccountPlan:
    index: int
    rng: random.Random
    held: list[str] = field(default_factory=list)
    registered: int = 0
    anchors: int = 0
    records: int = 0


class MixPlanner:
    """Draws each account's next operation so that it is valid in that account's nonce order."""

    def __init__(self, run_seed: int, public_keys: Sequence[bytes]) -> None:
        self.run_seed = run_seed
        self.public_keys = list(public_keys)
        self._plans = [
            _AccountPlan(i, random.Random(run_seed * 1_000_003 + i))
            for i in range(len(public_keys))
        ]
        self._kinds = [kind for weight, kind in MIX for _ in range(weight)]

    def next_op(self, index: int) -> tuple[str, dict[str, Any]]:
        plan = self._plans[index]
        kind = plan.rng.choice(self._kinds)
        if kind in ("item.event", "item.transfer") and not plan.held:
            kind = "item.register"
        if kind == "item.register" and len(plan.held) >= MAX_HELD_ITEMS:
            kind = "item.transfer"
        return kind, self._args(plan, kind)

    def _args(self, plan: _AccountPlan, kind: str) -> dict[str, Any]:
        rng = plan.rng
        if kind == "item.register":
            item = f"b{self.run_seed}-{plan.index}-{plan.registered}"
            plan.registered += 1
            plan.held.append(item)
            return {
                "item": item,
                "meta": {"product": "olive oil", "lot": f"L{rng.randrange(1000)}"},
            }
        if kind == "item.event":
            return {
                "item": rng.choice(plan.held),
                "kind": rng.choice(EVENT_KINDS),
                "location": rng.choice(LOCATIONS),
                "digest": rng.randbytes(32),
            }
        if kind == "item.transfer":
            item = plan.held.pop(0)
            others = len(self.public_keys) - 1
            to = (plan.index + 1 + rng.randrange(max(1, others))) % len(self.public_keys)
            return {"item": item, "to": self.public_keys[to], "note": "handover"}
        if kind == "notary.anchor":
            plan.anchors += 1
            digest = hashlib.sha256(
                f"doc/{self.run_seed}/{plan.index}/{plan.anchors}".encode()
            ).digest()
            return {"digest": digest, "meta": {"doc": "invoice", "pages": rng.randrange(1, 40)}}
        if kind == "record.put":
            plan.records += 1
            return {
                "ns": "lab",
                "key": f"sample-{self.run_seed}-{plan.index}-{plan.records % 50}",
                "value": {"ph_x100": rng.randrange(600, 800), "temp_c_x10": rng.randrange(0, 300)},
            }
        raise ValueError(f"unknown kind {kind}")


# --- signing in a process pool ---------------------------------------------------------------

_Job = tuple[int, int, str, list[tuple[int, str, dict[str, Any]]]]


def _sign_job(job: _Job) -> list[bytes]:
    run_seed, index, chain_id, ops = job
    key = account_key(run_seed, index)
    return [sign_body(key, chain_id, nonce, kind, args) for nonce, kind, args in ops]


def presign(
    *,
    run_seed: int,
    chain_id: str,
    accounts: int,
    per_account: int,
    first_nonce: int = 1,
    processes: int | None = None,
) -> list[list[SignedTx]]:
    """`per_account` signed transactions for each account, nonces from `first_nonce` on."""
    if accounts < 2 or per_account < 0:
        raise ValueError("need at least 2 accounts and a non-negative count")
    keys = [account_key(run_seed, i).public_key for i in range(accounts)]
    planner = MixPlanner(run_seed, keys)
    jobs: list[_Job] = []
    kinds: list[list[str]] = []
    items: list[list[str | None]] = []
    for i in range(accounts):
        ops = []
        for n in range(per_account):
            kind, args = planner.next_op(i)
            ops.append((first_nonce + n, kind, args))
        jobs.append((run_seed, i, chain_id, ops))
        kinds.append([kind for _, kind, _ in ops])
        items.append([args.get("item") for _, _, args in ops])
    workers = processes or max(1, len(os.sched_getaffinity(0)))
    if workers == 1 or accounts * per_account < 2000:
        signed = [_sign_job(job) for job in jobs]
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            signed = pool.map(_sign_job, jobs, chunksize=max(1, accounts // (workers * 8)))
    out: list[list[SignedTx]] = []
    for i, raws in enumerate(signed):
        out.append(
            [
                SignedTx(raw, tx_id_of(raw), i, first_nonce + n, kinds[i][n], items[i][n])
                for n, raw in enumerate(raws)
            ]
        )
    return out


def grant_txs(
    admin: crypto.SigningKey, chain_id: str, public_keys: Sequence[bytes], first_nonce: int
) -> list[bytes]:
    """account.grant for every bench account (every tenth is also an inspector)."""
    out = []
    for i, pub in enumerate(public_keys):
        roles = ["member", "inspector"] if i % 10 == 0 else ["member"]
        args = {"account": pub, "roles": roles, "name": f"bench-{i}"}
        out.append(sign_body(admin, chain_id, first_nonce + i, "account.grant", args))
    return out


def node_streams(per_account: list[list[SignedTx]], nodes: int) -> list[list[SignedTx]]:
    """Account i submits only to node i % nodes (so its nonces reach one node in order);
    each node's stream interleaves its accounts round-robin, nonce by nonce."""
    streams: list[list[SignedTx]] = [[] for _ in range(nodes)]
    for node in range(nodes):
        mine = [txs for i, txs in enumerate(per_account) if i % nodes == node]
        longest = max((len(t) for t in mine), default=0)
        for n in range(longest):
            for txs in mine:
                if n < len(txs):
                    streams[node].append(txs[n])
    return streams


def interleave(streams: list[list[SignedTx]]) -> Iterator[tuple[int, SignedTx]]:
    """(node, tx) round-robin over node streams: the global order of an open-loop schedule."""
    longest = max((len(s) for s in streams), default=0)
    for n in range(longest):
        for node, stream in enumerate(streams):
            if n < len(stream):
                yield node, stream[n]
