"""Each transaction type's rules, allowed and refused, executed deterministically."""

from __future__ import annotations

import pytest
from support.ledger import CHAIN, Account, DictState

from node.ledger import apps
from node.ledger.block import BlockHeader, build_block, tx_root_of
from node.ledger.errors import BlockInvalid
from node.ledger.tx import Transaction


def run(state: DictState, txs: list[Transaction], height: int = 1) -> list[apps.TxResult]:
    header = BlockHeader(
        1,
        CHAIN,
        height,
        b"\0" * 32,
        0,
        0,
        1000 + height,
        tx_root_of(txs),
        len(txs),
        b"\0" * 32,
        b"\0" * 32,
    )
    block = build_block(header, txs)
    apps.check_block_txs(
        block,
        state,
        chain_id=CHAIN,
        signature_ok=lambda t: t.signature_ok(),
        tx_known=lambda _: False,
    )
    outcome = apps.execute_block(block, state)
    state.apply(outcome.writes)
    return outcome.results


def codes(results: list[apps.TxResult]) -> list[str]:
    return [r.code for r in results]


def test_item_lifecycle(state: DictState, accounts: dict[str, Account]) -> None:
    maker, shipper, insp = accounts["maker"], accounts["shipper"], accounts["inspector"]
    results = run(
        state,
        [
            maker.tx("item.register", {"item": "p1", "meta": {"sku": "A"}}),
            maker.tx("item.event", {"item": "p1", "kind": "packed", "location": "Lyon"}),
            shipper.tx("item.transfer", {"item": "p1", "to": shipper.pub}),  # not custodian
            maker.tx("item.transfer", {"item": "p1", "to": shipper.pub}),
            insp.tx("item.event", {"item": "p1", "kind": "inspected", "digest": b"\x05" * 32}),
            maker.tx("item.event", {"item": "p1", "kind": "late"}),  # no longer custodian
            maker.tx("item.transfer", {"item": "ghost", "to": shipper.pub}),
            maker.tx("item.register", {"item": "p1"}),
            maker.tx("item.transfer", {"item": "p1", "to": accounts["outsider"].pub}),
        ],
    )
    assert codes(results) == [
        "ok",
        "ok",
        "not_custodian",
        "ok",
        "ok",
        "not_custodian",
        "unknown_item",
        "item_exists",
        "not_custodian",
    ]
    item = state.obj(apps.item_key("p1"))
    assert item["custodian"] == shipper.pub and item["steps"] == 4
    # Nonces advanced for refused transactions too (they are in the block).
    assert state.obj(apps.acct_key(maker.pub))["nonce"] == 7


def test_transfer_to_unknown_account_refused(
    state: DictState, accounts: dict[str, Account]
) -> None:
    maker = accounts["maker"]
    results = run(
        state,
        [
            maker.tx("item.register", {"item": "p2"}),
            maker.tx("item.transfer", {"item": "p2", "to": accounts["outsider"].pub}),
        ],
    )
    assert codes(results) == ["ok", "unknown_account"]


def test_parents_must_be_held(state: DictState, accounts: dict[str, Account]) -> None:
    maker, shipper = accounts["maker"], accounts["shipper"]
    results = run(
        state,
        [
            maker.tx("item.register", {"item": "part"}),
            shipper.tx("item.register", {"item": "kit", "parents": ["part"]}),
            maker.tx("item.register", {"item": "kit", "parents": ["part"]}),
            maker.tx("item.register", {"item": "kit2", "parents": ["nope"]}),
        ],
    )
    assert codes(results) == ["ok", "not_custodian", "ok", "unknown_item"]


def test_record_owner_and_history(state: DictState, accounts: dict[str, Account]) -> None:
    maker, shipper = accounts["maker"], accounts["shipper"]
    results = run(
        state,
        [
            maker.tx("record.put", {"ns": "specs", "key": "k", "value": "v1"}),
            shipper.tx("record.put", {"ns": "specs", "key": "k", "value": "hijack"}),
            maker.tx("record.put", {"ns": "specs", "key": "k", "value": "v2"}),
        ],
    )
    assert codes(results) == ["ok", "not_owner", "ok"]
    rec = state.obj(apps.record_key("specs", "k"))
    assert rec["value"] == "v2" and rec["version"] == 2 and rec["owner"] == maker.pub


def test_notary_first_anchor_wins(state: DictState, accounts: dict[str, Account]) -> None:
    maker, shipper = accounts["maker"], accounts["shipper"]
    d = b"\x09" * 32
    run(state, [maker.tx("notary.anchor", {"digest": d, "meta": {"name": "x.pdf"}})], height=1)
    results = run(state, [shipper.tx("notary.anchor", {"digest": d})], height=2)
    assert results[0].code == "already_anchored"
    assert results[0].data["original_height"] == 1
    assert results[0].data["original_submitter"] == maker.pub


def test_accounts_grant_revoke(state: DictState, accounts: dict[str, Account]) -> None:
    admin, maker, outsider = accounts["admin"], accounts["maker"], accounts["outsider"]
    results = run(
        state,
        [
            maker.tx("account.grant", {"account": outsider.pub, "roles": ["member"]}),
            admin.tx("account.grant", {"account": outsider.pub, "roles": ["member"], "name": "o"}),
            admin.tx("account.revoke", {"account": maker.pub}),
            admin.tx("account.revoke", {"account": admin.pub}),
        ],
    )
    assert codes(results) == ["not_permitted", "ok", "ok", "not_permitted"]
    assert state.obj(apps.acct_key(outsider.pub))["roles"] == ["member"]
    # The revoked maker's next transaction is kept with a failure, consuming its nonce.
    results = run(
        state,
        [maker.tx("item.register", {"item": "z"}), outsider.tx("item.register", {"item": "z"})],
        height=2,
    )
    assert codes(results) == ["not_permitted", "ok"]


def test_structural_block_checks(state: DictState, accounts: dict[str, Account]) -> None:
    maker, outsider = accounts["maker"], accounts["outsider"]
    with pytest.raises(BlockInvalid, match="nonce"):
        run(state, [maker.tx("item.register", {"item": "a"}, nonce=2)])
    with pytest.raises(BlockInvalid, match="no account"):
        run(state, [outsider.tx("item.register", {"item": "a"})])
    tx = maker.tx("item.register", {"item": "a"}, nonce=1)
    with pytest.raises(BlockInvalid, match="already"):
        run(state, [tx, tx])


def test_execution_is_deterministic(accounts: dict[str, Account]) -> None:
    from node.ledger.apps import genesis_writes

    def fresh() -> DictState:
        return DictState(genesis_writes([(a.pub, n, ("member",)) for n, a in accounts.items()]))

    txs = []
    for acct in accounts.values():
        acct.nonce = 0
    for i in range(30):
        a = list(accounts.values())[i % 5]
        txs.append(a.tx("item.register", {"item": f"i{i % 7}", "meta": {"n": i}}))
    s1, s2 = fresh(), fresh()
    r1, r2 = run(s1, txs), run(s2, txs)
    assert [r.encode() for r in r1] == [r.encode() for r in r2]
    assert s1.data == s2.data
