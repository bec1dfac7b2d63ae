"""The JSON-RPC methods of a node (documented in docs/RPC.md).

Application error codes live outside the JSON-RPC reserved band (-32768..-32000):
1001-1010 transaction refusals, 1020 not found, 1030 node halted, 1040 bad request content.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from node.daemon.api.proofs import state_answer
from node.ledger import apps
from node.ledger import errors as E
from node.ledger.tx import jsonable
from node.rpc.errors import RpcError
from node.rpc.params import Params

if TYPE_CHECKING:
    from node.daemon.node import Node

TX_ERROR_CODES = {
    E.BAD_SIGNATURE: 1001,
    E.WRONG_CHAIN: 1002,
    E.STALE_NONCE: 1003,
    E.FUTURE_NONCE: 1004,
    E.DUPLICATE: 1005,
    E.TOO_LARGE: 1006,
    E.MALFORMED: 1007,
    E.BAD_ARGS: 1007,
    E.UNKNOWN_TYPE: 1007,
    E.NOT_PERMITTED: 1008,
    E.MEMPOOL_FULL: 1009,
    E.NONCE_PENDING: 1010,
}
NOT_FOUND = 1020
HALTED = 1030
MAX_BATCH_TXS = 5000
MAX_WAIT_S = 120.0

Handler = Callable[[Params, Any], Awaitable[object]]


def tx_error(exc: E.TxInvalid) -> RpcError:
    return RpcError(
        TX_ERROR_CODES.get(exc.code, 1007),
        f"transaction refused: {exc.message}",
        {"reason": exc.code},
    )


def not_found(what: str) -> RpcError:
    return RpcError(NOT_FOUND, f"{what} not found", None)


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def chain(self) -> Any:
        return self.node.chain

    def methods(self) -> dict[str, tuple[Handler, tuple[str, ...]]]:
        from node.daemon.api.proofs import proof_methods

        return {
            **proof_methods(self),
            "node_status": (self.node_status, ()),
            "validators_list": (self.validators_list, ()),
            "peers_list": (self.peers_list, ()),
            "mempool_status": (self.mempool_status, ()),
            "tx_submit": (self.tx_submit, ("tx",)),
            "tx_submit_batch": (self.tx_submit_batch, ("txs",)),
            "tx_get": (self.tx_get, ("tx_id",)),
            "tx_wait": (self.tx_wait, ("tx_id", "timeout_ms")),
            "block_get": (self.block_get, ("height", "hash", "txs")),
            "account_get": (self.account_get, ("account",)),
            "record_get": (self.record_get, ("ns", "key", "history", "prove")),
            "item_get": (self.item_get, ("item", "prove")),
            "item_history": (self.item_history, ("item", "start", "limit")),
            "notary_get": (self.notary_get, ("digest", "prove")),
        }

    def _check_running(self) -> None:
        if self.chain.halted:
            raise RpcError(HALTED, f"node halted: {self.chain.halted}")

    # --- node ----------------------------------------------------------------------------------

    async def node_status(self, p: Params, ctx: Any) -> object:
        return self.node.status()

    async def validators_list(self, p: Params, ctx: Any) -> object:
        g = self.chain.genesis
        return [
            {"index": i, "name": v.name, "public_key": v.public_key.hex(), "address": v.address}
            for i, v in enumerate(g.validators)
        ]

    async def peers_list(self, p: Params, ctx: Any) -> object:
        return self.node.peers()

    async def mempool_status(self, p: Params, ctx: Any) -> object:
        return self.chain.mempool.statistics()

    # --- transactions --------------------------------------------------------------------------

    async def tx_submit(self, p: Params, ctx: Any) -> object:
        self._check_running()
        raw = p.hex_bytes("tx", max_length=self.chain.params.max_tx_bytes * 2)
        (outcome,) = await self.node.submit([raw])
        if outcome.error is not None and not (outcome.error.code == E.DUPLICATE and outcome.tx_id):
            raise tx_error(outcome.error)
        return {"tx_id": outcome.tx_id.hex(), "status": "pending"}

    async def tx_submit_batch(self, p: Params, ctx: Any) -> object:
        """Many transactions in one call: one round trip, one batch of signature checks."""
        self._check_running()
        items = p.list("txs", max_length=MAX_BATCH_TXS)
        raws: list[bytes] = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise p.fail(f"txs[{i}] must be a hex string")
            try:
                raws.append(bytes.fromhex(item))
            except ValueError as exc:
                raise p.fail(f"txs[{i}] is not hex") from exc
        outcomes = await self.node.submit(raws)
        out: list[dict[str, Any]] = []
        for o in outcomes:
            if o.error is None:
                out.append({"tx_id": o.tx_id.hex(), "status": "pending"})
            else:
                err = tx_error(o.error)
                out.append(
                    {
                        "tx_id": o.tx_id.hex() if o.tx_id else None,
                        "error": {"code": err.code, "message": err.message, "reason": o.error.code},
                    }
                )
        return out

    def _tx_status(self, tx_id: bytes) -> dict[str, Any]:
        store = self.chain.store
        loc = store.get_tx_location(tx_id)
        if loc is not None:
            height, index = loc
            result = store.get_result(height, index) or {}
            return {
                "tx_id": tx_id.hex(),
                "status": "committed" if result.get("ok") else "failed",
                "height": height,
                "index": index,
                "result": jsonable({k: v for k, v in result.items() if k != "tx_id"}),
            }
        tx = self.chain.mempool.get(tx_id)
        if tx is not None:
            return {"tx_id": tx_id.hex(), "status": "pending", "tx": tx.to_json()}
        return {"tx_id": tx_id.hex(), "status": "unknown"}

    async def tx_get(self, p: Params, ctx: Any) -> object:
        tx_id = p.hex_bytes("tx_id", length=32)
        status = self._tx_status(tx_id)
        if status["status"] in ("committed", "failed"):
            # One tx decoded, not its whole block (tens of ms for a 2,000-tx block).
            tx = self.chain.committed_tx(status["height"], status["index"])
            if tx is not None:
                status["tx"] = tx.to_json()
        return status

    async def tx_wait(self, p: Params, ctx: Any) -> object:
        tx_id = p.hex_bytes("tx_id", length=32)
        timeout_ms = p.int("timeout_ms", default=30_000, min=0, max=int(MAX_WAIT_S * 1000))
        await self.chain.wait_committed(tx_id, timeout_ms / 1000)
        return self._tx_status(tx_id)

    # --- blocks ----------------------------------------------------------------------------------

    async def block_get(self, p: Params, ctx: Any) -> object:
        store = self.chain.store
        height = p.int("height", default=None, min=0)
        block_hash = p.hex_bytes("hash", default=None, length=32)
        with_txs = p.bool("txs", default=False)
        if block_hash is not None:
            height = store.get_height_by_hash(block_hash)
            if height is None:
                raise not_found(f"block {block_hash.hex()}")
        if height is None:
            height = store.head.height
        if height == 0:
            return {"height": 0, "hash": self.chain.genesis.hash.hex(), "genesis": True}
        payload = store.get_block(height)
        if payload is None:
            raise not_found(f"block at height {height} (head is {store.head.height})")
        block = self.chain.decode_payload(payload)
        cert = store.get_certificate(height)
        out: dict[str, Any] = {
            "height": height,
            "hash": block.hash.hex(),
            "header": block.header.to_json(),
            "tx_ids": [tx.tx_id.hex() for tx in block.txs],
            "certificate": self.node.certificate_json(cert),
        }
        if with_txs:
            out["txs"] = [tx.to_json() for tx in block.txs]
        return out

    # --- state -----------------------------------------------------------------------------------

    async def account_get(self, p: Params, ctx: Any) -> object:
        account = p.hex_bytes("account", length=32)
        obj = self.chain.account(account)
        if obj is None:
            raise not_found(f"account {account.hex()}")
        return {
            "account": account.hex(),
            **jsonable(obj),
            "next_nonce": self.chain.mempool.next_nonce(account, obj["nonce"]),
        }

    async def record_get(self, p: Params, ctx: Any) -> object:
        ns = p.str("ns", min_length=1, max_length=64)
        key = p.str("key", min_length=1, max_length=256)
        out = await state_answer(self, p, apps.record_key(ns, key), f"record {ns}/{key}")
        out = {"ns": ns, "key": key, **out}
        if p.bool("history", default=False):
            out["history"] = jsonable(self.chain.store.record_history(ns, key))
        return out

    async def item_get(self, p: Params, ctx: Any) -> object:
        item = p.str("item", min_length=1, max_length=128)
        return {"item": item, **await state_answer(self, p, apps.item_key(item), f"item {item!r}")}

    async def item_history(self, p: Params, ctx: Any) -> object:
        item = p.str("item", min_length=1, max_length=128)
        start = p.int("start", default=0, min=0)
        limit = p.int("limit", default=1000, min=1, max=10_000)
        obj = self.chain.store.get_state_obj(apps.item_key(item))
        if obj is None:
            raise not_found(f"item {item!r}")
        steps = self.chain.store.item_history(item, start, limit)
        return {"item": item, "custodian": obj["custodian"].hex(), "steps": jsonable(steps)}

    async def notary_get(self, p: Params, ctx: Any) -> object:
        digest = p.hex_bytes("digest", length=32)
        what = f"anchor for digest {digest.hex()}"
        return {
            "digest": digest.hex(),
            **await state_answer(self, p, apps.notary_key(digest), what),
        }


def now_ms() -> int:
    return int(time.time() * 1000)
