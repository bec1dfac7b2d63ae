"""Check a node's store offline (`chain check`) and replay its chain from genesis.

Used by crash tests and by operators who want to check a data dir, a backup they restored,
or a node they suspect: the store is opened read-only, so both work beside a running node
(LMDB readers never block its writer; a long check holds one snapshot, which makes the
data file grow meanwhile).

What `check_home` verifies, from the data alone plus genesis:
- the store is of this genesis;
- the hash chain: block h links to block h-1 (block 1 to the genesis hash), its header is
  for this chain and height, the block-hash index points back at it;
- every block's commit certificate is for that block and holds a quorum of valid
  signatures of the validator set of its epoch;
- what each certified header commits to: header h's results root is that of block h-1's
  stored results, its state root is one the node's state tree holds (block 1's is the
  genesis state root), each transaction is indexed at its place;
- the head: it names the last block and its hash, its results root is the last block's
  results, and the state database hashes to its state root (rebuilt from scratch);
- with replay=True, executing every block from genesis gives the head's state root and
  results root (the state root after block h is otherwise only certified by block h+1).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus import CertificateError, CommitCertificate, verify_certificate
from node.daemon.config import NodeConfig, load_config
from node.daemon.store import Head, Store, h8
from node.ledger import crypto
from node.ledger.apps import genesis_state
from node.ledger.block import decode_block
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import Genesis, load_genesis
from node.ledger.merkle import merkle_root
from node.ledger.statetree import ZERO, StateTreeError

QUICK_CHECK_BLOCKS = 16  # checked at every start (node/daemon/setup.py)
STATE_BATCH = 20_000  # state entries hashed into the rebuilt tree per write transaction
MAX_PROBLEMS = 50  # a broken store can have millions; the first ones say enough


def _open_source(config: NodeConfig) -> Store:
    return Store(
        config.path(config.node.data_dir),
        map_size_bytes=config.storage.map_size_mb << 20,
        readonly=True,
    )


def replay_home(home: Path) -> tuple[Head, Head]:
    """(the node's stored head, the head that replaying its blocks gives)."""
    config = load_config(home)
    genesis = load_genesis(config.path(config.node.genesis_file))
    source = _open_source(config)
    try:
        return source.head, _replay(source, genesis, str(home))
    finally:
        source.close()


def _replay(source: Store, genesis: Genesis, where: str) -> Head:
    stored = source.head
    with tempfile.TemporaryDirectory(prefix="replay") as scratch:
        target = Store(Path(scratch), map_size_bytes=1 << 36, sync=False)
        try:
            target.init_genesis(genesis)
            for height in range(1, stored.height + 1):
                payload = source.get_block(height)
                cert = source.get_certificate(height)
                if payload is None or cert is None:
                    raise ValueError(f"block {height} missing from {where}")
                block = decode_block(
                    payload,
                    max_block_bytes=genesis.consensus.max_block_bytes,
                    max_tx_bytes=genesis.consensus.max_tx_bytes,
                )
                target.commit_block(
                    block,
                    cert,
                    chain_id=genesis.chain_id,
                    signature_ok=lambda t: t.signature_ok(),
                )
            return target.head
        finally:
            target.close()


@dataclass
class CheckReport:
    height: int = 0
    blocks: int = 0
    txs: int = 0
    state_entries: int = 0
    replayed: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def check_home(home: Path, *, replay: bool = False) -> CheckReport:
    """Verify the store of `home` (see the module docstring); never raises for what it finds
    wrong in the store: each problem is a line of the report."""
    config = load_config(home)
    genesis = load_genesis(config.path(config.node.genesis_file))
    source = _open_source(config)
    report = CheckReport()
    try:
        with tempfile.TemporaryDirectory(prefix="check") as scratch:
            _check(source, genesis, Path(scratch), report)
        if replay and report.ok:
            replayed = _replay(source, genesis, str(home))
            head = source.head
            report.replayed = True
            if (replayed.state_root, replayed.results_root) != (
                head.state_root,
                head.results_root,
            ):
                report.problem(
                    f"replaying blocks 1..{head.height} from genesis gives state root "
                    f"{replayed.state_root.hex()[:16]}, the store says {head.state_root.hex()[:16]}"
                )
    finally:
        source.close()
    return report


def quick_check(store: Store, genesis: Genesis, depth: int = QUICK_CHECK_BLOCKS) -> list[str]:
    """What a node checks of its own store at every start (cheap: the latest `depth`
    blocks): each decodes, links to the one before, is indexed, carries a valid commit
    certificate of its epoch's set and commits to results and a state root the store
    holds, and the head names the last of them. A flipped byte in a block, a block body
    that no longer matches its header, a lost head: the node refuses to serve wrong state.
    (`chain check` checks every block and rehashes all state.)"""
    report = CheckReport()
    with store.env.begin() as txn:
        head = store.read_head_in(txn)
        start = max(1, head.height - depth + 1)
        if head.height > 0:
            _check_blocks(_Reader(store, txn), genesis, None, head, report, start=start)
    return report.problems


def _check(source: Store, genesis: Genesis, scratch: Path, report: CheckReport) -> None:
    # ONE read transaction for everything: the node may commit meanwhile, and the head, the
    # blocks and the state must be of the same snapshot.
    with source.env.begin() as txn:
        raw = txn.get(b"genesis_hash", db=source.db["meta"])
        if raw is None or bytes(raw) != genesis.hash:
            report.problem("the store is not of this genesis (genesis hash differs)")
            return
        head = source.read_head_in(txn)
        report.height = head.height
        rebuilt = Store(scratch, map_size_bytes=1 << 36, sync=False)
        try:
            with rebuilt.env.begin(write=True) as wtxn:
                genesis_root = rebuilt.tree.update(wtxn, ZERO, genesis_state(genesis))
            reader = _Reader(source, txn)
            _check_blocks(reader, genesis, genesis_root, head, report)
            _check_state(reader, rebuilt, head, report)
        finally:
            rebuilt.close()


class _Reader:
    """The store's reads, all through one read transaction."""

    def __init__(self, store: Store, txn: Any) -> None:
        self.store = store
        self.txn = txn
        self.db = store.db

    def get(self, db: str, key: bytes) -> bytes | None:
        value = self.txn.get(key, db=self.db[db])
        return None if value is None else bytes(value)

    def results(self, height: int) -> list[bytes]:
        prefix = h8(height)
        out: list[bytes] = []
        cursor = self.txn.cursor(db=self.db["results"])
        if cursor.set_range(prefix):
            for key, value in cursor:
                if not bytes(key).startswith(prefix):
                    break
                out.append(bytes(value))
        return out


def _check_blocks(
    r: _Reader,
    genesis: Genesis,
    genesis_root: bytes | None,
    head: Head,
    report: CheckReport,
    *,
    start: int = 1,
) -> None:
    """Blocks start..head (start > 1: the latest ones only, linked to the stored block
    before them; genesis_root None: the genesis state root is not checked)."""
    params = genesis.consensus
    prev_hash = genesis.hash
    prev_results: list[bytes] = []
    if start > 1:
        before = r.get("blocks", h8(start - 1))
        if before is None:
            report.problem(f"block {start - 1}: missing")
            return
        try:
            prev_hash = decode_block(
                before, max_block_bytes=params.max_block_bytes, max_tx_bytes=params.max_tx_bytes
            ).hash
        except (BlockInvalid, ValueError) as exc:
            report.problem(f"block {start - 1}: does not decode: {exc}")
            return
        prev_results = r.results(start - 1)
    for height in range(start, head.height + 1):
        where = f"block {height}"
        payload = r.get("blocks", h8(height))
        cert_raw = r.get("certs", h8(height))
        if payload is None or cert_raw is None:
            report.problem(f"{where}: {'block' if payload is None else 'certificate'} missing")
            return
        try:
            block = decode_block(
                payload, max_block_bytes=params.max_block_bytes, max_tx_bytes=params.max_tx_bytes
            )
        except (BlockInvalid, ValueError) as exc:
            report.problem(f"{where}: does not decode: {exc}")
            return
        header = block.header
        if header.height != height or header.chain_id != genesis.chain_id:
            report.problem(f"{where}: header is for {header.chain_id} height {header.height}")
        if header.prev_hash != prev_hash:
            report.problem(f"{where}: does not link to block {height - 1} (hash chain broken)")
        if r.get("hashes", block.hash) != h8(height):
            report.problem(f"{where}: the block-hash index does not point at it")
        try:
            cert = CommitCertificate.from_bytes(cert_raw)
            if cert.height != height or cert.digest != block.hash:
                raise CertificateError("it is for another block")
            signers = r.store.epoch_at(height).keys
            verify_certificate(cert, genesis.chain_id, signers, crypto.verify)
        except (CertificateError, ValueError) as exc:
            report.problem(f"{where}: commit certificate refused: {exc}")
        if header.results_root != merkle_root(prev_results):
            report.problem(f"{where}: results root is not that of block {height - 1}")
        if height == 1 and genesis_root is not None and header.state_root != genesis_root:
            report.problem(f"{where}: state root is not the genesis state root")
        try:
            r.store.tree.get_value_hash(r.txn, header.state_root, b"")
        except StateTreeError as exc:
            report.problem(f"{where}: its state root is not in the state tree: {exc!r}")
        for index, tx in enumerate(block.txs):
            if r.get("txindex", tx.tx_id) != h8(height) + index.to_bytes(4, "big"):
                report.problem(f"{where}: tx {index} ({tx.tx_id.hex()[:16]}) is not indexed")
        prev_results = r.results(height)
        if len(prev_results) != len(block.txs):
            report.problem(f"{where}: {len(prev_results)} results for {len(block.txs)} txs")
        prev_hash = block.hash
        report.blocks += 1
        report.txs += len(block.txs)
    if r.get("blocks", h8(head.height + 1)) is not None:
        report.problem(f"a block above the head ({head.height + 1}) is stored")
    if head.block_hash != prev_hash:
        report.problem(f"the head names another block hash than block {head.height}'s")
    if head.results_root != merkle_root(prev_results):
        report.problem("the head's results root is not that of its block's results")


def _check_state(r: _Reader, rebuilt: Store, head: Head, report: CheckReport) -> None:
    """Hash every entry of the state database into a fresh tree: its root must be the
    head's state root (no entry missing, extra or changed)."""
    root = ZERO
    batch: dict[bytes, bytes | None] = {}
    for key, value in r.txn.cursor(db=r.db["state"]):
        batch[bytes(key)] = bytes(value)
        report.state_entries += 1
        if len(batch) >= STATE_BATCH:
            root = _apply(rebuilt, root, batch)
            batch = {}
    root = _apply(rebuilt, root, batch)
    if root != head.state_root:
        report.problem(
            f"the state database hashes to {root.hex()[:16]}, the head's state root is "
            f"{head.state_root.hex()[:16]}: state is damaged"
        )


def _apply(rebuilt: Store, root: bytes, batch: dict[bytes, bytes | None]) -> bytes:
    # The scratch tree also holds the genesis root; two trees in one nodes database are
    # fine (content-addressed, append-only).
    with rebuilt.env.begin(write=True) as wtxn:
        return rebuilt.tree.update(wtxn, root, batch)
