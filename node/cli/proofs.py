"""CLI commands for receipts, state proofs, provenance bundles and offline verification.

    chain receipt TX_ID -o FILE             fetch a receipt from a node
    chain prove item|record|notary|account  fetch a state proof (presence or absence)
    chain item export ID -o DIR             fetch an item's provenance bundle
    chain verify PATH --genesis GENESIS     check any of them offline (no node)
    chain notarize --verify DOC --receipt F check that a document was anchored

Verification never talks to a node: it needs only the genesis file, which the person who
checks must get from a source they trust (not from the party handing them the proof).

`item export` and `notarize --verify` extend the `item` and `notarize` commands of
node/cli/apps.py: node/cli/main.py adds them (add_item_export_command,
add_notarize_verify_options). Imports node/cli/common.py only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from node.cli.common import CliError, client_opts, subcommand
from node.ledger import apps
from node.ledger.genesis import Genesis, load_genesis
from node.proofs import provenance
from node.proofs.describe import account_names, who
from node.proofs.rules import rule_lines
from node.proofs.verify import (
    Facts,
    ReceiptFacts,
    StateFacts,
    TsaTrust,
    VerificationError,
    dump_json,
    summary_lines,
    utc_text,
    verify_bytes,
)

DEFAULT_GENESIS = "testnet/node0/genesis.toml"
NOT_FOUND = 1020
PROOF_NOT_READY = 1050
RETRY_INTERVAL_S = 0.25
MAX_PARALLEL_CALLS = 8


def _genesis_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--genesis",
        default=os.environ.get("CHAIN_GENESIS", DEFAULT_GENESIS),
        help=f"the genesis file you trust (default $CHAIN_GENESIS or {DEFAULT_GENESIS})",
    )


def _load_genesis(path: str) -> Genesis:
    if not Path(path).exists():
        raise CliError(f"genesis file {path} not found: pass --genesis FILE (a copy you trust)")
    return load_genesis(Path(path))


class NodeProofs:
    """Documents from a node over its control socket, retrying while the next block that
    certifies them is not committed yet (bounded by the command's --timeout)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from node.rpc.client import RpcClient

        self.args = args
        self.client = RpcClient(Path(args.socket), timeout_s=args.timeout)
        self.deadline = time.monotonic() + args.timeout

    def call(self, method: str, params: dict[str, Any]) -> Any:
        from node.rpc.client import RpcCallError

        while True:  # bounded by self.deadline
            try:
                return self.client.call(method, params)
            except RpcCallError as exc:
                if exc.code != PROOF_NOT_READY or time.monotonic() >= self.deadline:
                    raise
            time.sleep(RETRY_INTERVAL_S)

    def item_proof(self, item: str) -> dict[str, Any]:
        return dict(self.call("item_get", {"item": item, "prove": True})["proof"])

    def item_proofs(self, items: list[str]) -> list[dict[str, Any]]:
        """Each proof waits for the node's next block: ask on parallel connections (bounded)
        so that a generation of items costs one block interval, not one each."""
        if len(items) == 1:
            return [self.item_proof(items[0])]

        def one(item: str) -> dict[str, Any]:
            other = NodeProofs(self.args)
            other.deadline = self.deadline
            try:
                return other.item_proof(item)
            finally:
                other.close()

        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CALLS, len(items))) as pool:
            return list(pool.map(one, items))

    def item_tx_ids(self, item: str, count: int) -> list[bytes]:
        answer = self.call("item_history", {"item": item, "start": 0, "limit": max(1, count)})
        return [bytes.fromhex(step["tx_id"]) for step in answer["steps"][:count]]

    def receipt(self, tx_id: bytes, *, tsa: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"tx_id": tx_id.hex()}
        if tsa:
            params["tsa"] = True
        return dict(self.call("receipt_get", params))

    def close(self) -> None:
        self.client.close()


def _write_document(doc: dict[str, Any], out: str | None) -> None:
    text = dump_json(doc)
    if out is None or out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)


