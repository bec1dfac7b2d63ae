from __future__ import annotations

import pytest
from support.ledger import Account, DictState

from node.daemon.mempool import Mempool
from node.ledger import encoding
from node.ledger import errors as E
from node.ledger.apps import acct_key


def make_pool(state: DictState, **kw: int) -> Mempool:
    def account_of(pub: bytes) -> dict | None:
        raw = state.get(acct_key(pub))
        return None if raw is None else encoding.unpack(raw)

    return Mempool(chain_id="test-chain", account_of=account_of, **kw)


def reg(a: Account, item: str, nonce: int | None = None):
    return a.tx("item.register", {"item": item}, nonce=nonce)


def test_admission_rules(state: DictState, accounts: dict[str, Account]) -> None:
    pool = make_pool(state, nonce_window=5)
    maker = accounts["maker"]
    tx1 = reg(maker, "a")
    pool.add(tx1)
    cases = [
        (tx1, E.DUPLICATE),
        (reg(accounts["outsider"], "b"), E.NOT_PERMITTED),
        (reg(maker, "c", nonce=1), E.NONCE_PENDING),
        (reg(maker, "d", nonce=6), E.FUTURE_NONCE),
    ]
    for tx, code in cases:
        with pytest.raises(E.TxInvalid) as info:
            pool.add(tx)
        assert info.value.code == code
    from node.ledger.tx import make_tx

    other_chain = make_tx(maker.key, "other", 2, "item.register", {"item": "x"})
    with pytest.raises(E.TxInvalid) as info:
        pool.add(other_chain)
    assert info.value.code == E.WRONG_CHAIN
    assert len(pool) == 1 and pool.counters["rejected"] == 5


def test_bounded_in_count_and_bytes(state: DictState, accounts: dict[str, Account]) -> None:
    pool = make_pool(state, max_txs=3)
    maker = accounts["maker"]
    for i in range(3):
        pool.add(reg(maker, f"i{i}"))
    with pytest.raises(E.TxInvalid) as info:
        pool.add(reg(maker, "overflow"))
    assert info.value.code == E.MEMPOOL_FULL
    small = make_pool(state, max_bytes=500)
    shipper = accounts["shipper"]
    small.add(reg(shipper, "x" * 10))
    with pytest.raises(E.TxInvalid):
        for i in range(10):
            small.add(reg(shipper, f"y{i}"))
    assert small.statistics()["bytes"] <= 500


def test_reap_orders_nonces_whatever_the_arrival(
    state: DictState, accounts: dict[str, Account]
) -> None:
    pool = make_pool(state)
    maker, shipper = accounts["maker"], accounts["shipper"]
    t1, t2, t3 = reg(maker, "a"), reg(maker, "b"), reg(maker, "c")
    s1 = reg(shipper, "s")
    for tx in (t3, s1, t2):  # t1 missing: maker's run cannot start
        pool.add(tx)
    assert [t.tx_id for t in pool.reap(100, 1 << 20)] == [s1.tx_id]
    pool.add(t1)
    reaped = pool.reap(100, 1 << 20)
    assert [t.nonce for t in reaped if t.sender == maker.pub] == [1, 2, 3]
    assert len(pool.reap(2, 1 << 20)) == 2


def test_commit_removes_and_recheck_drops_stale(
    state: DictState, accounts: dict[str, Account]
) -> None:
    pool = make_pool(state)
    maker = accounts["maker"]
    txs = [reg(maker, f"i{i}") for i in range(4)]
    for tx in txs:
        pool.add(tx)
    pool.remove_committed(txs[:2])
    assert len(pool) == 2
    # The chain moved the nonce past tx 3 (e.g. the same nonce was used via another node).
    acct = encoding.unpack(state.get(acct_key(maker.pub)))
    state.data[acct_key(maker.pub)] = encoding.pack({**acct, "nonce": 3})
    assert pool.recheck() == 1
    assert [t.nonce for t in pool.reap(10, 1 << 20)] == [4]
    assert pool.next_nonce(maker.pub, 3) == 5


def test_older_than_for_regossip(state: DictState, accounts: dict[str, Account]) -> None:
    now = [1000]
    pool = make_pool(state)
    pool._clock_ms = lambda: now[0]
    maker = accounts["maker"]
    first = reg(maker, "a")
    pool.add(first)
    now[0] += 6000
    pool.add(reg(maker, "b"))
    assert pool.older_than(5000, 10) == [first]
    assert pool.older_than(5000, 0) == []
    assert pool.oldest_age_ms() == 6000


def test_oldest_proposable_age_ignores_nonce_gaps(
    state: DictState, accounts: dict[str, Account]
) -> None:
    """A tx behind a nonce gap cannot be proposed by any leader: it is no sign of censorship."""
    now = [1000]
    pool = make_pool(state)
    pool._clock_ms = lambda: now[0]  # type: ignore[method-assign]
    maker, shipper = accounts["maker"], accounts["shipper"]
    pool.add(reg(maker, "gap", nonce=3))  # nonces 1 and 2 missing
    now[0] = 5000
    assert pool.oldest_age_ms() == 4000
    assert pool.oldest_proposable_age_ms() == 0
    pool.add(reg(shipper, "ok", nonce=1))
    now[0] = 6000
    assert pool.oldest_proposable_age_ms() == 1000
    # The gap fills: the run 1, 2, 3 became proposable when nonce 1 arrived.
    pool.add(reg(maker, "one", nonce=1))
    pool.add(reg(maker, "two", nonce=2))
    now[0] = 9000
    assert pool.oldest_proposable_age_ms() == 4000  # shipper's, from 5000
    assert pool.oldest_proposable_age_ms(scan_limit=1) == 0  # only the gap tx looked at
