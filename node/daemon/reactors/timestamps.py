"""RFC 3161 timestamps of checkpoints: outside time for the chain (optional, [tsa] in config).

After each checkpoint block (height a multiple of the genesis checkpoint_interval) the node
asks the configured time-stamping authority for a token over that block (RFC 3161 over
HTTP: POST application/timestamp-query, the imprint being the block hash) and records the
response on chain with a `checkpoint.timestamp` transaction signed by the configured
account key. The chain keeps the first response per block (state key tsa/<height>); a
receipt with `tsa: true` carries it and the headers that link the receipt's block to it.

Bounded: one request at a time, a queue of at most MAX_PENDING heights (the oldest dropped:
a later checkpoint covers every block before it), each request with a deadline and at most
MAX_ATTEMPTS tries. A slow or absent authority costs this task only; blocks never wait.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from node.daemon.chain import Chain
from node.daemon.store import Committed
from node.ledger import encoding
from node.ledger.accounts import account_for_key
from node.ledger.crypto import SigningKey
from node.ledger.timestamps import MAX_RESPONSE_BYTES, request_for_header, tsa_key
from node.ledger.tx import make_tx

log = logging.getLogger("chain.tsa")

MAX_PENDING = 8
MAX_ATTEMPTS = 3
RETRY_S = 2.0
Submit = Callable[[Sequence[bytes]], Awaitable[list[Any]]]


def fetch_token(url: str, query: bytes, timeout_s: float) -> bytes:
    """One RFC 3161 request over HTTP (blocking: run it in a worker thread)."""
    request = urllib.request.Request(
        url,
        data=query,
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        body: bytes = answer.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ValueError(f"the authority answered more than {MAX_RESPONSE_BYTES} bytes")
    return body


class TimestampReactor:
    def __init__(
        self,
        chain: Chain,
        *,
        url: str,
        key: SigningKey,
        submit: Submit,
        timeout_s: float = 10.0,
        fetch: Callable[[str, bytes, float], bytes] = fetch_token,
    ) -> None:
        self._chain = chain
        self._url = url
        self._key = key
        self._submit = submit
        self._timeout_s = timeout_s
        self._fetch = fetch
        self._interval = chain.genesis.consensus.checkpoint_interval
        self._pending: deque[int] = deque(maxlen=MAX_PENDING)
        self._wake = trio.Event()
        self.recorded: list[int] = []  # heights whose token this node submitted (for tests)

    def on_commit(self, committed: Committed) -> None:
        height = committed.head.height
        if height % self._interval == 0:
            self._pending.append(height)
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._pending:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            height = self._pending.popleft()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    await self._stamp(height)
                    break
                except (OSError, ValueError, urllib.error.URLError) as exc:
                    log.warning(
                        "timestamp of block %d from %s failed (try %d of %d): %s",
                        height,
                        self._url,
                        attempt,
                        MAX_ATTEMPTS,
                        exc,
                    )
                    await trio.sleep(RETRY_S)

    async def _stamp(self, height: int) -> None:
        store = self._chain.store
        if store.get_state(tsa_key(height)) is not None:
            return  # another node recorded one first
        payload = store.get_block(height)
        if payload is None:
            return
        header_bytes = encoding.pack(encoding.unpack_fast(payload)[0])
        query = request_for_header(header_bytes)
        response = await trio.to_thread.run_sync(self._fetch, self._url, query, self._timeout_s)
        account = account_for_key(store.get_state, self._key.public_key)
        if account is None:
            raise ValueError("the [tsa] key_file's key has no account: grant it one")
        nonce = self._chain.mempool.next_nonce(self._key.public_key, account["nonce"])
        tx = make_tx(
            self._key,
            self._chain.genesis.chain_id,
            nonce,
            "checkpoint.timestamp",
            {"height": height, "response": response},
        )
        (outcome,) = await self._submit([tx.raw])
        if outcome.error is not None:
            raise ValueError(f"the node refused the timestamp tx: {outcome.error.message}")
        self.recorded.append(height)
        log.info("recorded an RFC 3161 timestamp of block %d (tx %s)", height, tx.tx_id.hex())
