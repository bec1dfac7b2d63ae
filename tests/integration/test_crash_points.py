"""Named crash points (CometBFT's FAIL_TEST_INDEX idea) on a 4-validator testnet under load:
a validator exits at each point (node/daemon/faults.py), is restarted, and then no
transaction that was answered committed is lost, no validator signed two conflicting votes,
and every node agrees on every block hash."""

from __future__ import annotations

import time

import pytest
from support.load import Load
from support.testnet import Testnet

from node.daemon.faults import CRASH_EXIT

VALIDATORS = 4
VICTIM = 2  # a backup: the crash must not need a view change to be survived
CRASH_BOUND_S = 60.0
CATCH_UP_BOUND_S = 60.0


@pytest.fixture(scope="module")
def net() -> Testnet:
    with Testnet(validators=VALIDATORS) as t:
        yield t  # type: ignore[misc]


def wait_exit(net: Testnet, node: int, bound_s: float) -> int:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        failed = net.failed()
        if net.names[node] in failed:
            return failed[net.names[node]]
        time.sleep(0.05)
    raise AssertionError(f"node{node} did not reach its crash point in {bound_s}s")


def height(net: Testnet, node: int) -> int:
    st = net.status(node)
    return -1 if st is None else int(st["height"])


def agree(net: Testnet, load: Load) -> None:
    nodes = list(range(VALIDATORS))
    target = max(height(net, i) for i in nodes)
    for i in nodes:
        net.wait_height(i, target, timeout_s=CATCH_UP_BOUND_S)
    reference: list[str] = []
    for i in nodes:
        hashes: list[str] = []
        with net.rpc(i) as rpc:
            for start in range(1, target + 1, 100):
                calls = [
                    ("block_get", {"height": h}) for h in range(start, min(target, start + 99) + 1)
                ]
                hashes += [a["hash"] for a in rpc.batch(calls)]  # type: ignore[index]
        reference = reference or hashes
        assert hashes == reference, f"node{i} disagrees"
    ids = sorted(load.committed)
    for i in nodes:
        with net.rpc(i) as rpc:
            for start in range(0, len(ids), 100):
                calls = [("tx_get", {"tx_id": t}) for t in ids[start : start + 100]]
                lost = [a for a in rpc.batch(calls) if a["status"] != "committed"]  # type: ignore[index]
                assert not lost, f"node{i} lost answered-committed txs: {lost[:2]}"
        st = net.status(i)
        assert st is not None
        assert not st["consensus"]["misbehaviour"].get("equivocation"), st["consensus"]


@pytest.mark.parametrize(
    "point",
    ["vote-persisted", "decided-before-commit", "mid-commit-write", "committed-before-answer"],
)
def test_crash_at_a_point_under_load_loses_nothing(net: Testnet, point: str) -> None:
    with Load(net, ["manufacturer", "shipper"], nodes=[0, VICTIM], seed=11) as load:
        load.wait_for_more(10, 30)
        net.kill(VICTIM)
        net.start(VICTIM, env={"CHAIN_CRASH_AT": f"{point}:3"})
        assert wait_exit(net, VICTIM, CRASH_BOUND_S) == CRASH_EXIT
        assert f"crash point {point} reached" in net.log(VICTIM)
        restarted = time.monotonic()
        net.start(VICTIM)
        made = load.wait_for_more(10, 60)
        assert made >= 10, "no progress after the restart"
        net.wait_height(VICTIM, height(net, 0), timeout_s=CATCH_UP_BOUND_S)
        print(f"{point}: caught up {time.monotonic() - restarted:.1f} s after the restart")
    agree(net, load)


def test_crash_while_block_sync_applies(net: Testnet) -> None:
    with Load(net, ["retailer"], nodes=[0], seed=12) as load:
        net.kill(VICTIM)
        behind = height(net, 0)
        net.wait_height(0, behind + 20, timeout_s=60)
        net.start(VICTIM, env={"CHAIN_CRASH_AT": "sync-apply:5"})
        assert wait_exit(net, VICTIM, CRASH_BOUND_S) == CRASH_EXIT
        net.start(VICTIM)
        net.wait_height(VICTIM, height(net, 0), timeout_s=CATCH_UP_BOUND_S)
    agree(net, load)
