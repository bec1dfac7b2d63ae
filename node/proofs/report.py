"""report.html of a provenance bundle: a pure function of the verified bundle and the genesis.

The page is specified in docs/PROTOCOL.md ("The report page") line by line, so that any
verifier can rebuild it byte for byte from the data it verified and refuse a page that
says anything else: a page that is not exactly this rendering (an edited time, a hidden
row, an added claim, a script) does not verify. Self-contained: one inline style sheet,
no scripts, no links but in-page anchors.
"""

from __future__ import annotations

import json
from typing import Any

from node.ledger.genesis import Genesis
from node.ledger.tx import jsonable
from node.proofs.facts import BundleFacts, ItemFacts, ReceiptFacts

REPORT_VERSION = 2
STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}"
    "header,section,footer{max-width:1100px;margin:0 auto;padding:16px 24px}"
    "h1{font-size:26px}h2{font-size:21px}h3{font-size:16px}"
    "section{background:#fff;border:1px solid #d9dde3;border-radius:8px;margin-bottom:18px}"
    ".status{padding:10px 14px;border-radius:6px;background:#e5f6ea;border:1px solid #7cc490}"
    ".note{color:#4a5563;font-size:13px}.mono{font-family:ui-monospace,monospace}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;"
    "padding:6px 8px;border-bottom:1px solid #e6e9ee}th{background:#eef1f5}"
)


def escape(value: str) -> str:
    """HTML text and attribute escaping: & < > " ' (in that order of replacement)."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def shown(value: Any) -> str:
    """A value as the page shows it: a string as itself, anything else as compact JSON
    (sorted keys, bytes as lowercase hex, no ASCII escaping), then escaped."""
    if isinstance(value, str):
        return escape(value)
    text = json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return escape(text)


class _Who:
    """An account as `NAME (HEX16)` for a genesis account, `HEX16` otherwise."""

    def __init__(self, genesis: Genesis) -> None:
        self._names = {a.public_key: a.name for a in genesis.accounts}

    def __call__(self, account: bytes) -> str:
        short = account.hex()[:16]
        name = self._names.get(account)
        return f"{escape(name)} ({short})" if name is not None else short


def step_time(step: ReceiptFacts) -> str:
    """The certified median time of a version 3 receipt, else the block's timestamp."""
    certified = step.statement.get("certified_time")
    return str(certified["median_utc"] if certified else step.statement["time_utc"])


def _meta(meta: dict[str, Any]) -> str:
    return ", ".join(f"{escape(k)}={shown(v)}" for k, v in sorted(meta.items())) or "none"


def _detail(step: ReceiptFacts, who: _Who) -> tuple[str, str]:
    a = step.tx.args
    if step.tx.type == "item.register":
        parents = ", ".join(escape(p) for p in a.get("parents", [])) or "none"
        return "registered", f"meta: {_meta(a.get('meta', {}))}; made from: {parents}"
    if step.tx.type == "item.transfer":
        note = f"; note: {escape(a['note'])}" if a.get("note") else ""
        return "transfer", f"to {who(a['to'])}{note}"
    parts = [f"kind: {escape(a['kind'])}"]
    for name in ("location", "note"):
        if a.get(name):
            parts.append(f"{name}: {escape(a[name])}")
    if "time_ms" in a:
        parts.append(f"time_ms: {a['time_ms']}")
    if a.get("digest") is not None:
        parts.append(f"digest: {a['digest'].hex()}")
    return "event", "; ".join(parts)


def _item(n: int, facts: ItemFacts, ids: list[str], who: _Who) -> list[str]:
    value, state = facts.state.value, facts.state
    parents = (
        ", ".join(f'<a href="#item-{ids.index(p)}">{escape(p)}</a>' for p in value["parents"])
        or "none"
    )
    out = [
        f'<section id="item-{n}"><h2>Item {escape(facts.item)}</h2>',
        f"<p>Custodian: {who(value['custodian'])}</p>",
        f"<p>Registered by {who(value['registrant'])} in block {value['height']}</p>",
        f"<p>Metadata: {_meta(value['meta'])}</p>",
        f"<p>Made from: {parents}</p>",
        f"<p>State as of block {state.height}, certified by block "
        f"{state.certifying.header.height}, signed by "
        f"{escape(', '.join(state.certifying.signer_names))}</p>",
        "<table><tr><th>#</th><th>Time (UTC)</th><th>Block</th><th>Step</th><th>Details</th>"
        "<th>By</th><th>Transaction</th><th>Signed by</th></tr>",
    ]
    for seq, step in enumerate(facts.steps):
        kind, detail = _detail(step, who)
        out.append(
            f"<tr><td>{seq}</td><td>{escape(step_time(step))}</td>"
            f"<td>{step.block.header.height}</td><td>{kind}</td><td>{detail}</td>"
            f"<td>{who(step.tx.sender)}</td><td class=mono>{step.tx.tx_id.hex()}</td>"
            f"<td>{escape(', '.join(step.block.signer_names))}</td></tr>"
        )
    out.append("</table></section>")
    return out


def render_report(bundle: BundleFacts, genesis: Genesis) -> str:
    """The report page (docs/PROTOCOL.md, "The report page")."""
    who = _Who(genesis)
    ids = [i.item for i in bundle.items]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Provenance of {escape(bundle.root)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>Provenance of item {escape(bundle.root)}</h1>",
        f'<p class="status">Verified offline: {len(bundle.items)} item(s), '
        f"{bundle.step_count} step(s), each with a receipt signed by a quorum of the "
        f"validators of chain {escape(genesis.chain_id)}; each item's record has a "
        "certified state proof, so no step is missing.</p>",
        '<p class="note">A rendering of the bundle beside it (report version '
        f"{REPORT_VERSION}). Check both: chain verify DIRECTORY --genesis genesis.toml. "
        f"Genesis hash {genesis.hash.hex()}.</p></header>",
    ]
    for number, facts in enumerate(bundle.items):
        out += _item(number, facts, ids, who)
    out += [
        "<footer class=note>Times are the median of the clocks of the validators that "
        "signed each block (the block's timestamp for receipts before format version 3)."
        "</footer></body></html>",
        "",
    ]
    return "\n".join(out)
