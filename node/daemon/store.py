"""The LMDB store: blocks, certificates, tx index, results, state, indexes, consensus log.

One environment per node, named sub-databases, explicit map_size and max_dbs. A committed
block, its execution results, its state changes, its indexes and the new height go in ONE
write transaction (`commit_block`), which the caller runs inside a single
`trio.to_thread.run_sync` call: a write transaction belongs to its thread, and nothing awaits
while it is open. After a crash at any instant the node is at height h or h+1, never between.
"""

from __future__ import annotations

import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from node.daemon.faults import crash_point, write_fault
from node.ledger import encoding, governance
from node.ledger.apps import (
    BlockOutcome,
    check_block_txs,
    execute_block,
    genesis_state,
)
from node.ledger.block import Block
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import Genesis
from node.ledger.governance import Epoch
from node.ledger.merkle import merkle_root
from node.ledger.statetree import StateProof, StateTree
from node.ledger.tx import Transaction

SCHEMA_VERSION = 2  # 2: the validator set and governance live in state
DB_NAMES = (
    "meta",
    "blocks",  # height(8) -> payload
    "hashes",  # block hash -> height(8)
    "certs",  # height(8) -> commit certificate bytes
    "txindex",  # tx id -> height(8) index(4)
    "results",  # height(8) index(4) -> result bytes
    "state",  # state key -> value
    "statenodes",  # state tree nodes
    "itemhist",  # item id \0 seq(8) -> step
    "rechist",  # ns \0 key \0 version(8) -> version entry
    "consensus",  # "replica" -> persisted replica state
)


def _disk_full(path: Path, reserve_bytes: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(path).free < reserve_bytes
    except OSError:
        return False


def h8(height: int) -> bytes:
    return struct.pack(">Q", height)


class StoreError(Exception):
    """The store cannot go on (full map, full disk, corrupt or foreign data dir)."""


class Divergence(StoreError):
    """A certified block does not fit this node's state: stop rather than fork."""


@dataclass(frozen=True)
class Head:
    height: int
    block_hash: bytes  # hash of the block at `height` (genesis hash at 0)
    state_root: bytes  # after executing block `height`
    results_root: bytes  # of block `height`'s transactions
    timestamp_ms: int


class _StateObjects:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: bytes) -> Any:
        return self._store.get_state_obj(key)


@dataclass(frozen=True)
class Committed:
    block: Block
    outcome: BlockOutcome
    head: Head


class TxnReader:
    """State reads through an open LMDB transaction (for checks and execution)."""

    def __init__(self, txn: Any, db: Any) -> None:
        self._txn = txn
        self._db = db

    def get(self, key: bytes) -> bytes | None:
        value = self._txn.get(key, db=self._db)
        return None if value is None else bytes(value)


