"""Real-process fault tests on a 4-validator (+1 full node) testnet under a steady load.

Every test leaves all nodes running, and ends by checking that every node has the same
block hashes up to the common height and that every tx a node reported committed is in
the chain. Bounds are stated as constants; the measured times are printed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from support import adversary
from support.load import Load
from support.testnet import Testnet

VALIDATORS = 4
FULL = 4  # index of the full node
VIEW_CHANGE_BOUND_S = 30.0  # genesis view_timeout 4 s, doubling: (f+2) timeouts fit easily
CATCH_UP_BOUND_S = 60.0
ACCOUNTS = ["manufacturer", "shipper", "retailer"]


@pytest.fixture(scope="module")
def net() -> Iterator[Testnet]:
    with Testnet(validators=VALIDATORS, full_nodes=1) as t:
        yield t


@pytest.fixture(autouse=True)
def all_running(net: Testnet) -> Iterator[None]:
    yield
    for i in range(VALIDATORS + 1):
        pid = net.pid(i)
        if pid is None:
            net.start(i)
        else:
            try:
                import os

                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass


def leader(net: Testnet, among: list[int]) -> int:
    for i in among:
        st = net.status(i)
        if st is not None:
            return int(st["consensus"]["leader"])
    raise AssertionError("no node answers")


def heights(net: Testnet, nodes: list[int]) -> dict[int, int]:
    out = {}
    for i in nodes:
        st = net.status(i)
        out[i] = -1 if st is None else st["height"]
    return out


def block_hashes(net: Testnet, node: int, upto: int) -> list[str]:
    hashes: list[str] = []
    with net.rpc(node) as rpc:
        for start in range(1, upto + 1, 100):
            calls = [("block_get", {"height": h}) for h in range(start, min(upto, start + 99) + 1)]
            for answer in rpc.batch(calls):
                assert isinstance(answer, dict), answer
                hashes.append(answer["hash"])
    return hashes


def check_agreement(net: Testnet, nodes: list[int], load: Load | None = None) -> int:
    """Every node reaches the highest height seen, with the same block hashes, and every tx
    a node reported committed is in that chain."""
    target = max(heights(net, nodes).values())
    assert target > 0
    for i in nodes:
        net.wait_height(i, target, timeout_s=CATCH_UP_BOUND_S)
    reference = block_hashes(net, nodes[0], target)
    for i in nodes[1:]:
        assert block_hashes(net, i, target) == reference, f"node{i} disagrees"
    if load is not None:
        ids = sorted(load.committed)
        for node in (nodes[0], nodes[-1]):
            with net.rpc(node) as rpc:
                for start in range(0, len(ids), 100):
                    calls = [("tx_get", {"tx_id": t}) for t in ids[start : start + 100]]
                    answers = rpc.batch(calls)
                    lost = [
                        a for a in answers if not isinstance(a, dict) or a["status"] != "committed"
                    ]
                    assert not lost, f"node{node}: committed transactions missing: {lost[:2]}"
    return target


def wait_catch_up(net: Testnet, node: int, others: list[int], bound_s: float) -> float:
    target = max(heights(net, others).values())
    started = time.monotonic()
    net.wait_height(node, target, timeout_s=bound_s)
    return time.monotonic() - started


def test_tx_sent_to_any_node_commits_everywhere(net: Testnet) -> None:
    for node in range(VALIDATORS + 1):
        wallet = net.wallet("manufacturer", node=node)
        result = wallet.send("notary.anchor", {"digest": bytes([node + 1]) * 32}, timeout_ms=20_000)
        assert result["status"] == "committed", result
        for other in range(VALIDATORS + 1):
            with net.rpc(other) as rpc:
                seen = rpc.call("tx_wait", {"tx_id": result["tx_id"], "timeout_ms": 20_000})
            assert seen["status"] == "committed" and seen["height"] == result["height"]


def test_kill_a_backup_then_it_catches_up(net: Testnet) -> None:
    lead = leader(net, list(range(VALIDATORS)))
    backup = (lead + 1) % VALIDATORS
    live = [i for i in range(VALIDATORS) if i != backup]
    with Load(net, ACCOUNTS, nodes=live, seed=11) as load:
        assert load.wait_for_more(30, 20) >= 30
        net.kill(backup)
        assert load.wait_for_more(60, 30) >= 60, "commits stopped without one backup"
        net.start(backup)
        took = wait_catch_up(net, backup, live, CATCH_UP_BOUND_S)
        print(f"backup caught up in {took:.1f}s")
        assert load.wait_for_more(20, 20) >= 20
    check_agreement(net, list(range(VALIDATORS + 1)), load)


def test_kill_the_leader_view_change(net: Testnet) -> None:
    lead = leader(net, list(range(VALIDATORS)))
    live = [i for i in range(VALIDATORS) if i != lead]
    with Load(net, ACCOUNTS, nodes=live, seed=12) as load:
        assert load.wait_for_more(20, 20) >= 20
        before = max(heights(net, live).values())
        net.kill(lead)
        killed_at = time.monotonic()
        net.wait_height(live[0], before + 2, timeout_s=VIEW_CHANGE_BOUND_S)
        resumed_s = time.monotonic() - killed_at
        print(f"commits resumed {resumed_s:.1f}s after the leader was killed")
        new_leader = leader(net, live)
        assert new_leader != lead
        assert load.wait_for_more(30, 30) >= 30
        net.start(lead)
        wait_catch_up(net, lead, live, CATCH_UP_BOUND_S)
    check_agreement(net, list(range(VALIDATORS + 1)), load)


def test_sigstop_ten_seconds_then_catch_up(net: Testnet) -> None:
    lead = leader(net, list(range(VALIDATORS)))
    frozen = (lead + 2) % VALIDATORS
    live = [i for i in range(VALIDATORS) if i != frozen]
    with Load(net, ACCOUNTS, nodes=live, seed=13) as load:
        net.kill(frozen, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            assert load.wait_for_more(20, 9) >= 20, "commits stopped with one node frozen"
            time.sleep(max(0.0, 10.0 - (time.monotonic() - stopped_at)))
        finally:
            net.kill(frozen, signal.SIGCONT)
        took = wait_catch_up(net, frozen, live, CATCH_UP_BOUND_S)
        print(f"SIGSTOPped node caught up {took:.1f}s after SIGCONT")
    check_agreement(net, list(range(VALIDATORS + 1)), load)


def test_two_of_four_down_stops_commits_safely(net: Testnet) -> None:
    lead = leader(net, list(range(VALIDATORS)))
    down = [(lead + 1) % VALIDATORS, (lead + 2) % VALIDATORS]
    live = [i for i in range(VALIDATORS) if i not in down]
    for i in down:
        net.kill(i)
    time.sleep(2.0)  # let any in-flight messages settle; no quorum of 3 can form
    stalled = heights(net, live)
    time.sleep(6.0)
    assert heights(net, live) == stalled, "committed without a quorum"
    for i in down:
        net.start(i)
    started = time.monotonic()
    net.wait_height(live[0], max(stalled.values()) + 2, timeout_s=CATCH_UP_BOUND_S * 2)
    print(f"commits resumed {time.monotonic() - started:.1f}s after the restart")
    for i in down:
        wait_catch_up(net, i, live, CATCH_UP_BOUND_S)
    check_agreement(net, list(range(VALIDATORS + 1)))


def p2p_counters(net: Testnet, node: int) -> dict[str, int]:
    st = net.status(node)
    assert st is not None
    return dict(st["syncing"]["p2p"])


def test_hostile_peers_are_refused_and_counted(net: Testnet) -> None:
    import json

    manifest = json.loads((net.dir / "testnet.json").read_text())
    target = 0
    port = int(manifest["nodes"][target]["address"].rsplit(":", 1)[1])
    full_home = net.dir / manifest["nodes"][FULL]["home"]
    with Load(net, ACCOUNTS, nodes=[1, 2, 3], seed=14) as load:
        before = p2p_counters(net, target)
        # 1. A key nobody pinned.
        cert, key = adversary.stranger_identity("stranger")
        assert adversary.tls_attempt(port, cert, key) == b""
        # 2. Another validator's name on the attacker's own key (it lacks node1's private key).
        cert, key = adversary.stranger_identity("node1")
        assert adversary.tls_attempt(port, cert, key) == b""
        # 3. Handshakes that never finish, held past the handshake deadline.
        silent = [adversary.silent_connection(port) for _ in range(3)]
        # 4. Garbage where TLS should be.
        adversary.garbage_before_tls(port, b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
        # 5. An allowed peer (the full node's identity) that sends a garbage frame after hello.
        net.kill(FULL)
        from node.ledger.crypto import read_key_file
        from p2p.identity import private_key_pem

        full_key = read_key_file(full_home / "node_key")
        full_cert = (full_home / "node_cert.pem").read_bytes()
        assert adversary.garbage_after_hello(
            port,
            full_cert,
            private_key_pem(full_key.private_key),
            full_key.public_key,
            manifest["chain_id"],
            b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",
        )
        assert load.wait_for_more(20, 20) >= 20, "cluster stopped committing under attack"
        time.sleep(6.0)  # past the 5 s handshake deadline of the silent connections
        for s in silent:
            s.close()
        after = p2p_counters(net, target)
        grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        print(f"p2p counters that grew: { {k: v for k, v in grew.items() if v} }")
        assert grew["unknown_peer_refused"] >= 2
        assert grew["handshake_timeout"] >= 3
        assert grew["tls_failed"] >= 1
        assert grew["bad_frame"] >= 1
        assert load.wait_for_more(20, 20) >= 20
    net.start(FULL)
    wait_catch_up(net, FULL, [0, 1, 2, 3], CATCH_UP_BOUND_S)
    check_agreement(net, list(range(VALIDATORS + 1)), load)
