"""Provenance bundles: an item's whole history as one offline-verifiable directory.

Layout (docs/PROTOCOL.md section 18):

    manifest.json              which files prove which item, in order
    state/item-NNN.json        a state proof of each item's current record (custodian, steps)
    receipts/<tx_id>.json      a receipt for every step (registration, transfer, event)
    report.html                a self-contained page for people (no scripts, no external assets)

The bundle holds the item and its parent items, recursively (bounded by MAX_ITEMS). It is
complete, not only correct: an item's state record counts its steps, and the state proof
certifies that count, so a bundle that leaves a step out does not verify. The report is a
pure function of the verified data and the genesis, specified in docs/PROTOCOL.md
(report.py renders it), so `verify_bundle` re-renders it and refuses a page that was edited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from node.ledger.genesis import Genesis
from node.proofs.facts import BundleFacts, ItemFacts, ReceiptFacts, StateFacts
from node.proofs.report import render_report
from node.proofs.rules import RuleLog
from node.proofs.verify import (
    VerificationError,
    dump_json,
    load_json,
    verify_receipt,
    verify_state_document,
)

__all__ = [
    "BundleFacts",
    "ExportError",
    "ItemFacts",
    "build_bundle",
    "read_bundle",
    "render_report",
    "verify_bundle",
    "verify_parts",
    "write_bundle",
]

BUNDLE_FORMAT = "chain-provenance/1"
MANIFEST = "manifest.json"
REPORT = "report.html"
MAX_ITEMS = 64
MAX_STEPS_PER_ITEM = 1000
MAX_BUNDLE_FILES = MAX_ITEMS * (MAX_STEPS_PER_ITEM + 1) + 2
MAX_BUNDLE_BYTES = 1 << 30
ITEM_TX_TYPES = ("item.register", "item.transfer", "item.event")
ITEM_RECORD_KEYS = frozenset(
    {"custodian", "registrant", "meta", "parents", "height", "tx", "steps"}
)
_RECEIPT_PATH = re.compile(r"receipts/[0-9a-f]{64}\.json")
_STATE_PATH = re.compile(r"state/item-[0-9]{3}\.json")


class ExportError(Exception):
    """The bundle cannot be built (unknown item, too large, a node answer that is wrong)."""


class ProofSource(Protocol):
    """Where the exporter gets its documents: a node over RPC, or a Store in tests."""

    def item_proofs(self, items: list[str]) -> list[dict[str, Any]]:
        """A state proof of each item's record, in order (a node may answer them at once:
        each waits for the next block)."""
        ...

    def item_tx_ids(self, item: str, count: int) -> list[bytes]: ...

    def receipt(self, tx_id: bytes) -> dict[str, Any]: ...


# --- export ---------------------------------------------------------------------------------


def build_bundle(source: ProofSource, genesis: Genesis, root: str) -> dict[str, bytes]:
    """All files of the bundle for `root`, verified before they are returned."""
    entries: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    level = [root]
    seen = {root}
    while level:  # one generation of ancestors per pass; bounded by MAX_ITEMS
        if len(entries) + len(level) > MAX_ITEMS:
            raise ExportError(f"item {root!r} has more than {MAX_ITEMS} items in its ancestry")
        next_level: list[str] = []
        for item, proof in zip(level, source.item_proofs(level), strict=True):
            facts = verify_state_document(proof, genesis)
            if facts.value is None:
                raise ExportError(f"item {item!r} is not registered (as of height {facts.height})")
            entries.append(_export_item(source, files, len(entries), item, proof, facts))
            for parent in facts.value["parents"]:
                if parent not in seen:
                    seen.add(parent)
                    next_level.append(parent)
        level = next_level
    manifest = {
        "format": BUNDLE_FORMAT,
        "item": root,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash.hex(),
        "items": entries,
    }
    files[MANIFEST] = dump_json(manifest).encode()
    try:
        bundle = verify_parts(files, genesis)
    except VerificationError as exc:
        raise ExportError(f"the node's answers do not form a verifiable bundle: {exc}") from exc
    files[REPORT] = render_report(bundle, genesis).encode()
    return files


def _export_item(
    source: ProofSource,
    files: dict[str, bytes],
    number: int,
    item: str,
    proof: dict[str, Any],
    facts: StateFacts,
) -> dict[str, Any]:
    step_count = facts.value["steps"]
    if step_count > MAX_STEPS_PER_ITEM:
        raise ExportError(f"item {item!r} has {step_count} steps, over {MAX_STEPS_PER_ITEM}")
    state_path = f"state/item-{number:03d}.json"
    files[state_path] = dump_json(proof).encode()
    step_paths = []
    # Only the first step_count steps: later ones are not covered by this state proof.
    for tx_id in source.item_tx_ids(item, step_count):
        path = f"receipts/{tx_id.hex()}.json"
        files[path] = dump_json(source.receipt(tx_id)).encode()
        step_paths.append(path)
    return {"item": item, "state_proof": state_path, "steps": step_paths}


def write_bundle(files: Mapping[str, bytes], directory: Path) -> None:
    """Write the bundle's files under `directory` (created; must be empty if it exists)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ExportError(f"{directory} is not empty; choose a new directory")
    for name, data in sorted(files.items()):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_bundle(directory: Path) -> dict[str, bytes]:
    """The bundle's files, bounded in count and bytes; symlinks are refused."""
    directory = Path(directory)
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise VerificationError(
                "bundle", f"{path.relative_to(directory)} is a symlink", "bundle-manifest"
            )
        if path.is_dir():
            continue
        if len(files) >= MAX_BUNDLE_FILES:
            raise VerificationError(
                "bundle", f"more than {MAX_BUNDLE_FILES} files", "bundle-manifest"
            )
        data = path.read_bytes()
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            raise VerificationError(
                "bundle", f"larger than {MAX_BUNDLE_BYTES} bytes", "bundle-manifest"
            )
        files[path.relative_to(directory).as_posix()] = data
    return files