class Store:
    def __init__(
        self,
        path: Path,
        *,
        map_size_bytes: int = 1 << 34,
        sync: bool = True,
        readonly: bool = False,
    ) -> None:
        """readonly: for `chain backup` and `chain check`, beside a running node (LMDB
        readers in other processes never block its writer); nothing is created."""
        path = Path(path)
        self.path = path
        self.readonly = readonly
        if readonly and not (path / "data.mdb").exists():
            raise StoreError(f"no store at {path} (no data.mdb)")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size_bytes,
                max_dbs=len(DB_NAMES) + 2,
                sync=sync,
                metasync=sync,
                max_readers=256,
                readahead=False,
                readonly=readonly,
            )
            self.db = {
                name: self.env.open_db(name.encode(), create=not readonly) for name in DB_NAMES
            }
        except lmdb.Error as exc:
            raise StoreError(f"cannot open LMDB at {path}: {exc}") from exc
        self.tree = StateTree(self.db["statenodes"])
        self._write_lock = threading.Lock()
        self._head: Head | None = None
        self._epochs: tuple[Epoch, ...] | None = None
        self._check_schema()

    def close(self) -> None:
        self.env.close()

    # --- setup ---------------------------------------------------------------------------

    def _check_schema(self) -> None:
        with self.env.begin(write=not self.readonly) as txn:
            raw = txn.get(b"schema_version", db=self.db["meta"])
            if raw is None and self.readonly:
                raise StoreError("this store has no schema version: not a node's data dir")
            if raw is None:
                txn.put(b"schema_version", h8(SCHEMA_VERSION), db=self.db["meta"])
            elif struct.unpack(">Q", raw)[0] != SCHEMA_VERSION:
                raise StoreError(
                    f"data dir has schema version {struct.unpack('>Q', raw)[0]}, this build "
                    f"reads {SCHEMA_VERSION}"
                )

    def init_genesis(self, genesis: Genesis) -> Head:
        """Write the genesis state once; on later starts check the data is of this chain."""
        with self._write_lock, self._writing() as txn:
            meta = self.db["meta"]
            existing = txn.get(b"genesis_hash", db=meta)
            if existing is not None:
                if bytes(existing) != genesis.hash:
                    raise StoreError(
                        "this data dir belongs to another chain (genesis hash differs); "
                        "use a fresh --home or remove its data dir"
                    )
            else:
                writes = genesis_state(genesis)
                for key, value in writes.items():
                    txn.put(key, value, db=self.db["state"])
                root = self.tree.update(txn, bytes(32), writes)
                head = Head(0, genesis.hash, root, merkle_root([]), 0)
                txn.put(b"genesis_hash", genesis.hash, db=meta)
                self._put_head(txn, head)
        self._head = self._read_head()
        return self._head

    def _put_head(self, txn: Any, head: Head) -> None:
        txn.put(
            b"head",
            encoding.pack(
                [
                    head.height,
                    head.block_hash,
                    head.state_root,
                    head.results_root,
                    head.timestamp_ms,
                ]
            ),
            db=self.db["meta"],
        )

    def _read_head(self) -> Head:
        with self.env.begin() as txn:
            return self.read_head_in(txn)

    def read_head_in(self, txn: Any) -> Head:
        """The head as of an open transaction (a backup reads it from its copy's snapshot)."""
        raw = txn.get(b"head", db=self.db["meta"])
        if raw is None:
            raise StoreError("store has no genesis; call init_genesis first")
        height, block_hash, state_root, results_root, ts = encoding.unpack_fast(bytes(raw))
        return Head(height, block_hash, state_root, results_root, ts)

    @property
    def head(self) -> Head:
        if self._head is None:
            self._head = self._read_head()
        return self._head

    # --- the one write path for blocks ----------------------------------------------------

    def commit_block(
        self,
        block: Block,
        certificate: bytes,
        *,
        chain_id: str,
        signature_ok: Callable[[Transaction], bool],
    ) -> Committed:
        """Check, execute and durably store `block` with its certificate, atomically.

        Blocking: run it in a worker thread. Raises BlockInvalid for a block that does not
        follow the head, Divergence when a certified block's roots disagree with ours, and
        StoreError when the map or disk is full (nothing is written then).
        """
        with self._write_lock:
            self._check_follows(block)
            with self._writing() as txn:
                committed = self._write_block(txn, block, certificate, chain_id, signature_ok)
            self._head = committed.head
            if any(key.startswith(governance.EPOCHS) for key in committed.outcome.writes):
                self._epochs = None  # an epoch began: reload the history on next use
            return committed

    def commit_blocks(
        self,
        items: list[tuple[Block, bytes]],
        *,
        chain_id: str,
        signature_ok: Callable[[Transaction], bool],
        stop_after: Callable[[Committed], bool] = lambda committed: False,
    ) -> list[Committed]:
        """commit_block for consecutive certified blocks in ONE write transaction (one synced
        write for all of them; block sync catching up). Each block is checked and executed
        on the state its predecessors left, exactly as commit_block would; a failure aborts
        the whole transaction (nothing written). stop_after(committed) ends the run after a
        block (its epoch schedule changed, say); the rest are left to the caller."""
        if not items:
            return []
        with self._write_lock:
            saved_head = self.head
            done: list[Committed] = []
            try:
                with self._writing() as txn:
                    for block, certificate in items:
                        self._check_follows(block)
                        committed = self._write_block(
                            txn, block, certificate, chain_id, signature_ok
                        )
                        self._head = committed.head
                        done.append(committed)
                        if stop_after(committed):
                            break
            except BaseException:
                self._head = saved_head
                raise
            if any(key.startswith(governance.EPOCHS) for c in done for key in c.outcome.writes):
                self._epochs = None
            return done

    def _check_follows(self, block: Block) -> None:
        head = self.head
        header = block.header
        if header.height != head.height + 1:
            raise BlockInvalid(f"block {header.height} does not follow head {head.height}")
        if header.prev_hash != head.block_hash:
            raise BlockInvalid(f"block {header.height} does not link to our head")
        if header.state_root != head.state_root or header.results_root != head.results_root:
            raise Divergence(
                f"block {header.height} carries state root {header.state_root.hex()[:16]} "
                f"but ours after block {head.height} is {head.state_root.hex()[:16]}: "
                "this node's state differs from the certified chain; stopping"
            )

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """A write transaction whose storage failures become StoreError (nothing written)."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError as exc:
            raise StoreError(
                f"LMDB map of {self.path} is full: raise [storage] map_size_mb in config.toml "
                "and restart"
            ) from exc
        except lmdb.Error as exc:
            # A full filesystem shows as ENOSPC (lmdb raises it as DiskError or as a plain
            # Error, depending on where the write fails) or as EIO at the commit's msync/fsync.
            if "No space" in str(exc) or _disk_full(self.path):
                raise StoreError(
                    f"the disk of {self.path} is full ({exc}): free space there and restart"
                ) from exc
            if isinstance(exc, lmdb.DiskError):
                raise StoreError(
                    f"disk error while writing {self.path}: {exc}; check the disk, then restart"
                ) from exc
            raise StoreError(
                f"writing {self.path} failed ({exc}): check the disk, then restart"
            ) from exc

    def _write_block(
        self,
        txn: Any,
        block: Block,
        certificate: bytes,
        chain_id: str,
        signature_ok: Callable[[Transaction], bool],
    ) -> Committed:
        db = self.db
        reader = TxnReader(txn, db["state"])
        check_block_txs(
            block,
            reader,
            chain_id=chain_id,
            signature_ok=signature_ok,
            tx_known=lambda tx_id: txn.get(tx_id, db=db["txindex"]) is not None,
        )
        outcome = execute_block(block, reader)
        height = block.height
        hk = h8(height)
        for key, value in outcome.writes.items():
            if value is None:
                txn.delete(key, db=db["state"])
            else:
                txn.put(key, value, db=db["state"])
        state_root = self.tree.update(txn, self.head.state_root, outcome.writes)
        if write_fault():
            raise lmdb.DiskError("injected write error (CHAIN_WRITE_ERROR_AT)")
        crash_point("mid-commit-write")  # state written, block and head not: all or nothing
        txn.put(hk, block.payload, db=db["blocks"])
        txn.put(block.hash, hk, db=db["hashes"])
        txn.put(hk, certificate, db=db["certs"])
        for index, (tx, encoded) in enumerate(zip(block.txs, outcome.encoded_results, strict=True)):
            loc = hk + struct.pack(">I", index)
            txn.put(tx.tx_id, loc, db=db["txindex"])
            txn.put(loc, encoded, db=db["results"])
        for key, value in outcome.item_history:
            txn.put(key, value, db=db["itemhist"])
        for key, value in outcome.record_history:
            txn.put(key, value, db=db["rechist"])
        head = Head(height, block.hash, state_root, outcome.results_root, block.header.timestamp_ms)
        self._put_head(txn, head)
        return Committed(block, outcome, head)

    def replace_certificate(self, height: int, certificate: bytes) -> None:
        with self._write_lock, self._writing() as txn:
            txn.put(h8(height), certificate, db=self.db["certs"])

    # --- consensus log --------------------------------------------------------------------

    def save_consensus(
        self, record: bytes, decided: list[tuple[int, bytes, bytes]] | None = None
    ) -> None:
        """Durable (synced) before it returns: the replica's vote guard depends on it.

        `decided` (height, payload, certificate) are blocks the replica decided in the same
        step: journaled in the same transaction so that a restart can commit them even when
        no peer can serve them (replay_decided).
        """
        with self._write_lock, self._writing() as txn:
            txn.put(b"replica", record, db=self.db["consensus"])
            self._put_decided(txn, decided or [])

    def journal_decided(self, decided: list[tuple[int, bytes, bytes]]) -> None:
        with self._write_lock, self._writing() as txn:
            self._put_decided(txn, decided)

    def _put_decided(self, txn: Any, decided: list[tuple[int, bytes, bytes]]) -> None:
        if decided:
            txn.put(b"decided", encoding.pack([list(d) for d in decided]), db=self.db["consensus"])

    def load_decided(self) -> list[tuple[int, bytes, bytes]]:
        """Journaled decided blocks above the head, in height order."""
        with self.env.begin() as txn:
            raw = txn.get(b"decided", db=self.db["consensus"])
        if raw is None:
            return []
        head = self.head.height
        items = [(int(h), bytes(p), bytes(c)) for h, p, c in encoding.unpack_fast(bytes(raw))]
        return sorted(i for i in items if i[0] > head)

    def replace_consensus(self, record: bytes | None) -> None:
        """For a restore: put `record` (the replaced store's, newer than the backup's) as the
        replica's persisted state unless None, and drop the journal of decided blocks."""
        with self._write_lock, self._writing() as txn:
            if record is not None:
                txn.put(b"replica", record, db=self.db["consensus"])
            txn.delete(b"decided", db=self.db["consensus"])

    def load_consensus(self) -> bytes | None:
        with self.env.begin() as txn:
            raw = txn.get(b"replica", db=self.db["consensus"])
        return None if raw is None else bytes(raw)

    # --- reads ----------------------------------------------------------------------------

    def get_state(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            raw = txn.get(key, db=self.db["state"])
        return None if raw is None else bytes(raw)

    def get_state_obj(self, key: bytes) -> Any:
        raw = self.get_state(key)
        return None if raw is None else encoding.unpack_fast(raw)

    def state_reader(self) -> _StateObjects:
        """Decoded committed state values by key (each get its own read transaction)."""
        return _StateObjects(self)

    def epochs(self) -> tuple[Epoch, ...]:
        """Every epoch that has begun, in order (epoch 0 from genesis)."""
        epochs = self._epochs
        if epochs is None:
            raw = self._prefix_scan("state", governance.EPOCHS, b"", governance.MAX_EPOCHS)
            epochs = self._epochs = tuple(Epoch.from_state(obj) for obj in raw)
            if not epochs:
                raise StoreError("this data dir has no validator set: made by an older version")
        return epochs

    def epoch_at(self, height: int) -> Epoch:
        """The epoch that signed committed block `height` (for later heights ask the Chain,
        which also knows a change scheduled for head + 1 or head + 2)."""
        found = self.epochs()[0]
        for epoch in self.epochs():
            if epoch.start_height <= height:
                found = epoch
        return found

    def get_block(self, height: int) -> bytes | None:
        with self.env.begin() as txn:
            raw = txn.get(h8(height), db=self.db["blocks"])
        return None if raw is None else bytes(raw)

    def get_blocks(
        self, from_height: int, max_count: int, max_bytes: int
    ) -> list[tuple[bytes, bytes]]:
        """(payload, certificate) pairs from `from_height` on, bounded in count and bytes."""
        out: list[tuple[bytes, bytes]] = []
        total = 0
        with self.env.begin() as txn:
            for height in range(from_height, from_height + max_count):
                payload = txn.get(h8(height), db=self.db["blocks"])
                cert = txn.get(h8(height), db=self.db["certs"])
                if payload is None or cert is None:
                    break
                total += len(payload) + len(cert)
                if out and total > max_bytes:
                    break
                out.append((bytes(payload), bytes(cert)))
        return out

    def get_height_by_hash(self, block_hash: bytes) -> int | None:
        with self.env.begin() as txn:
            raw = txn.get(block_hash, db=self.db["hashes"])
        return None if raw is None else struct.unpack(">Q", raw)[0]

    def get_certificate(self, height: int) -> bytes | None:
        with self.env.begin() as txn:
            raw = txn.get(h8(height), db=self.db["certs"])
        return None if raw is None else bytes(raw)

    def committed_tx_ids(self, tx_ids: list[bytes]) -> set[bytes]:
        """Which of `tx_ids` are in the chain, in one read transaction."""
        db = self.db["txindex"]
        with self.env.begin() as txn:
            return {tx_id for tx_id in tx_ids if txn.get(tx_id, db=db) is not None}

    def get_tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        with self.env.begin() as txn:
            raw = txn.get(tx_id, db=self.db["txindex"])
        if raw is None:
            return None
        height, index = struct.unpack(">QI", raw)
        return height, index

    def get_result(self, height: int, index: int) -> dict[str, Any] | None:
        with self.env.begin() as txn:
            raw = txn.get(h8(height) + struct.pack(">I", index), db=self.db["results"])
        return None if raw is None else encoding.unpack_fast(bytes(raw))

    def get_block_results(self, height: int) -> list[bytes]:
        prefix = h8(height)
        out: list[bytes] = []
        with self.env.begin() as txn:
            cursor = txn.cursor(db=self.db["results"])
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not bytes(key).startswith(prefix):
                        break
                    out.append(bytes(value))
        return out

    def _prefix_scan(self, db_name: str, prefix: bytes, start: bytes, limit: int) -> list[Any]:
        out: list[Any] = []
        with self.env.begin() as txn:
            cursor = txn.cursor(db=self.db[db_name])
            if not cursor.set_range(prefix + start):
                return out
            for key, value in cursor:
                if not bytes(key).startswith(prefix) or len(out) >= limit:
                    break
                out.append(encoding.unpack_fast(bytes(value)))
        return out

    def item_history(self, item_id: str, start_seq: int = 0, limit: int = 1000) -> list[Any]:
        return self._prefix_scan("itemhist", item_id.encode() + b"\x00", h8(start_seq), limit)

    def record_history(self, ns: str, key: str, limit: int = 1000) -> list[Any]:
        prefix = ns.encode() + b"\x00" + key.encode() + b"\x00"
        return self._prefix_scan("rechist", prefix, b"", limit)

    def prove_state(self, key: bytes) -> tuple[Head, Any]:
        with self.env.begin() as txn:
            head = self.head
            return head, self.tree.prove(txn, head.state_root, key)

    def statistics(self) -> dict[str, Any]:
        info = self.env.info()
        stat = self.env.stat()
        return {
            "map_size_bytes": info["map_size"],
            "last_page": info["last_pgno"],
            "page_size": stat["psize"],
            "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
        }

    # --- reads for receipts and state proofs (node/receipts.py) ----------------------------

    def read_state_with_proof(self, key: bytes) -> tuple[Head, bytes | None, StateProof]:
        """The head, `key`'s value and its proof against the head's state root, all from ONE
        read transaction: a block committed meanwhile cannot pair one block's root with
        another block's value (the cached `head` may already be newer than a snapshot)."""
        with self.env.begin() as txn:
            raw_head = txn.get(b"head", db=self.db["meta"])
            if raw_head is None:
                raise StoreError("store has no genesis; call init_genesis first")
            head = Head(*encoding.unpack_fast(bytes(raw_head)))
            value = txn.get(key, db=self.db["state"])
            proof = self.tree.prove(txn, head.state_root, key)
        return head, None if value is None else bytes(value), proof

    def read_block_evidence(self, height: int) -> tuple[bytes, bytes, list[bytes]] | None:
        """Block `height`'s payload, commit certificate and encoded results, from one
        snapshot; None while the block is not committed."""
        prefix = h8(height)
        with self.env.begin() as txn:
            payload = txn.get(prefix, db=self.db["blocks"])
            certificate = txn.get(prefix, db=self.db["certs"])
            if payload is None or certificate is None:
                return None
            results: list[bytes] = []
            cursor = txn.cursor(db=self.db["results"])
            if cursor.set_range(prefix):
                for key, value in cursor:  # bounded: one entry per tx of the block
                    if not bytes(key).startswith(prefix):
                        break
                    results.append(bytes(value))
        return bytes(payload), bytes(certificate), results
