"""The ledger service: validates proposals, builds blocks, commits them, admits transactions.

It owns the store and the mempool and is the only writer of either. Heavy work leaves the
event loop: signature batches and block commits run in worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from node.daemon.clockwatch import ClockWatch, TimestampRefused
from node.daemon.faults import crash_point
from node.daemon.mempool import Mempool
from node.daemon.store import Committed, Store, StoreError, TxnReader
from node.ledger import crypto, encoding, governance
from node.ledger import errors as E
from node.ledger.accounts import account_for_key
from node.ledger.apps import check_block_txs
from node.ledger.block import (
    BLOCK_VERSION,
    Block,
    BlockHeader,
    build_block,
    decode_block,
    tx_root_of,
)
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import ConsensusParams, Genesis
from node.ledger.governance import Epoch
from node.ledger.tx import Transaction, decode_tx

log = logging.getLogger("chain.ledger")

VERIFY_CHUNK = 256  # signatures per worker-thread call: amortises the thread hop
# Up to this many signatures are checked on the event loop (about 1 ms of it): a hop to a
# worker thread and back costs ~110 us of CPU on an idle machine and more on a busy one
# (the waker loses its core), so below this the hop costs more than it frees; at 1,067
# tx/s gossip and RPC batches of 2-8 txs spent 4 % of node CPU handing off (BENCHMARKS.md).
INLINE_VERIFY_MAX = 16
# Decoded proposals kept (a payload arrives, is validated, committed: the same bytes each
# time). Bounded in entries, in payload bytes and in transactions, since a faulty validator
# chooses what lands here.
DECODED_MAX_BLOCKS = 8
# A proposal this small is decoded on the event loop: its txs are mostly the mempool's
# (decoded already), so decoding it costs less than the hop to a worker thread and back
# (~110 us of CPU, more on a busy machine).
INLINE_DECODE_BYTES = 16 * 1024
DECODED_MAX_BYTES = 32 * 1024 * 1024


def verify_all(txs: Sequence[Transaction]) -> list[bool]:
    return [tx.signature_ok() for tx in txs]


async def verify_batch(txs: Sequence[Transaction]) -> list[bool]:
    """Verify signatures off the event loop, in chunks spread over worker threads.

    Only transactions without a verdict cost anything: each keeps its own (Transaction
    .signature_ok), so a node verifies a transaction's signature once.
    """
    pending = [tx for tx in txs if tx.verdict is None]
    if len(pending) <= INLINE_VERIFY_MAX:
        return verify_all(txs)

    async def run(chunk: Sequence[Transaction]) -> None:
        await trio.to_thread.run_sync(verify_all, chunk)

    async with trio.open_nursery() as nursery:
        for start in range(0, len(pending), VERIFY_CHUNK):
            nursery.start_soon(run, pending[start : start + VERIFY_CHUNK])
    return verify_all(txs)  # every verdict is made now: no verification happens here


def _certified(tx: Transaction) -> bool:
    """The signature verdict for a tx of a block with a verified commit certificate."""
    return True


def _changes_epochs(committed: Committed) -> bool:
    writes = committed.outcome.writes
    return governance.NEXT in writes or governance.EPOCH in writes


@dataclass
class SubmitOutcome:
    tx_id: bytes | None
    error: E.TxInvalid | None


class Chain:
    def __init__(
        self,
        genesis: Genesis,
        store: Store,
        mempool: Mempool,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.genesis = genesis
        self.store = store
        self.mempool = mempool
        self.clock_ms = clock_ms
        # By payload; a BlockInvalid stands for a payload that does not decode (so that its
        # digest is not recomputed on the event loop). Bounded: see DECODED_MAX_*.
        self._decoded: OrderedDict[bytes, Block | BlockInvalid] = OrderedDict()
        self._decoded_bytes = 0
        self._decoded_txs = 0
        # The txs of those blocks by wire bytes: a tx first met in a proposal and then
        # gossiped is not decoded and verified a second time. Bounded with _decoded.
        self._proposed_txs: dict[bytes, Transaction] = {}
        self._waiters: dict[bytes, trio.Event] = {}
        self.on_commit: list[Callable[[Committed], None]] = []
        self.halted: str | None = None
        self.last_commit_s = 0.0
        self.counters = {
            "blocks_committed": 0,
            "txs_committed": 0,
            "invalid_proposals": 0,
            "refused_timestamp": 0,
        }
        self.clock = ClockWatch(clock_ms, lambda: self.params.max_clock_drift_ms)
        self._epoch_params: dict[int, ConsensusParams] = {}
        # epoch_for(h) above the head, for the head it was read at: the state it comes from
        # changes only with the head, and it is asked several times per message and tick.
        self._epochs_ahead: dict[int, Epoch] = {}
        self._epochs_ahead_head: object = None

    # --- epochs ------------------------------------------------------------------------------

    def epoch_for(self, height: int) -> Epoch:
        """The epoch (validator set, live params) that signs block `height`: known for
        heights up to head + 2 (a change is scheduled two blocks ahead), and for any height
        of an epoch that has begun (from the epoch history)."""
        head = self.store.head.height
        if height <= head:
            return self.store.epoch_at(height)
        if height > head + 2:
            raise ValueError(f"the epoch of block {height} is not known yet (head {head})")
        head_obj = self.store.head
        if self._epochs_ahead_head is not head_obj:
            self._epochs_ahead = {}
            self._epochs_ahead_head = head_obj
        epoch = self._epochs_ahead.get(height)
        if epoch is None:
            state = self.store.state_reader()
            epoch = Epoch.from_state(governance.epoch_for_height(state, height))
            self._epochs_ahead[height] = epoch
        return epoch

    @property
    def params(self) -> ConsensusParams:
        """The consensus parameters of the next block's epoch (genesis + live changes)."""
        epoch = self.epoch_for(self.store.head.height + 1)
        params = self._epoch_params.get(epoch.number)
        if params is None:
            params = dataclasses.replace(self.genesis.consensus, **epoch.params)
            self._epoch_params = {epoch.number: params}
        return params

    # --- accounts --------------------------------------------------------------------------

    def account(self, public_key: bytes) -> dict[str, Any] | None:
        """The account a key signs for (an account keeps its id across key rotations)."""
        return account_for_key(self.store.get_state, public_key)

    # --- admission ---------------------------------------------------------------------------

    def decode(self, raw: bytes) -> Transaction:
        return decode_tx(raw, max_tx_bytes=self.params.max_tx_bytes)

    async def submit_raw(self, raws: Sequence[bytes]) -> list[SubmitOutcome]:
        """Decode, verify (batched, off-loop) and admit transactions; one outcome each."""
        outcomes: list[SubmitOutcome] = [SubmitOutcome(None, None) for _ in raws]
        decoded: list[tuple[int, Transaction]] = []
        for i, raw in enumerate(raws):
            known = self.mempool.by_raw(raw)
            if known is not None:
                outcomes[i] = SubmitOutcome(
                    known.tx_id, E.TxInvalid(E.DUPLICATE, "transaction is already pending")
                )
                continue
            try:
                decoded.append((i, self._proposed_txs.get(raw) or self.decode(raw)))
            except E.TxInvalid as exc:
                outcomes[i] = SubmitOutcome(None, exc)
        # Cheap state checks first, so that a flood of stale txs costs no signature checks.
        # One read per sender and one read transaction for the tx index, not one per tx.
        accounts = self.mempool.memoized_accounts()
        committed = self.store.committed_tx_ids([tx.tx_id for _, tx in decoded])
        to_verify: list[tuple[int, Transaction]] = []
        for i, tx in decoded:
            try:
                self.mempool.check(tx, account_of=accounts)
                if tx.tx_id in committed:
                    raise E.TxInvalid(E.DUPLICATE, "transaction is already committed")
                to_verify.append((i, tx))
            except E.TxInvalid as exc:
                outcomes[i] = SubmitOutcome(tx.tx_id, exc)
        verdicts = await verify_batch([tx for _, tx in to_verify])
        accounts = self.mempool.memoized_accounts()  # a block may have committed meanwhile
        for (i, tx), ok in zip(to_verify, verdicts, strict=True):
            if not ok:
                outcomes[i] = SubmitOutcome(
                    tx.tx_id,
                    E.TxInvalid(E.BAD_SIGNATURE, "signature does not verify for the sender's key"),
                )
                continue
            try:
                self.mempool.add(tx, account_of=accounts)
                outcomes[i] = SubmitOutcome(tx.tx_id, None)
            except E.TxInvalid as exc:
                outcomes[i] = SubmitOutcome(tx.tx_id, exc)
        return outcomes

    # --- blocks ------------------------------------------------------------------------------

    def build_proposal(self, view: int, proposer: int) -> Block:
        head = self.store.head
        txs = self.mempool.reap(self.params.max_block_txs, self.params.max_block_bytes - 4096)
        epoch = self.epoch_for(head.height + 1)
        header = BlockHeader(
            version=BLOCK_VERSION,
            chain_id=self.genesis.chain_id,
            height=head.height + 1,
            prev_hash=head.block_hash,
            view=view,
            proposer=proposer,
            timestamp_ms=max(self.clock_ms(), head.timestamp_ms + 1),
            tx_root=tx_root_of(txs),
            tx_count=len(txs),
            state_root=head.state_root,
            results_root=head.results_root,
            epoch=epoch.number,
            next_validators_hash=self.epoch_for(head.height + 2).set_hash,
        )
        block = build_block(header, txs)
        self._remember(block.payload, block)
        return block

    def _remember(self, payload: bytes, block: Block | BlockInvalid) -> None:
        if payload in self._decoded:
            return
        self._decoded[payload] = block
        self._decoded_bytes += len(payload)
        if isinstance(block, Block):
            self._decoded_txs += len(block.txs)
            for tx in block.txs:
                self._proposed_txs[tx.raw] = tx
        max_txs = 4 * self.params.max_block_txs
        while len(self._decoded) > 1 and (
            len(self._decoded) > DECODED_MAX_BLOCKS
            or self._decoded_bytes > DECODED_MAX_BYTES
            or self._decoded_txs > max_txs
        ):
            old_payload, old = self._decoded.popitem(last=False)
            self._decoded_bytes -= len(old_payload)
            if isinstance(old, Block):
                self._decoded_txs -= len(old.txs)
                for tx in old.txs:
                    if self._proposed_txs.get(tx.raw) is tx:
                        del self._proposed_txs[tx.raw]

    def statistics(self) -> dict[str, int]:
        return {
            "decoded_blocks": len(self._decoded),
            "decoded_bytes": self._decoded_bytes,
            "decoded_txs": self._decoded_txs,
        }

    def committed_tx(self, height: int, index: int) -> Transaction | None:
        """One transaction of a stored block, without decoding the rest of it: for tx_get on
        a long chain, where the block is rarely in the cache and decoding all of its
        thousands of transactions costs tens of milliseconds."""
        payload = self.store.get_block(height)
        if payload is None or index < 0:
            return None
        cached = self._decoded.get(payload)
        if isinstance(cached, Block):
            return cached.txs[index] if index < len(cached.txs) else None
        raws = encoding.unpack_fast(payload)[1]  # written by this node's store, certified
        return self.decode(raws[index]) if index < len(raws) else None

    def _decode_detached(self, payload: bytes) -> Block | BlockInvalid:
        """Decode without touching the cache: safe in a worker thread."""
        try:
            return decode_block(
                payload,
                max_block_bytes=self.params.max_block_bytes,
                max_tx_bytes=self.params.max_tx_bytes,
                tx_cache=self.mempool.by_raw,  # a dict read: atomic under the GIL
                max_block_txs=self.params.max_block_txs,
            )
        except BlockInvalid as exc:
            return exc

    def decode_detached(self, payload: bytes) -> Block:
        """Decode a payload, raising BlockInvalid, without touching the cache: safe in a
        worker thread (block sync decodes there)."""
        block = self._decode_detached(payload)
        if isinstance(block, BlockInvalid):
            raise block
        return block

    def decode_payload(self, payload: bytes) -> Block:
        block = self._decoded.get(payload)
        if block is None:
            block = self._decode_detached(payload)
            self._remember(payload, block)
        if isinstance(block, BlockInvalid):
            raise block
        return block

    async def decode_off_loop(self, payload: bytes) -> Block:
        """Decode a payload in a worker thread, not caching it (block sync)."""
        block = self._decoded.get(payload)
        if block is None:
            block = await trio.to_thread.run_sync(self._decode_detached, payload)
        if isinstance(block, BlockInvalid):
            raise block
        return block

    async def prepare_payloads(self, payloads: Sequence[bytes]) -> None:
        """Decode proposals and check the signatures of their unseen transactions, all off
        the event loop, so that the replica's synchronous digest and validate calls find
        every answer ready. Only for payloads that passed the replica's cheap screening."""
        for payload in payloads:
            block = self._decoded.get(payload)
            if block is None:
                if len(payload) <= INLINE_DECODE_BYTES:
                    block = self._decode_detached(payload)
                else:
                    block = await trio.to_thread.run_sync(self._decode_detached, payload)
                self._remember(payload, block)
            if isinstance(block, Block):
                unknown = [tx for tx in block.txs if tx.verdict is None]
                if unknown:
                    await verify_batch(unknown)

    def digest(self, payload: bytes) -> bytes:
        try:
            return self.decode_payload(payload).hash
        except BlockInvalid:
            # An undecodable payload gets a digest no valid block can have; validate refuses it.
            return crypto.sha256(b"chain-invalid-payload\x00" + payload)

    def signature_ok(self, tx: Transaction) -> bool:
        # The verdict lives on the decoded object: the mempool's were verified on entry, and
        # a proposal's unknown txs by `preverify` before the replica saw it. (Membership by
        # tx id alone would pass a copy of a pending tx carrying a forged signature.)
        return tx.signature_ok()

    def validate(self, height: int, payload: bytes, *, view: int, leader: int) -> bool:
        """A backup's verdict on a fresh proposal (runs on the event loop)."""
        try:
            block = self.decode_payload(payload)
            self._check_header(block.header, height, view, leader)
            with self.store.env.begin() as txn:
                state_db = self.store.db["state"]
                reader = TxnReader(txn, state_db)
                check_block_txs(
                    block,
                    reader,
                    chain_id=self.genesis.chain_id,
                    signature_ok=self.signature_ok,
                    tx_known=lambda tx_id: txn.get(tx_id, db=self.store.db["txindex"]) is not None,
                )
        except BlockInvalid as exc:
            self.counters["invalid_proposals"] += 1
            log.warning("refusing proposal at height %d: %s", height, exc)
            return False
        return True

    def _check_header(self, header: BlockHeader, height: int, view: int, leader: int) -> None:
        head = self.store.head
        if header.chain_id != self.genesis.chain_id:
            raise BlockInvalid(f"chain_id {header.chain_id!r}")
        if header.height != height or height != head.height + 1:
            raise BlockInvalid(f"height {header.height}, expected {head.height + 1}")
        if header.prev_hash != head.block_hash:
            raise BlockInvalid("prev_hash is not our head")
        if header.state_root != head.state_root or header.results_root != head.results_root:
            raise BlockInvalid("state or results root differs from ours")
        if header.view != view or header.proposer != leader:
            raise BlockInvalid(
                f"view/proposer {header.view}/{header.proposer}, expected {view}/{leader}"
            )
        if header.timestamp_ms <= head.timestamp_ms:
            raise BlockInvalid("timestamp does not move forward")
        try:
            self.clock.check(header.timestamp_ms)
        except TimestampRefused as exc:
            self.counters["refused_timestamp"] += 1
            raise BlockInvalid(str(exc)) from exc
        if header.tx_count > self.params.max_block_txs:
            raise BlockInvalid(f"{header.tx_count} txs, limit {self.params.max_block_txs}")
        if header.version != BLOCK_VERSION:
            raise BlockInvalid(f"block version {header.version}, expected {BLOCK_VERSION}")
        epoch = self.epoch_for(height).number
        if header.epoch != epoch:
            raise BlockInvalid(f"epoch {header.epoch}, expected {epoch}")
        if header.next_validators_hash != self.epoch_for(height + 1).set_hash:
            raise BlockInvalid("next_validators_hash is not the set that signs the next block")

    async def commit(
        self, payload: bytes, certificate: bytes, *, block: Block | None = None
    ) -> Committed:
        """Execute and store a certified block (atomically, off the event loop)."""
        if block is None:
            block = self.decode_payload(payload)
        elif block.payload != payload:
            raise ValueError("the decoded block is not this payload")
        started = time.perf_counter()
        try:
            committed = await trio.to_thread.run_sync(self._commit_sync, block, certificate)
        except StoreError as exc:
            self.halted = str(exc)
            raise
        crash_point("committed-before-answer")
        # Read by the on_commit callbacks (the commit-duration histogram of /metrics).
        self.last_commit_s = time.perf_counter() - started
        self._after_commit([committed])
        return committed

    async def commit_certified(self, items: Sequence[tuple[Block, bytes]]) -> list[Committed]:
        """Commit consecutive blocks fetched by block sync, whose commit certificates the
        caller has verified against their epoch's validator set, in ONE write transaction.

        Their transactions' signatures are not checked again: a valid commit certificate
        means a quorum committed the block, so at least f + 1 honest validators prepared it,
        and an honest validator prepares a block only after checking every signature in it
        (docs/CONSENSUS.md "Catching up"). Every other check of commit_block runs. The run
        stops after a block that schedules or enacts an epoch change (the caller checks the
        next certificates against the new set); returns what was committed."""
        if not items:
            return []
        for block, _ in items:
            if not block.payload:
                raise ValueError("a certified block must carry its payload")
        started = time.perf_counter()
        try:
            done = await trio.to_thread.run_sync(self._commit_certified_sync, list(items))
        except StoreError as exc:
            self.halted = str(exc)
            raise
        crash_point("committed-before-answer")
        self.last_commit_s = (time.perf_counter() - started) / max(1, len(done))
        self._after_commit(done)
        return done

    def _commit_certified_sync(self, items: list[tuple[Block, bytes]]) -> list[Committed]:
        return self.store.commit_blocks(
            items,
            chain_id=self.genesis.chain_id,
            signature_ok=_certified,
            stop_after=_changes_epochs,
        )

    def _after_commit(self, done: Sequence[Committed]) -> None:
        """What follows a commit on the event loop: the mempool, counters, waiters, pushes."""
        txs = [tx for committed in done for tx in committed.block.txs]
        self.mempool.remove_committed(txs)
        if txs:
            self.mempool.recheck()
        for committed in done:
            block = committed.block
            self.clock.committed(block.header.timestamp_ms)
            self.counters["blocks_committed"] += 1
            self.counters["txs_committed"] += len(block.txs)
            for tx in block.txs:
                event = self._waiters.pop(tx.tx_id, None)
                if event is not None:
                    event.set()
            for callback in self.on_commit:
                callback(committed)

    def _commit_sync(self, block: Block, certificate: bytes) -> Committed:
        return self.store.commit_block(
            block, certificate, chain_id=self.genesis.chain_id, signature_ok=self.signature_ok
        )

    async def wait_committed(self, tx_id: bytes, timeout_s: float) -> bool:
        if self.store.get_tx_location(tx_id) is not None:
            return True
        event = self._waiters.get(tx_id)
        if event is None:
            if len(self._waiters) >= 100_000:
                raise E.TxInvalid(E.MEMPOOL_FULL, "too many waiters; retry later")
            event = self._waiters[tx_id] = trio.Event()
        with trio.move_on_after(timeout_s):
            await event.wait()
        if not event.is_set() and self._waiters.get(tx_id) is event and tx_id not in self.mempool:
            self._waiters.pop(tx_id, None)
        return self.store.get_tx_location(tx_id) is not None
