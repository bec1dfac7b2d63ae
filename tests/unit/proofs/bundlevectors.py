"""tests/vectors/bundles.json: a provenance bundle that verifies, and edits of it that a
verifier must refuse with the given part and rule (docs/PROTOCOL.md sections 18 and 20).

The valid bundle is stored whole (path -> file text); each invalid case is a list of edits
of it ({path: new text, or null to delete the file}), so the file stays small. Like
documents.json it is verified by the tests, not rebuilt (the chain's keys are fixed, but
the bundle is large and its report embeds every part of it)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proofkit import StoreSource, fill_busy, open_chain

from node.ledger.genesis import render_genesis
from node.proofs import provenance, verify

Files = dict[str, bytes]
Edit = dict[str, str | None]


def apply(files: Files, edits: Edit) -> Files:
    out = dict(files)
    for path, text in edits.items():
        if text is None:
            out.pop(path, None)
        else:
            out[path] = text.encode()
    return out


def _manifest(files: Files) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(files["manifest.json"])
    return doc


def _edit_manifest(files: Files, change: Callable[[dict[str, Any]], None]) -> Edit:
    doc = _manifest(files)
    change(doc)
    return {"manifest.json": verify.dump_json(doc)}


def _invalid(files: Files) -> list[tuple[str, Edit]]:
    doc = _manifest(files)
    root = doc["items"][0]
    steps = root["steps"]

    def swap(d: dict[str, Any]) -> None:
        s = d["items"][0]["steps"]
        s[1], s[2] = s[2], s[1]

    def drop_step(d: dict[str, Any]) -> None:
        d["items"][0]["steps"].pop(2)

    def drop_parent(d: dict[str, Any]) -> None:
        d["items"].pop(2)

    def other_chain(d: dict[str, Any]) -> None:
        d["chain_id"] = "another-chain"

    def repeat_item(d: dict[str, Any]) -> None:
        d["items"].append(d["items"][1])

    def borrow_step(d: dict[str, Any]) -> None:
        d["items"][0]["steps"][3] = d["items"][1]["steps"][0]

    receipt = json.loads(files[steps[1]])
    receipt["index"] += 1
    page = files["report.html"].decode()
    edited_page = page.replace("Lyon", "Paris")
    if edited_page == page:
        raise ValueError("the report shows no 'Lyon' to edit")
    return [
        ("report edited (a place changed)", {"report.html": edited_page}),
        ("report missing", {"report.html": None}),
        ("a file outside the manifest", {"notes.txt": "trust me"}),
        ("manifest for another chain", _edit_manifest(files, other_chain)),
        ("an item listed twice", _edit_manifest(files, repeat_item)),
        ("a step left out (file gone too)", {**_edit_manifest(files, drop_step), steps[2]: None}),
        ("steps out of order", _edit_manifest(files, swap)),
        ("another item's step", _edit_manifest(files, borrow_step)),
        ("a parent item left out", {**_edit_manifest(files, drop_parent),
                                    **{p: None for p in doc["items"][2]["steps"]},
                                    doc["items"][2]["state_proof"]: None}),
        ("a receipt inside tampered", {steps[1]: verify.dump_json(receipt)}),
        ("the state proof swapped for another item's",
         {root["state_proof"]: files[doc["items"][1]["state_proof"]].decode()}),
    ]  # fmt: skip


def bundles() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        chain = fill_busy(open_chain(Path(tmp) / "db", chain_id="vector-chain"))
        try:
            files = provenance.build_bundle(StoreSource(chain), chain.genesis, "pallet-1")
            genesis = chain.genesis
            genesis_toml = render_genesis(genesis)
        finally:
            chain.store.close()
    facts = provenance.verify_bundle(files, genesis)
    invalid = []
    for name, edits in _invalid(files):
        try:
            provenance.verify_bundle(apply(files, edits), genesis)
        except verify.VerificationError as exc:
            invalid.append(
                {"name": name, "edits": edits, "part": exc.part, "rule": exc.rule,
                 "reason": exc.reason}
            )  # fmt: skip
            continue
        raise AssertionError(f"invalid bundle vector {name!r} verifies")
    return {
        "format": "chain-vectors/1",
        "about": "a provenance bundle over the genesis below (files: path -> text) that "
        "verifies with the rules listed, and edits of it ({path: text, or null to delete}) "
        "that a verifier must refuse naming `part` and `rule` (normative; `reason` is this "
        "implementation's wording) (docs/PROTOCOL.md section 18)",
        "genesis_toml": genesis_toml,
        "root": "pallet-1",
        "files": {path: data.decode() for path, data in sorted(files.items())},
        "rules": list(facts.rules),
        "invalid": invalid,
    }
