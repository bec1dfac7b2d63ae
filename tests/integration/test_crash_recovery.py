"""kill -9 a node at seeded random moments of a load, 20+ times, including during commits.

After each restart the load must make progress again before the next kill. At the end:
every transaction whose tx_wait answered "committed" is in the chain, and the node's state
root equals a replay of its blocks from genesis.
"""

from __future__ import annotations

import random
import time

from support.load import Load
from support.testnet import Testnet

from node.daemon.replay import replay_home
from node.testnet.homes import TestnetError

KILLS = 20
SEED = 20261129
PROGRESS_PER_CYCLE = 5


def test_kill_nine_twenty_times() -> None:
    rng = random.Random(SEED)
    with Testnet(validators=1) as net:
        with Load(net, ["manufacturer", "shipper"], nodes=[0], seed=SEED, pause_s=0.0) as load:
            for cycle in range(KILLS):
                time.sleep(rng.uniform(0.05, 0.6))  # a random moment of the load
                net.kill(0)
                net.start(0)
                try:
                    net.wait_height(0, 1, timeout_s=30)
                except TestnetError as e:
                    raise AssertionError(
                        f"restart {cycle}: {e}; log tail:\n{net.log(0)[-4000:]}"
                    ) from e
                made = load.wait_for_more(PROGRESS_PER_CYCLE, 30)
                assert made >= PROGRESS_PER_CYCLE, (
                    f"no progress after restart {cycle}; status {net.status(0)}; load "
                    f"{load.count()} committed, {load.errors} errors; node log tail:\n"
                    f"{net.log(0)[-4000:]}"
                )
        committed = dict(load.committed)
        with net.rpc() as rpc:
            ids = sorted(committed)
            missing = []
            for start in range(0, len(ids), 100):
                answers = rpc.batch([("tx_get", {"tx_id": t}) for t in ids[start : start + 100]])
                missing += [
                    a for a in answers if not isinstance(a, dict) or a["status"] != "committed"
                ]
        assert not missing, f"{len(missing)} committed txs lost, e.g. {missing[:3]}"
        net.kill(0)
        stored, replayed = replay_home(net.dir / "node0")
        assert stored.height > 0
        assert stored == replayed
