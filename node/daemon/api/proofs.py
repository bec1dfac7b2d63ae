"""JSON-RPC methods for receipts and state proofs (docs/PROTOCOL.md sections 14-16).

`receipt_get {tx_id}` returns a receipt document; `item_get`, `record_get` and `notary_get`
with `prove: true` call `prove_state` for a state proof. Both need the block after the one
they speak about (it certifies results and state); when it is not committed yet the handler
waits for it, bounded by `certify_wait_s` (a block comes at least every
max_block_interval_ms, a view change adds view_timeout_ms), then answers PROOF_NOT_READY.
Blocking work (LMDB reads, hashing, the self-check) runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from node.daemon.api import receipts
from node.daemon.api.errors import (
    EVIDENCE_BAD,
    NO_TIMESTAMP,
    NOT_FOUND,
    PROOF_NOT_READY,
    not_found,
)
from node.ledger import encoding
from node.ledger.tx import jsonable
from node.rpc.errors import RpcError
from node.rpc.params import Params

POLL_INTERVAL_S = 0.05
# Well below the RPC handler timeout (methods.HANDLER_TIMEOUT_S checks it): a client waits
# at most this long for a proof before it is told to retry.
MAX_CERTIFY_WAIT_S = 8.0

Handler = Callable[[Params, Any], Awaitable[object]]


def certify_wait_s(chain: Any) -> float:
    """How long to wait for the next block: two block intervals and a second, capped."""
    interval_s = float(chain.params.max_block_interval_ms) / 1000
    return min(MAX_CERTIFY_WAIT_S, 2 * interval_s + 1.0)


async def _wait_for_height(chain: Any, height: int, timeout_s: float) -> bool:
    """Poll the (in-memory) head until it reaches `height`; bounded by timeout_s."""
    with trio.move_on_after(timeout_s):
        while chain.store.head.height < height:
            await trio.sleep(POLL_INTERVAL_S)
        return True
    return bool(chain.store.head.height >= height)


def _not_ready(what: str, height: int) -> RpcError:
    return RpcError(
        PROOF_NOT_READY,
        f"{what} needs block {height}, which is not committed yet; retry in a few seconds",
        {"needs_height": height},
    )


def _evidence_bad(exc: Exception) -> RpcError:
    return RpcError(
        EVIDENCE_BAD,
        f"this node's stored evidence does not verify ({exc}); ask another node",
        None,
    )


def _no_timestamp(exc: Exception) -> RpcError:
    return RpcError(
        NO_TIMESTAMP,
        f"{exc}: a node with [tsa] configured records one after each checkpoint; retry later",
        None,
    )


async def build_receipt(api: Any, tx_id: bytes, *, tsa: bool = False) -> dict[str, Any]:
    chain = api.chain
    location = chain.store.get_tx_location(tx_id)
    if location is None:
        pending = tx_id in chain.mempool
        raise RpcError(
            NOT_FOUND,
            f"transaction {tx_id.hex()} is "
            + ("pending: wait for its commit (tx_wait), then ask again" if pending else "unknown"),
            {"status": "pending" if pending else "unknown"},
        )
    needed = location[0] + 1
    await _wait_for_height(chain, needed, certify_wait_s(chain))
    try:
        doc = await trio.to_thread.run_sync(
            partial(receipts.build_receipt, chain.store, chain.genesis, tx_id, tsa=tsa)
        )
    except receipts.EvidenceError as exc:
        raise _evidence_bad(exc) from exc
    except receipts.NoTimestamp as exc:
        raise _no_timestamp(exc) from exc
    if doc is None:
        raise _not_ready("the receipt", needed)
    return doc


async def prove_state(api: Any, key: bytes, *, tsa: bool = False) -> tuple[Any, dict[str, Any]]:
    """(decoded value or None, state proof document) for `key` as of the current head.

    The value and the proof come from one LMDB snapshot; the proof is then completed with
    the certified header of the next block, which commits to that snapshot's state root."""
    chain = api.chain
    snapshot = await trio.to_thread.run_sync(receipts.read_state, chain.store, key)
    await _wait_for_height(chain, snapshot.height + 1, certify_wait_s(chain))
    try:
        doc = await trio.to_thread.run_sync(
            partial(receipts.finish_state_proof, chain.store, chain.genesis, snapshot, tsa=tsa)
        )
    except receipts.EvidenceError as exc:
        raise _evidence_bad(exc) from exc
    except receipts.NoTimestamp as exc:
        raise _no_timestamp(exc) from exc
    if doc is None:
        raise _not_ready("the state proof", snapshot.height + 1)
    value = None if snapshot.value is None else encoding.unpack_fast(snapshot.value)
    return value, doc


async def state_answer(api: Any, p: Params, key: bytes, what: str) -> dict[str, Any]:
    """The value at `key` for item_get, record_get and notary_get; with `prove: true` also
    its presence or absence proof, and then an absent key is an answer, not an error."""
    if p.bool("prove", default=False):
        value, proof = await prove_state(api, key, tsa=p.bool("tsa", default=False))
        fields = {} if value is None else jsonable(value)
        return {**fields, "present": value is not None, "proof": proof}
    obj = api.chain.store.get_state_obj(key)
    if obj is None:
        raise not_found(what)
    return dict(jsonable(obj))


def proof_methods(api: Any) -> dict[str, tuple[Handler, tuple[str, ...]]]:
    async def receipt_get(p: Params, ctx: Any) -> object:
        tsa = p.bool("tsa", default=False)
        return await build_receipt(api, p.hex_bytes("tx_id", length=32), tsa=tsa)

    return {"receipt_get": (receipt_get, ("tx_id", "tsa"))}
