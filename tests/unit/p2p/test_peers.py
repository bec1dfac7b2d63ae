"""PeerManager with well-behaved peers: real TLS links on 127.0.0.1 between managers."""

from __future__ import annotations

import itertools
import os
import random
from typing import TYPE_CHECKING, Any

import pytest
import trio

from p2p.framing import FrameError, encode_frame
from p2p.peers import GLOBAL_COUNTERS, PeerManager, backoff_delay_s, keep_new_link

if TYPE_CHECKING:
    from conftest import P2PKit

TEST_TIMEOUT_S = 20


def link_direction(manager: PeerManager, peer: bytes) -> str:
    return str(manager.statistics()["peers"][peer.hex()]["direction"])


def assert_one_link_per_pair(managers: list[PeerManager]) -> None:
    """Each pair agrees on its single link: outbound at one end, inbound at the other."""
    for a, b in itertools.combinations(managers, 2):
        directions = {link_direction(a, b.node_id), link_direction(b, a.node_id)}
        assert directions == {"inbound", "outbound"}


def test_tie_break_is_the_same_decision_at_both_ends() -> None:
    for _ in range(50):
        a, b = os.urandom(32), os.urandom(32)
        for existing, new in itertools.product((a, b), repeat=2):
            at_a = keep_new_link(own_id=a, peer=b, existing_dialer=existing, new_dialer=new)
            at_b = keep_new_link(own_id=b, peer=a, existing_dialer=existing, new_dialer=new)
            assert at_a == at_b
            kept_dialer = new if at_a else existing
            if existing != new:
                assert kept_dialer == min(a, b)
            else:
                assert at_a  # same dialer: the newer link replaces a stale one


async def test_four_managers_link_up_and_exchange_messages(kit: P2PKit) -> None:
    members = [kit.identity(f"node{i}") for i in range(4)]
    with trio.fail_after(TEST_TIMEOUT_S):
        async with kit.mesh(members) as managers:
            await kit.wait_until(lambda: kit.fully_connected(managers))
            assert_one_link_per_pair(managers)

            # Every ordered pair: a direct message, answered by the receiver.
            for sender, receiver in itertools.permutations(managers, 2):
                assert sender.send_nowait(receiver.node_id, {"t": "ping-app", "n": 1, "b": b"x"})
                peer, message = await receiver.inbox.receive()
                assert peer == sender.node_id
                assert message == {"t": "ping-app", "n": 1, "b": b"x"}

            # Broadcast from each, excluding one peer: everyone else gets it exactly once.
            for index, sender in enumerate(managers):
                excluded = managers[(index + 1) % 4]
                queued = sender.broadcast_nowait(
                    {"t": "block", "from": index}, exclude=excluded.node_id
                )
                assert queued == 2
                for receiver in managers:
                    if receiver in (sender, excluded):
                        continue
                    peer, message = await receiver.inbox.receive()
                    assert (peer, message) == (sender.node_id, {"t": "block", "from": index})
            await trio.sleep(0.05)
            for manager in managers:
                assert manager.statistics()["inbox_depth"] == 0  # nothing extra arrived

            stats = managers[0].statistics()
            assert stats["connected"] == 3
            for peer_stats in stats["peers"].values():
                assert peer_stats["connected"] is True
                assert peer_stats["frames_out"] >= 1
                assert peer_stats["frames_in"] >= 1
                assert peer_stats["bytes_out"] > 0 and peer_stats["bytes_in"] > 0
            for name in GLOBAL_COUNTERS:
                assert name in stats["counters"]
            assert stats["counters"]["handshake_failed"] == 0
            assert stats["counters"]["bad_frame"] == 0


async def test_peers_that_dial_each_other_keep_one_link(kit: P2PKit) -> None:
    members = [kit.identity(f"node{i}") for i in range(3)]
    ports = await kit.reserve_ports(len(members))
    addresses = {m.node_id: (kit.HOST, port) for m, port in zip(members, ports, strict=True)}
    managers = [
        kit.manager(
            me,
            members,
            {peer: address for peer, address in addresses.items() if peer != me.node_id},
            port=port,
        )
        for me, port in zip(members, ports, strict=True)
    ]
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            for manager in managers:
                nursery.start_soon(manager.run)
            await kit.wait_until(lambda: kit.fully_connected(managers))
            # Let any duplicate that was still handshaking arrive and be resolved.
            await trio.sleep(0.5)
            assert kit.fully_connected(managers)
            assert_one_link_per_pair(managers)
            for sender, receiver in itertools.permutations(managers, 2):
                assert sender.send_nowait(receiver.node_id, {"t": "m"})
                assert (await receiver.inbox.receive())[0] == sender.node_id
            nursery.cancel_scope.cancel()


