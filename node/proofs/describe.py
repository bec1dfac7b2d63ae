"""What a person reads: one-line descriptions and the summary `chain verify` prints.

Derived from verified facts only (verify.py); nothing here is checked or trusted.
"""

from __future__ import annotations

import json
from typing import Any

from consensus.quorum import quorum_size
from node.ledger.genesis import Genesis
from node.proofs.epochs import CertifiedHeader
from node.proofs.facts import Facts, ReceiptFacts
from node.proofs.jsondoc import utc_text
from node.proofs.rules import rule_lines
from node.proofs.timing import time_lines
from node.proofs.tsa import stamp_line


def account_names(genesis: Genesis) -> dict[str, str]:
    """Names of the genesis accounts by public key hex (accounts granted later show as hex)."""
    return {a.public_key.hex(): a.name for a in genesis.accounts}


def who(account_hex: str, names: dict[str, str]) -> str:
    name = names.get(account_hex)
    short = account_hex[:16] + "…"
    return f"{name} ({short})" if name else short


def describe_tx(statement: dict[str, Any], names: dict[str, str]) -> str:
    """One sentence for what a transaction asked for."""
    kind, a = statement["type"], statement["args"]
    if kind == "record.put":
        return f"set record {a['ns']}/{a['key']} to {json.dumps(a['value'])}"
    if kind == "item.register":
        parents = f", made from {', '.join(a['parents'])}" if a.get("parents") else ""
        return f"register item {a['item']!r}{parents}"
    if kind == "item.transfer":
        return f"hand custody of item {a['item']!r} to {who(a['to'], names)}"
    if kind == "item.event":
        where = f" at {a['location']}" if a.get("location") else ""
        return f"record event {a['kind']!r} on item {a['item']!r}{where}"
    if kind == "notary.anchor":
        return f"anchor document digest {a['digest']}"
    if kind == "account.grant":
        return f"grant roles {', '.join(a['roles'])} to account {who(a['account'], names)}"
    if kind == "account.revoke":
        return f"revoke account {who(a['account'], names)}"
    if kind == "account.rotate":
        return f"rotate the sender's key to {who(a['new_key'], names)}"
    if kind == "checkpoint.timestamp":
        return f"record an RFC 3161 timestamp of block {a['height']}"
    return str(kind)


def _signers(block: CertifiedHeader) -> str:
    names, n = block.signer_names, len(block.epoch.keys)
    epoch = f" of epoch {block.epoch.number}" if block.epoch.number else ""
    return f"{', '.join(names)} ({len(names)} of {n} validators{epoch}; quorum {quorum_size(n)})"


def summary_lines(facts: Facts, genesis: Genesis) -> list[str]:
    names = account_names(genesis)
    s = facts.statement
    if isinstance(facts, ReceiptFacts):
        outcome = "ok" if s["ok"] else f"refused by the rules: {s['code']} ({s['reason']})"
        lines = [
            "RECEIPT VERIFIED",
            f"  transaction  {s['tx_id']}",
            f"  asked        {describe_tx(s, names)}",
            f"  sender       {who(s['sender'], names)}, nonce {s['nonce']}",
            f"  result       {outcome}",
            f"  recorded     block {s['height']}, position {s['index']}, at {s['time_utc']}",
            f"  block hash   {s['block_hash']}",
            f"  signed by    {_signers(facts.block)}",
            *time_lines(s),
            f"  result in    block {s['height'] + 1}, signed by {_signers(facts.next_block)}",
        ]
    else:
        lines = [
            "STATE PROOF VERIFIED",
            f"  fact         {describe_state(s, names)}",
            f"  as of        the state after block {s['as_of_height']}",
            f"  certified by block {s['certified_by_block']} at {s['time_utc']}, signed by "
            f"{_signers(facts.certifying)}",
            *time_lines(s),
        ]
    for stamp in facts.timestamps:
        lines.append(f"  time-stamped {stamp_line(stamp)}")
    lines.append(f"  chain        {genesis.chain_id}, genesis {genesis.hash.hex()}")
    lines.append("  rules checked")
    lines += rule_lines(facts.rules)
    return lines


def describe_state(s: dict[str, Any], names: dict[str, str]) -> str:
    try:
        return _describe_state(s, names)
    except (KeyError, TypeError, AttributeError):  # a value of an unexpected shape
        return f"key {json.dumps(s['subject'])} holds {json.dumps(s['value'])}"


def _describe_state(s: dict[str, Any], names: dict[str, str]) -> str:
    subject, v, height = s["subject"], s["value"], s["as_of_height"]
    kind = subject["type"]
    if kind == "item":
        if v is None:
            return f"item {subject['item']!r} is not registered as of height {height}"
        return (
            f"item {subject['item']!r}: custodian is {who(v['custodian'], names)}, registered "
            f"at height {v['height']} by {who(v['registrant'], names)}, {v['steps']} step(s)"
        )
    if kind == "notary":
        if v is None:
            return f"digest {subject['digest']} was never anchored as of height {height}"
        return (
            f"digest {subject['digest']} was anchored at height {v['height']} "
            f"({utc_text(v['timestamp_ms'])}) by {who(v['submitter'], names)}"
        )
    if kind == "record":
        label = f"record {subject['ns']}/{subject['key']}"
        if v is None:
            return f"{label} does not exist as of height {height}"
        return (
            f"{label} = {json.dumps(v['value'])} (version {v['version']}, owner "
            f"{who(v['owner'], names)}, written at height {v['height']})"
        )
    if kind == "account":
        label = f"account {who(subject['account'], names)}"
        if v is None:
            return f"{label} does not exist as of height {height}"
        return f"{label}: roles {v['roles'] or 'none (revoked)'}, nonce {v['nonce']}"
    return f"key {subject['key']} is {'set' if v is not None else 'absent'}"
