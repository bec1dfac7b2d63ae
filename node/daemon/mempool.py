"""The mempool: verified, structurally valid transactions waiting for a block.

Bounded in count and bytes; de-duplicated by tx id; one pending tx per (sender, nonce);
nonces accepted within a window above the sender's committed nonce. Signatures are verified
by the caller (in batches, off the event loop) before `add`, so every tx here is verified
exactly once and blocks built from it, or checked against it, need not verify it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from node.ledger import errors as E
from node.ledger.tx import Transaction

AccountLookup = Callable[[bytes], dict[str, Any] | None]
# How many of the oldest entries the censorship check looks at (it runs on the event loop).
PROPOSABLE_SCAN_LIMIT = 2000


@dataclass(slots=True)
class _Entry:
    tx: Transaction
    added_ms: int


class Mempool:
    def __init__(
        self,
        *,
        chain_id: str,
        account_of: AccountLookup,
        max_txs: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        nonce_window: int = 1000,
        clock_ms: Callable[[], int] = lambda: int(time.monotonic() * 1000),
    ) -> None:
        if max_txs <= 0 or max_bytes <= 0 or nonce_window <= 0:
            raise ValueError("mempool limits must be positive")
        self.chain_id = chain_id
        self._account_of = account_of
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.nonce_window = nonce_window
        self._clock_ms = clock_ms
        self._by_id: dict[bytes, _Entry] = {}  # insertion order = arrival order
        self._by_raw: dict[bytes, Transaction] = {}
        self._by_sender: dict[bytes, dict[int, Transaction]] = {}
        self._bytes = 0
        self.counters = {"added": 0, "rejected": 0, "committed": 0, "evicted_stale": 0}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._by_id

    def get(self, tx_id: bytes) -> Transaction | None:
        entry = self._by_id.get(tx_id)
        return None if entry is None else entry.tx

    def by_raw(self, raw: bytes) -> Transaction | None:
        return self._by_raw.get(raw)

    def memoized_accounts(self) -> AccountLookup:
        """An account lookup that reads each sender once: for checking one batch at one
        instant (its cache lives as long as the caller keeps it, i.e. one batch)."""
        cache: dict[bytes, dict[str, Any] | None] = {}
        lookup = self._account_of

        def get(sender: bytes) -> dict[str, Any] | None:
            if sender not in cache:
                cache[sender] = lookup(sender)
            return cache[sender]

        return get

    def check(self, tx: Transaction, *, account_of: AccountLookup | None = None) -> None:
        """Raise TxInvalid unless `tx` may enter (signature checked separately)."""
        if tx.chain_id != self.chain_id:
            raise E.TxInvalid(
                E.WRONG_CHAIN,
                f"transaction is for chain {tx.chain_id!r}, this is {self.chain_id!r}",
            )
        if tx.tx_id in self._by_id:
            raise E.TxInvalid(E.DUPLICATE, "transaction is already pending")
        account = (account_of or self._account_of)(tx.sender)
        if account is None or not account["roles"]:
            raise E.TxInvalid(
                E.NOT_PERMITTED,
                "sender is not a member of this chain; an admin must `account.grant` it first",
            )
        committed = account["nonce"]
        if tx.nonce <= committed:
            raise E.TxInvalid(
                E.STALE_NONCE, f"nonce {tx.nonce} already used; next nonce is {committed + 1}"
            )
        if tx.nonce > committed + self.nonce_window:
            raise E.TxInvalid(
                E.FUTURE_NONCE,
                f"nonce {tx.nonce} is too far ahead; "
                f"accepted up to {committed + self.nonce_window}",
            )
        pending = self._by_sender.get(tx.sender)
        if pending is not None and tx.nonce in pending:
            raise E.TxInvalid(
                E.NONCE_PENDING, f"another transaction with nonce {tx.nonce} is pending"
            )
        if len(self._by_id) >= self.max_txs or self._bytes + len(tx.raw) > self.max_bytes:
            raise E.TxInvalid(E.MEMPOOL_FULL, "mempool is full; retry after the next block")

    def add(self, tx: Transaction, *, account_of: AccountLookup | None = None) -> None:
        """Admit a signature-verified transaction, or raise TxInvalid (counted)."""
        try:
            self.check(tx, account_of=account_of)
        except E.TxInvalid:
            self.counters["rejected"] += 1
            raise
        self._by_id[tx.tx_id] = _Entry(tx, self._clock_ms())
        self._by_raw[tx.raw] = tx
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx
        self._bytes += len(tx.raw)
        self.counters["added"] += 1

    def _remove(self, tx: Transaction) -> None:
        if self._by_id.pop(tx.tx_id, None) is None:
            return
        self._by_raw.pop(tx.raw, None)
        pending = self._by_sender.get(tx.sender)
        if pending is not None:
            pending.pop(tx.nonce, None)
            if not pending:
                del self._by_sender[tx.sender]
        self._bytes -= len(tx.raw)

    def next_nonce(self, sender: bytes, committed_nonce: int) -> int:
        """The first nonce above the committed one that has no pending transaction."""
        pending = self._by_sender.get(sender, {})
        nonce = committed_nonce + 1
        for _ in range(self.nonce_window):
            if nonce not in pending:
                break
            nonce += 1
        return nonce

    def reap(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Transactions for the next block, in arrival order, each sender's nonces consecutive.

        A tx whose nonce arrived ahead of its predecessor waits (skipped) until the
        predecessor is taken, then follows it at once.
        """
        out: list[Transaction] = []
        size = 0
        expected: dict[bytes, int] = {}
        skipped: dict[bytes, set[int]] = {}
        for entry in self._by_id.values():
            if len(out) >= max_txs or size >= max_bytes:
                break
            tx = entry.tx
            sender = tx.sender
            if sender not in expected:
                account = self._account_of(sender)
                expected[sender] = (account["nonce"] if account else 0) + 1
            if tx.nonce != expected[sender]:
                if tx.nonce > expected[sender]:
                    skipped.setdefault(sender, set()).add(tx.nonce)
                continue
            run = [tx]
            waiting = skipped.get(sender, set())
            pending = self._by_sender.get(sender, {})
            while tx.nonce + len(run) in waiting:
                run.append(pending[tx.nonce + len(run)])
            for item in run:
                if len(out) >= max_txs or size + len(item.raw) > max_bytes:
                    return out
                out.append(item)
                size += len(item.raw)
                expected[sender] += 1
                waiting.discard(item.nonce)
        return out

    def has_ready(self) -> bool:
        return bool(self.reap(1, 1 << 30))

    def remove_committed(self, txs: Iterable[Transaction]) -> None:
        for tx in txs:
            if tx.tx_id in self._by_id:
                self.counters["committed"] += 1
            self._remove(tx)

    def recheck(self) -> int:
        """Drop what the chain has made invalid (used nonces, revoked senders). Returns count."""
        dropped = 0
        for sender in list(self._by_sender):
            account = self._account_of(sender)
            for nonce, tx in sorted(self._by_sender[sender].items()):
                if account is None or not account["roles"] or nonce <= account["nonce"]:
                    self._remove(tx)
                    dropped += 1
        self.counters["evicted_stale"] += dropped
        return dropped

    def older_than(self, age_ms: int, limit: int) -> list[Transaction]:
        """Up to `limit` of the oldest transactions that have waited at least `age_ms`."""
        cutoff = self._clock_ms() - age_ms
        out: list[Transaction] = []
        for entry in self._by_id.values():  # arrival order: oldest first
            if entry.added_ms > cutoff or len(out) >= limit:
                break
            out.append(entry.tx)
        return out

    def oldest_proposable_age_ms(self, scan_limit: int = PROPOSABLE_SCAN_LIMIT) -> int:
        """How long the oldest transaction that a leader could propose now has waited.

        A tx is proposable when its nonce is its sender's committed nonce + 1 (and so are
        the rest of its run, which came later). A tx behind a nonce gap is not: no leader
        can include it, so its age says nothing about censorship. Looks at no more than
        `scan_limit` of the oldest entries (0 when none of those is proposable)."""
        nonces: dict[bytes, int] = {}
        for count, entry in enumerate(self._by_id.values()):  # arrival order: oldest first
            if count >= scan_limit:
                break
            sender = entry.tx.sender
            if sender not in nonces:
                account = self._account_of(sender)
                nonces[sender] = account["nonce"] if account else 0
            if entry.tx.nonce == nonces[sender] + 1:
                return self._clock_ms() - entry.added_ms
        return 0

    def waiting(self, limit: int) -> list[tuple[Transaction, int, int]]:
        """Up to `limit` of the oldest pending transactions with their age in ms and the
        nonce their sender must use next (read-only; for `chain doctor`): a nonce above it is
        a gap no leader can propose across."""
        out: list[tuple[Transaction, int, int]] = []
        expected: dict[bytes, int] = {}
        now = self._clock_ms()
        for entry in self._by_id.values():  # arrival order: oldest first
            if len(out) >= limit:
                break
            sender = entry.tx.sender
            if sender not in expected:
                account = self._account_of(sender)
                expected[sender] = (account["nonce"] if account else 0) + 1
            out.append((entry.tx, now - entry.added_ms, expected[sender]))
        return out

    def oldest_age_ms(self) -> int:
        for entry in self._by_id.values():
            return self._clock_ms() - entry.added_ms
        return 0

    def statistics(self) -> dict[str, Any]:
        return {
            "size": len(self._by_id),
            "bytes": self._bytes,
            "senders": len(self._by_sender),
            "max_txs": self.max_txs,
            "max_bytes": self.max_bytes,
            "oldest_age_ms": self.oldest_age_ms(),
            **self.counters,
        }