async def test_writer_coalesces_queued_frames_into_few_socket_writes(kit: P2PKit) -> None:
    members = [kit.identity("a"), kit.identity("b")]
    burst = 200
    with trio.fail_after(TEST_TIMEOUT_S):
        async with kit.mesh(members) as (a, b):
            await kit.wait_until(lambda: kit.fully_connected([a, b]))
            before = a.statistics()["peers"][b.node_id.hex()]
            # No checkpoint between these sends, so the writer finds all of them queued.
            for i in range(burst):
                assert a.send_nowait(b.node_id, {"t": "tx", "i": i})
            received = await kit.receive_from(b, burst)
            assert [message["i"] for _, message in received] == list(range(burst))
            after = a.statistics()["peers"][b.node_id.hex()]
            frames = after["frames_out"] - before["frames_out"]
            writes = after["socket_writes"] - before["socket_writes"]
            assert frames >= burst
            assert writes <= 3  # a ping may slip in; 200 frames of ~20 bytes fit one batch


async def test_full_inbox_applies_backpressure_without_loss(kit: P2PKit) -> None:
    members = [kit.identity("a"), kit.identity("b")]
    count = 300
    with trio.fail_after(TEST_TIMEOUT_S):
        async with kit.mesh(members, inbox_size=4, send_queue_frames=8) as (a, b):
            await kit.wait_until(lambda: kit.fully_connected([a, b]))

            async def produce() -> None:
                for i in range(count):
                    # send() waits for room instead of dropping.
                    assert await a.send(b.node_id, {"t": "tx", "i": i, "pad": b"p" * 512})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                seen = []
                for _ in range(count):
                    _, message = await b.inbox.receive()
                    seen.append(message["i"])
                    if len(seen) % 50 == 0:
                        # A slow consumer: the inbox stays full meanwhile.
                        await trio.sleep(0.05)
                        assert b.statistics()["inbox_depth"] <= 4
            assert seen == list(range(count))
            assert a.statistics()["counters"]["queue_full_drops"] == 0


async def test_frames_sent_together_with_the_hello_are_delivered(kit: P2PKit) -> None:
    server, raw = kit.identity("server"), kit.identity("raw")
    manager = kit.manager(server, [server, raw], {})
    with trio.fail_after(TEST_TIMEOUT_S):
        async with (
            kit.running(manager),
            kit.raw_tls_peer(raw, manager.listen_port, [server.cert_pem]) as peer,
        ):
            hello = await peer.receive_frame()
            assert hello["t"] == "hello" and hello["node_id"] == server.node_id
            own_hello = encode_frame(
                {"t": "hello", "version": 1, "chain_id": kit.CHAIN_ID, "node_id": raw.node_id}
            )
            # Hello and two messages in one TLS write: nothing after the hello is lost.
            await peer.stream.send_all(
                own_hello + encode_frame({"t": "a"}) + encode_frame({"t": "b"})
            )
            assert await manager.inbox.receive() == (raw.node_id, {"t": "a"})
            assert await manager.inbox.receive() == (raw.node_id, {"t": "b"})


async def test_restarted_manager_is_reconnected_by_the_others(kit: P2PKit) -> None:
    members = [kit.identity(f"node{i}") for i in range(3)]
    first, second, third = members
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as outer:
            # node0 dials nobody: after its restart only the others' dialers can bring it back.
            restarted_scope = trio.CancelScope()
            node0 = kit.manager(first, members, {})

            async def run_first(manager: PeerManager, *, task_status: Any) -> None:
                with restarted_scope:
                    await manager.run(task_status=task_status)

            await outer.start(run_first, node0)
            port0 = node0.listen_port
            node1 = kit.manager(second, members, {first.node_id: (kit.HOST, port0)})
            await outer.start(node1.run)
            node2 = kit.manager(
                third,
                members,
                {first.node_id: (kit.HOST, port0), second.node_id: (kit.HOST, node1.listen_port)},
            )
            await outer.start(node2.run)
            await kit.wait_until(lambda: kit.fully_connected([node0, node1, node2]))

            restarted_scope.cancel()
            await kit.wait_until(
                lambda: (
                    first.node_id not in node1.connected_peers()
                    and first.node_id not in node2.connected_peers()
                )
            )
            assert node1.send_nowait(first.node_id, {"t": "lost"}) is False
            assert node1.statistics()["counters"]["no_link_drops"] == 1

            reborn = kit.manager(first, members, {}, port=port0)
            restarted_scope = trio.CancelScope()
            await outer.start(run_first, reborn)
            await kit.wait_until(lambda: kit.fully_connected([reborn, node1, node2]))
            for sender in (node1, node2):
                assert sender.send_nowait(first.node_id, {"t": "again"})
                assert await reborn.inbox.receive() == (sender.node_id, {"t": "again"})
            peer_stats = node1.statistics()["peers"][first.node_id.hex()]
            assert peer_stats["links_established"] == 2
            assert peer_stats["last_close_reason"] in {"peer_closed", "connection_lost"}
            outer.cancel_scope.cancel()