# --- verification ---------------------------------------------------------------------------


def verify_bundle(files: Mapping[str, bytes], genesis: Genesis) -> BundleFacts:
    """Verify every document, the bundle's completeness, and that report.html is the
    rendering of exactly this verified data. Raises VerificationError."""
    bundle = verify_parts({k: v for k, v in files.items() if k != REPORT}, genesis)
    if REPORT not in files:
        raise VerificationError(REPORT, "missing", "bundle-report")
    if files[REPORT] != render_report(bundle, genesis).encode():
        raise VerificationError(
            REPORT, "does not match the verified data (edited?)", "bundle-report"
        )
    return BundleFacts(bundle.root, bundle.items, (*bundle.rules, "bundle-report"))


def _load(files: Mapping[str, bytes], path: str) -> Any:
    if path not in files:
        raise VerificationError(path, "missing from the bundle", "bundle-manifest")
    try:
        return load_json(files[path])
    except VerificationError as exc:
        raise VerificationError(f"{path}: {exc.part}", exc.reason, exc.rule) from None


def verify_parts(files: Mapping[str, bytes], genesis: Genesis) -> BundleFacts:
    """verify_bundle without the report: the manifest and every document it names."""
    manifest = _load(files, MANIFEST)
    keys = {"format", "item", "chain_id", "genesis_hash", "items"}
    if not isinstance(manifest, dict) or set(manifest) != keys:
        raise VerificationError(
            MANIFEST, f"must be an object with keys {sorted(keys)}", "bundle-manifest"
        )
    if manifest["format"] != BUNDLE_FORMAT:
        raise VerificationError(MANIFEST, f"format must be {BUNDLE_FORMAT!r}", "bundle-manifest")
    if manifest["chain_id"] != genesis.chain_id or manifest["genesis_hash"] != genesis.hash.hex():
        raise VerificationError(MANIFEST, "is for another chain or genesis", "bundle-manifest")
    entries = manifest["items"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ITEMS:
        raise VerificationError(
            MANIFEST, f"items must list 1 to {MAX_ITEMS} items", "bundle-manifest"
        )
    used = {MANIFEST}
    items = tuple(_verify_item(files, genesis, i, entry, used) for i, entry in enumerate(entries))
    ids = [facts.item for facts in items]
    if ids[0] != manifest["item"]:
        raise VerificationError(
            MANIFEST, "the first item is not the bundle's item", "bundle-manifest"
        )
    if len(set(ids)) != len(ids):
        raise VerificationError(MANIFEST, "lists an item twice", "bundle-manifest")
    for facts in items:
        missing = [p for p in facts.state.value["parents"] if p not in ids]
        if missing:
            raise VerificationError(
                f"item {facts.item!r}", f"parent {missing[0]!r} is missing", "bundle-history"
            )
    extra = sorted(set(files) - used)
    if extra:
        raise VerificationError(extra[0], "is not named by the manifest", "bundle-manifest")
    log = RuleLog()
    for facts in items:
        log.merge(facts.state.rules)
        for step in facts.steps:
            log.merge(step.rules)
    log.checked("bundle-manifest", "bundle-state", "bundle-complete", "bundle-history")
    return BundleFacts(manifest["item"], items, log.ids)


def _verify_item(
    files: Mapping[str, bytes], genesis: Genesis, n: int, entry: object, used: set[str]
) -> ItemFacts:
    where = f"{MANIFEST} items[{n}]"
    if not isinstance(entry, dict) or set(entry) != {"item", "state_proof", "steps"}:
        raise VerificationError(where, "must have keys item, state_proof, steps", "bundle-manifest")
    item, state_path, step_paths = entry["item"], entry["state_proof"], entry["steps"]
    if not isinstance(item, str) or not isinstance(step_paths, list):
        raise VerificationError(where, "item must be a string and steps a list", "bundle-manifest")
    if len(step_paths) > MAX_STEPS_PER_ITEM:
        raise VerificationError(where, f"more than {MAX_STEPS_PER_ITEM} steps", "bundle-manifest")
    for path in [state_path, *step_paths]:
        pattern = _STATE_PATH if path is state_path else _RECEIPT_PATH
        if not isinstance(path, str) or not pattern.fullmatch(path) or path in used:
            raise VerificationError(where, f"bad or repeated file name {path!r}", "bundle-manifest")
        used.add(path)
    state = _verify_file(files, state_path, genesis, verify_state_document)
    if state.statement["subject"] != {"type": "item", "item": item} or state.value is None:
        raise VerificationError(
            state_path, f"is not a presence proof of item {item!r}", "bundle-state"
        )
    if not isinstance(state.value, dict) or not set(state.value) >= ITEM_RECORD_KEYS:
        raise VerificationError(
            state_path, "the certified value is not an item record", "bundle-state"
        )
    steps = tuple(_verify_file(files, p, genesis, verify_receipt) for p in step_paths)
    _check_history(item, state, steps, step_paths)
    return ItemFacts(item, state, steps)


def _verify_file(files: Mapping[str, bytes], path: str, genesis: Genesis, check: Any) -> Any:
    try:
        return check(_load(files, path), genesis)
    except VerificationError as exc:
        if exc.part.startswith(path):
            raise
        raise VerificationError(f"{path}: {exc.part}", exc.reason, exc.rule) from None


def _check_history(
    item: str, state: StateFacts, steps: tuple[ReceiptFacts, ...], paths: list[str]
) -> None:
    """The receipts are exactly the item's steps up to the state proof's height, in order."""
    value = state.value
    if len(steps) != value["steps"]:
        raise VerificationError(
            f"item {item!r}",
            f"{len(steps)} receipts, the certified record counts {value['steps']}",
            "bundle-complete",
        )
    previous = (-1, -1)
    custodian = None
    for path, step in zip(paths, steps, strict=True):
        position = (step.block.header.height, step.index)
        tx = step.tx
        if path != f"receipts/{tx.tx_id.hex()}.json":
            raise VerificationError(path, "is named after another transaction", "bundle-complete")
        if tx.type not in ITEM_TX_TYPES or tx.args.get("item") != item:
            raise VerificationError(path, f"is not a step of item {item!r}", "bundle-complete")
        if not step.result["ok"]:
            raise VerificationError(
                path, "records a refused transaction, not a step", "bundle-complete"
            )
        if position <= previous or position[0] > state.height:
            raise VerificationError(
                path, "is out of order or after the state proof's height", "bundle-complete"
            )
        previous = position
        if custodian is None:
            if tx.type != "item.register" or tx.tx_id != value["tx"]:
                raise VerificationError(
                    path, "the first step must be the item's registration", "bundle-history"
                )
            if tx.args.get("parents", []) != value["parents"]:
                raise VerificationError(
                    path, "parents differ from the certified record", "bundle-history"
                )
            custodian = tx.sender
        elif tx.type == "item.register":
            raise VerificationError(path, "registers the item a second time", "bundle-history")
        elif tx.type == "item.transfer":
            custodian = tx.args["to"]
    if custodian != value["custodian"]:
        raise VerificationError(
            f"item {item!r}", "the transfers do not end at the custodian", "bundle-history"
        )
