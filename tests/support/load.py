"""A steady transaction load against a testnet, tolerant of nodes going down.

Each worker owns one account (so nonces never collide), submits small batches to a node
chosen round-robin among the given ones, waits for each tx, and records every tx that a
node reported committed. `committed` is what the chain must never lose.
"""

from __future__ import annotations

import random
import threading
import time

from node.ledger.tx import make_tx
from node.rpc.client import RpcClient
from support.testnet import Testnet


class Load:
    def __init__(
        self,
        net: Testnet,
        accounts: list[str],
        nodes: list[int],
        seed: int = 1,
        batch_max: int = 20,
        pause_s: float = 0.02,
    ) -> None:
        self.net = net
        self.accounts = accounts
        self.nodes = list(nodes)
        self.seed = seed
        self.batch_max = batch_max
        self.pause_s = pause_s
        self.committed: dict[str, int] = {}  # tx id -> height
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._worker, args=(i, a), daemon=True)
            for i, a in enumerate(accounts)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def count(self) -> int:
        with self._lock:
            return len(self.committed)

    def wait_for_more(self, extra: int, timeout_s: float) -> int:
        """Block until `extra` more txs commit; returns how many did (asserts nothing)."""
        start = self.count()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.count() < start + extra:
            time.sleep(0.05)
        return self.count() - start

    def _worker(self, index: int, account: str) -> None:
        rng = random.Random(self.seed * 1000 + index)
        key = self.net.key(account)
        n = 0
        turn = index
        while not self._stop.is_set():
            node = self.nodes[turn % len(self.nodes)]
            turn += 1
            try:
                with RpcClient(self.net.socket(node), timeout_s=5) as rpc:
                    chain_id = rpc.call("node_status")["chain_id"]
                    nonce = rpc.call("account_get", {"account": key.public_key.hex()})["next_nonce"]
                    for _ in range(50):  # then move to another node
                        if self._stop.is_set():
                            return
                        batch = []
                        for _ in range(rng.randint(1, self.batch_max)):
                            n += 1
                            batch.append(
                                make_tx(
                                    key,
                                    chain_id,
                                    nonce,
                                    "record.put",
                                    {
                                        "ns": f"load-{account}",
                                        "key": f"{self.seed}-{n}",
                                        "value": n,
                                    },
                                )
                            )
                            nonce += 1
                        answers = rpc.call("tx_submit_batch", {"txs": [t.raw.hex() for t in batch]})
                        if any("error" in a for a in answers):
                            raise RuntimeError("refused")
                        for t in batch:
                            r = rpc.call("tx_wait", {"tx_id": t.tx_id.hex(), "timeout_ms": 4000})
                            if r["status"] == "committed":
                                with self._lock:
                                    self.committed[t.tx_id.hex()] = r["height"]
                            else:
                                raise RuntimeError("not committed in time")
                        time.sleep(self.pause_s)
            except Exception:
                with self._lock:
                    self.errors += 1
                time.sleep(0.1)
