"""`chain testnet up --demo`: a small consortium workload that prints what it does.

A manufacturer registers products, hands them to a shipper, an inspector records an
inspection with a report digest, the shipper hands them to a retailer, and every so often a
document is notarised. Nodes are chosen round-robin, so every node serves clients.

It runs in a thread beside the live view (node/testnet/view.py) and talks to the nodes of a
`LocalTestnet` only through their control sockets, as any client would.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from typing import Any

from node.client.wallet import Wallet
from node.testnet.local import LocalTestnet

STEP_PAUSE_S = 0.5
MAX_LOG_LINES = 100


class Demo:
    """The workload's thread; recent() is what it did last (for the live view)."""

    def __init__(self, net: LocalTestnet, *, quiet: bool = False) -> None:
        self.net = net
        self.quiet = quiet  # the live view shows recent() instead
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo", daemon=True)
        self.log: list[str] = []

    def start(self) -> Demo:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)  # a daemon thread: never hold up the exit

    def _say(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-MAX_LOG_LINES]
        if not self.quiet:
            print(f"demo: {line}", flush=True)

    def recent(self, count: int) -> list[str]:
        return self.log[-count:]

    def _run(self) -> None:
        try:
            nodes = self.net.names
            clients = [self.net.rpc(n, timeout_s=30) for n in nodes]
            # One wallet per account (one nonce sequence), pointed at a different node each round.
            wallets = {
                name: Wallet(clients[0], self.net.key(name))
                for name in ("manufacturer", "shipper", "retailer", "inspector")
            }
        except Exception as exc:  # the testnet went away
            self._say(f"cannot connect: {exc}")
            return
        suffix = int(time.time()) % 100_000
        for n in itertools.count():
            if self._stop.is_set():
                return
            for wallet in wallets.values():
                wallet.rpc = clients[n % len(clients)]
            item = f"pallet-{suffix}-{n}"
            try:
                self._scenario(wallets, item, nodes[n % len(nodes)])
            except Exception as exc:
                self._say(f"{item}: {exc}")
                for wallet in wallets.values():
                    wallet._next_nonce = None  # resynchronise with the chain
            self._stop.wait(STEP_PAUSE_S)

    def _scenario(self, w: dict[str, Wallet], item: str, node: str) -> None:
        m, s, r, i = w["manufacturer"], w["shipper"], w["retailer"], w["inspector"]
        steps: list[tuple[Wallet, str, dict[str, Any], str]] = [
            (
                m,
                "item.register",
                {"item": item, "meta": {"product": "olive oil", "lot": item[-4:]}},
                f"manufacturer registered {item}",
            ),
            (m, "item.transfer", {"item": item, "to": s.public_key}, "custody -> shipper"),
            (
                i,
                "item.event",
                {
                    "item": item,
                    "kind": "inspected",
                    "location": "Port of Genoa",
                    "digest": hashlib.sha256(f"report {item}".encode()).digest(),
                },
                "inspector recorded an inspection (report digest anchored)",
            ),
            (s, "item.transfer", {"item": item, "to": r.public_key}, "custody -> retailer"),
            (
                r,
                "notary.anchor",
                {
                    "digest": hashlib.sha256(f"invoice {item}".encode()).digest(),
                    "meta": {"doc": f"invoice for {item}"},
                },
                "retailer notarised the invoice",
            ),
        ]
        pending = [(wallet.send(t, a, wait=False), text) for wallet, t, a, text in steps]
        for sent, text in pending:
            res: Any = m.rpc.call("tx_wait", {"tx_id": sent["tx_id"], "timeout_ms": 20_000})
            status = res["status"]
            where = f"height {res['height']}" if "height" in res else status
            self._say(f"{text} via {node}: {status} at {where}")


def start_demo(net: LocalTestnet, *, quiet: bool = False) -> Demo:
    return Demo(net, quiet=quiet).start()