def _open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_cancel_closes_every_socket_and_ends_the_inbox(kit: P2PKit) -> None:
    members = [kit.identity(f"node{i}") for i in range(3)]
    fds_before = _open_fd_count()
    with trio.fail_after(TEST_TIMEOUT_S):
        async with kit.mesh(members) as managers:
            await kit.wait_until(lambda: kit.fully_connected(managers))
            managers[1].send_nowait(managers[0].node_id, {"t": "last"})
            await kit.wait_until(lambda: managers[0].statistics()["inbox_depth"] == 1)
            ports = [m.listen_port for m in managers]
        assert _open_fd_count() == fds_before
        for port in ports:
            with pytest.raises(OSError):
                await trio.open_tcp_stream(kit.HOST, port)
        # What was delivered before the stop can still be read, then the inbox ends.
        assert (await managers[0].inbox.receive())[1] == {"t": "last"}
        with pytest.raises(trio.EndOfChannel):
            await managers[0].inbox.receive()
        with pytest.raises(RuntimeError):
            await managers[0].run()


async def test_send_api_refuses_bad_calls_and_counts_drops(kit: P2PKit) -> None:
    a, b, stranger = kit.identity("a"), kit.identity("b"), kit.identity("stranger")
    manager = kit.manager(a, [a, b], {}, max_frame_bytes=1024)
    with pytest.raises(KeyError):
        manager.send_nowait(stranger.node_id, {"t": "x"})
    with pytest.raises(ValueError):
        manager.send_nowait(b.node_id, {"no": "kind"})
    for reserved in ("hello", "ping"):
        with pytest.raises(ValueError):
            manager.send_nowait(b.node_id, {"t": reserved})
    with pytest.raises(FrameError):
        manager.send_nowait(b.node_id, {"t": "big", "data": b"x" * 2048})
    assert manager.send_nowait(b.node_id, {"t": "x"}) is False  # not linked
    assert await manager.send(b.node_id, {"t": "x"}) is False
    assert manager.broadcast_nowait({"t": "x"}) == 0
    stats = manager.statistics()
    assert stats["counters"]["no_link_drops"] == 2
    assert stats["peers"][b.node_id.hex()]["no_link_drops"] == 2
    assert stats["peers"][b.node_id.hex()]["connected"] is False


def test_constructor_checks_identities_and_config(kit: P2PKit) -> None:
    a, b, c = kit.identity("a"), kit.identity("b"), kit.identity("c")
    with pytest.raises(ValueError, match="node_id"):
        kit.manager(a, [a, b], {}).__class__(
            node_id=b.node_id,
            cert_pem=a.cert_pem,
            key_pem=a.key_pem,
            listen_host=kit.HOST,
            listen_port=0,
            chain_id=kit.CHAIN_ID,
            allowed={},
            dial={},
        )
    with pytest.raises(ValueError, match="another key"):
        PeerManager(
            node_id=a.node_id,
            cert_pem=a.cert_pem,
            key_pem=a.key_pem,
            listen_host=kit.HOST,
            listen_port=0,
            chain_id=kit.CHAIN_ID,
            allowed={b.node_id: c.cert_pem},
            dial={},
        )
    with pytest.raises(ValueError, match="not in allowed"):
        kit.manager(a, [a, b], {c.node_id: (kit.HOST, 1)})
    with pytest.raises(ValueError):
        kit.manager(a, [a, b], {}, ping_interval_ms=500, idle_timeout_ms=400)
    with pytest.raises(ValueError):
        kit.manager(a, [a, b], {}, backoff_initial_ms=100, backoff_max_ms=50)


def test_backoff_is_jittered_below_a_capped_exponential() -> None:
    rng = random.Random(7)
    for failures in range(0, 40):
        ceiling_s = min(5.0, 0.1 * 2**failures)
        delays = [backoff_delay_s(failures, initial_s=0.1, max_s=5.0, rng=rng) for _ in range(200)]
        assert all(0 <= delay <= ceiling_s for delay in delays)
        # Full jitter spreads over the whole range, not around the ceiling.
        assert min(delays) < ceiling_s * 0.1
        assert max(delays) > ceiling_s * 0.9
    with pytest.raises(ValueError):
        backoff_delay_s(-1, initial_s=0.1, max_s=5.0, rng=rng)
