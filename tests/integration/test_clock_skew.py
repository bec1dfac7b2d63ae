"""Clock skew on real processes: node1 runs three minutes fast, node2 three minutes slow
(CHAIN_CLOCK_OFFSET_MS). The chain keeps committing; when a skewed validator leads, its
blocks are refused with a counted reason and the view moves on; with the honest node0 down,
the remaining three (two of them skewed) still commit, because a node whose own clock is
off judges proposals by the chain's certified time."""

from __future__ import annotations

import time

from support.load import Load
from support.testnet import Testnet

SKEW_MS = 180_000
COMMIT_BOUND_S = 90.0  # view changes past two skewed leaders (4 s timeout, doubling)


def height(net: Testnet, node: int) -> int:
    st = net.status(node)
    return -1 if st is None else int(st["height"])


def test_skewed_validators_neither_stall_the_chain_nor_move_its_time() -> None:
    with Testnet(validators=4) as net:
        for node, offset in ((1, SKEW_MS), (2, -SKEW_MS)):
            net.kill(node)
            net.start(node, env={"CHAIN_CLOCK_OFFSET_MS": str(offset)})
        with Load(net, ["manufacturer"], nodes=[3], seed=5) as load:
            assert load.wait_for_more(20, 60) >= 20, "no commits with two skewed validators"
            for node in (1, 2):
                st = net.status(node)
                assert st is not None and st["clock"]["own_clock_off"], st and st["clock"]
            # Without node0 the three left (two skewed) must still commit; views move past
            # node1 and node2, whose proposals are refused for their time.
            net.kill(0)
            started = time.monotonic()
            before = height(net, 3)
            deadline = started + COMMIT_BOUND_S
            while height(net, 3) < before + 5 and time.monotonic() < deadline:
                time.sleep(0.5)
            took = time.monotonic() - started
            assert height(net, 3) >= before + 5, "no commits with node0 down"
            status3 = net.status(3)
            assert status3 is not None
            refused = status3["counters"]["refused_timestamp"]
            net.start(0)
        assert refused >= 1, "no skewed proposal was refused"
        # A node whose clock is off judged proposals by the chain's time. Not every skewed
        # node need have: one that led the view while node0 was down, and took the blocks
        # before by block sync, validated none (seen: node2 at view 2, 0 checks, with one
        # core busy elsewhere; dc97bd9 failed the per-node form 2 of 5 times so).
        corrected = {}
        for node in (1, 2):
            st = net.status(node)
            assert st is not None and st["clock"]["own_clock_off"], st and st["clock"]
            corrected[node] = st["clock"]["corrected_checks"]
        assert sum(corrected.values()) >= 1, corrected
        # The chain's time stayed with the honest clocks: the head's block time is within
        # the drift bound of node3's (honest) clock.
        st3 = net.status(3)
        assert st3 is not None
        assert abs(st3["last_block_time_ms"] - time.time() * 1000) < 30_000
        print(
            f"commits resumed {took:.1f} s after node0 stopped; {refused} skewed proposals refused"
        )
