"""The RPC handlers for receipts and proofs, over a Store: they wait (bounded) for the block
that certifies, answer absence as a fact with `prove: true`, and say what to do otherwise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio
from proofkit import CertifiedChain

from node.daemon.api import proofs as api_proofs
from node.daemon.api.methods import Api
from node.proofs import verify
from node.rpc.errors import RpcError
from node.rpc.params import Params


def make_api(chain: CertifiedChain, pending: set[bytes] | None = None) -> Api:
    fake_chain = SimpleNamespace(
        store=chain.store,
        genesis=chain.genesis,
        params=chain.genesis.consensus,
        mempool=pending or set(),
        halted=None,
    )
    return _api(fake_chain)


def _api(chain: Any) -> Api:
    async def no_submit(raws: Any) -> Any:
        raise AssertionError("not used")

    return Api(chain, submit=no_submit, node_status=dict, peers=list)


def params(method: str, value: dict[str, Any]) -> Params:
    return Params(method, value)


async def commit_later(chain: CertifiedChain, delay_s: float) -> None:
    await trio.sleep(delay_s)
    chain.commit([])


async def test_receipt_waits_for_the_certifying_block(chain: CertifiedChain) -> None:
    block = chain.commit([chain.tx("maker", "item.register", {"item": "p"})])
    api = make_api(chain)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit_later, chain, 0.2)
        doc = await api_proofs.build_receipt(api, block.txs[0].tx_id)
    assert verify.verify_document(doc, chain.genesis).statement["height"] == 1


async def test_receipt_not_ready_after_the_bounded_wait(
    chain: CertifiedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_proofs, "MAX_CERTIFY_WAIT_S", 0.2)
    block = chain.commit([chain.tx("maker", "item.register", {"item": "p"})])
    with pytest.raises(RpcError) as info:
        await api_proofs.build_receipt(make_api(chain), block.txs[0].tx_id)
    assert info.value.code == api_proofs.PROOF_NOT_READY
    assert info.value.data == {"needs_height": 2}
    assert "retry" in info.value.message


async def test_unknown_and_pending_transactions(chain: CertifiedChain) -> None:
    with pytest.raises(RpcError) as info:
        await api_proofs.build_receipt(make_api(chain), b"\x01" * 32)
    assert info.value.code == 1020 and info.value.data == {"status": "unknown"}
    with pytest.raises(RpcError) as info:
        await api_proofs.build_receipt(make_api(chain, {b"\x02" * 32}), b"\x02" * 32)
    assert info.value.data == {"status": "pending"} and "tx_wait" in info.value.message


async def test_item_get_with_and_without_proof(busy_chain: CertifiedChain) -> None:
    api = make_api(busy_chain)
    plain = await api.item_get(params("item_get", {"item": "pallet-1"}), None)
    assert "proof" not in plain and plain["steps"] == 5
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit_later, busy_chain, 0.1)
        proven = await api.item_get(params("item_get", {"item": "pallet-1", "prove": True}), None)
    assert proven["present"] is True
    assert {k: v for k, v in proven.items() if k not in ("proof", "present")} == plain
    facts = verify.verify_document(proven["proof"], busy_chain.genesis)
    assert facts.value["custodian"].hex() == plain["custodian"]


async def test_absent_keys_are_answers_only_with_a_proof(busy_chain: CertifiedChain) -> None:
    api = make_api(busy_chain)
    with pytest.raises(RpcError) as info:
        await api.notary_get(params("notary_get", {"digest": "ab" * 32}), None)
    assert info.value.code == 1020
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit_later, busy_chain, 0.1)
        answer = await api.notary_get(
            params("notary_get", {"digest": "ab" * 32, "prove": True}), None
        )
    assert answer == {"digest": "ab" * 32, "present": False, "proof": answer["proof"]}
    facts = verify.verify_document(answer["proof"], busy_chain.genesis)
    assert facts.value is None and facts.statement["subject"]["digest"] == "ab" * 32


async def test_record_get_proves_the_value_it_returns(busy_chain: CertifiedChain) -> None:
    api = make_api(busy_chain)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit_later, busy_chain, 0.1)
        answer = await api.record_get(
            params("record_get", {"ns": "spec", "key": "p1", "prove": True, "history": True}),
            None,
        )
    assert answer["value"] == {"w": 12} and answer["present"] is True
    assert len(answer["history"]) == 1
    facts = verify.verify_document(answer["proof"], busy_chain.genesis)
    assert facts.value["value"] == {"w": 12}


def test_methods_declare_prove() -> None:
    names = _api(None).methods()
    assert names["receipt_get"][1] == ("tx_id", "tsa")
    for method in ("item_get", "record_get", "notary_get", "account_get"):
        assert "prove" in names[method][1] and "tsa" in names[method][1]
