"""The JSON-RPC methods of a node (documented in docs/RPC.md; error codes in errors.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from node.daemon.api.errors import HALTED, not_found, tx_error
from node.daemon.api.governance import GovernanceApi
from node.daemon.api.proofs import MAX_CERTIFY_WAIT_S, proof_methods, prove_state, state_answer
from node.daemon.api.views import certificate_json
from node.daemon.chain import Chain, SubmitOutcome
from node.ledger import apps
from node.ledger import errors as E
from node.ledger.accounts import ROTATED, acct_key, resolve
from node.ledger.tx import jsonable
from node.rpc.errors import RpcError
from node.rpc.params import Params

MAX_BATCH_TXS = 5000
MAX_WAIT_S = 120.0  # the longest tx_wait
# The RPC server cancels a handler after this long: it must exceed every wait a method makes.
HANDLER_TIMEOUT_S = 130.0
if not (MAX_WAIT_S < HANDLER_TIMEOUT_S and MAX_CERTIFY_WAIT_S < HANDLER_TIMEOUT_S):
    raise RuntimeError("HANDLER_TIMEOUT_S must exceed tx_wait's and the proofs' longest waits")

Handler = Callable[[Params, Any], Awaitable[object]]
Submit = Callable[[Sequence[bytes]], Awaitable[list[SubmitOutcome]]]
Report = Callable[[], Any]


class Api:
    """The methods, each reading only what it is given: the chain (store, mempool, genesis),
    how to submit (admission, gossip, wake the proposer), and the node's status reports."""

    def __init__(self, chain: Chain, *, submit: Submit, node_status: Report, peers: Report) -> None:
        self.chain = chain
        self._submit = submit
        self._node_status = node_status
        self._peers = peers

    def methods(self) -> dict[str, tuple[Handler, tuple[str, ...]]]:
        return {
            **proof_methods(self),
            **GovernanceApi(self.chain).methods(),
            "node_status": (self.node_status, ()),
            "peers_list": (self.peers_list, ()),
            "mempool_status": (self.mempool_status, ()),
            "tx_submit": (self.tx_submit, ("tx",)),
            "tx_submit_batch": (self.tx_submit_batch, ("txs",)),
            "tx_get": (self.tx_get, ("tx_id",)),
            "tx_wait": (self.tx_wait, ("tx_id", "timeout_ms")),
            "block_get": (self.block_get, ("height", "hash", "txs")),
            "account_get": (self.account_get, ("account", "prove", "tsa")),
            "record_get": (self.record_get, ("ns", "key", "history", "prove", "tsa")),
            "item_get": (self.item_get, ("item", "prove", "tsa")),
            "item_history": (self.item_history, ("item", "start", "limit")),
            "notary_get": (self.notary_get, ("digest", "prove", "tsa")),
        }

    def _check_running(self) -> None:
        if self.chain.halted:
            raise RpcError(HALTED, f"node halted: {self.chain.halted}")

    # --- node ----------------------------------------------------------------------------------

    async def node_status(self, p: Params, ctx: Any) -> object:
        return self._node_status()

    async def peers_list(self, p: Params, ctx: Any) -> object:
        return self._peers()

    async def mempool_status(self, p: Params, ctx: Any) -> object:
        return self.chain.mempool.statistics()

    # --- transactions --------------------------------------------------------------------------

    async def tx_submit(self, p: Params, ctx: Any) -> object:
        self._check_running()
        raw = p.hex_bytes("tx", max_length=self.chain.params.max_tx_bytes * 2)
        (outcome,) = await self._submit([raw])
        if outcome.error is not None and not (outcome.error.code == E.DUPLICATE and outcome.tx_id):
            raise tx_error(outcome.error)
        return {"tx_id": _admitted_id(outcome).hex(), "status": "pending"}

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
        outcomes = await self._submit(raws)
        out: list[dict[str, Any]] = []
        for o in outcomes:
            if o.error is None:
                out.append({"tx_id": _admitted_id(o).hex(), "status": "pending"})
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
                status["wire"] = tx.raw.hex()  # the signed bytes, exactly as in the block
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
            "certificate": certificate_json(self.chain.genesis, cert),
            # The bytes a verifier hashes and checks (docs/PROTOCOL.md): the canonical header
            # and the certificate as stored with the block.
            "header_bytes": block.header.encode().hex(),
            "certificate_bytes": None if cert is None else cert.hex(),
        }
        if with_txs:
            out["txs"] = [tx.to_json() for tx in block.txs]
            out["txs_wire"] = [tx.raw.hex() for tx in block.txs]
        return out

    # --- state -----------------------------------------------------------------------------------

    async def account_get(self, p: Params, ctx: Any) -> object:
        account = p.hex_bytes("account", length=32)
        found = resolve(self.chain.store.state_reader().get, account)
        if found == ROTATED:
            raise not_found(f"account key {account.hex()} (rotated away: use the new key)")
        if isinstance(found, str):
            raise not_found(f"account {account.hex()}")
        account_id, obj = found
        out = {
            "account": account.hex(),
            **jsonable(obj),
            "id": account_id.hex(),  # an account keeps its first key as id across rotations
            "key": account.hex(),
            "next_nonce": self.chain.mempool.next_nonce(account, obj["nonce"]),
        }
        if p.bool("prove", default=False):
            # The account record lives under its id (acct/<id>); a rotated-to key is an
            # alias (acct/<key> -> id), proven too so that the key is tied to the id.
            tsa = p.bool("tsa", default=False)
            value, proof = await prove_state(self, acct_key(account_id), tsa=tsa)
            out["present"] = value is not None
            out["proof"] = proof
            if account_id != account:
                _, alias = await prove_state(self, acct_key(account), tsa=tsa)
                out["alias_proof"] = alias
        return out

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


def _admitted_id(outcome: SubmitOutcome) -> bytes:
    """An admitted (or already pending) transaction always has its id: checked, not assumed."""
    if outcome.tx_id is None:
        raise RuntimeError("admission returned no tx id for a transaction it took")
    return outcome.tx_id