def _describe_fetched(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """Check a fetched document against the local genesis when there is one, and say so."""
    if args.out in (None, "-"):
        return
    if not Path(args.genesis).exists():
        print(f"wrote {args.out}; check it with: chain verify {args.out} --genesis GENESIS")
        return
    genesis = _load_genesis(args.genesis)
    facts = verify_bytes(dump_json(doc).encode(), genesis)
    print(f"wrote {args.out}")
    print("\n".join(summary_lines(facts, genesis)))


# --- commands -----------------------------------------------------------------------------------


def cmd_receipt(args: argparse.Namespace) -> int:
    from node.rpc.client import RpcCallError

    node = NodeProofs(args)
    tx_id = bytes.fromhex(args.tx_id)
    try:
        try:
            doc = node.receipt(tx_id, tsa=args.tsa)
        except RpcCallError as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            if exc.code != NOT_FOUND or data.get("status") != "pending":
                raise
            remaining_ms = max(1, int((node.deadline - time.monotonic()) * 1000))
            node.call("tx_wait", {"tx_id": args.tx_id, "timeout_ms": remaining_ms})
            doc = node.receipt(tx_id, tsa=args.tsa)
    finally:
        node.close()
    _write_document(doc, args.out)
    _describe_fetched(args, doc)
    return 0


def _account_key(args: argparse.Namespace) -> str:
    """An account's public key (hex) from its key or a genesis account's name."""
    given = args.id or ""
    if len(given) == 64 and all(c in "0123456789abcdef" for c in given):
        return given
    if not given:
        raise CliError("give the account's public key (hex) or a genesis account's name")
    genesis = _load_genesis(args.genesis)
    for account in genesis.accounts:
        if account.name == given:
            return account.public_key.hex()
    raise CliError(f"no genesis account is named {given!r}: give its public key (hex)")


def cmd_prove(args: argparse.Namespace) -> int:
    if args.subject == "item":
        method, params = "item_get", {"item": args.id}
    elif args.subject == "record":
        method, params = "record_get", {"ns": args.id, "key": args.key_name}
    elif args.subject == "account":
        method, params = "account_get", {"account": _account_key(args)}
    else:
        if args.file:
            digest = hashlib.sha256(Path(args.file).read_bytes()).hexdigest()
        elif args.id:
            digest = args.id
        else:
            raise CliError("give the document (--file) or its SHA-256 digest")
        method, params = "notary_get", {"digest": digest}
    node = NodeProofs(args)
    try:
        extra = {"tsa": True} if args.tsa else {}
        doc = node.call(method, {**params, "prove": True, **extra})["proof"]
    finally:
        node.close()
    _write_document(doc, args.out)
    _describe_fetched(args, doc)
    return 0


def cmd_item_export(args: argparse.Namespace) -> int:
    genesis = _load_genesis(args.genesis)
    node = NodeProofs(args)
    try:
        files = provenance.build_bundle(node, genesis, args.item)
    except provenance.ExportError as exc:
        raise CliError(str(exc)) from exc
    finally:
        node.close()
    try:
        provenance.write_bundle(files, Path(args.out))
    except provenance.ExportError as exc:
        raise CliError(str(exc)) from exc
    bundle = provenance.verify_bundle(files, genesis)
    print(f"wrote {args.out}: {len(files)} files; open {Path(args.out) / 'report.html'}")
    print("\n".join(bundle_lines(bundle, genesis)))
    return 0


def bundle_lines(bundle: provenance.BundleFacts, genesis: Genesis) -> list[str]:
    names = account_names(genesis)
    lines = [
        "BUNDLE VERIFIED",
        f"  item         {bundle.root} ({len(bundle.items)} item(s) with its parents, "
        f"{bundle.step_count} step(s), each with a receipt)",
    ]
    for facts in bundle.items:
        value = facts.state.value
        lines.append(
            f"  {facts.item}: custodian {who(value['custodian'].hex(), names)} as of block "
            f"{facts.state.height}; {len(facts.steps)} step(s) from "
            f"{utc_text(facts.steps[0].block.header.timestamp_ms)}"
        )
    lines.append(f"  chain        {genesis.chain_id}, genesis {genesis.hash.hex()}")
    lines.append("  rules checked")
    lines += rule_lines(bundle.rules)
    return lines


def _trust(args: argparse.Namespace) -> TsaTrust | None:
    path = getattr(args, "tsa_cert", None)
    if not path:
        return None
    try:
        return TsaTrust.from_pem(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CliError(f"--tsa-cert {path}: {exc}") from exc


def _fail(args: argparse.Namespace, error: VerificationError) -> int:
    if args.json:
        answer = {"ok": False, "part": error.part, "reason": error.reason, "rule": error.rule}
        print(json.dumps(answer, indent=2))
    rule = f" (rule {error.rule})" if error.rule else ""
    print(f"error: NOT VERIFIED: {error.part}: {error.reason}{rule}", file=sys.stderr)
    return 1


def cmd_verify(args: argparse.Namespace) -> int:
    genesis = _load_genesis(args.genesis)
    path = Path(args.path)
    trust = _trust(args)
    try:
        if path.is_dir():
            bundle = provenance.verify_bundle(provenance.read_bundle(path), genesis)
            summary = {
                "ok": True,
                "kind": "bundle",
                "item": bundle.root,
                "rules": list(bundle.rules),
            }
            lines = bundle_lines(bundle, genesis)
        else:
            facts = verify_bytes(path.read_bytes(), genesis, tsa=trust)
            summary = {
                "ok": True,
                "kind": facts.statement["kind"],
                "statement": facts.statement,
                "rules": list(facts.rules),
                "timestamps": [
                    {
                        "height": t.height,
                        "block_hash": t.block_hash.hex(),
                        "gen_time_ms": t.gen_time_ms,
                        "gen_time_utc": utc_text(t.gen_time_ms),
                        "authority": t.authority,
                        "serial": t.serial,
                        "trusted": t.trusted,
                    }
                    for t in facts.timestamps
                ],
            }
            lines = summary_lines(facts, genesis)
    except VerificationError as error:
        return _fail(args, error)
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else "\n".join(lines))
    return 0


def verify_notarized(args: argparse.Namespace) -> int:
    """`chain notarize --verify DOCUMENT --receipt FILE`: the document's SHA-256 is the
    anchored digest, and the receipt (or a notary state proof) verifies offline."""
    genesis = _load_genesis(args.genesis)
    if not args.receipt:
        raise CliError("--verify needs --receipt FILE (a receipt or a notary state proof)")
    digest = hashlib.sha256(Path(args.verify).read_bytes()).digest()
    try:
        facts = verify_bytes(Path(args.receipt).read_bytes(), genesis)
        anchored_at = _anchor_of(facts, digest)
    except VerificationError as error:
        return _fail(args, error)
    lines = [
        "DOCUMENT VERIFIED",
        f"  document     {args.verify} (SHA-256 {digest.hex()})",
        f"  anchored     {anchored_at}",
        *summary_lines(facts, genesis)[1:],
    ]
    print(json.dumps({"ok": True, "digest": digest.hex()}) if args.json else "\n".join(lines))
    return 0


def _anchor_of(facts: Facts, digest: bytes) -> str:
    if isinstance(facts, ReceiptFacts):
        if facts.tx.type != "notary.anchor":
            raise VerificationError("receipt", f"is a {facts.tx.type} transaction, not an anchor")
        if facts.tx.args["digest"] != digest:
            raise VerificationError("document", "its SHA-256 is not the digest anchored here")
        if not facts.result["ok"]:
            data = facts.result["data"]
            first = data.get("original_tx", b"").hex()
            raise VerificationError(
                "result",
                f"this anchor was refused ({facts.result['code']}): the digest was first anchored "
                f"at height {data.get('original_height')} by tx {first}; get that receipt",
            )
        header = facts.block.header
        return f"at height {header.height}, {utc_text(header.timestamp_ms)}"
    if not isinstance(facts, StateFacts) or facts.key != apps.notary_key(digest):
        raise VerificationError("document", "the proof is about another key than this document")
    if facts.value is None:
        raise VerificationError(
            "document", f"the proof shows it was never anchored as of height {facts.height}"
        )
    return f"at height {facts.value['height']}, {utc_text(facts.value['timestamp_ms'])}"


# --- parser -------------------------------------------------------------------------------------


def add_proof_commands(sub: Any) -> None:
    """Register `chain receipt`, `chain prove` and `chain verify`."""
    p = subcommand(
        sub,
        "receipt",
        "fetch a transaction's receipt (verifiable offline with chain verify)",
        "chain receipt 3f2a...c9 -o receipt.json",
        cmd_receipt,
    )
    p.add_argument("tx_id", help="64 hex characters")
    p.add_argument("-o", "--out", help="file to write (default: stdout)")
    p.add_argument(
        "--tsa",
        action="store_true",
        help="include the RFC 3161 timestamp of the next time-stamped checkpoint",
    )
    _genesis_opt(p)
    client_opts(p)

    p = subcommand(
        sub,
        "prove",
        "fetch a state proof: an item's custodian, a record, an anchor, or their absence",
        "chain prove item pallet-7 -o custody.json\n"
        "chain prove record customs declaration-77 -o record.json\n"
        "chain prove notary --file contract.pdf -o anchor.json\n"
        "chain prove account maker -o maker.json",
        cmd_prove,
    )
    p.add_argument("subject", choices=["item", "record", "notary", "account"])
    p.add_argument(
        "id",
        nargs="?",
        help="item id, record namespace, digest (hex), or account key (hex) or genesis name",
    )
    p.add_argument("key_name", nargs="?", metavar="key", help="record key")
    p.add_argument("--file", help="notary: the document whose SHA-256 to look up")
    p.add_argument("-o", "--out", help="file to write (default: stdout)")
    p.add_argument("--tsa", action="store_true", help="include an RFC 3161 timestamp")
    _genesis_opt(p)
    client_opts(p)

    p = subcommand(
        sub,
        "verify",
        "check a receipt, a state proof or a provenance bundle offline (no node needed)",
        "chain verify receipt.json --genesis genesis.toml\n"
        "chain verify receipt.json --genesis genesis.toml --tsa-cert tsa-ca.pem\n"
        "chain verify pallet-7-bundle/ --genesis genesis.toml",
        cmd_verify,
    )
    p.add_argument("path", help="a receipt or state proof (JSON), or a bundle directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--tsa-cert",
        metavar="PEM",
        help="the CA certificate(s) of the time-stamping authority you trust (and optionally "
        "its own certificate, then pinned): checks the document's RFC 3161 timestamps",
    )
    _genesis_opt(p)


def add_item_export_command(item_sub: Any) -> None:
    """Register `chain item export` under the `item` subcommands."""
    p = subcommand(
        item_sub,
        "export",
        "write an item's provenance bundle (receipts, state proofs, report.html)",
        "chain item export pallet-7 -o pallet-7-bundle",
        cmd_item_export,
    )
    p.add_argument("item")
    p.add_argument("-o", "--out", required=True, help="directory to create")
    _genesis_opt(p)
    client_opts(p)


def add_notarize_verify_options(p: argparse.ArgumentParser) -> None:
    """`chain notarize --verify DOCUMENT --receipt FILE [--genesis G]` (see verify_notarized)."""
    p.add_argument("--verify", metavar="DOCUMENT", help="check DOCUMENT against --receipt")
    p.add_argument("--receipt", metavar="FILE", help="receipt or notary state proof (JSON)")
    _genesis_opt(p)
