"""Transaction gossip at two speeds: what a node admits goes to the leader at once, to the
other validators LAZY_GOSSIP_S later and only while it is still pending; head frames after a
commit go to the peers that are not validators."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing

from node.daemon.reactors import txgossip
from node.daemon.reactors.directory import ValidatorDirectory
from node.daemon.reactors.txgossip import TxGossipReactor

ME, LEADER, B, C = (bytes([i]) * 32 for i in range(4))
FULL = bytes([9]) * 32


class _Peers:
    """PeerManager's sending side, recording (to, txs) for every frame."""

    def __init__(self, connected: Sequence[bytes]) -> None:
        self.node_id = ME
        self.connected = list(connected)
        self.frames: list[tuple[bytes, list[bytes]]] = []

    def send_nowait(self, peer: bytes, msg: dict[str, Any]) -> bool:
        self.frames.append((peer, list(msg.get("txs", [msg.get("h")]))))
        return True

    def broadcast_nowait(self, msg: dict[str, Any], *, exclude: bytes | None = None) -> int:
        sent = 0
        for peer in self.connected:
            if peer != exclude:
                sent += self.send_nowait(peer, msg)
        return sent

    def connected_peers(self) -> list[bytes]:
        return list(self.connected)

    def sent_to(self, peer: bytes) -> list[bytes]:
        return [tx for to, txs in self.frames if to == peer for tx in txs]


@dataclass
class _Outcome:
    error: object | None = None


def _reactor(
    peers: _Peers, pending: set[bytes], leader: list[bytes | None], counters: Counter[str]
) -> TxGossipReactor:
    async def admit(raws: Sequence[bytes]) -> list[_Outcome]:
        return [_Outcome() for _ in raws]

    return TxGossipReactor(
        peers,  # type: ignore[arg-type]
        directory=ValidatorDirectory([ME, LEADER, B, C]),
        admit=admit,
        on_accepted=lambda: None,
        stale_txs=lambda age_ms, limit: [],
        pending=lambda raw: raw in pending,
        leader=lambda: leader[0],
        counters=counters,
    )


async def _run_for(reactor: TxGossipReactor, seconds: float, body: Any) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(reactor.run)
        await body()
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


def test_the_leader_gets_txs_at_once_the_others_only_what_is_still_pending() -> None:
    peers = _Peers([LEADER, B, C])
    pending = {b"tx-committed", b"tx-waiting"}
    counters: Counter[str] = Counter()
    reactor = _reactor(peers, pending, [LEADER], counters)

    async def main() -> None:
        async def body() -> None:
            reactor.gossip([b"tx-committed", b"tx-waiting"])
            await trio.sleep(txgossip.TX_BATCH_DELAY_S * 2)
            assert peers.sent_to(LEADER) == [b"tx-committed", b"tx-waiting"]
            assert peers.sent_to(B) == peers.sent_to(C) == []  # not yet
            pending.discard(b"tx-committed")  # a block carried it meanwhile

        await _run_for(reactor, txgossip.LAZY_GOSSIP_S * 2, body)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert peers.sent_to(B) == peers.sent_to(C) == [b"tx-waiting"]
    assert peers.sent_to(LEADER) == [b"tx-committed", b"tx-waiting"]  # nothing twice
    assert counters["gossip_lazy_skipped"] == 1


def test_the_leader_itself_and_a_node_without_a_leader_send_only_lazily_to_everyone() -> None:
    for leader in (ME, None):
        peers = _Peers([LEADER, B, C])
        reactor = _reactor(peers, {b"tx"}, [leader], Counter())

        async def main(reactor: TxGossipReactor = reactor, peers: _Peers = peers) -> None:
            async def body() -> None:
                reactor.gossip([b"tx"])
                await trio.sleep(txgossip.LAZY_GOSSIP_S / 2)
                assert peers.frames == []

            await _run_for(reactor, txgossip.LAZY_GOSSIP_S, body)

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        assert sorted(to for to, _ in peers.frames) == sorted([LEADER, B, C])


def test_a_new_leader_since_the_eager_send_gets_the_pending_txs_lazily() -> None:
    peers = _Peers([LEADER, B, C])
    leader: list[bytes | None] = [LEADER]
    reactor = _reactor(peers, {b"tx"}, leader, Counter())

    async def main() -> None:
        async def body() -> None:
            reactor.gossip([b"tx"])
            await trio.sleep(txgossip.TX_BATCH_DELAY_S * 2)
            leader[0] = B  # a view change

        await _run_for(reactor, txgossip.LAZY_GOSSIP_S * 2, body)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert peers.sent_to(LEADER) == [b"tx"]  # once, eagerly
    assert peers.sent_to(B) == peers.sent_to(C) == [b"tx"]


def test_txs_from_a_full_node_are_passed_on_to_the_validators() -> None:
    peers = _Peers([LEADER, B, C, FULL])
    reactor = _reactor(peers, {b"from-full"}, [LEADER], Counter())

    async def main() -> None:
        async def body() -> None:
            reactor.offer(FULL, {"t": "txs", "txs": [b"from-full"]})

        await _run_for(reactor, txgossip.LAZY_GOSSIP_S * 2, body)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert peers.sent_to(LEADER) == [b"from-full"]
    assert peers.sent_to(B) == peers.sent_to(C) == [b"from-full"]


def test_a_commit_is_announced_at_once_to_full_nodes_only() -> None:
    from node.daemon.reactors.blocksync import BlockSyncReactor

    peers = _Peers([LEADER, B, FULL])

    class _Sender:
        def __init__(self) -> None:
            self.peers = peers

    class _Chain:
        store = None

        def clock_ms(self) -> int:
            return 1

    sync = BlockSyncReactor(
        _Sender(),  # type: ignore[arg-type]
        chain=_Chain(),  # type: ignore[arg-type]
        directory=ValidatorDirectory([ME, LEADER, B, C]),
        max_frame_bytes=1 << 20,
        counters=Counter(),
    )
    sync.announce_commit(7)
    assert peers.frames == [(FULL, [7])]  # validators hear the periodic announcement
    sync.announce_head(7)
    assert sorted(to for to, _ in peers.frames) == sorted([FULL, LEADER, B, FULL])
