"""kill -9 a node at seeded random moments of a load, 20+ times, including during commits.

After each restart: every transaction whose tx_wait answered "committed" is in the chain,
and the node's state root equals a replay of its blocks from genesis.
"""

from __future__ import annotations

import random
import threading
import time

from support.testnet import Testnet

from node.ledger.tx import make_tx
from node.replay import replay_home
from node.rpc.client import RpcClient

KILLS = 20
SEED = 20261129


class Load:
    """Submits small batches and waits for each; records what the node said was committed."""

    def __init__(self, net: Testnet, seed: int) -> None:
        self.net = net
        self.rng = random.Random(seed)
        self.key = net.key("manufacturer")
        self.committed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors = 0
        self.n = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with RpcClient(self.net.socket(0), timeout_s=5) as rpc:
                    status = rpc.call("node_status")
                    acct = rpc.call("account_get", {"account": self.key.public_key.hex()})
                    nonce = acct["next_nonce"]
                    while not self._stop.is_set():
                        batch = []
                        for _ in range(self.rng.randint(1, 40)):
                            self.n += 1
                            batch.append(
                                make_tx(
                                    self.key,
                                    status["chain_id"],
                                    nonce,
                                    "record.put",
                                    {"ns": "load", "key": f"k{self.n}", "value": self.n},
                                )
                            )
                            nonce += 1
                        answers = rpc.call("tx_submit_batch", {"txs": [t.raw.hex() for t in batch]})
                        for a in answers:
                            if "error" in a:
                                raise RuntimeError(a["error"]["message"])
                        for t in batch:
                            r = rpc.call("tx_wait", {"tx_id": t.tx_id.hex(), "timeout_ms": 5000})
                            if r["status"] == "committed":
                                self.committed.add(t.tx_id.hex())
            except Exception:
                self.errors += 1
                time.sleep(0.05)


def test_kill_nine_twenty_times() -> None:
    rng = random.Random(SEED)
    with Testnet(validators=1) as net:
        load = Load(net, SEED)
        load.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.05, 0.6))
                net.kill(0)
                net.start(0)
                net.wait_height(0, 1, timeout_s=30)
        finally:
            load.stop()
        assert len(load.committed) > 100, f"load made too little progress ({len(load.committed)})"
        with net.rpc() as rpc:
            missing = [
                t
                for t in sorted(load.committed)
                if rpc.call("tx_get", {"tx_id": t})["status"] != "committed"
            ]
        assert not missing, f"{len(missing)} committed txs lost, e.g. {missing[:3]}"
        net.kill(0)
        stored, replayed = replay_home(net.dir / "node0")
        assert stored.height > 0
        assert stored == replayed
